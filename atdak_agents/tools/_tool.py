"""The :class:`Tool` object and the ``@tool`` decorator: validated, timed, capped calls."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import inspect
import re
import threading
import time
import typing
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, TypeVar, overload

import docstring_parser
from pydantic import ValidationError
from typing_extensions import ParamSpec

from .._timers import expired
from .._timers import timeout as limit_scope
from ..exceptions import ModelRetry, ToolDefinitionError, ToolExecutionError
from ._output import DEFAULT_MAX_OUTPUT_TOKENS, cap_output, render_output
from ._records import ErrorKind, RunContext, ToolCall, ToolResult
from ._schema import build_signature, clean_schema, description_of, where

__all__ = ["DEFAULT_TIMEOUT", "Tool", "as_tool", "tool"]

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_TIMEOUT = 60.0
"""Seconds a tool may run before its call is answered with a timeout error."""

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


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


async def _within(awaitable: Awaitable[Any], timeout: float | None) -> tuple[bool, Any]:
    """``(True, result)``, or ``(False, None)`` when ``timeout`` passed first (the call is then
    cancelled; a sync tool's thread keeps running, its result ignored).

    The call is awaited in place under a timeout scope, not as a task of its own: a tool that
    finishes without waiting (most do) never leaves the caller's turn of the event loop, and
    no task, watcher future or timer is made for it (a task per call also multiplied the
    garbage collector's passes under concurrency, ten-fold in bench_runs.py at 64 runs).
    """
    if timeout is None:
        return True, await awaitable
    scope = limit_scope(timeout)  # a long limit on the loop's coarse clock
    try:
        async with scope:
            value = await awaitable
    except asyncio.TimeoutError:  # (TimeoutError itself from Python 3.11 on)
        if expired(scope):
            return False, None
        raise  # the tool's own TimeoutError: an exception like any other
    return True, value


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
                f"invalid tool name {self.name!r} for {function!r} at {where(function)}: use "
                "1-64 letters, digits, '_' or '-'; pass @tool(name=...) to choose one"
            )
        _check_limits(self.name, timeout, max_output_tokens)
        doc = docstring_parser.parse(inspect.getdoc(function) or "")
        self.description = description if description is not None else description_of(doc)
        self.timeout = timeout
        self.max_output_tokens = max_output_tokens
        self.is_async = inspect.iscoroutinefunction(function)
        self._signature = build_signature(function, self.name, doc)
        schema = self._signature.model.model_json_schema(by_alias=True)
        self.parameters: dict[str, Any] = clean_schema(schema)

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
            finished, value = await _within(self._call(call, kwargs, context), self.timeout)
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

    def _call(
        self, call: ToolCall, kwargs: dict[str, Any], context: RunContext[Any] | None
    ) -> Awaitable[Any]:
        """What to await for the call: an async tool's own coroutine (not wrapped in another),
        or a sync tool's run in a thread; with its ``RunContext`` when it takes one."""
        context_param = self._signature.context_param
        if context_param is not None:
            ctx = dataclasses.replace(context or RunContext(deps=None), call=call)
            kwargs = {context_param: ctx, **kwargs}
        if self.is_async:
            # (the type as a string: Callable[...] subscripted at run time is a Python call)
            return typing.cast("Callable[..., Awaitable[Any]]", self.function)(**kwargs)
        return _in_thread(self.function, kwargs)

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
