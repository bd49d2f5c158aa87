"""Trace sinks: JSONL files (read back and replayed), memory capture, and structlog.

A sink receives the events of a run it wants (``write``) and is closed when the run ends. The
run's privacy settings (``trace_content``, its redactor) are applied before any sink sees an
event; a sink may drop more on its own (``content=False``, its own ``redactor``).

A JSONL trace keeps one line per node execution (``node_finished``, which says when the node
started and what it wrote) and leaves out the events that serve live views (``node_started``,
``state_updated``, ``token``) unless asked (``events="all"``). :func:`replay` puts a
``node_started`` back before each node that has none, so consumers see a run as it happened.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import Callable, Collection, Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import IO, Any

from .events import (
    LIVE_ONLY,
    Event,
    EventBase,
    NodeFinished,
    NodeStarted,
    encode_record,
    event_from_json,
    event_record,
    select_events,
    start_of,
    without_content,
)
from .redact import Redactor
from .routing import ALL_TYPES, types_of

__all__ = [
    "TRACE_EVENTS",
    "JsonlSink",
    "MemorySink",
    "StructlogSink",
    "read_jsonl",
    "replay",
    "restore_node_starts",
]

#: The event types a JSONL trace records by default: all but those that only serve live views.
TRACE_EVENTS: frozenset[str] = ALL_TYPES - LIVE_ONLY

# A line starts with ``{"type":"``: its tenth byte is the type's initial (no other type begins
# with ``c`` or ``r``) and its fourteenth tells the run events apart: ``run_started`` (``s``)
# waits for the next batch, ``run_interrupted`` (``i``) is a pause, ``run_finished`` and
# ``run_failed`` (``f``) end a run.
_CHECKPOINT = ord("c")
_RUN = ord("r")
_PAUSE = ord("i")
_END = ord("f")
_BATCH = 1 << 16  # bytes kept in memory at most before they are written
#: How long after a run's end an open file given to a :class:`JsonlSink` is flushed at the
#: latest (when its lines were handed to it in a running event loop).
FLUSH_DELAY = 0.05

# The deferred flush of each open file (by id): one timer per file however many runs end, so a
# process running many short runs makes one write to the disk per ``FLUSH_DELAY``, not per run.
# The timer holds the file weakly: a file dropped meanwhile flushes as it is collected, and a
# timer left behind by a closed event loop keeps nothing alive.
_DEFERRED: dict[int, tuple[asyncio.AbstractEventLoop, Callable[[], Any]]] = {}


def _flush_file(ref: Callable[[], Any], key: int) -> None:
    _DEFERRED.pop(key, None)
    file = ref()
    if file is not None and not file.closed:
        file.flush()


def _flush_soon(file: IO[bytes]) -> None:
    """Flush ``file`` within :data:`FLUSH_DELAY` (at once outside an event loop)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        file.flush()
        return
    key = id(file)
    scheduled = _DEFERRED.get(key)
    if scheduled is not None and scheduled[0] is loop and scheduled[1]() is file:
        return  # a flush is on its way
    try:
        ref: Callable[[], Any] = weakref.ref(file)
    except TypeError:  # (an object without weak references: held until its flush)
        ref = partial(_same, file)
    _DEFERRED[key] = (loop, ref)
    loop.call_later(FLUSH_DELAY, _flush_file, ref, key)


def _same(value: Any) -> Any:
    return value


