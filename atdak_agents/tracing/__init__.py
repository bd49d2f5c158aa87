"""Tracing: typed events, the run's event bus, sinks and redaction."""

from .bus import EventBus, Scope, Sink, Subscription, current_scope, emit, scope, span
from .events import EVENT_ADAPTER, Event, EventBase, event_from_json, event_to_json
from .redact import Redactor
from .sinks import JsonlSink, MemorySink, StructlogSink, read_jsonl

__all__ = [
    "EVENT_ADAPTER",
    "Event",
    "EventBase",
    "EventBus",
    "JsonlSink",
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
    "scope",
    "span",
]
