"""Publishing events: the run's event bus, live subscriptions, and the current span.

One :class:`EventBus` per run delivers events, in order, to its sinks (JSONL, console, structlog,
OpenTelemetry) and to live subscribers (``run.events()``). Code anywhere below the engine emits
with :func:`emit`; which run, node and span an event belongs to comes from a ``ContextVar``
(:class:`Scope`), so concurrent branches each carry their own. When nobody listens, emitting costs
one ``ContextVar`` lookup.

Each sink and subscriber receives only the event types it wants (a sink says so with a
``wants(event_type)`` method; without one it gets everything): a JSONL trace leaves out
``node_started``, ``state_updated`` and ``token`` unless asked. Which types anyone wants is
worked out when sinks and subscriptions change, so an event nobody wants is never built.

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
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from contextvars import ContextVar, Token
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import orjson

from .events import (
    CONTENT_FIELDS,
    EVENT_TYPES,
    LINE_OPTIONS,
    OWN_FIELD_COUNTS,
    RECORD_DEFAULTS,
    SENSITIVE_FIELDS,
    TYPE_NAMES,
    EventBase,
    NodeFinished,
    NodeStarted,
    encode_line,
    encode_value,
    event_record,
    jsonable,
    without_content,
)

if TYPE_CHECKING:
    from .redact import Redactor

__all__ = [
    "EventBus",
    "LineSink",
    "NodeScope",
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
    "wants",
]

E = TypeVar("E", bound=EventBase)


class Sink(Protocol):
    """Where a trace goes: ``write`` gets each event of a run, ``close`` ends the run.

    A sink may also define ``wants(event_type) -> bool``: it then receives only the types it
    wants (asked once, when it is added to a run, not per event).
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


class _Route:
    """Who receives one event type: indices into the bus's object sinks, subscribers and
    line sinks."""

    __slots__ = ("lines", "objects", "subscribers")

    def __init__(
        self, objects: tuple[int, ...], subscribers: tuple[int, ...], lines: tuple[int, ...]
    ) -> None:
        self.objects = objects
        self.subscribers = subscribers
        self.lines = lines


class _Layout:
    """The routes of every event type for one combination of consumers' type sets. Layouts
    are shared by every bus with the same combination (a run with one default JSONL sink
    computes nothing), so adding a sink or subscriber costs a dictionary lookup."""

    __slots__ = ("by_class", "by_name", "wanted")

    def __init__(self, key: tuple[tuple[frozenset[str], ...], ...]) -> None:
        objects, subscribers, lines = key
        self.by_name: dict[str, _Route] = {}
        for name in frozenset().union(*objects, *subscribers, *lines):
            self.by_name[name] = _Route(
                tuple(i for i, t in enumerate(objects) if name in t),
                tuple(i for i, t in enumerate(subscribers) if name in t),
                tuple(i for i, t in enumerate(lines) if name in t),
            )
        self.by_class = {EVENT_TYPES[name]: route for name, route in self.by_name.items()}
        self.wanted: frozenset[object] = frozenset(self.by_class)


_LAYOUTS: dict[tuple[tuple[frozenset[str], ...], ...], _Layout] = {}
_MAX_LAYOUTS = 256
_EMPTY = _Layout(((), (), ()))


def _layout(key: tuple[tuple[frozenset[str], ...], ...]) -> _Layout:
    layout = _LAYOUTS.get(key)
    if layout is None:
        if len(_LAYOUTS) >= _MAX_LAYOUTS:
            _LAYOUTS.clear()
        layout = _LAYOUTS[key] = _Layout(key)
    return layout


_SPAN_COUNTER_BITS = 32
_PLAIN = frozenset({int, float, bool, type(None)})  # values that cannot hold a secret
# dict fields whose keys the graph defines (state keys, output names): not outside data
_NAMED_BY_THE_GRAPH = frozenset({"values", "output"})


def _plain(values: Mapping[str, Any]) -> bool:
    """Whether a dict keyed by the graph's own names holds only numbers, booleans and nulls:
    nothing a secret could hide in (the object path masks text only, too)."""
    for value in values.values():  # noqa: SIM110 - a loop: no generator on the hot path
        if type(value) not in _PLAIN:
            return False
    return True


