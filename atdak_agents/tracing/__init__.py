"""Tracing: typed events, the run's event bus, sinks and redaction.

``OtelSink`` (OpenTelemetry) is imported on first use, so OpenTelemetry is only loaded when it
is used; ``render_trace`` (the HTML trace viewer) likewise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .bus import EventBus, LineSink, Scope, Sink, Subscription, current_scope, emit, scope, span
from .console import ConsoleSink
from .events import EVENT_ADAPTER, Event, EventBase, event_from_json, event_to_json
from .redact import Redactor
from .sinks import (
    JsonlSink,
    MemorySink,
    StructlogSink,
    read_jsonl,
    replay,
    restore_node_starts,
)

if TYPE_CHECKING:
    from .otel import OtelSink

__all__ = [
    "EVENT_ADAPTER",
    "ConsoleSink",
    "Event",
    "EventBase",
    "EventBus",
    "JsonlSink",
    "LineSink",
    "MemorySink",
    "OtelSink",
    "Redactor",
    "Scope",
    "Sink",
    "StructlogSink",
    "Subscription",
    "current_scope",
    "emit",
    "event_from_json",
    "event_to_json",
    "read_jsonl",
    "replay",
    "restore_node_starts",
    "scope",
    "span",
]


def __getattr__(name: str) -> Any:
    if name == "OtelSink":
        from .otel import OtelSink

        return OtelSink
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
