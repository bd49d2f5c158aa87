"""Trace sinks: JSONL files (read back and replayed), memory capture, and structlog.

A sink receives every event of a run (``write``) and is closed when the run ends. The run's
privacy settings (``trace_content``, its redactor) are applied before any sink sees an event;
a sink may drop more on its own (``content=False``, its own ``redactor``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from .events import (
    Event,
    EventBase,
    encode_record,
    event_from_json,
    event_record,
    without_content,
)
from .redact import Redactor

__all__ = ["JsonlSink", "MemorySink", "StructlogSink", "read_jsonl", "replay"]

# A JSONL trace is flushed to the file after ``checkpoint_saved`` and ``run_*`` events: what was
# checkpointed is on disk in the trace too, and so is the start and end of a run. A line starts
# with ``{"type":"`` and no other type begins with ``c`` or ``r``, so the tenth byte tells.
_FLUSH_INITIALS = frozenset({b"c", b"r"})
_BATCH = 1 << 16  # bytes kept in memory at most before they are written


class JsonlSink:
    """Writes one JSON event per line to a file (appending), flushed at every checkpoint and
    when a run starts, pauses or ends.

    Lines are written in batches; a run's events reach the file at those points and every
    64 KiB in between. Given a path, the file is opened only to append a batch, so a paused run
    holds no file open and several processes may append to one trace; given an open binary
    file, it writes there (and flushes it) and leaves closing it to you.
    """

    def __init__(
        self,
        target: str | os.PathLike[str] | IO[bytes],
        *,
        content: bool = True,
        redactor: Redactor | None = None,
    ) -> None:
        self._path: Path | None = None
        self._file: IO[bytes] | None = None
        if isinstance(target, str | os.PathLike):
            self._path = Path(target)
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._path.touch()  # a mistaken path fails now, not at the first batch
        else:
            self._file = target
        self._content = content
        self._redactor = redactor
        # one growing buffer, not a list of lines: keeping many small bytes objects alive costs
        # far more (in the allocator) than copying them once (see bench_tracing.py)
        self._pending = bytearray()
        # with its own content switch off it needs the event's fields, not a finished line
        self.takes_lines = content

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
        if line[9:10] in _FLUSH_INITIALS or len(pending) > _BATCH:
            self.flush()

    def flush(self) -> None:
        """Write the lines held in memory to the file."""
        if self._file is not None:
            if not self._file.closed:
                self._file.write(self._pending)
                self._file.flush()
        elif self._pending and self._path is not None:
            with open(self._path, "ab") as file:  # one append per batch
                file.write(self._pending)
        self._pending.clear()

    def close(self) -> None:
        self.flush()


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
    number of events.

    ``trace``: a JSONL file or events. Each consumer is a sink (``write``/``close``: console,
    OpenTelemetry, another JSONL file...) or a callable taking an event. Sinks are closed at
    the end unless ``close=False``.
    """
    events: Iterable[EventBase] = (
        read_jsonl(trace) if isinstance(trace, str | os.PathLike) else trace
    )
    writers: list[Callable[[EventBase], Any]] = [
        consumer.write if hasattr(consumer, "write") else consumer for consumer in consumers
    ]
    count = 0
    for event in events:
        count += 1
        for write in writers:
            write(event)
    if close:
        for consumer in consumers:
            if hasattr(consumer, "close"):
                consumer.close()
    return count


class MemorySink:
    """Keeps every event in a list (``sink.events``) — for tests and small tools."""

    def __init__(self, *, content: bool = True) -> None:
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
    """

    def __init__(
        self, logger: Any = None, *, content: bool = True, redactor: Redactor | None = None
    ) -> None:
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
