"""The whole error tree of atdak_agents.

Errors are split by *when* they happen, so that callers can catch exactly the kind they handle::

    AtdakError
    ├── UsageError                     the API was called wrongly (before anything ran)
    │   ├── InvalidParameterError      a parameter outside its allowed range (also a ValueError)
    │   └── MissingAPIKeyError         no key given and ATDAK_API_KEY unset
    ├── DefinitionError                a graph, workflow, template or tool definition is wrong
    │   ├── TemplateError              jinja2 syntax, an undefined variable, a sandbox refusal
    │   ├── ToolDefinitionError        a function that cannot become a tool
    │   ├── GraphValidationError       all problems found in a graph, at once
    │   └── WorkflowError              a YAML workflow file is wrong (file:line:col)
    ├── RunError                       something went wrong while running
    │   ├── ProviderError              the model endpoint failed
    │   │   ├── APIConnectionError     could not reach the endpoint / connection lost
    │   │   │   └── APITimeoutError    a connect/read/total timeout or deadline passed
    │   │   ├── StreamError            a stream broke after it started (carries what was received)
    │   │   │   └── IncompleteStreamError   the stream ended without ``data: [DONE]``
    │   │   ├── APIResponseValidationError  a 2xx answer that cannot be used (bad JSON, no choices)
    │   │   └── APIStatusError         the endpoint answered with an error status
    │   │       ├── BadRequestError              400
    │   │       │   └── ContextLengthExceededError   400, the prompt did not fit the window
    │   │       ├── AuthenticationError          401
    │   │       ├── PermissionDeniedError        403
    │   │       ├── NotFoundError                404
    │   │       ├── ConflictError                409
    │   │       ├── UnprocessableEntityError     422
    │   │       ├── RateLimitError               429
    │   │       └── InternalServerError          5xx
    │   ├── ContextBudgetError         a request cannot be made to fit the model's window
    │   ├── UsageLimitExceeded         a run-wide limit (tokens, requests, cost, time) was hit
    │   ├── ModelOutputError           the model's output could not be used (after repair attempts)
    │   ├── ToolExecutionError         a tool failed in a way that ends the run
    │   ├── StoreError                 a memory store or checkpointer failed
    │   │   ├── RunLockedError         another runner holds the run
    │   │   └── GraphChangedError      resuming under a graph whose fingerprint changed
    │   └── NodeError                  a graph node failed (carries the node path)
    └── ToolSignal                     raised *by tools* to steer the run, not a failure
        └── ModelRetry                 "tell the model this and let it try again"

Every error carries what was wrong, where, and how to fix it in its message; the structured
fields are there for programs. No error ever contains an API key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "APIConnectionError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AtdakError",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "ContextBudgetError",
    "ContextLengthExceededError",
    "DefinitionError",
    "GraphChangedError",
    "GraphValidationError",
    "IncompleteStreamError",
    "InternalServerError",
    "InvalidParameterError",
    "MissingAPIKeyError",
    "ModelOutputError",
    "ModelRetry",
    "NodeError",
    "NotFoundError",
    "PermissionDeniedError",
    "Problem",
    "ProviderError",
    "RateLimitError",
    "RunError",
    "RunLockedError",
    "StoreError",
    "StreamError",
    "TemplateError",
    "ToolDefinitionError",
    "ToolExecutionError",
    "ToolSignal",
    "UnprocessableEntityError",
    "UsageError",
    "UsageLimitExceeded",
    "WorkflowError",
    "status_error_class",
]


class AtdakError(Exception):
    """Base class of every error raised by atdak_agents."""


# --------------------------------------------------------------------------- misuse of the API


class UsageError(AtdakError):
    """The API was called wrongly; nothing was sent or run."""


class InvalidParameterError(UsageError, ValueError):
    """A parameter is outside its allowed range.

    The message names the parameter, the value given and what is allowed.
    """

    def __init__(self, parameter: str, value: object, allowed: str) -> None:
        self.parameter = parameter
        self.value = value
        self.allowed = allowed
        super().__init__(f"invalid {parameter}={value!r}: {allowed}")


class MissingAPIKeyError(UsageError):
    """No API key was given and none is set in the environment."""

    def __init__(self, env_var: str = "ATDAK_API_KEY") -> None:
        self.env_var = env_var
        super().__init__(
            "no API key: pass api_key=... to the client, or set the environment variable "
            f"{env_var} (for example `export {env_var}=sk-...`)"
        )


# --------------------------------------------------------------------------- definitions


class DefinitionError(AtdakError):
    """A graph, workflow, template or tool definition is wrong."""


class TemplateError(DefinitionError):
    """A prompt template failed to compile or render.

    ``template`` names the template, ``line`` the line in it (1-based) when known.
    """

    def __init__(
        self,
        message: str,
        *,
        template: str | None = None,
        line: int | None = None,
        variable: str | None = None,
        suggestion: str | None = None,
    ) -> None:
        self.template = template
        self.line = line
        self.variable = variable
        self.suggestion = suggestion
        super().__init__(message)


class ToolDefinitionError(DefinitionError):
    """A Python function cannot be turned into a tool (e.g. an unsupported parameter type)."""


class Problem:
    """One problem found while validating a definition: where it is and what is wrong.

    ``location`` is a dotted path in the definition (``nodes.classify.llm.prompt``); ``line`` is
    the line *inside* that value when it is a multi-line text such as a template.
    """

    __slots__ = ("hint", "line", "location", "message")

    def __init__(
        self, location: str, message: str, hint: str | None = None, *, line: int | None = None
    ) -> None:
        self.location = location
        self.message = message
        self.hint = hint
        self.line = line

    def __str__(self) -> str:
        where = f"{self.location} (line {self.line})" if self.line else self.location
        text = f"{where}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text

    def __repr__(self) -> str:
        return f"Problem({self.location!r}, {self.message!r}, hint={self.hint!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Problem):
            return NotImplemented
        mine = (self.location, self.message, self.hint)
        return mine == (other.location, other.message, other.hint)

    def __hash__(self) -> int:
        return hash((self.location, self.message, self.hint))


class GraphValidationError(DefinitionError):
    """A graph has one or more problems; all of them are listed at once."""

    def __init__(self, problems: Sequence[Problem], *, subject: str = "graph") -> None:
        self.problems = list(problems)
        count = len(self.problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"{subject} has {count} {noun}:\n{lines}")


class WorkflowError(GraphValidationError):
    """A YAML workflow file has problems; each names ``file:line:col`` and the YAML path."""

    def __init__(self, problems: Sequence[Problem], *, file: str | None = None) -> None:
        self.file = file
        super().__init__(problems, subject=file or "workflow")


# --------------------------------------------------------------------------- running


class RunError(AtdakError):
    """Something failed while running (a model call, a tool, a limit, a store)."""


class ProviderError(RunError):
    """The model endpoint failed or could not be reached."""


class APIConnectionError(ProviderError):
    """The endpoint could not be reached, or the connection was lost."""

    def __init__(self, message: str = "connection error", *, url: str | None = None) -> None:
        self.url = url
        super().__init__(message)


class APITimeoutError(APIConnectionError):
    """A connect, read or total timeout passed (or the call's deadline did)."""


class StreamError(ProviderError):
    """A stream failed after it had started delivering chunks.

    ``received_chunks`` and ``received_text`` say how much arrived before the failure, so the
    caller can decide what to do with a partial answer. Streams are never retried silently once
    a chunk was delivered.
    """

    def __init__(self, message: str, *, received_chunks: int = 0, received_text: str = "") -> None:
        self.received_chunks = received_chunks
        self.received_text = received_text
        super().__init__(
            f"{message} (after {received_chunks} chunks, {len(received_text)} characters of text)"
        )


class IncompleteStreamError(StreamError):
    """The stream ended without ``data: [DONE]``: the answer may be truncated."""


class APIResponseValidationError(ProviderError):
    """The endpoint answered with a success status but a body that cannot be used.

    For example a body that is not JSON, does not match the chat-completion shape, or has no
    ``choices``. ``status_code``, ``request_id`` and ``body`` (the raw text, truncated) are kept.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int = 200,
        request_id: str | None = None,
        body: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.request_id = request_id
        self.body = body
        suffix = f" [request id {request_id}]" if request_id else ""
        super().__init__(f"{message}{suffix}")


class APIStatusError(ProviderError):
    """The endpoint answered with an HTTP error status.

    ``status_code``, ``message`` (the server's own words), ``request_id`` (from the
    ``x-request-id`` header when present), ``body`` (the parsed or raw body) and ``code`` /
    ``type`` from an OpenAI-style ``{"error": {...}}`` body. ``hint`` is atdak_agents' own advice
    on how to fix it, shown after the server's message.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        request_id: str | None = None,
        body: object = None,
        code: str | None = None,
        error_type: str | None = None,
        retry_after: float | None = None,
        hint: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.message = message
        self.request_id = request_id
        self.body = body
        self.code = code
        self.type = error_type
        self.retry_after = retry_after
        self.hint = hint
        suffix = f" [request id {request_id}]" if request_id else ""
        advice = f" ({hint})" if hint else ""
        super().__init__(f"HTTP {status_code}: {message}{advice}{suffix}")


class BadRequestError(APIStatusError):
    """400: the request was rejected as malformed."""


class ContextLengthExceededError(BadRequestError):
    """400: the prompt plus ``max_tokens`` does not fit the model's context window."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing, wrong or revoked."""


class PermissionDeniedError(APIStatusError):
    """403: the key may not use this model or endpoint."""


class NotFoundError(APIStatusError):
    """404: unknown model or wrong base URL."""


class ConflictError(APIStatusError):
    """409: a conflicting request (retried)."""


class UnprocessableEntityError(APIStatusError):
    """422: the request was understood but cannot be processed."""


class RateLimitError(APIStatusError):
    """429: too many requests or tokens; ``retry_after`` holds the server's requested wait."""


class InternalServerError(APIStatusError):
    """5xx: the endpoint failed (retried)."""


_STATUS_CLASSES: Mapping[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def status_error_class(status_code: int) -> type[APIStatusError]:
    """The error class for an HTTP status (without the context-length refinement)."""
    if status_code >= 500:
        return InternalServerError
    return _STATUS_CLASSES.get(status_code, APIStatusError)


class ContextBudgetError(RunError):
    """A request cannot be made to fit the model's context window.

    Names the model, the window, the estimate and what took the space (``breakdown`` maps a
    part of the request, e.g. ``"system"``, ``"history"``, ``"max_tokens"``, to its tokens).
    """

    def __init__(
        self,
        *,
        model: str,
        context_window: int,
        estimate: int,
        max_tokens: int,
        breakdown: Mapping[str, int] | None = None,
        advice: str = "lower max_tokens, shorten the input, or choose a history strategy that "
        "drops or summarises old turns",
    ) -> None:
        self.model = model
        self.context_window = context_window
        self.estimate = estimate
        self.max_tokens = max_tokens
        self.breakdown = dict(breakdown or {})
        largest_first = sorted(self.breakdown.items(), key=lambda kv: -kv[1])
        parts = ", ".join(f"{k} {v}" for k, v in largest_first)
        used = f" (space taken by: {parts})" if parts else ""
        super().__init__(
            f"request does not fit {model}'s context window of {context_window} tokens: "
            f"about {estimate} prompt tokens + max_tokens {max_tokens}{used}; {advice}"
        )


class UsageLimitExceeded(RunError):
    """A run-wide limit was reached; the run stopped cleanly."""

    def __init__(self, limit: str, value: float, maximum: float) -> None:
        self.limit = limit
        self.value = value
        self.maximum = maximum
        super().__init__(f"usage limit reached: {limit} {value:g} exceeds the limit of {maximum:g}")


class ModelOutputError(RunError):
    """The model's output could not be used, even after asking it to repair it."""

    def __init__(self, message: str, *, output: str | None = None) -> None:
        self.output = output
        super().__init__(message)


class ToolExecutionError(RunError):
    """A tool failed in a way that ends the run (e.g. retries for it were exhausted)."""

    def __init__(self, tool: str, message: str) -> None:
        self.tool = tool
        super().__init__(f"tool {tool!r}: {message}")


class StoreError(RunError):
    """A memory store or checkpointer failed."""


class RunLockedError(StoreError):
    """Another runner currently holds the lease on this run."""


class GraphChangedError(StoreError):
    """The graph changed since the run's checkpoint was written."""


class NodeError(RunError):
    """A graph node failed; ``path`` is the node's path in the (possibly nested) graph."""

    def __init__(self, path: str, message: str, *, details: Any = None) -> None:
        self.path = path
        self.details = details
        super().__init__(f"node {path!r}: {message}")


# --------------------------------------------------------------------------- signals


class ToolSignal(AtdakError):
    """Raised by a tool to steer the run; never a failure of the framework."""


class ModelRetry(ToolSignal):
    """Raised by a tool: send ``message`` back to the model and let it call again."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)
