"""What the local Atdak server answers: replies, faults, and the responders that choose them.

A *responder* is any callable ``(ReceivedRequest) -> Reply | str`` (or an awaitable of one). The
server accepts one directly, or builds one from a list (:class:`ScriptedResponder`: one reply per
request, in order), a string (always that text) or ``None`` (:class:`EchoResponder`)::

    LocalAtdakServer(["你好！", Reply(text="再见", chunk_size=1), rate_limited(retry_after=1)])

A :class:`Reply` describes one answer: its text (and how it is cut into stream chunks), native
tool calls, usage, finish reason, an error status, a delay — or a *fault*:

==================  ===========================================================================
``"hang"``          never answer (until the client gives up or the server stops)
``"disconnect"``    close the connection without answering
``"drop_mid_stream"``  send ``fault_after`` chunks (or half a JSON body), then close the connection
``"malformed_sse"`` send ``fault_after`` chunks, then an event whose data is not JSON
``"split_utf8"``    send the stream in network writes that cut multibyte UTF-8 characters in two
``"stream_error"``  send ``fault_after`` chunks, then an ``{"error": ...}`` event (``status``,
                    ``error``, ``error_code`` describe it) and end the stream
``"no_done"``       end the stream cleanly but without ``data: [DONE]``
``"empty_choices"`` answer with ``"choices": []`` (streams: a first chunk without choices)
==================  ===========================================================================
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

__all__ = [
    "EchoResponder",
    "Fault",
    "ReceivedRequest",
    "Reply",
    "ReplyLike",
    "Responder",
    "ScriptedResponder",
    "as_responder",
    "rate_limited",
    "server_error",
]

Fault: TypeAlias = Literal[
    "hang",
    "disconnect",
    "drop_mid_stream",
    "malformed_sse",
    "split_utf8",
    "stream_error",
    "no_done",
    "empty_choices",
]
FAULTS: frozenset[str] = frozenset(Fault.__args__)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Reply:
    """One answer of the local server.

    ``text`` is the assistant's content; a stream sends it in ``chunks`` when given, else in
    pieces of ``chunk_size`` characters (the server's default when ``None``). ``tool_calls`` are
    native tool calls, each ``{"name": ..., "arguments": dict-or-JSON-string, "id": optional}``.
    ``usage`` overrides the counted figures; ``stream_usage`` adds a final usage chunk to a
    stream (as ``stream_options.include_usage`` asks). ``status`` >= 400 answers with an
    OpenAI-style error body made of ``error``, ``error_code`` and ``error_type``, plus
    ``retry_after`` (seconds, or an HTTP date string) and any ``headers``; ``body`` replaces that
    error body with any raw text (not JSON, or empty) to test clients. ``delay`` waits before
    answering; ``chunk_delay`` between stream chunks. ``fault`` breaks the answer on purpose
    (see the module's table), after ``fault_after`` chunks where that applies.
    """

    text: str = ""
    chunks: Sequence[str] | None = None
    chunk_size: int | None = None
    tool_calls: Sequence[Mapping[str, Any]] | None = None
    finish_reason: str | None = None
    usage: Mapping[str, int] | None = None
    stream_usage: bool | None = None
    status: int = 200
    error: str | None = None
    error_code: str | None = None
    error_type: str | None = None
    retry_after: float | str | None = None
    body: str | bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    chunk_delay: float = 0.0
    fault: Fault | None = None
    fault_after: int = 1

    def __post_init__(self) -> None:
        if self.fault is not None and self.fault not in FAULTS:
            known = ", ".join(sorted(FAULTS))
            raise ValueError(f"unknown fault {self.fault!r}; known faults: {known}")


ReplyLike: TypeAlias = "Reply | str"


@dataclass
class ReceivedRequest:
    """A request as the local server received it (the API key is never kept).

    ``index`` counts requests from 0; ``body`` is the parsed JSON (``None`` when it was not
    JSON); ``authorized`` says whether the bearer key matched.
    """

    index: int
    path: str
    headers: dict[str, str]
    body: Any
    authorized: bool

    @property
    def model(self) -> str:
        return str(self.body.get("model", "")) if isinstance(self.body, dict) else ""

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages = self.body.get("messages") if isinstance(self.body, dict) else None
        return messages if isinstance(messages, list) else []

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream")) if isinstance(self.body, dict) else False

    @property
    def tools(self) -> list[dict[str, Any]] | None:
        return self.body.get("tools") if isinstance(self.body, dict) else None

    @property
    def last_user_text(self) -> str:
        """The content of the last ``user`` message (``""`` when there is none)."""
        for message in reversed(self.messages):
            if isinstance(message, dict) and message.get("role") == "user":
                return str(message.get("content") or "")
        return ""


Responder: TypeAlias = Callable[[ReceivedRequest], "ReplyLike | Awaitable[ReplyLike]"]


def rate_limited(retry_after: float | str | None = None, *, message: str | None = None) -> Reply:
    """A 429 answer, with ``Retry-After`` (seconds or an HTTP date) when given."""
    return Reply(
        status=429,
        error=message or "Rate limit reached for requests. Please try again later.",
        error_code="rate_limit_exceeded",
        error_type="requests",
        retry_after=retry_after,
    )


def server_error(status: int = 500, *, message: str | None = None) -> Reply:
    """A 5xx answer (500 by default) with an OpenAI-style error body."""
    return Reply(
        status=status,
        error=message or "The server had an error while processing your request.",
        error_type="server_error",
    )


class EchoResponder:
    """Answers with the last user message (after ``prefix``)."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix

    def __call__(self, request: ReceivedRequest) -> Reply:
        return Reply(text=self.prefix + request.last_user_text)

    def __repr__(self) -> str:
        return f"EchoResponder(prefix={self.prefix!r})"


class ScriptedResponder:
    """Answers requests in order from a script of replies (or responders, called per request).

    When the script is used up the server answers 500 with a message saying which request was
    not scripted; ``remaining`` tells how many steps were not used.
    """

    def __init__(self, steps: Iterable[ReplyLike | Responder]) -> None:
        self._steps: deque[ReplyLike | Responder] = deque(steps)

    @property
    def remaining(self) -> int:
        return len(self._steps)

    def __call__(self, request: ReceivedRequest) -> ReplyLike | Awaitable[ReplyLike]:
        if not self._steps:
            return Reply(
                status=500,
                error=f"the local server's script is used up: request #{request.index} "
                f"(last user message {request.last_user_text[:60]!r}) was not scripted",
                error_code="script_exhausted",
                error_type="server_error",
            )
        step = self._steps.popleft()
        return step(request) if callable(step) else step

    def __repr__(self) -> str:
        return f"ScriptedResponder({self.remaining} steps left)"


def as_responder(
    value: Responder | Sequence[ReplyLike | Responder] | str | Reply | None,
) -> Responder:
    """A responder from a callable, a list (a script), a text or reply (always) or None (echo)."""
    if value is None:
        return EchoResponder()
    if isinstance(value, (str, Reply)):
        fixed = value
        return lambda _request: fixed
    if callable(value):
        return value
    if isinstance(value, Sequence):
        return ScriptedResponder(value)
    raise TypeError(
        f"not a responder: {value!r} (give a callable, a list of replies, a string or None)"
    )


async def resolve_reply(responder: Responder, request: ReceivedRequest) -> Reply:
    """Call ``responder`` (sync or async) and normalise what it returns to a :class:`Reply`."""
    result = responder(request)
    if inspect.isawaitable(result):
        result = await result
    if isinstance(result, str):
        return Reply(text=result)
    if isinstance(result, Reply):
        return result
    raise TypeError(f"a responder returned {result!r}; return a Reply or a string")
