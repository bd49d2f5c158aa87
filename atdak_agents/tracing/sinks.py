"""Trace sinks: JSONL files (and reading them back), memory capture, and structlog.

A sink receives every event of a run (``write``) and is closed when the run ends. Sinks that
record traces honour ``content=False`` (sizes and token counts stay, texts go) and mask secrets
with a :class:`~atdak_agents.tracing.redact.Redactor`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .events import EVENT_ADAPTER, Event, EventBase, event_from_json, event_to_json, without_content
from .redact import Redactor

__all__ = ["JsonlSink", "MemorySink", "StructlogSink", "read_jsonl"]

# Events after which a JSONL trace is flushed: what was checkpointed is on disk in the trace too.
_FLUSH_AFTER = frozenset(
    {"checkpoint_saved", "run_started", "run_finished", "run_failed", "run_interrupted"}
)


class JsonlSink:
    """Writes one JSON event per line to a file (appending), flushed at every checkpoint."""

    def __init__(
        self,
        target: str | os.PathLike[str] | IO[bytes],
        *,
        content: bool = True,
        redactor: Redactor | None = None,
    ) -> None:
        if isinstance(target, str | os.PathLike):
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            self._file: IO[bytes] = open(target, "ab", buffering=1 << 16)  # noqa: SIM115
            self._owned = True
        else:
            self._file = target
            self._owned = False
        self._content = content
        self._redactor = redactor

    def write(self, event: EventBase) -> None:
        line = event_to_json(event if self._content else without_content(event))
        if self._redactor is not None:
            line = self._redactor.bytes(line)
        self._file.write(line + b"\n")
        if event.type in _FLUSH_AFTER:
            self._file.flush()

    def close(self) -> None:
        if self._file.closed:
            return
        self._file.flush()
        if self._owned:
            self._file.close()


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


class StructlogSink:
    """Sends every event to a structlog logger (the application's own configuration applies).

    The event's type is the log event name; its fields are the key/values, so structlog
    processors (filtering, redaction, rendering) see typed data, not a pre-rendered string.
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
        data: dict[str, Any] = EVENT_ADAPTER.dump_python(
            event if self._content else without_content(event),  # type: ignore[arg-type]
            mode="json",
        )
        name = data.pop("type")
        if self._redactor is not None:
            data = self._redactor.value(data)
        self._logger.info(name, **data)

    def close(self) -> None:
        return None