class EventBus:
    """Delivers one run's events to its sinks and live subscribers, numbering them in order.

    ``content=False`` drops contents and ``redactor`` masks secrets, for every sink and
    subscriber alike (a sink may drop more on its own).
    """

    __slots__ = (
        "_by_name",
        "_finished",
        "_finished_lines",
        "_line_sinks",
        "_line_types",
        "_object_sinks",
        "_object_types",
        "_private",
        "_routes",
        "_seq",
        "_sinks",
        "_span_base",
        "_spans",
        "_started",
        "_subscribers",
        "active",
        "content",
        "redactor",
        "run_id",
        "wanted",
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
        self._private = redactor is not None or not content  # contents dropped or masked
        self._sinks: list[Sink] = []
        self._line_sinks: list[LineSink] = []
        self._line_types: list[frozenset[str]] = []
        self._object_sinks: list[Sink] = []
        self._object_types: list[frozenset[str]] = []
        self._subscribers: list[Subscription] = []
        self._seq = first_seq
        # span ids: a counter under 32 random high bits (a resumed run's new bus starts afresh)
        self._span_base = random.getrandbits(64 - _SPAN_COUNTER_BITS) << _SPAN_COUNTER_BITS
        self._spans = 0
        self._routes: dict[type[EventBase], _Route] = {}
        self._by_name: dict[str, _Route] = {}
        #: The event types someone wants (emitters skip the rest before building anything).
        self.wanted: frozenset[object] = frozenset()
        self.active = False
        self._started: _Route | None = None
        self._finished: _Route | None = None
        self._finished_lines: list[LineSink] | None = None  # when only line sinks take it
        for sink in sinks:
            self._add(sink)
        self._refresh()

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

    def new_span_id(self) -> str:
        """A span id unique in this run: 16 hex digits (OpenTelemetry's format), counted."""
        self._spans = count = self._spans + 1
        return "%016x" % (self._span_base + count)

    def add_sink(self, sink: Sink) -> None:
        """Send this run's events (of the types it wants) to ``sink`` from now on."""
        self._add(sink)
        self._refresh()

    def _add(self, sink: Sink) -> None:
        self._sinks.append(sink)
        if getattr(sink, "takes_lines", False):
            self._line_sinks.append(sink)  # type: ignore[arg-type]
            self._line_types.append(types_of(sink))
        else:
            self._object_sinks.append(sink)
            self._object_types.append(types_of(sink))

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
        """Work out, per event type, who receives it (once per change, never per event)."""
        if self._subscribers:
            subscribers = tuple(s.event_types for s in self._subscribers)
            layout = _layout((tuple(self._object_types), subscribers, tuple(self._line_types)))
        elif self._sinks:
            layout = _layout((tuple(self._object_types), (), tuple(self._line_types)))
        else:
            layout = _EMPTY
        routes = self._routes = layout.by_class
        self._by_name = layout.by_name
        self.wanted = layout.wanted
        self.active = bool(routes)
        self._started = routes.get(NodeStarted)
        self._finished = finished = routes.get(NodeFinished)
        self._finished_lines = (
            [self._line_sinks[i] for i in finished.lines]
            if finished is not None and not (finished.objects or finished.subscribers)
            else None
        )

    # ------------------------------------------------------------------ publishing

    def emit(
        self, cls: Callable[..., E], where: Scope, fields: dict[str, Any], ts: float | None = None
    ) -> E | None:
        """Publish an event of type ``cls`` made of ``where``'s ids and ``fields`` (at ``ts``,
        by default now); returns it when it was built as an object (it is not while only line
        sinks want it, nor when nobody does)."""
        route = self._routes.get(cls)  # type: ignore[call-overload]
        if route is None:
            return None
        self._seq = seq = self._seq + 1
        if ts is None:
            ts = time.time()
        if route.objects or route.subscribers:
            event = cls(
                run_id=where.run_id,
                span_id=where.span_id,
                parent_span_id=where.parent_span_id,
                step=where.step,
                node=where.node,
                ts=ts,
                seq=seq,
                **fields,
            )
            return self._deliver(event, route)
        if len(fields) == OWN_FIELD_COUNTS[cls]:  # type: ignore[index]
            record = {  # every field given (the engine's hot events): no defaults to merge
                "type": TYPE_NAMES[cls],  # type: ignore[index]
                "run_id": where.run_id,
                "span_id": where.span_id,
                "parent_span_id": where.parent_span_id,
                "step": where.step,
                "node": where.node,
                "ts": ts,
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
                "ts": ts,
                "seq": seq,
                **fields,
            }
        self._write_lines(route.lines, cls, record)  # type: ignore[arg-type]
        return None

    def _write_lines(
        self, sinks: tuple[int, ...], cls: type[EventBase], record: dict[str, Any]
    ) -> None:
        if (self.content and self.redactor is None) or not SENSITIVE_FIELDS[cls]:
            line = encode_line(record)  # nothing to drop, nothing to mask
        else:
            line = self._private_line(cls, record)
        line_sinks = self._line_sinks
        for index in sinks:
            line_sinks[index].write_line(line)

    def _private_line(self, cls: type[EventBase], record: dict[str, Any]) -> bytes:
        """The JSON line of ``record`` with the run's privacy settings applied: contents
        dropped, secrets masked in the fields that may hold them (each field is serialised and
        scanned on its own, so ids and names are never scanned)."""
        if not self.content:
            for name in CONTENT_FIELDS[cls]:
                record[name] = None
        redactor = self.redactor
        if redactor is not None:
            for name in SENSITIVE_FIELDS[cls]:
                value = record[name]
                if not value:
                    continue
                if isinstance(value, str):
                    record[name] = redactor.text(value)
                elif name not in _NAMED_BY_THE_GRAPH or not _plain(value):
                    record[name] = orjson.Fragment(redactor.bytes(encode_value(value)))
        return encode_line(record)

    def publish(self, event: EventBase) -> None:
        """Publish an event built elsewhere (its ``seq`` is assigned here); nothing happens
        when nobody wants its type."""
        route = self._by_name.get(event.type)
        if route is None:
            return
        self._seq += 1
        event.seq = self._seq
        self._deliver(event, route)

    def _deliver(self, event: E, route: _Route) -> E:
        if not self.content:
            event = without_content(event)  # type: ignore[assignment]
        if self.redactor is not None:
            event = self.redactor.event(event)
        for index in route.objects:
            self._object_sinks[index].write(event)
        for index in route.subscribers:
            self._subscribers[index].push(event)
        if route.lines:
            line = encode_line(event_record(event))
            for index in route.lines:
                self._line_sinks[index].write_line(line)
        return event

    # ------------------------------------------------------------------ nodes

    def enter_node(self, node: str, step: int, kind: str) -> NodeScope:
        """A node starts: its span (a child of the current scope, started now) becomes the
        current scope, and ``node_started`` goes to whoever wants it. Give the scope to
        :meth:`leave_node` when the node ends."""
        parent = _current.get()
        self._spans = count = self._spans + 1
        where = NodeScope(
            self,
            "%016x" % (self._span_base + count),
            parent.span_id if parent is not None else None,
            step,
            node,
            time.time(),
            kind,
        )
        where.token = _current.set(where)
        if self._started is not None:
            self.emit(NodeStarted, where, {"kind": kind}, where.started)
        return where

    def leave_node(
        self,
        where: NodeScope,
        updates: Mapping[str, Any] | None,
        error: BaseException | None = None,
    ) -> None:
        """A node ended: the scope around it is current again, and ``node_finished`` says when
        it started, how long it ran, the keys it wrote and their values (or the error it
        raised). The hot path of a traced run: one dict and one JSON line while only line
        sinks listen."""
        _current.reset(where.token)
        sinks = self._finished_lines
        if sinks is None:  # nobody wants it, or someone wants it as an object
            if self._finished is not None:
                self._node_finished(where, updates, error)
            return
        now = time.time()
        failure: str | None = None
        values: Any = None
        if error is not None:
            updated: list[str] = []
            failure = self._failure(error)
        elif updates:
            updated = [*updates]
            values = updates
            if self._private:
                if not self.content:
                    values = None
                else:
                    for value in updates.values():
                        if type(value) not in _PLAIN:  # text (or more) that may hold a secret
                            values = self._masked(updates)
                            break
        else:
            updated = []
        self._seq = seq = self._seq + 1
        started = where.started
        record = {
            "type": "node_finished",
            "run_id": where.run_id,
            "span_id": where.span_id,
            "parent_span_id": where.parent_span_id,
            "step": where.step,
            "node": where.node,
            "ts": now,
            "seq": seq,
            "kind": where.kind,
            "started": started,
            "duration": now - started,
            "updated": updated,
            "values": values,
            "error": failure,
        }
        try:
            line = orjson.dumps(record, default=jsonable, option=LINE_OPTIONS)
        except TypeError:
            line = encode_line(record)
        for sink in sinks:
            sink.write_line(line)

    def _node_finished(
        self, where: NodeScope, updates: Mapping[str, Any] | None, error: BaseException | None
    ) -> None:
        """``node_finished`` built as an event (someone wants objects)."""
        now = time.time()
        started = where.started
        fields: dict[str, Any] = {"kind": where.kind, "started": started}
        fields["duration"] = now - started
        if error is not None:
            fields |= {"updated": [], "values": None, "error": f"{type(error).__name__}: {error}"}
        else:
            values = dict(updates) if updates else None
            fields |= {"updated": list(values or ()), "values": values, "error": None}
        self.emit(NodeFinished, where, fields, now)

    def _failure(self, error: BaseException) -> str:
        text = f"{type(error).__name__}: {error}"
        return self.redactor.text(text) if self.redactor is not None else text

    def _masked(self, values: Mapping[str, Any]) -> orjson.Fragment:
        """What a node wrote, as JSON with secrets masked."""
        try:
            data = orjson.dumps(values, default=jsonable)
        except TypeError:
            data = encode_value(values)
        assert self.redactor is not None
        return orjson.Fragment(self.redactor.bytes(data))

    # ------------------------------------------------------------------ ending

    def end_subscriptions(self) -> None:
        """The run stopped (finished or paused): end every live subscription; sinks stay."""
        if not self._subscribers:
            return
        for subscription in self._subscribers:
            subscription.close()
        self._subscribers.clear()
        self._refresh()

    def close(self) -> None:
        """End of the run: close every subscription and sink."""
        for subscription in self._subscribers:
            subscription.close()
        self._subscribers.clear()
        for sink in self._sinks:
            sink.close()
        self._sinks.clear()
        self._line_sinks.clear()
        self._line_types.clear()
        self._object_sinks.clear()
        self._object_types.clear()
        self._refresh()


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


_current: ContextVar[Scope | None] = ContextVar("atdak_agents_scope", default=None)


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
