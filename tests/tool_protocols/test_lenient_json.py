"""The forgiving JSON reader: real JSON unchanged, common defects repaired, never a crash."""

from __future__ import annotations

import contextlib
import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atdak_agents.tool_protocols import _json


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"a": 1, "b": [true, null, 2.5e3]}', {"a": 1, "b": [True, None, 2500.0]}),
        ("{'a': 'it\\'s'}", {"a": "it's"}),
        ('{"a": 1,}', {"a": 1}),
        ("[1, 2, ]", [1, 2]),
        ("{a: 1, b_c: 'x'}", {"a": 1, "b_c": "x"}),
        ("{'ok': True, 'none': None, 'no': False}", {"ok": True, "none": None, "no": False}),
        ('{"a": 1 "b": 2}', {"a": 1, "b": 2}),
        ("[1 2 3]", [1, 2, 3]),
        ('// note\n{"a": /* inline */ 1} # trailing', {"a": 1}),
        ('{"text": "line one\nline two"}', {"text": "line one\nline two"}),
        ('{"path": "C:\\dir"}', {"path": "C:\\dir"}),
        ('{"e": "\\u00e9\\ud83d\\ude00"}', {"e": "é😀"}),
        ('{"q": """triple "quoted" text"""}', {"q": 'triple "quoted" text'}),
        ("{'n': +1, 'f': .5, 'neg': -2}", {"n": 1, "f": 0.5, "neg": -2}),
        ('{"a": {"b": [1, {"c": 2', {"a": {"b": [1, {"c": 2}]}}),
    ],
)
def test_loads_repairs_common_defects(text: str, value: Any) -> None:
    assert _json.loads(text) == value


def test_incomplete_and_invalid_are_told_apart() -> None:
    with pytest.raises(_json.Incomplete):
        _json.read_value('{"a": "unfinished')
    with pytest.raises(_json.Incomplete):
        _json.read_value('{"a": [1, 2')  # could go on
    with pytest.raises(_json.Incomplete):
        _json.read_value('{"a": tr')  # the start of true
    with pytest.raises(_json.Invalid, match="unexpected 'w'"):
        _json.read_value('{"a": words}')
    with pytest.raises(_json.Invalid, match="expected ':'"):
        _json.read_value("{ to start")
    with pytest.raises(_json.Incomplete):
        _json.loads('{"a": "cut inside a string')  # truncation inside a string is not repaired
    with pytest.raises(_json.Invalid, match="after the value"):
        _json.loads('{"a": 1} and more')
    with pytest.raises(_json.Invalid, match="deeper than"):
        _json.loads("[" * 5_000)


def test_read_value_reports_where_the_value_ends() -> None:
    text = 'prefix {"a": [1, 2]} suffix'
    value, end = _json.read_value(text, 7)
    assert value == {"a": [1, 2]} and text[end:] == " suffix"


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(value=json_values)
def test_real_json_reads_as_the_standard_library_reads_it(value: Any) -> None:
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False, indent=2)):
        parsed = _json.loads(text)
        assert parsed == json.loads(text) or _nan_safe_equal(parsed, json.loads(text))


def _nan_safe_equal(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b)
    return False


@settings(max_examples=200, deadline=None)
@given(value=json_values, cut=st.integers(min_value=0, max_value=400))
def test_every_prefix_of_real_json_is_incomplete_or_a_value(value: Any, cut: int) -> None:
    text = json.dumps(value)
    prefix = text[: min(cut, len(text))]
    with contextlib.suppress(_json.Incomplete):  # more text could complete it: never "invalid"
        _json.read_value(prefix)


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(
        alphabet=st.sampled_from(list("{}[]\"':,/*#\\ntruefalsNo0123.-+e \n")), max_size=60
    )
)
def test_no_input_crashes_the_reader(text: str) -> None:
    with contextlib.suppress(ValueError):  # Incomplete or Invalid, nothing else
        _json.loads(text)
