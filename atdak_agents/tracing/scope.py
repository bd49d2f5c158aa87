"""Where running code is: the current scope (run, step, node, span) of each task.

The engine makes a node's scope current while it runs (:meth:`EventBus.enter_node
<atdak_agents.tracing.bus.EventBus.enter_node>`); code below it emits with :func:`emit` and
opens child spans (a model call, a tool call) with :func:`span`, so concurrent branches each
carry their own ids. Outside a run there is no scope and emitting does nothing.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from contextvars import ContextVar, Token
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from .events import EventBase

if TYPE_CHECKING:
    from .bus import EventBus

__all__ = [
    "CURRENT_SCOPE",
    "NodeScope",
    "Scope",
    "current_scope",
    "emit",
    "enter",
    "leave",
    "new_span_id",
    "scope",
    "span",
]

E = TypeVar("E", bound=EventBase)


def new_span_id() -> str:
    """A random 64-bit span id as 16 hex digits (the OpenTelemetry span id format)."""
    return random.randbytes(8).hex()


class Scope:
    """Where the running code is: which run, step, node and span its events belong to (and,
    for a node's span, when it started)."""

    __slots__ = ("bus", "node", "parent_span_id", "run_id", "span_id", "started", "step")

    def __init__(
        self,
        bus: EventBus,
        run_id: str,
        span_id: str,
        parent_span_id: str | None = None,
        step: int | None = None,
        node: str | None = None,
        started: float = 0.0,
    ) -> None:
        self.bus = bus
        self.run_id = run_id
        self.span_id = span_id
        self.parent_span_id = parent_span_id
        self.step = step
        self.node = node
        self.started = started

    def __repr__(self) -> str:
        return f"Scope(run_id={self.run_id!r}, span_id={self.span_id!r}, node={self.node!r})"

    def child(self, *, node: str | None = None, step: int | None = None) -> Scope:
        """A span under this one (its id counted by the run's bus)."""
        return Scope(
            self.bus,
            self.run_id,
            self.bus.new_span_id(),
            self.span_id,
            self.step if step is None else step,
            self.node if node is None else node,
        )

    def emit(self, cls: Callable[..., E], **fields: Any) -> E | None:
        """Publish an event of type ``cls`` in this scope (``None`` when nobody wants it, or
        only sinks that take serialised lines)."""
        bus = self.bus
        if cls not in bus.wanted:
            return None
        return bus.emit(cls, self, fields)


class NodeScope(Scope):
    """A node's scope, with what ending it needs: its kind and the token that makes the scope
    around it current again."""

    __slots__ = ("kind", "token")

    token: Token[Scope | None]

    def __init__(
        self,
        bus: EventBus,
        span_id: str,
        parent_span_id: str | None,
        step: int,
        node: str,
        started: float,
        kind: str,
    ) -> None:
        self.bus = bus
        self.run_id = bus.run_id
        self.span_id = span_id
        self.parent_span_id = parent_span_id
        self.step = step
        self.node = node
        self.started = started
        self.kind = kind


#: The scope of the running task (``None`` outside a run).
CURRENT_SCOPE: ContextVar[Scope | None] = ContextVar("atdak_agents_scope", default=None)
_current = CURRENT_SCOPE


def current_scope() -> Scope | None:
    """The scope of the running code, or ``None`` outside any run."""
    return _current.get()


def emit(cls: Callable[..., E], **fields: Any) -> E | None:
    """Publish an event in the current scope; does nothing outside a run or when nobody wants
    that type."""
    current = _current.get()
    if current is None:
        return None
    return current.emit(cls, **fields)


class _Entered:
    """Makes a scope current for a ``with`` block (a class: cheaper than a generator)."""

    __slots__ = ("_token", "_value")

    def __init__(self, value: Scope) -> None:
        self._value = value
        self._token: Token[Scope | None] | None = None

    def __enter__(self) -> Scope:
        self._token = _current.set(self._value)
        return self._value

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._token is not None:
            _current.reset(self._token)


def enter(value: Scope) -> Token[Scope | None]:
    """Make ``value`` the current scope until :func:`leave` is given the token (for code that
    cannot use a ``with`` block)."""
    return _current.set(value)


def leave(token: Token[Scope | None]) -> None:
    """Undo the :func:`enter` that gave ``token``."""
    _current.reset(token)


def scope(value: Scope) -> AbstractContextManager[Scope]:
    """Make ``value`` the current scope inside the ``with`` block."""
    return _Entered(value)


def span(
    *, node: str | None = None, step: int | None = None
) -> AbstractContextManager[Scope | None]:
    """A child span of the current scope (a model call, a tool call, a nested node); outside a
    run it gives ``None``."""
    parent = _current.get()
    if parent is None:
        return nullcontext()
    return _Entered(parent.child(node=node, step=step))
