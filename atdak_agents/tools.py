"""Python functions as tools a model can call: ``@tool``, :class:`Tool`, :class:`ToolRegistry`.

A tool is a plain or async function. Its JSON schema comes from the type hints (pydantic types and
models, ``Literal``, ``Enum``, ``Optional``, lists, dicts, defaults, ``Annotated[..., Field()]``)
and from the parameter descriptions of its docstring (Google, NumPy or Sphinx style)::

    @tool
    def get_weather(city: str, unit: Literal["c", "f"] = "c") -> dict[str, float]:
        '''Current weather of a city.

        Args:
            city: City name, e.g. "Paris".
            unit: Temperature unit.
        '''

    @tool(timeout=5, max_output_tokens=1_000)
    async def search(query: str) -> list[str]: ...

The interface the agent loop builds on (protocol-blind; both tool protocols produce these):

- :class:`ToolCall` ``(id, name, arguments)`` — what the model asked for.
- :class:`ToolResult` ``(call_id, name, content, is_error, error_kind, value, truncated,
  duration)`` — what goes back to the model. ``content`` is always text for the model.
- ``await tool.run(call, context=None) -> ToolResult`` never raises for the model's mistakes or
  the tool's failures: invalid arguments (checked with pydantic before the call), an exception
  in the tool, a timeout, or :class:`~atdak_agents.exceptions.ModelRetry` all become
  ``ToolResult(is_error=True, error_kind=..., content=<what to fix>)``. Counting retries is the
  loop's job (``error_kind`` tells why). Only :class:`~atdak_agents.exceptions.ToolExecutionError`
  raised by a tool (and cancellation) propagates, to end the run.
- Sync tools run in a daemon thread; a timed-out sync tool cannot be killed, its result is
  ignored. ``timeout=None`` disables the limit (default :data:`DEFAULT_TIMEOUT` seconds).
- Return values (str, dict, list, pydantic models, dataclasses, None, ...) become text
  (:func:`render_output`), capped to ``max_output_tokens`` (default
  :data:`DEFAULT_MAX_OUTPUT_TOKENS`, ``None`` for no cap) by :func:`cap_output`, which tells the
  model what was cut and how much.
- A tool whose first parameter is annotated :class:`RunContext` receives the run's context
  (``deps``, ``run_id``, ``step``, ``call``); it is not part of the schema.
- :class:`ToolRegistry` holds tools by name; ``await registry.run(call)`` answers an unknown
  name with an error result naming the tools that exist (and the closest match).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import difflib
import inspect
import json
import re
import threading
import time
import typing
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar, overload

import docstring_parser
import pydantic
import pydantic_core
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.fields import FieldInfo
from typing_extensions import ParamSpec

from .context.tokens import count_tokens
from .exceptions import ModelRetry, ToolDefinitionError, ToolExecutionError

__all__ = [
    "DEFAULT_MAX_OUTPUT_TOKENS",
    "DEFAULT_TIMEOUT",
    "ErrorKind",
    "RunContext",
    "Tool",
    "ToolCall",
    "ToolRegistry",
    "ToolResult",
    "as_tool",
    "cap_output",
    "render_output",
    "tool",
]

P = ParamSpec("P")
R = TypeVar("R")
DepsT = TypeVar("DepsT")

DEFAULT_TIMEOUT = 60.0
"""Seconds a tool may run before its call is answered with a timeout error."""

DEFAULT_MAX_OUTPUT_TOKENS = 4_000
"""Tokens of tool output the model sees by default; the rest is cut with a visible notice."""

ErrorKind = Literal["invalid_arguments", "exception", "timeout", "retry", "unknown_tool"]

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_NO_OUTPUT = "(the tool returned no output)"


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class ToolCall:
    """A call the model asked for, whatever the tool protocol: ``ToolCall(id, name, arguments)``.

    (Not to be confused with :class:`atdak_agents.messages.ToolCall`, the OpenAI wire shape.)
    """

    id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ToolResult:
    """The answer to one :class:`ToolCall`; ``content`` is the text the model will read."""

    call_id: str
    name: str
    content: str
    is_error: bool = False
    error_kind: ErrorKind | None = None
    value: Any = field(default=None, compare=False, repr=False)
    truncated: bool = False
    duration: float = field(default=0.0, compare=False)


@dataclass
class RunContext(Generic[DepsT]):
    """What a tool may know about the run calling it (declare it as the first parameter)."""

    deps: DepsT
    run_id: str = ""
    step: int = 0
    call: ToolCall | None = None


# --------------------------------------------------------------------------- output


def render_output(value: Any) -> str:
    """A tool's return value as text for the model (JSON for structured values)."""
    if isinstance(value, str):
        return value
    if value is None:
        return _NO_OUTPUT
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return f"<{len(value)} bytes of binary data>"
    try:
        data = pydantic_core.to_jsonable_python(value, fallback=str)
        return json.dumps(data, ensure_ascii=False)
    except (TypeError, ValueError, pydantic_core.PydanticSerializationError):
        return str(value)


