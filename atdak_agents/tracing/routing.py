"""Who receives which events: sinks, live subscriptions, and the route of each event type.

A consumer takes the event types it names — a sink with ``event_types`` (a set of type names)
or a ``wants(event_type)`` method, a :class:`Subscription` with ``include`` / ``exclude`` —
and everything otherwise. The routes of every type for one combination of consumers are worked
out once (:func:`layout`) and shared by every run's bus with the same combination.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Collection
from typing import Any, Protocol

from .events import EVENT_TYPES, EventBase, without_content

__all__ = [
    "ALL_TYPES",
    "EMPTY",
    "Layout",
    "LineSink",
    "Route",
    "Sink",
    "Subscription",
    "layout",
    "types_of",
    "wants",
]


class Sink(Protocol):
    """Where a trace goes: ``write`` gets each event of a run, ``close`` ends the run.

    A sink may also say which event types it takes — an ``event_types`` attribute (a set of
    type names) or a ``wants(event_type) -> bool`` method — and then receives only those
    (asked once, when it is added to a run, not per event).
    """

    def write(self, event: EventBase) -> None: ...

    def close(self) -> None: ...


class LineSink(Sink, Protocol):
    """A sink that takes events serialised: one JSON line each (ending in a newline)."""

    takes_lines: bool

    def write_line(self, line: bytes) -> None: ...


ALL_TYPES: frozenset[str] = frozenset(EVENT_TYPES)


def wants(consumer: Any, event_type: str) -> bool:
    """Whether ``consumer`` (a sink, a subscription, a callable) takes events of that type."""
    return event_type in types_of(consumer)


def types_of(consumer: Any) -> frozenset[str]:
    """The event types ``consumer`` takes: its ``event_types``, else those its ``wants(type)``
    accepts, else all."""
    types = getattr(consumer, "event_types", None)
    if types is not None:
        return frozenset(types)
    method = getattr(consumer, "wants", None)
    if method is None:
        return ALL_TYPES
    return frozenset(name for name in EVENT_TYPES if method(name))


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
        #: The event types it takes.
        self.event_types = (
            ALL_TYPES if self._include is None else ALL_TYPES & self._include
        ) - self._exclude
        self._content = content
        self._items: deque[EventBase] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    def wants(self, event_type: str) -> bool:
        if event_type in self._exclude:
            return False
        return self._include is None or event_type in self._include

    def push(self, event: EventBase) -> None:
        """Queue ``event`` (the bus pushes only the types this subscription wants)."""
        if self._closed:
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


class Route:
    """Who receives one event type: indices into the bus's object sinks, subscribers and
    line sinks."""

    __slots__ = ("lines", "objects", "subscribers")

    def __init__(
        self, objects: tuple[int, ...], subscribers: tuple[int, ...], lines: tuple[int, ...]
    ) -> None:
        self.objects = objects
        self.subscribers = subscribers
        self.lines = lines


class Layout:
    """The routes of every event type for one combination of consumers' type sets. Layouts
    are shared by every bus with the same combination (a run with one default JSONL sink
    computes nothing), so adding a sink or subscriber costs a dictionary lookup."""

    __slots__ = ("by_class", "by_name", "finished", "finished_lines", "started", "wanted")

    def __init__(self, key: tuple[tuple[frozenset[str], ...], ...]) -> None:
        objects, subscribers, lines = key
        self.by_name: dict[str, Route] = {}
        for name in frozenset().union(*objects, *subscribers, *lines):
            self.by_name[name] = Route(
                tuple(i for i, t in enumerate(objects) if name in t),
                tuple(i for i, t in enumerate(subscribers) if name in t),
                tuple(i for i, t in enumerate(lines) if name in t),
            )
        self.by_class = {EVENT_TYPES[name]: route for name, route in self.by_name.items()}
        self.wanted: frozenset[object] = frozenset(self.by_class)
        #: The routes of a node's two events (the engine's hot path asks for them by name).
        self.started = self.by_name.get("node_started")
        self.finished = finished = self.by_name.get("node_finished")
        #: The line sinks taking ``node_finished``, when only line sinks take it (then it is
        #: written straight from the node's fields); ``None`` otherwise.
        self.finished_lines: tuple[int, ...] | None = (
            finished.lines
            if finished is not None and not (finished.objects or finished.subscribers)
            else None
        )


_LAYOUTS: dict[tuple[tuple[frozenset[str], ...], ...], Layout] = {}
_MAX_LAYOUTS = 256
EMPTY = Layout(((), (), ()))


def layout(key: tuple[tuple[frozenset[str], ...], ...]) -> Layout:
    layout = _LAYOUTS.get(key)
    if layout is None:
        if len(_LAYOUTS) >= _MAX_LAYOUTS:
            _LAYOUTS.clear()
        layout = _LAYOUTS[key] = Layout(key)
    return layout
