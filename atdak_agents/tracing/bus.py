"""Publishing events: the run's event bus, live subscriptions, and the current span.

One :class:`EventBus` per run delivers events, in order, to its sinks (JSONL, console, structlog,
OpenTelemetry) and to live subscribers (``run.events()``). Code anywhere below the engine emits
with :func:`emit`; which run, node and span an event belongs to comes from a ``ContextVar``
(:class:`Scope`), so concurrent branches each carry their own. When nobody listens, emitting costs
one ``ContextVar`` lookup.

The bus applies the run's privacy settings once, for everyone: with ``content=False`` message
contents, arguments and values are dropped (sizes and token counts stay), and its
:class:`~atdak_agents.tracing.redact.Redactor` masks secrets in what every sink and subscriber
receives.

Two kinds of sink: an object sink gets each event (``write(event)``); a *line* sink (one with
``takes_lines = True``, such as :class:`~atdak_agents.tracing.sinks.JsonlSink`) gets it
serialised, as one JSON line (``write_line(line)``). While only line sinks listen, events are
never built as objects: the engine's fields go straight from a dict into JSON, which keeps
tracing to a file cheap enough to leave on.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from contextlib import AbstractContextManager, nullcontext
from contextvars import ContextVar, Token
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .events import (
    CONTENT_FIELDS,
    OWN_FIELD_COUNTS,
    RECORD_DEFAULTS,
    SENSITIVE_FIELDS,
    TYPE_NAMES,
    EventBase,
    encode_line,
    event_record,
    without_content,
)

if TYPE_CHECKING:
    from .redact import Redactor

__all__ = [
    "EventBus",
    "LineSink",
    "Scope",
    "Sink",
    "Subscription",
    "current_scope",
    "emit",
    "enter",
    "leave",
    "new_span_id",
    "scope",
    "span",
]

E = TypeVar("E", bound=EventBase)


class Sink(Protocol):
    """Where a trace goes: ``write`` gets every event of a run, ``close`` ends the run."""

    def write(self, event: EventBase) -> None: ...

    def close(self) -> None: ...


class LineSink(Sink, Protocol):
    """A sink that takes events serialised: one JSON line each (ending in a newline)."""

    takes_lines: bool

    def write_line(self, line: bytes) -> None: ...


def new_span_id() -> str:
    """A random 64-bit span id as 16 hex digits (the OpenTelemetry span id format)."""
    return random.randbytes(8).hex()


class Subscription:
    """A live stream of a run's events: ``async for event in subscription``.

    ``include`` / ``exclude`` filter by event type (e.g. ``exclude={"token"}``); with
    ``content=False`` contents are dropped as in a privacy-preserving trace.
    """

    def __init__(
        self,
        *,
        include: Collection[str] | None = None,
        exclude: Collection[str] = (),
        content: bool = True,
    ) -> None:
        self._include = frozenset(include) if include is not None else None
        self._exclude = frozenset(exclude)
        self._content = content
        self._items: deque[EventBase] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    def wants(self, event_type: str) -> bool:
        if event_type in self._exclude:
            return False
        return self._include is None or event_type in self._include

    def push(self, event: EventBase) -> None:
        if self._closed or not self.wants(event.type):
            return
        self._items.append(event if self._content else without_content(event))
        self._wake()

    def close(self) -> None:
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __aiter__(self) -> AsyncIterator[EventBase]:
        return self

    async def __anext__(self) -> EventBase:
        while not self._items:
            if self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.popleft()

    def drain(self) -> list[EventBase]:
        """Everything received so far that was not iterated yet (non-blocking)."""
        items = list(self._items)
        self._items.clear()
        return items


class EventBus:
    """Delivers one run's events to its sinks and live subscribers, numbering them in order.

    ``content=False`` drops contents and ``redactor`` masks secrets, for every sink and
    subscriber alike (a sink may drop more on its own).
    """

    __slots__ = (
        "_line_sinks",
        "_object_sinks",
        "_objects",
        "_seq",
        "_sinks",
        "_subscribers",
        "active",
        "content",
        "redactor",
        "run_id",
    )

    def __init__(
        self,
        run_id: str,
        sinks: Sequence[Sink] = (),
        *,
        first_seq: int = 0,
        content: bool = True,
        redactor: Redactor | None = None,
    ) -> None:
        self.run_id = run_id
        self.content = content
        self.redactor = redactor
        self._sinks: list[Sink] = []
        self._line_sinks: list[LineSink] = []
        self._object_sinks: list[Sink] = []
        self._subscribers: list[Subscription] = []
        self._seq = first_seq
        self._objects = False  # someone wants event objects
        self.active = False
        for sink in sinks:
            self.add_sink(sink)

    @property
    def last_seq(self) -> int:
        """The ``seq`` of the last published event (0 before the first)."""
        return self._seq

    @property
    def wants_tokens(self) -> bool:
        """Whether anyone wants streamed tokens (then model calls stream; otherwise they don't,
        and get exact usage from the server). A sink opts in with ``wants_tokens = True``."""
        if any(s.wants("token") for s in self._subscribers):
            return True
        return any(getattr(sink, "wants_tokens", False) for sink in self._sinks)

    def add_sink(self, sink: Sink) -> None:
        self._sinks.append(sink)
        if getattr(sink, "takes_lines", False):
            self._line_sinks.append(sink)  # type: ignore[arg-type]
        else:
            self._object_sinks.append(sink)
        self._refresh()

    def subscribe(
        self,
        *,
        include: Collection[str] | None = None,
        exclude: Collection[str] = (),
        content: bool = True,
    ) -> Subscription:
        """A live subscription to events published from now on."""
        subscription = Subscription(include=include, exclude=exclude, content=content)
        self._subscribers.append(subscription)
        self._refresh()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscription.close()
        if subscription in self._subscribers:
            self._subscribers.remove(subscription)
        self._refresh()

    def _refresh(self) -> None:
        self._objects = bool(self._object_sinks or self._subscribers)
        self.active = bool(self._objects or self._line_sinks)

    # ------------------------------------------------------------------ publishing

    def emit(self, cls: Callable[..., E], where: Scope, fields: dict[str, Any]) -> E | None:
        """Publish an event of type ``cls`` made of ``where``'s ids and ``fields``; returns it
        when it was built as an object (while only line sinks listen, it never is)."""
        self._seq = seq = self._seq + 1
        if self._objects:
            return self._emit_object(cls, where, fields, seq)
        if len(fields) == OWN_FIELD_COUNTS[cls]:  # type: ignore[index]
            record = {  # every field given (the engine's hot events): no defaults to merge
                "type": TYPE_NAMES[cls],  # type: ignore[index]
                "run_id": where.run_id,
                "span_id": where.span_id,
                "parent_span_id": where.parent_span_id,
                "step": where.step,
                "node": where.node,
                "ts": time.time(),
                "seq": seq,
                **fields,
            }
        else:
            record = {
                **RECORD_DEFAULTS[cls],  # type: ignore[index]
                "run_id": where.run_id,
                "span_id": where.span_id,
                "parent_span_id": where.parent_span_id,
                "step": where.step,
                "node": where.node,
                "ts": time.time(),
                "seq": seq,
                **fields,
            }
        if self.content and not SENSITIVE_FIELDS[cls]:  # type: ignore[index]
            line = encode_line(record)  # nothing to drop, nothing to mask
        else:
            line = self._line(cls, record)  # type: ignore[arg-type]
        for sink in self._line_sinks:
            sink.write_line(line)
        return None

    def _emit_object(
        self, cls: Callable[..., E], where: Scope, fields: dict[str, Any], seq: int
    ) -> E:
        event = cls(
            run_id=where.run_id,
            span_id=where.span_id,
            parent_span_id=where.parent_span_id,
            step=where.step,
            node=where.node,
            ts=time.time(),
            seq=seq,
            **fields,
        )
        return self._deliver(event)

    def _line(self, cls: type[EventBase], record: dict[str, Any]) -> bytes:
        """The JSON line of ``record`` with the run's privacy settings applied."""
        if not self.content:
            for name in CONTENT_FIELDS[cls]:
                record[name] = None
        line = encode_line(record)
        redactor = self.redactor
        if redactor is not None:
            for name in SENSITIVE_FIELDS[cls]:
                if record[name]:
                    return redactor.bytes(line)
        return line

    def publish(self, event: EventBase) -> None:
        """Publish an event built elsewhere (its ``seq`` is assigned here)."""
        self._seq += 1
        event.seq = self._seq
        self._deliver(event)

    def _deliver(self, event: E) -> E:
        if not self.content:
            event = without_content(event)  # type: ignore[assignment]
        if self.redactor is not None:
            event = self.redactor.event(event)
        for sink in self._object_sinks:
            sink.write(event)
        for subscription in self._subscribers:
            subscription.push(event)
        if self._line_sinks:
            line = encode_line(event_record(event))
            for line_sink in self._line_sinks:
                line_sink.write_line(line)
        return event

    # ------------------------------------------------------------------ ending

    def end_subscriptions(self) -> None:
        """The run stopped (finished or paused): end every live subscription; sinks stay."""
        for subscription in self._subscribers:
            subscription.close()
        self._subscribers.clear()
        self._refresh()

    def close(self) -> None:
        """End of the run: close every subscription and sink."""
        self.end_subscriptions()
        for sink in self._sinks:
            sink.close()
        self._sinks.clear()
        self._line_sinks.clear()
        self._object_sinks.clear()
        self._refresh()


@dataclass(slots=True)
class Scope:
    """Where the running code is: which run, step, node and span its events belong to."""

    bus: EventBus
    run_id: str
    span_id: str
    parent_span_id: str | None = None
    step: int | None = None
    node: str | None = None

    def child(self, *, node: str | None = None, step: int | None = None) -> Scope:
        return Scope(
            self.bus,
            self.run_id,
            new_span_id(),
            self.span_id,
            self.step if step is None else step,
            self.node if node is None else node,
        )

    def emit(self, cls: Callable[..., E], **fields: Any) -> E | None:
        """Publish an event of type ``cls`` in this scope (``None`` when nobody listens, or
        only sinks that take serialised lines)."""
        bus = self.bus
        if not bus.active:
            return None
        return bus.emit(cls, self, fields)


_current: ContextVar[Scope | None] = ContextVar("atdak_agents_scope", default=None)


def current_scope() -> Scope | None:
    """The scope of the running code, or ``None`` outside any run."""
    return _current.get()


def emit(cls: Callable[..., E], **fields: Any) -> E | None:
    """Publish an event in the current scope; does nothing outside a run or when nobody listens."""
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