def cap_output(text: str, max_tokens: int | None, *, model: str | None = None) -> tuple[str, bool]:
    """``(text, False)`` when it fits ``max_tokens``, else a cut version and ``True``.

    The cut keeps the beginning and the end (3:1) on line boundaries where possible, and puts a
    notice in the middle saying how much was left out and how to get the rest.
    """
    if max_tokens is None or not text:
        return text, False
    if len(text) <= 16 * max_tokens and count_tokens(text, model) <= max_tokens:
        return text, False
    budget = max_tokens - 100  # room for the notice
    for _ in range(8):  # token counts are not additive: check the whole, shrink if over
        capped = _cut(text, max(budget, 0), max_tokens, model)
        over = count_tokens(capped, model) - max_tokens
        if over <= 0:
            return capped, True
        budget -= over + 8
    return _cut(text, 0, max_tokens, model), True


def _cut(text: str, budget: int, max_tokens: int, model: str | None) -> str:
    head = _prefix_within(text, budget * 3 // 4, model)
    tail = _suffix_within(text[len(head) :], budget - count_tokens(head, model), model)
    kept = len(head) + len(tail)
    per_char = count_tokens(head + tail, model) / kept if kept else 0.3
    omitted = len(text) - kept
    notice = (
        f"\n\n[... output cut: the tool returned {len(text):,} characters (about "
        f"{int(len(text) * per_char):,} tokens), more than its budget of {max_tokens:,} tokens. "
        f"Shown: the first {len(head):,} and the last {len(tail):,} characters; {omitted:,} "
        "characters in between were left out. To see them, call the tool again asking for less "
        "(a narrower query, a filter, a page or a range). ...]\n\n"
    )
    return head + notice + tail


def _prefix_within(text: str, tokens: int, model: str | None) -> str:
    """The longest prefix of ``text`` (cut at a line end when one is near) within ``tokens``."""
    if tokens <= 0:
        return ""
    sample = text[: tokens * 6]
    guess = int(tokens * len(sample) / max(count_tokens(sample, model), 1))
    lo, hi = 0, min(len(text), guess + guess // 4 + 16)
    while hi < len(text) and count_tokens(text[:hi], model) <= tokens:
        lo, hi = hi, min(len(text), hi * 2)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count_tokens(text[:mid], model) <= tokens:
            lo = mid
        else:
            hi = mid - 1
    newline = text.rfind("\n", 0, lo)
    return text[: newline + 1] if newline >= lo * 4 // 5 else text[:lo]


def _suffix_within(text: str, tokens: int, model: str | None) -> str:
    if tokens <= 0:
        return ""
    suffix = _prefix_within(text[::-1], tokens, model)[::-1]
    return suffix[1:] if suffix.startswith("\n") else suffix  # start on a line of its own


# --------------------------------------------------------------------------- schema


@dataclass(frozen=True)
class _Signature:
    model: type[BaseModel]
    fields: dict[str, str]  # parameter name -> field name in the model
    context_param: str | None  # the RunContext parameter, when the tool takes one


def _where(function: Callable[..., Any]) -> str:
    code = getattr(function, "__code__", None)
    if code is None:
        return repr(function)
    return f"{code.co_filename}:{code.co_firstlineno}"


def _is_context(annotation: Any) -> bool:
    return (typing.get_origin(annotation) or annotation) is RunContext


def _type_hints(function: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(function, include_extras=True)
    except Exception as exc:  # NameError for an undefined name, TypeError for a bad hint
        raise ToolDefinitionError(
            f"cannot read the type hints of {getattr(function, '__qualname__', function)} at "
            f"{_where(function)}: {exc}; define the types it uses at module level"
        ) from exc


def _param_descriptions(doc: docstring_parser.Docstring) -> dict[str, str]:
    return {p.arg_name: " ".join((p.description or "").split()) for p in doc.params}


def _field(param: inspect.Parameter, annotation: Any, description: str | None) -> Any:
    default = param.default
    extra: dict[str, Any] = {"description": description} if description else {}
    if isinstance(default, FieldInfo):  # x: int = Field(5, ...): its own settings win
        ours = pydantic.Field(alias=param.name, **extra)
        return (annotation, FieldInfo.merge_field_infos(ours, default, alias=param.name))
    if default is inspect.Parameter.empty:
        return (annotation, pydantic.Field(alias=param.name, **extra))
    return (annotation, pydantic.Field(default, alias=param.name, **extra))


def _check_parameter(function: Callable[..., Any], param: inspect.Parameter) -> None:
    if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
        raise ToolDefinitionError(
            f"tool function {function.__qualname__} at {_where(function)} takes "
            f"{'*' if param.kind is param.VAR_POSITIONAL else '**'}{param.name}: a tool needs "
            "named, typed parameters so the model can be told what to send"
        )
    if param.kind is inspect.Parameter.POSITIONAL_ONLY:
        raise ToolDefinitionError(
            f"tool function {function.__qualname__} at {_where(function)}: parameter "
            f"{param.name!r} is positional-only; remove the '/' so it can be passed by name"
        )


def _build_signature(
    function: Callable[..., Any], name: str, doc: docstring_parser.Docstring
) -> _Signature:
    hints = _type_hints(function)
    descriptions = _param_descriptions(doc)
    params = list(inspect.signature(function).parameters.values())
    takes_context = bool(params) and _is_context(hints.get(params[0].name))
    fields: dict[str, str] = {}
    definitions: dict[str, Any] = {}
    for index, param in enumerate(params[1:] if takes_context else params):
        _check_parameter(function, param)
        if _is_context(hints.get(param.name)):
            raise ToolDefinitionError(
                f"tool function {function.__qualname__} at {_where(function)}: the RunContext "
                f"parameter {param.name!r} must be the first parameter"
            )
        field_name = f"p{index}_{param.name}".replace("-", "_")
        fields[param.name] = field_name
        annotation = hints.get(param.name, Any)
        definitions[field_name] = _field(param, annotation, descriptions.get(param.name))
    config = ConfigDict(extra="forbid")
    try:
        model = pydantic.create_model(f"{name}_arguments", __config__=config, **definitions)
        model.model_json_schema(by_alias=True)
    except (pydantic.PydanticSchemaGenerationError, pydantic.PydanticUserError, TypeError) as exc:
        raise ToolDefinitionError(
            f"tool function {function.__qualname__} at {_where(function)} has a parameter "
            f"type that cannot be described as JSON: {exc}"
        ) from exc
    return _Signature(model, fields, params[0].name if takes_context else None)


_DATA_KEYS = frozenset({"default", "examples", "const", "enum"})
_MAP_KEYS = frozenset({"properties", "$defs", "definitions", "patternProperties"})


def _clean_schema(node: Any) -> Any:
    """The schema without pydantic's generated ``title`` keys (they cost tokens, add nothing)."""
    if isinstance(node, list):
        return [_clean_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title" and isinstance(value, str):
            continue
        if key in _DATA_KEYS:
            out[key] = value
        elif key in _MAP_KEYS and isinstance(value, dict):
            out[key] = {name: _clean_schema(sub) for name, sub in value.items()}
        else:
            out[key] = _clean_schema(value)
    return out


def _description(doc: docstring_parser.Docstring) -> str:
    parts = [doc.short_description or "", doc.long_description or ""]
    return "\n\n".join(p.strip() for p in parts if p and p.strip())


# --------------------------------------------------------------------------- running


async def _in_thread(function: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """Run a sync function in a daemon thread (a hung one never blocks interpreter exit)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()

    def settle(ok: bool, payload: Any) -> None:
        if future.done():
            return
        if ok:
            future.set_result(payload)
        else:
            future.set_exception(payload)

    def target() -> None:
        try:
            outcome = (True, context.run(function, **kwargs))
        except BaseException as exc:  # delivered to the awaiting coroutine
            outcome = (False, exc)
        with contextlib.suppress(RuntimeError):  # the loop closed while the tool ran
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=target, name="atdak-tool", daemon=True).start()
    return await future


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # mark a late failure as seen


async def _within(awaitable: Awaitable[Any], timeout: float | None) -> tuple[bool, Any]:
    """``(True, result)``, or ``(False, None)`` when ``timeout`` passed first."""
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    except BaseException:
        task.cancel()
        raise
    if not done:
        task.add_done_callback(_retrieve)
        task.cancel()
        return False, None
    return True, task.result()


class Tool(Generic[P, R]):
    """A function the model may call, with its name, description and argument schema.

    Calling the tool object calls the function unchanged; :meth:`run` is what the agent uses.
    """

    def __init__(
        self,
        function: Callable[P, R],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        max_output_tokens: int | None = DEFAULT_MAX_OUTPUT_TOKENS,
    ) -> None:
        if not callable(function):
            raise ToolDefinitionError(f"@tool needs a function, got {function!r}")
        self.function = function
        self.name: str = name or str(getattr(function, "__name__", ""))
        if not _NAME.match(self.name):
            raise ToolDefinitionError(
                f"invalid tool name {self.name!r} for {function!r} at {_where(function)}: use "
                "1-64 letters, digits, '_' or '-'; pass @tool(name=...) to choose one"
            )
        _check_limits(self.name, timeout, max_output_tokens)
        doc = docstring_parser.parse(inspect.getdoc(function) or "")
        self.description = description if description is not None else _description(doc)
        self.timeout = timeout
        self.max_output_tokens = max_output_tokens
        self.is_async = inspect.iscoroutinefunction(function)
        self._signature = _build_signature(function, self.name, doc)
        schema = self._signature.model.model_json_schema(by_alias=True)
        self.parameters: dict[str, Any] = _clean_schema(schema)

    @property
    def parameter_names(self) -> list[str]:
        """The names of the arguments the model may send, in signature order."""
        return list(self._signature.fields)

    @property
    def required_parameters(self) -> list[str]:
        return [str(n) for n in self.parameters.get("required", [])]

    @property
    def takes_context(self) -> bool:
        return self._signature.context_param is not None

    def spec(self) -> dict[str, Any]:
        """``{"name", "description", "parameters"}`` (parameters is a JSON schema)."""
        return {"name": self.name, "description": self.description, "parameters": self.parameters}

    def openai_schema(self) -> dict[str, Any]:
        """The entry of an OpenAI-style ``tools`` request parameter."""
        return {"type": "function", "function": self.spec()}

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Tool(name={self.name!r}, timeout={self.timeout!r})"

    def validate(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments checked and converted for the function (raises ``ValidationError``)."""
        model = self._signature.model.model_validate(dict(arguments))
        return {param: getattr(model, fld) for param, fld in self._signature.fields.items()}

    async def run(self, call: ToolCall, context: RunContext[Any] | None = None) -> ToolResult:
        """Validate, call (with the timeout), serialise and cap: the result for the model."""
        started = time.perf_counter()
        try:
            kwargs = self.validate(call.arguments)
        except ValidationError as exc:
            return self._error(call, "invalid_arguments", self._explain(exc), started)
        try:
            finished, value = await _within(self._invoke(call, kwargs, context), self.timeout)
        except ModelRetry as exc:
            return self._error(call, "retry", exc.message, started)
        except ToolExecutionError:
            raise
        except Exception as exc:
            text = f"Tool {self.name!r} failed: {type(exc).__name__}: {exc}"
            return self._error(call, "exception", text, started)
        if not finished:
            text = (
                f"Tool {self.name!r} did not finish within its timeout of {self.timeout:g} s "
                "and was abandoned. Try simpler arguments, or do without this result."
            )
            return self._error(call, "timeout", text, started)
        content, truncated = cap_output(render_output(value), self.max_output_tokens)
        return ToolResult(
            call.id, self.name, content, value=value, truncated=truncated, duration=_since(started)
        )

    async def _invoke(
        self, call: ToolCall, kwargs: dict[str, Any], context: RunContext[Any] | None
    ) -> Any:
        context_param = self._signature.context_param
        if context_param is not None:
            ctx = dataclasses.replace(context or RunContext(deps=None), call=call)
            kwargs = {context_param: ctx, **kwargs}
        if self.is_async:
            return await typing.cast(Callable[..., Awaitable[Any]], self.function)(**kwargs)
        return await _in_thread(self.function, kwargs)

    def _error(self, call: ToolCall, kind: ErrorKind, text: str, started: float) -> ToolResult:
        content, truncated = cap_output(text, self.max_output_tokens)
        return ToolResult(
            call.id,
            self.name,
            content,
            is_error=True,
            error_kind=kind,
            truncated=truncated,
            duration=_since(started),
        )

    def _explain(self, exc: ValidationError) -> str:
        lines = [f"Invalid arguments for tool {self.name!r}:"]
        for error in exc.errors(include_url=False):
            where = ".".join(str(part) for part in error["loc"]) or "(arguments)"
            message = error["msg"]
            if error["type"] == "extra_forbidden":
                message = f"unknown argument; the arguments are: {', '.join(self.parameter_names)}"
            elif error["type"] != "missing":
                message += f" (got {_short_repr(error.get('input'))})"
            lines.append(f"- {where}: {message}")
        lines.append("Fix the arguments and call the tool again.")
        return "\n".join(lines)


def _since(started: float) -> float:
    return time.perf_counter() - started


def _short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_limits(name: str, timeout: float | None, max_output_tokens: int | None) -> None:
    if timeout is not None and not timeout > 0:
        raise ToolDefinitionError(
            f"tool {name!r}: timeout={timeout!r} must be a positive number of seconds, or None"
        )
    if max_output_tokens is not None and max_output_tokens < 100:
        raise ToolDefinitionError(
            f"tool {name!r}: max_output_tokens={max_output_tokens!r} is too small to hold a "
            "useful result and the cut notice; use at least 100, or None for no cap"
        )


@overload
def tool(function: Callable[P, R], /) -> Tool[P, R]: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    max_output_tokens: int | None = DEFAULT_MAX_OUTPUT_TOKENS,
) -> Callable[[Callable[P, R]], Tool[P, R]]: ...


def tool(
    function: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    max_output_tokens: int | None = DEFAULT_MAX_OUTPUT_TOKENS,
) -> Tool[P, R] | Callable[[Callable[P, R]], Tool[P, R]]:
    """Make a function a :class:`Tool`: ``@tool`` or ``@tool(name=..., timeout=...)``."""

    def wrap(fn: Callable[P, R]) -> Tool[P, R]:
        return Tool(
            fn,
            name=name,
            description=description,
            timeout=timeout,
            max_output_tokens=max_output_tokens,
        )

    return wrap if function is None else wrap(function)


def as_tool(value: Tool[Any, Any] | Callable[..., Any]) -> Tool[Any, Any]:
    """``value`` if it is a :class:`Tool`, else the function made a tool with the defaults."""
    return value if isinstance(value, Tool) else Tool(value)


# --------------------------------------------------------------------------- registry


class ToolRegistry:
    """Tools by name; an agent may call only the tools in its registry."""

    def __init__(self, tools: Iterable[Tool[Any, Any] | Callable[..., Any]] = ()) -> None:
        self._tools: dict[str, Tool[Any, Any]] = {}
        for item in tools:
            self.add(item)

    def add(self, item: Tool[Any, Any] | Callable[..., Any]) -> Tool[Any, Any]:
        """Add a tool (a plain function is wrapped); a second tool of the same name is an error."""
        new = as_tool(item)
        old = self._tools.get(new.name)
        if old is not None and old is not new:
            raise ToolDefinitionError(
                f"two tools are named {new.name!r} ({_where(old.function)} and "
                f"{_where(new.function)}); give one another name with @tool(name=...)"
            )
        self._tools[new.name] = new
        return new

    def get(self, name: str) -> Tool[Any, Any] | None:
        return self._tools.get(name)

    def names(self) -> list[str]:
        return list(self._tools)

    def __iter__(self) -> Iterator[Tool[Any, Any]]:
        return iter(list(self._tools.values()))

    def __len__(self) -> int:
        return len(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def suggest(self, name: str) -> str | None:
        """The known name closest to ``name`` (``None`` when nothing is close)."""
        lowered = {n.lower(): n for n in self._tools}
        close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
        return lowered[close[0]] if close else None

    def unknown_tool_message(self, name: str) -> str:
        """What to tell a model that called a tool that does not exist."""
        close = self.suggest(name)
        hint = f" Did you mean {close!r}?" if close else ""
        known = ", ".join(self._tools) or "(none)"
        return f"There is no tool named {name!r}.{hint} The tools you can call are: {known}."

    async def run(self, call: ToolCall, context: RunContext[Any] | None = None) -> ToolResult:
        """Run one call; an unknown tool name gets an error result, not an exception."""
        found = self._tools.get(call.name)
        if found is None:
            text = self.unknown_tool_message(call.name)
            return ToolResult(call.id, call.name, text, is_error=True, error_kind="unknown_tool")
        return await found.run(call, context)

    async def run_all(
        self, calls: Sequence[ToolCall], context: RunContext[Any] | None = None
    ) -> list[ToolResult]:
        """Run several calls concurrently; the results come back in the order of the calls."""
        return list(await asyncio.gather(*(self.run(c, context) for c in calls)))
