"""The event model: one typed event stream that is live output, log and trace at once.

Every event carries ``type``, ``run_id``, ``seq`` (its position in the run's stream, assigned
when it is published), ``step``, ``node`` (the node's path in a nested graph, e.g.
``"map_docs[3]/summarise"``), ``span_id`` / ``parent_span_id`` (so a trace is a tree: run → node
→ model call / tool call) and ``ts`` (UNIX time). The classes are slotted dataclasses — cheap to
create on the engine's hot path — validated and described by pydantic (:data:`EVENT_ADAPTER`)
and serialised by orjson (pydantic for the values orjson does not know), the fast path a JSONL
trace needs.

Content fields (messages, answers, tool arguments and results, state values) may be dropped with
``trace_content=False``; each has a size field beside it that stays.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeAlias, Union

import orjson
from pydantic import Field, TypeAdapter
from pydantic_core import to_json, to_jsonable_python

from ..exceptions import UsageError

__all__ = [
    "CONTENT_FIELDS",
    "EVENT_ADAPTER",
    "EVENT_TYPES",
    "FIELD_NAMES",
    "LINE_OPTIONS",
    "LIVE_ONLY",
    "OWN_FIELD_COUNTS",
    "RECORD_DEFAULTS",
    "SENSITIVE_FIELDS",
    "TYPE_NAMES",
    "CheckpointSaved",
    "Event",
    "EventBase",
    "MapStarted",
    "ModelRequest",
    "ModelResponse",
    "ModelRetrying",
    "NodeFinished",
    "NodeStarted",
    "RunFailed",
    "RunFinished",
    "RunInterrupted",
    "RunStarted",
    "StateUpdated",
    "TokenDelta",
    "ToolCalled",
    "ToolReturned",
    "encode_line",
    "encode_record",
    "encode_value",
    "event_from_json",
    "event_record",
    "event_to_json",
    "jsonable",
    "select_events",
    "start_of",
    "without_content",
]


@dataclass(slots=True, kw_only=True)
class EventBase:
    """Fields every event carries. ``seq`` is assigned by the run's event bus."""

    type: str = ""
    run_id: str
    span_id: str = ""
    parent_span_id: str | None = None
    step: int | None = None
    node: str | None = None
    ts: float = 0.0
    seq: int = 0


# --------------------------------------------------------------------------- run


@dataclass(slots=True, kw_only=True)
class RunStarted(EventBase):
    type: Literal["run_started"] = "run_started"
    graph: str = ""
    inputs: dict[str, Any] | None = None
    resumed: bool = False


@dataclass(slots=True, kw_only=True)
class RunFinished(EventBase):
    """The run ended normally. ``status`` is ``"done"`` or ``"cut_off"`` (a cap was reached)."""

    type: Literal["run_finished"] = "run_finished"
    status: str = "done"
    output: dict[str, Any] | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    duration: float = 0.0


@dataclass(slots=True, kw_only=True)
class RunFailed(EventBase):
    type: Literal["run_failed"] = "run_failed"
    error: str = ""
    error_type: str = ""
    usage: dict[str, Any] = field(default_factory=dict)
    duration: float = 0.0


@dataclass(slots=True, kw_only=True)
class RunInterrupted(EventBase):
    """The run stopped resumably: waiting for a human, cancelled, or a run-wide limit."""

    type: Literal["run_interrupted"] = "run_interrupted"
    reason: str = ""
    question: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- nodes


@dataclass(slots=True, kw_only=True)
class NodeStarted(EventBase):
    type: Literal["node_started"] = "node_started"
    kind: str = ""


