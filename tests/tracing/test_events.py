from __future__ import annotations

import dataclasses

import pytest

from atdak_agents.tracing.events import (
    EVENT_ADAPTER,
    EVENT_TYPES,
    ModelRequest,
    NodeFinished,
    ToolCalled,
    event_from_json,
    event_to_json,
    without_content,
)


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
    event = NodeFinished(run_id="r")
    assert without_content(event) is event


def test_json_schema_describes_every_event_type() -> None:
    schema = EVENT_ADAPTER.json_schema()
    assert set(schema["$defs"]) >= {cls.__name__ for cls in EVENT_TYPES.values()}
    assert all(dataclasses.is_dataclass(cls) for cls in EVENT_TYPES.values())