class JsonlSink:
    """Writes one JSON event per line to a file (appending), in batches.

    ``events``: the types to record. By default (:data:`TRACE_EVENTS`) every type but
    ``node_started``, ``state_updated`` and ``token``: a node is one line, its
    ``node_finished`` (with ``started``, ``updated`` and ``values``), and a model call's answer
    is in its ``model_response``. ``"all"`` records everything; a collection of type names
    exactly those.

    Lines are held in memory and written every 64 KiB, at every checkpoint, when a run pauses
    and when it ends (the bus closes the sink), and by :meth:`flush`. Given a path, the file is
    opened only to append a batch, so a paused run holds no file open, several processes may
    append to one trace, and a run's lines are in the file when the run returns. Given an open
    binary file, it writes there and leaves closing it to you; it flushes the file at every
    checkpoint and pause, but at a run's end it only hands the lines to the file and flushes it
    at the latest :data:`FLUSH_DELAY` (50 ms) later (at once outside an event loop), once for
    all the runs that ended meanwhile: a process running many short runs into one open file
    does not pay a disk write per run. Closing the file (or ``sink.flush()``) flushes it at
    once.
    """

    def __init__(
        self,
        target: str | os.PathLike[str] | IO[bytes],
        *,
        events: str | Collection[str] | None = None,
        content: bool = True,
        redactor: Redactor | None = None,
    ) -> None:
        #: The event types it records.
        self.event_types = select_events(events, default=TRACE_EVENTS)
        self._path: Path | None = None
        self._file: IO[bytes] | None = None
        if hasattr(target, "write"):  # (an open file: no slower isinstance against PathLike)
            self._file = target  # type: ignore[assignment]
        else:
            self._path = Path(target)
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._path.touch()  # a mistaken path fails now, not at the first batch
        self._content = content
        self._redactor = redactor
        # one growing buffer, not a list of lines: keeping many small bytes objects alive costs
        # far more (in the allocator) than copying them once (see bench_tracing.py)
        self._pending = bytearray()
        # with its own content switch off it needs the event's fields, not a finished line
        self.takes_lines = content

    def wants(self, event_type: str) -> bool:
        return event_type in self.event_types

    def write(self, event: EventBase) -> None:
        if not self._content:
            event = without_content(event)
        self.write_line(encode_record(event_record(event), newline=True))

    def write_line(self, line: bytes) -> None:
        """Append one serialised event (a JSON object and a newline)."""
        if self._redactor is not None:
            line = self._redactor.bytes(line)
        pending = self._pending
        pending += line
        initial = line[9]
        if initial == _CHECKPOINT or (initial == _RUN and line[13] == _PAUSE):
            self.flush()
        elif (initial == _RUN and line[13] == _END) or len(pending) > _BATCH:
            self._write(durable=False)  # a run's end: on disk soon (see the class's note)

    def flush(self) -> None:
        """Write the lines held in memory to the file, and flush it."""
        self._write(durable=True)

    def _write(self, *, durable: bool) -> None:
        """Write what is held: to the file (flushed at once when ``durable``, else soon), or
        appended to the path."""
        file = self._file
        if file is not None:
            if file.closed:
                self._pending.clear()
                return
            if self._pending:
                file.write(self._pending)
                self._pending.clear()
            if durable:
                file.flush()
            else:
                _flush_soon(file)
        elif self._pending and self._path is not None:
            with open(self._path, "ab") as handle:  # one append per batch
                handle.write(self._pending)
            self._pending.clear()

    def close(self) -> None:
        """The run ended: write what is held (see the class's note on open files)."""
        if self._pending:  # (closing right after the write at a run's end writes nothing)
            self._write(durable=False)


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[Event]:
    """The events of a JSONL trace file, validated, in file order (blank lines skipped)."""
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield event_from_json(line)
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: not a trace event: {exc}") from None


def replay(
    trace: str | os.PathLike[str] | Iterable[EventBase],
    *consumers: Any,
    close: bool = True,
) -> int:
    """Feed a recorded trace to sinks or callables, as the live run fed them; returns the
    number of events replayed.

    ``trace``: a JSONL file or events. Each consumer is a sink (``write``/``close``: console,
    OpenTelemetry, another JSONL file...) or a callable taking an event; a sink gets only the
    types it wants. Nodes recorded by their ``node_finished`` alone get their ``node_started``
    back (see :func:`restore_node_starts`). Sinks are closed at the end unless
    ``close=False``.
    """
    events: Iterable[EventBase] = (
        read_jsonl(trace) if isinstance(trace, str | os.PathLike) else trace
    )
    writers: list[tuple[Callable[[EventBase], Any], frozenset[str]]] = [
        (consumer.write, types_of(consumer))
        if hasattr(consumer, "write")
        else (consumer, ALL_TYPES)
        for consumer in consumers
    ]
    count = 0
    for event in restore_node_starts(events):
        count += 1
        for write, types in writers:
            if event.type in types:
                write(event)
    if close:
        for consumer in consumers:
            if hasattr(consumer, "close"):
                consumer.close()
    return count


