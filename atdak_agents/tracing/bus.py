"""Publishing events: the run's event bus.

One :class:`EventBus` per run delivers events, in order, to its sinks (JSONL, console, structlog,
OpenTelemetry) and to live subscribers (``run.events()``), numbering them. Code anywhere below
the engine emits with :func:`~atdak_agents.tracing.scope.emit`; which run, node and span an
event belongs to comes from the current :class:`~atdak_agents.tracing.scope.Scope`. When nobody
listens, emitting costs one ``ContextVar`` lookup.

Each sink and subscriber receives only the event types it wants (see
:mod:`~atdak_agents.tracing.routing`): a JSONL trace leaves out ``node_started``,
``state_updated`` and ``token`` unless asked. Who wants what is worked out when sinks and
subscriptions change, so an event nobody wants is never built.

The bus applies the run's privacy settings once, for everyone: with ``content=False`` message
contents, arguments and values are dropped (sizes and token counts stay), and its
:class:`~atdak_agents.tracing.redact.Redactor` masks secrets in what every sink and subscriber
receives.

Two kinds of sink: an object sink gets each event (``write(event)``); a *line* sink (one with
``takes_lines = True``, such as :class:`~atdak_agents.tracing.sinks.JsonlSink`) gets it
serialised, as one JSON line (``write_line(line)``). While only line sinks listen, events are
never built as objects: the engine's fields go straight from a dict into JSON, which keeps
tracing to a file cheap enough to leave on. A node is the hot case: :meth:`EventBus.enter_node`
and :meth:`EventBus.leave_node` give it its span and, at its end, its one line.

(The names of :mod:`~atdak_agents.tracing.routing` and :mod:`~atdak_agents.tracing.scope` are
importable from here too.)
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from .events import (
    CONTENT_FIELDS,
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
from .routing import (
    ALL_TYPES,
    EMPTY,
    Layout,
    LineSink,
    Route,
    Sink,
    Subscription,
    layout,
    types_of,
    wants,
)
from .scope import (
    CURRENT_SCOPE,
    NodeScope,
    Scope,
    current_scope,
    emit,
    enter,
    leave,
    new_span_id,
    scope,
    span,
)

if TYPE_CHECKING:
    from .redact import Redactor

__all__ = [
    "ALL_TYPES",
    "EventBus",
    "LineSink",
    "NodeScope",
    "Scope",
    "Sink",
    "Subscription",
    "current_scope",
    "emit",
    "enter",
    "error_text",
    "leave",
    "new_span_id",
    "scope",
    "span",
    "types_of",
    "wants",
]

E = TypeVar("E", bound=EventBase)
_current = CURRENT_SCOPE


_SPAN_COUNTER_BITS = 32
# the low halves of the first span ids of a run, formatted once (a node's span id is then one
# concatenation, not a formatting)
_COUNTED = 1024
_COUNTS = tuple(f"{count:08x}" for count in range(_COUNTED))
_now = time.time
_dumps = orjson.dumps
_PLAIN = frozenset({int, float, bool, type(None)})  # values that cannot hold a secret
# dict fields whose keys the graph defines (state keys, output names): not outside data
_NAMED_BY_THE_GRAPH = frozenset({"values", "output"})
# a bus's sinks and subscribers before it has any (never added to: replaced by a list first)
_NONE: list[Any] = []


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
    subscriber alike (a sink may drop more on its own). ``redactor_for`` instead makes the
    redactor when the first sink or subscriber arrives.
    """

    # What a bus starts with: class attributes, not set per run (most runs never have a sink
    # or a subscriber, and a run's start is on every call's path). Sinks, subscribers and
    # published events give a bus its own values.
    content = True
    redactor: Redactor | None = None
    _redactor_for: Callable[[], Redactor] | None = None  # makes it when someone first listens
    _private = False  # contents dropped or masked
    # (no lists until a sink or subscriber comes: the first replaces these)
    _sinks: list[Sink] = _NONE
    _line_sinks: list[LineSink] = _NONE
    _line_types: list[frozenset[str]] = _NONE
    _object_sinks: list[Sink] = _NONE
    _object_types: list[frozenset[str]] = _NONE
    _subscribers: list[Subscription] = _NONE
    _seq = 0
    # span ids: a counter under 32 random high bits, drawn at the first span (a resumed run's
    # new bus starts afresh)
    _span_base = 0
    _span_prefix = ""
    _spans = 0
    _routes: dict[type[EventBase], Route] = EMPTY.by_class
    _by_name: dict[str, Route] = EMPTY.by_name
    #: The event types someone wants (emitters skip the rest before building anything).
    wanted: frozenset[object] = EMPTY.wanted
    active = False
    _started: Route | None = None
    _finished: Route | None = None
    # the line sinks' write_line, when only line sinks take node_finished
    _finished_lines: list[Callable[[bytes], None]] | None = None
    _tokens = False
    #: The run's root scope, set by whoever runs it: the parent of a node entered while no
    #: scope of this run is current.
    root: Scope | None = None

    def __init__(
        self,
        run_id: str,
        sinks: Sequence[Sink] = (),
        *,
        first_seq: int = 0,
        content: bool = True,
        redactor: Redactor | None = None,
        redactor_for: Callable[[], Redactor] | None = None,
    ) -> None:
        self.run_id = run_id
        if first_seq:
            self._seq = first_seq
        if redactor is not None:
            self.redactor = redactor
            self._private = True
        elif redactor_for is not None:
            self._redactor_for = redactor_for
        if not content:
            self.content = False
            self._private = True
        if sinks:
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
        and get exact usage from the server). A sink opts in with ``wants_tokens = True`` (read
        when it is added)."""
        return self._tokens

    def new_span_id(self) -> str:
        """A span id unique in this run: 16 hex digits (OpenTelemetry's format), counted."""
        self._spans = count = self._spans + 1
        if count == 1:
            self._draw_span_base()
        if count < _COUNTED:
            return self._span_prefix + _COUNTS[count]
        return "%016x" % (self._span_base + count)

    def _draw_span_base(self) -> None:
        self._span_base = random.getrandbits(64 - _SPAN_COUNTER_BITS) << _SPAN_COUNTER_BITS
        self._span_prefix = "%08x" % (self._span_base >> _SPAN_COUNTER_BITS)

    def add_sink(self, sink: Sink) -> None:
        """Send this run's events (of the types it wants) to ``sink`` from now on."""
        self._add(sink)
        self._refresh()

    def _add(self, sink: Sink) -> None:
        if self._sinks is _NONE:
            self._sinks, self._line_sinks, self._line_types = [], [], []
            self._object_sinks, self._object_types = [], []
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
        if self._subscribers is _NONE:
            self._subscribers = []
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
        if self._redactor_for is not None and (self._sinks or self._subscribers):
            self.redactor, self._redactor_for = self._redactor_for(), None
            self._private = True
        tokens = False
        if self._subscribers:
            subscribers = tuple(s.event_types for s in self._subscribers)
            shared = layout((tuple(self._object_types), subscribers, tuple(self._line_types)))
            for subscription in self._subscribers:
                if subscription.wants("token"):
                    tokens = True
        elif self._sinks:
            shared = layout((tuple(self._object_types), (), tuple(self._line_types)))
        else:
            shared = EMPTY
        for sink in self._sinks:
            if getattr(sink, "wants_tokens", False):
                tokens = True
        self._tokens = tokens
        self._use(shared)

    def _use(self, shared: Layout) -> None:
        routes = self._routes = shared.by_class
        self._by_name = shared.by_name
        self.wanted = shared.wanted
        self.active = bool(routes)
        self._started = shared.started
        self._finished = shared.finished
        lines = shared.finished_lines
        self._finished_lines = (
            None if lines is None else [self._line_sinks[index].write_line for index in lines]
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
            ts = _now()
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
        if self._private and SENSITIVE_FIELDS[cls]:  # type: ignore[index]
            line = self._private_line(cls, record)  # type: ignore[arg-type]
        else:  # nothing to drop, nothing to mask
            try:
                line = _dumps(record, default=jsonable, option=LINE_OPTIONS)
            except TypeError:
                line = encode_line(record)
        line_sinks = self._line_sinks
        for index in route.lines:
            line_sinks[index].write_line(line)
        return None

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

    def _deliver(self, event: E, route: Route) -> E:
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
        :meth:`leave_node` when the node ends. When no scope of this run is current, the node
        hangs under :attr:`root` (so the engine need not make the run's scope current around
        every step)."""
        parent = _current.get()
        if parent is None or parent.bus is not self:  # (another run's scope: a run inside it)
            parent = self.root
        self._spans = count = self._spans + 1
        if count == 1:
            self._draw_span_base()
        where = NodeScope(
            self,
            self._span_prefix + _COUNTS[count]
            if count < _COUNTED
            else "%016x" % (self._span_base + count),
            parent.span_id if parent is not None else None,
            step,
            node,
            _now(),
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
        now = _now()
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
            line = _dumps(record, default=jsonable, option=LINE_OPTIONS)
        except TypeError:
            line = encode_line(record)
        for write in sinks:
            write(line)

    def _node_finished(
        self, where: NodeScope, updates: Mapping[str, Any] | None, error: BaseException | None
    ) -> None:
        """``node_finished`` built as an event (someone wants objects)."""
        now = time.time()
        started = where.started
        fields: dict[str, Any] = {"kind": where.kind, "started": started}
        fields["duration"] = now - started
        if error is not None:
            fields |= {"updated": [], "values": None, "error": error_text(error)}
        else:
            values = dict(updates) if updates else None
            fields |= {"updated": list(values or ()), "values": values, "error": None}
        self.emit(NodeFinished, where, fields, now)

    def _failure(self, error: BaseException) -> str:
        text = error_text(error)
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
        if not (self._sinks or self._subscribers):
            return
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
        self._tokens = False
        self._use(EMPTY)


def error_text(error: BaseException) -> str:
    """How a node's error reads in its ``node_finished``: its type and message; a node stopped
    by the run's cancellation (Ctrl-C, an interrupt) says so, not ``CancelledError: ``."""
    if isinstance(error, asyncio.CancelledError):
        return "cancelled: the run was stopped while this node ran (it runs again on resume)"
    return f"{type(error).__name__}: {error}"
