from __future__ import annotations

import dataclasses
import datetime
import enum
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, TypeAdapter

from atdak_agents.tracing.events import (
    CONTENT_FIELDS,
    EVENT_ADAPTER,
    EVENT_TYPES,
    FIELD_NAMES,
    OWN_FIELD_COUNTS,
    RECORD_DEFAULTS,
    SENSITIVE_FIELDS,
    TYPE_NAMES,
    EventBase,
    MapStarted,
    ModelRequest,
    NodeFinished,
    StateUpdated,
    ToolCalled,
    ToolReturned,
    event_from_json,
    event_to_json,
    without_content,
)


def pydantic_json(event: EventBase) -> bytes:
    return TypeAdapter(type(event)).dump_json(event, warnings=False)


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_event_type_round_trips_through_json(event_type: str) -> None:
    cls = EVENT_TYPES[event_type]
    event = cls(run_id="run-1", span_id="a" * 16, step=3, node="outer/inner", ts=12.5)
    again = event_from_json(event_to_json(event))
    assert type(again) is cls
    assert again == event


def test_unknown_fields_and_types_are_rejected_when_reading() -> None:
    with pytest.raises(ValueError, match="type"):
        event_from_json(b'{"type": "no_such_event", "run_id": "r"}')


def test_without_content_keeps_sizes_and_counts() -> None:
    event = ModelRequest(
        run_id="r",
        messages=[{"role": "user", "content": "私密"}],
        size=2,
        estimated_tokens=9,
    )
    stripped = without_content(event)
    assert stripped.messages is None
    assert (stripped.size, stripped.estimated_tokens) == (2, 9)
    assert event.messages is not None  # the original is untouched


def test_without_content_drops_tool_arguments() -> None:
    stripped = without_content(ToolCalled(run_id="r", tool="lookup", arguments={"id": 7}, size=9))
    assert stripped.arguments is None and stripped.tool == "lookup"


def test_event_without_content_fields_is_returned_as_is() -> None:
    event = MapStarted(run_id="r", items=3)
    assert without_content(event) is event


def test_a_node_finished_drops_the_values_it_wrote_without_content() -> None:
    event = NodeFinished(run_id="r", updated=["answer"], values={"answer": "private"})
    assert without_content(event).values is None
    assert without_content(event).updated == ["answer"]  # the keys stay


def test_json_schema_describes_every_event_type() -> None:
    schema = EVENT_ADAPTER.json_schema()
    assert set(schema["$defs"]) >= {cls.__name__ for cls in EVENT_TYPES.values()}
    assert all(dataclasses.is_dataclass(cls) for cls in EVENT_TYPES.values())


# --------------------------------------------------------------------------- the fast encoder

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(values=st.dictionaries(st.text(max_size=10), json_values, max_size=5), text=st.text())
def test_fast_json_is_what_pydantic_writes(values: dict[str, Any], text: str) -> None:
    """orjson on the hot path and pydantic's own serialiser agree, value for value."""
    events = [
        StateUpdated(run_id="r", keys=list(values), values=values, step=2, ts=1.5),
        ToolReturned(run_id="r", tool="t", content=text, size=len(text), duration=0.25),
    ]
    for event in events:
        expected = pydantic_json(event)
        assert json.loads(event_to_json(event)) == json.loads(expected)
        assert event_from_json(event_to_json(event)) == event


class Colour(enum.Enum):
    RED = "red"


class Point(BaseModel):
    x: int
    y: int


class Opaque:
    def __repr__(self) -> str:
        return "<opaque thing>"


def test_values_json_cannot_hold_directly_are_written_as_pydantic_would() -> None:
    values = {
        "when": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
        "point": Point(x=1, y=2),
        "tags": ("a", "b"),
        "colour": Colour.RED,
        "raw": b"bytes",
        "path": Path("/tmp/x"),
        3: "int key",
        "huge": 2**70,
    }
    event = StateUpdated(run_id="r", keys=["when"], values=values)
    data = json.loads(event_to_json(event))["values"]
    assert data == json.loads(pydantic_json(event))["values"]
    assert data["point"] == {"x": 1, "y": 2} and data["3"] == "int key"


def test_a_value_nothing_can_serialise_becomes_its_repr_instead_of_failing_the_run() -> None:
    line = event_to_json(StateUpdated(run_id="r", keys=["x"], values={"x": Opaque()}))
    assert json.loads(line)["values"] == {"x": "<opaque thing>"}


def test_record_tables_describe_every_type() -> None:
    for cls in EVENT_TYPES.values():
        names = FIELD_NAMES[cls]
        assert names[:8] == (
            "type",
            "run_id",
            "span_id",
            "parent_span_id",
            "step",
            "node",
            "ts",
            "seq",
        )
        assert list(RECORD_DEFAULTS[cls]) == list(names)
        assert RECORD_DEFAULTS[cls]["type"] == TYPE_NAMES[cls]
        assert OWN_FIELD_COUNTS[cls] == len(names) - 8
        assert set(SENSITIVE_FIELDS[cls]) >= set(CONTENT_FIELDS[cls])


def test_map_started_announces_the_number_of_items() -> None:
    event = MapStarted(run_id="r", items=12, concurrency=4)
    assert event_from_json(event_to_json(event)) == event