_RUN_ENDS = frozenset({"run_finished", "run_failed", "run_interrupted"})


def restore_node_starts(events: Iterable[EventBase]) -> Iterator[EventBase]:
    """``events`` with a ``node_started`` put back before each node that has none.

    A default JSONL trace records a node once, by its ``node_finished``; the restored start has
    the node's ids, ``kind`` and ``ts = started`` (and ``seq`` 0: it was not in the stream),
    and goes where the live one was: after every event older than it, before the node's first
    event. Events are held one run at a time (until the run ends or pauses), since a node's
    start is only known when it finishes. A trace that has its starts passes unchanged.
    """
    held: list[EventBase] = []
    for event in events:
        held.append(event)
        if event.type in _RUN_ENDS and event.parent_span_id is None:
            yield from _with_starts(held)
            held = []
    yield from _with_starts(held)


def _with_starts(events: list[EventBase]) -> list[EventBase]:
    started = {e.span_id for e in events if e.type == "node_started"}
    first_seen: dict[str, int] = {}  # span id -> index of the first event in or under it
    for index, event in enumerate(events):
        first_seen.setdefault(event.span_id, index)
        if event.parent_span_id is not None:
            first_seen.setdefault(event.parent_span_id, index)
    inserts: list[tuple[int, float, int, NodeStarted]] = []
    for index, event in enumerate(events):
        if isinstance(event, NodeFinished) and event.span_id not in started:
            start = start_of(event)
            position = index
            while position > 0 and events[position - 1].ts > start.ts:
                position -= 1
            position = min(position, first_seen[event.span_id])
            inserts.append((position, start.ts, -index, start))  # an outer node first
    if not inserts:
        return events
    inserts.sort(key=lambda item: item[:3])
    merged: list[EventBase] = []
    at = 0
    for position, _, _, start in inserts:
        merged.extend(events[at:position])
        merged.append(start)
        at = position
    merged.extend(events[at:])
    return merged


class MemorySink:
    """Keeps every event in a list (``sink.events``) — for tests and small tools.

    ``events``: the types to keep (default all; see :class:`JsonlSink`).
    """

    def __init__(
        self, *, events: str | Collection[str] | None = None, content: bool = True
    ) -> None:
        self.event_types = select_events(events, default=ALL_TYPES)
        self.events: list[EventBase] = []
        self.closed = False
        self._content = content

    def write(self, event: EventBase) -> None:
        self.events.append(event if self._content else without_content(event))

    def close(self) -> None:
        self.closed = True

    def of_type(self, event_type: str) -> list[EventBase]:
        return [e for e in self.events if e.type == event_type]


# structlog level of each event type (the rest log at info)
_LEVELS: dict[str, str] = {
    "token": "debug",
    "state_updated": "debug",
    "checkpoint_saved": "debug",
    "model_retrying": "warning",
    "run_interrupted": "warning",
    "run_failed": "error",
}


class StructlogSink:
    """Sends every event to a structlog logger, as structlog intends: the event's type is the
    log event name, its fields are typed key/values, and the application's processors
    (filtering by level, redaction, rendering) do the rest.

    ``logger``: a (bound) structlog logger; by default ``structlog.get_logger("atdak_agents")``.
    Token deltas, state updates and checkpoints log at debug, retries and interruptions at
    warning, failures (of a run, or of a node: ``error`` is set) at error, the rest at info.
    ``events``: the types to log (default all; see :class:`JsonlSink`).
    """

    def __init__(
        self,
        logger: Any = None,
        *,
        events: str | Collection[str] | None = None,
        content: bool = True,
        redactor: Redactor | None = None,
    ) -> None:
        self.event_types = select_events(events, default=ALL_TYPES)
        if logger is None:
            import structlog

            logger = structlog.get_logger("atdak_agents")
        self._logger = logger
        self._content = content
        self._redactor = redactor

    def write(self, event: EventBase) -> None:
        if not self._content:
            event = without_content(event)
        if self._redactor is not None:
            event = self._redactor.event(event)
        data = event_record(event)
        name = data.pop("type")
        level = "error" if data.get("error") else _LEVELS.get(name, "info")
        getattr(self._logger, level)(name, **data)

    def close(self) -> None:
        return None
