"""The forgiving JSON reader's C-decoder fast path reads exactly what the reader itself reads."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atdak_agents.tool_protocols import _json


def slow_loads(text: str) -> Any:
    """The forgiving reader alone (what ``loads`` returned before the fast path)."""
    reader = _json._Reader(text, True)
    value, end = reader.value(0, 0)
    if reader.skip(end) != len(text):
        raise _json.Invalid(end, "unexpected text after the value")
    return value


def same(a: Any, b: Any) -> bool:
    """Equal, with the types kept apart (1 is not 1.0 here) and NaN equal to itself."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(same, a, b))
    return bool(a == b)


finite = st.floats(allow_nan=False, allow_infinity=False)
scalars = st.none() | st.booleans() | st.integers() | finite | st.text()
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(values, st.booleans(), st.booleans())
def test_standard_json_reads_the_same_both_ways(value: Any, ascii_: bool, indent: bool) -> None:
    text = json.dumps([value], ensure_ascii=ascii_, indent=2 if indent else None)
    assert same(_json.loads(text), slow_loads(text))
    padded = f"prose ```json\n{text}\n``` more"
    start = padded.index("[")
    fast = _json.read_value(padded, start)
    slow = _json._Reader(padded, False).value(start, 0)
    assert same(fast[0], slow[0]) and fast[1] == slow[1]


@pytest.mark.parametrize(
    "text",
    [
        '{"a": "\\ud800"}',  # a lone surrogate: replaced by the reader, kept by the C decoder
        '{"a": "\\ud83d\\ude00 \\u00e9"}',
        '{"a": NaN, "b": Infinity}',  # not JSON for the reader
        '{"a": [1, 2,]}',
        '{"a": 1} // done',
        "\ufeff" + '{"a": 1}',
        '{"a": "x", "a": "y"}',  # the last duplicate wins, in the first one's place
        "[01]",
        "[" * 99 + "]" * 99,
        "[" * 101 + "]" * 101,  # too deep for the reader
    ],
)
def test_edge_cases_read_the_same_both_ways(text: str) -> None:
    outcomes = []
    for loads in (_json.loads, slow_loads):
        try:
            outcomes.append(("value", loads(text)))
        except ValueError as exc:
            outcomes.append((type(exc).__name__, str(exc)))
    (kind_a, a), (kind_b, b) = outcomes
    assert kind_a == kind_b and (same(a, b) if kind_a == "value" else a == b)