@dataclass(slots=True, kw_only=True)
class NodeFinished(EventBase):
    """A node ended: the one event a persisted trace keeps of a node's execution.

    ``started`` is when it started (UNIX time, the ``ts`` of its ``node_started``) and
    ``duration`` how long it ran; ``updated`` lists the state keys it wrote and ``values`` what
    it wrote there (a content field); ``error`` is set when it failed.
    """

    type: Literal["node_finished"] = "node_finished"
    kind: str = ""
    started: float = 0.0
    duration: float = 0.0
    updated: list[str] = field(default_factory=list)
    values: dict[str, Any] | None = None
    error: str | None = None


@dataclass(slots=True, kw_only=True)
class MapStarted(EventBase):
    """A map node is about to run its body ``items`` times (so a progress bar knows the total).

    Each item runs as a child node (``node`` ``"<map>[i]/<body>"``, parent span the map's span);
    progress is the count of those children's ``node_finished`` events.
    """

    type: Literal["map_started"] = "map_started"
    items: int = 0
    concurrency: int = 0


@dataclass(slots=True, kw_only=True)
class StateUpdated(EventBase):
    """State after a step: the keys that changed (and their new values unless content is off)."""

    type: Literal["state_updated"] = "state_updated"
    keys: list[str] = field(default_factory=list)
    values: dict[str, Any] | None = None


@dataclass(slots=True, kw_only=True)
class CheckpointSaved(EventBase):
    type: Literal["checkpoint_saved"] = "checkpoint_saved"
    checkpoint_id: str = ""
    size: int = 0


# --------------------------------------------------------------------------- model calls


@dataclass(slots=True, kw_only=True)
class ModelRequest(EventBase):
    """A request about to be sent, with how its history was fitted into the budget.

    ``fit`` holds the fitting decisions (e.g. ``{"strategy": "drop_oldest", "dropped": 12}``).
    """

    type: Literal["model_request"] = "model_request"
    model: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    message_count: int = 0
    estimated_tokens: int = 0
    budget: int = 0
    context_window: int = 0
    fit: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, Any]] | None = None
    size: int = 0


@dataclass(slots=True, kw_only=True)
class ModelResponse(EventBase):
    """An answer: usage (estimated or reported), latency and the estimate it is compared to."""

    type: Literal["model_response"] = "model_response"
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usage_estimated: bool = False
    estimated_prompt_tokens: int = 0
    cost: float | None = None
    latency: float = 0.0
    finish_reason: str | None = None
    content: str | None = None
    size: int = 0
    response_id: str | None = None


@dataclass(slots=True, kw_only=True)
class ModelRetrying(EventBase):
    """The provider layer decided to retry a failed attempt after ``wait`` seconds."""

    type: Literal["model_retrying"] = "model_retrying"
    model: str = ""
    attempt: int = 0
    reason: str = ""
    wait: float = 0.0


@dataclass(slots=True, kw_only=True)
class TokenDelta(EventBase):
    """Streamed answer text (only text meant for the user; tool-protocol markup never)."""

    type: Literal["token"] = "token"
    text: str | None = ""
    size: int = 0


# --------------------------------------------------------------------------- tools


@dataclass(slots=True, kw_only=True)
class ToolCalled(EventBase):
    type: Literal["tool_called"] = "tool_called"
    tool: str = ""
    call_id: str = ""
    arguments: dict[str, Any] | None = None
    size: int = 0


@dataclass(slots=True, kw_only=True)
class ToolReturned(EventBase):
    type: Literal["tool_returned"] = "tool_returned"
    tool: str = ""
    call_id: str = ""
    content: str | None = None
    is_error: bool = False
    duration: float = 0.0
    size: int = 0


