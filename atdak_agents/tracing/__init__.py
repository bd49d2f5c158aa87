"""Tracing: typed events, the run's event bus, sinks and redaction."""

from .bus import EventBus, LineSink, Scope, Sink, Subscription, current_scope, emit, scope, span
from .console import ConsoleSink
from .events import EVENT_ADAPTER, Event, EventBase, event_from_json, event_to_json
from .redact import Redactor
from .sinks import JsonlSink, MemorySink, StructlogSink, read_jsonl, replay

__all__ = [
    "EVENT_ADAPTER",
    "ConsoleSink",
    "Event",
    "EventBase",
    "EventBus",
    "JsonlSink",
    "LineSink",
    "MemorySink",
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
    "scope",
    "span",
]
