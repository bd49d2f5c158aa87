"""Publishing events: the run's event bus, live subscriptions, and the current span.

One :class:`EventBus` per run delivers events, in order, to its sinks (JSONL, console, structlog,
OpenTelemetry) and to live subscribers (``run.events()``). Code anywhere below the engine emits
with :func:`emit`; which run, node and span an event belongs to comes from a ``ContextVar``
(:class:`Scope`), so concurrent branches each carry their own. When nobody listens, emitting costs
one ``ContextVar`` lookup.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from .events import EventBase, without_content

__all__ = [
    "EventBus",
    "Scope",
    "Sink",
    "Subscription",
    "current_scope",
    "emit",
    "new_span_id",
    "scope",
    "span",
]

E = TypeVar("E", bound=EventBase)


class Sink(Protocol):
    """Where a trace goes: ``write`` gets every event of a run, ``close`` ends the run."""

    def write(self, event: EventBase) -> None: ...

    def close(self) -> None: ...


def new_span_id() -> str:
    """A random 64-bit span id as 16 hex digits (the OpenTelemetry span id format)."""
    return f"{random.getrandbits(64):016x}"


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
    """Delivers one run's events to its sinks and live subscribers, numbering them in order."""

    __slots__ = ("_seq", "_sinks", "_subscribers", "active", "run_id")

    def __init__(self, run_id: str, sinks: Sequence[Sink] = (), *, first_seq: int = 0) -> None:
        self.run_id = run_id
        self._sinks = list(sinks)
        self._subscribers: list[Subscription] = []
        self._seq = first_seq
        self.active = bool(self._sinks)

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
        self.active = True

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
        self.active = True
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscription.close()
        if subscription in self._subscribers:
            self._subscribers.remove(subscription)
        self.active = bool(self._sinks or self._subscribers)

    def publish(self, event: EventBase) -> None:
        self._seq += 1
        event.seq = self._seq
        for sink in self._sinks:
            sink.write(event)
        for subscription in self._subscribers:
            subscription.push(event)

    def end_subscriptions(self) -> None:
        """The run stopped (finished or paused): end every live subscription; sinks stay."""
        for subscription in self._subscribers:
            subscription.close()
        self._subscribers.clear()
        self.active = bool(self._sinks)

    def close(self) -> None:
        """End of the run: close every subscription and sink."""
        self.end_subscriptions()
        for sink in self._sinks:
            sink.close()
        self._sinks.clear()
        self.active = False


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
        """Publish an event of type ``cls`` in this scope (``None`` when nobody listens)."""
        if not self.bus.active:
            return None
        event = cls(
            run_id=self.run_id,
            span_id=self.span_id,
            parent_span_id=self.parent_span_id,
            step=self.step,
            node=self.node,
            ts=time.time(),
            **fields,
        )
        self.bus.publish(event)
        return event


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


@contextmanager
def scope(value: Scope) -> Iterator[Scope]:
    """Make ``value`` the current scope inside the ``with`` block."""
    token = _current.set(value)
    try:
        yield value
    finally:
        _current.reset(token)


@contextmanager
def span(*, node: str | None = None, step: int | None = None) -> Iterator[Scope | None]:
    """A child span of the current scope (a model call, a tool call, a nested node)."""
    parent = _current.get()
    if parent is None:
        yield None
        return
    with scope(parent.child(node=node, step=step)) as child:
        yield child