Event: TypeAlias = Annotated[
    Union[  # noqa: UP007 - the discriminated union reads best spelled out
        RunStarted,
        RunFinished,
        RunFailed,
        RunInterrupted,
        NodeStarted,
        NodeFinished,
        MapStarted,
        StateUpdated,
        CheckpointSaved,
        ModelRequest,
        ModelResponse,
        ModelRetrying,
        TokenDelta,
        ToolCalled,
        ToolReturned,
    ],
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def _type_name(cls: type[EventBase]) -> str:
    default = {f.name: f.default for f in dataclasses.fields(cls)}["type"]
    assert isinstance(default, str)
    return default


EVENT_TYPES: dict[str, type[EventBase]] = {
    _type_name(cls): cls
    for cls in (
        RunStarted,
        RunFinished,
        RunFailed,
        RunInterrupted,
        NodeStarted,
        NodeFinished,
        MapStarted,
        StateUpdated,
        CheckpointSaved,
        ModelRequest,
        ModelResponse,
        ModelRetrying,
        TokenDelta,
        ToolCalled,
        ToolReturned,
    )
}

# --------------------------------------------------------------------------- per-type tables

#: Each event type's field names, in order (the order of a JSONL line's keys).
FIELD_NAMES: dict[type[EventBase], tuple[str, ...]] = {
    cls: tuple(f.name for f in dataclasses.fields(cls)) for cls in EVENT_TYPES.values()
}


def _default_of(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


#: Each event type as a record of its default values (the engine fills in the rest). The values
#: are only ever serialised, never mutated, so the lists and dicts in it may be shared.
RECORD_DEFAULTS: dict[type[EventBase], dict[str, Any]] = {
    cls: {f.name: _default_of(f) for f in dataclasses.fields(cls)} for cls in EVENT_TYPES.values()
}

_BASE_FIELDS = len(dataclasses.fields(EventBase))

#: How many fields each type has beyond the common ones: an emitter that gives them all gets a
#: record without a merge with the defaults (the engine's hot events do).
OWN_FIELD_COUNTS: dict[type[EventBase], int] = {
    cls: len(names) - _BASE_FIELDS for cls, names in FIELD_NAMES.items()
}

#: Each type's ``type`` value.
TYPE_NAMES: dict[type[EventBase], str] = {cls: name for name, cls in EVENT_TYPES.items()}

#: The types a trace file leaves out unless asked: they serve live views, and a reader needs
#: none of them (``node_finished`` says when its node started and what it wrote; a model
#: call's answer is in ``model_response``).
LIVE_ONLY: frozenset[str] = frozenset({"node_started", "state_updated", "token"})


def select_events(
    events: str | Collection[str] | None, *, default: frozenset[str]
) -> frozenset[str]:
    """The event types a sink takes: ``None`` gives ``default``, ``"all"`` every type, a
    collection exactly those (each must be a known type)."""
    if events is None:
        return default
    if events == "all":
        return frozenset(EVENT_TYPES)
    if isinstance(events, str):
        events = [events]
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown:
        raise UsageError(
            f"events=: unknown event type {', '.join(map(repr, unknown))}; the types are "
            f'{", ".join(sorted(EVENT_TYPES))} (or "all")'
        )
    return frozenset(events)


# content field -> the value it is replaced with when content is switched off
_CONTENT_FIELDS: dict[str, Any] = {
    "inputs": None,
    "output": None,
    "messages": None,
    "content": None,
    "arguments": None,
    "values": None,
    "text": None,
    "question": None,
}

#: The fields of each type that hold contents (dropped by ``trace_content=False``).
CONTENT_FIELDS: dict[type[EventBase], tuple[str, ...]] = {
    cls: tuple(n for n in names if n in _CONTENT_FIELDS) for cls, names in FIELD_NAMES.items()
}

#: The fields of each type that may carry outside data, so a secret: what redaction scans.
#: (Ids, node paths, kinds, tool and model names come from the graph definition or the engine.)
SENSITIVE_FIELDS: dict[type[EventBase], tuple[str, ...]] = {
    cls: tuple(n for n in names if n in _CONTENT_FIELDS or n in {"error", "reason", "parameters"})
    for cls, names in FIELD_NAMES.items()
}

# --------------------------------------------------------------------------- JSON

_JSON_OPTIONS = orjson.OPT_UTC_Z  # (OPT_NON_STR_KEYS costs a third more: only when needed)
_LINE_OPTIONS = _JSON_OPTIONS | orjson.OPT_APPEND_NEWLINE
#: orjson's options for a JSONL line (for hot paths that call ``orjson.dumps`` themselves,
#: with ``default=jsonable``, and fall back to :func:`encode_line` on ``TypeError``).
LINE_OPTIONS = _LINE_OPTIONS
_REPR_LIMIT = 200


def _describe(value: Any) -> str:
    """The stand-in for a value JSON cannot hold: its (shortened) repr."""
    text = repr(value)
    return text if len(text) <= _REPR_LIMIT else text[: _REPR_LIMIT - 1] + "…"


def _jsonable(value: Any) -> Any:
    # orjson calls this for types it does not know (pydantic models, sets, bytes, paths...):
    # pydantic turns them into JSON data exactly as it would in a model; anything else is
    # described by its repr, so a trace never stops a run.
    return to_jsonable_python(value, fallback=_describe)


#: What orjson's ``default=`` gets for a trace: values orjson does not know, as JSON data.
jsonable = _jsonable


def encode_record(record: dict[str, Any], *, newline: bool = False) -> bytes:
    """A record (field name → value) as compact UTF-8 JSON, the way a JSONL trace holds it."""
    try:
        return orjson.dumps(
            record, default=_jsonable, option=_LINE_OPTIONS if newline else _JSON_OPTIONS
        )
    except TypeError:  # a key that is not a string, an integer beyond 64 bits...
        return _encode_slowly(record, newline)


def encode_value(value: Any) -> bytes:
    """Any value as compact JSON (what a field holds inside a line; never fails)."""
    try:
        return orjson.dumps(value, default=_jsonable, option=_JSON_OPTIONS)
    except TypeError:
        return _encode_slowly(value, False)


def encode_line(record: dict[str, Any]) -> bytes:
    """:func:`encode_record` with the newline that ends a JSONL line (the hot path's form)."""
    try:
        return orjson.dumps(record, default=_jsonable, option=_LINE_OPTIONS)
    except TypeError:
        return _encode_slowly(record, True)


def _encode_slowly(record: Any, newline: bool) -> bytes:
    options = (_LINE_OPTIONS if newline else _JSON_OPTIONS) | orjson.OPT_NON_STR_KEYS
    try:
        return orjson.dumps(record, default=_jsonable, option=options)
    except TypeError:  # beyond what orjson holds: pydantic's serialiser
        data = to_json(record, fallback=_describe)
        return data + b"\n" if newline else data


def event_record(event: EventBase) -> dict[str, Any]:
    """The event's fields as a dict, in field order."""
    return {name: getattr(event, name) for name in FIELD_NAMES[type(event)]}


def event_to_json(event: EventBase) -> bytes:
    """One event as a compact JSON object (one JSONL line without the newline)."""
    return encode_record(event_record(event))


def event_from_json(data: str | bytes) -> Event:
    """Parse and validate one event (e.g. a line of a JSONL trace)."""
    return EVENT_ADAPTER.validate_json(data)


def start_of(finished: NodeFinished) -> NodeStarted:
    """The ``node_started`` a ``node_finished`` implies: the node's ids and kind, at the time
    it started (``seq`` 0: it was not in the stream)."""
    return NodeStarted(
        run_id=finished.run_id,
        span_id=finished.span_id,
        parent_span_id=finished.parent_span_id,
        step=finished.step,
        node=finished.node,
        ts=finished.started or finished.ts - finished.duration,
        kind=finished.kind,
    )


def without_content(event: EventBase) -> EventBase:
    """A copy of ``event`` with message contents, arguments and values removed (sizes stay)."""
    names = CONTENT_FIELDS[type(event)]
    if not names:
        return event
    return dataclasses.replace(event, **{name: _CONTENT_FIELDS[name] for name in names})
