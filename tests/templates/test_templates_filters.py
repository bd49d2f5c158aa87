"""Filters for prompts: tojson, truncate_tokens, bullets, numbered."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from atdak_agents.context.tokens import count_tokens
from atdak_agents.exceptions import TemplateError
from atdak_agents.templates import (
    DEFAULT_MARKER,
    PromptEnvironment,
    PromptTemplate,
    bullets,
    numbered,
    tojson,
    truncate_tokens,
)


def render(source: str, **values: object) -> str:
    return PromptTemplate(source).render(values)


# ---------------------------------------------------------------------- tojson


def test_tojson_keeps_chinese_and_html_characters_as_they_are() -> None:
    value = {"城市": "北京", "note": "a < b & c > 'd'"}
    out = render("{{ v | tojson }}", v=value)
    assert out == '{"城市": "北京", "note": "a < b & c > \'d\'"}'
    assert json.loads(out) == value


def test_tojson_is_stable_keeps_key_order_and_can_sort_and_indent() -> None:
    value = {"b": 1, "a": {"z": [1, 2], "y": None}, "s": {3, 1, 2}}
    assert render("{{ v | tojson }}", v=value) == (
        '{"b": 1, "a": {"z": [1, 2], "y": null}, "s": [1, 2, 3]}'
    )
    assert render("{{ v | tojson(sort_keys=true) }}", v={"b": 1, "a": 2}) == '{"a": 2, "b": 1}'
    assert render("{{ v | tojson(indent=2) }}", v={"a": [1]}) == '{\n  "a": [\n    1\n  ]\n}'


def test_tojson_converts_models_dataclasses_dates_and_enums() -> None:
    class Color(enum.Enum):
        RED = "red"

    class Item(BaseModel):
        name: str
        when: dt.date

    @dataclasses.dataclass
    class Point:
        x: int
        y: int

    value = {
        "item": Item(name="茶", when=dt.date(2024, 5, 1)),
        "point": Point(1, 2),
        "color": Color.RED,
        "at": dt.datetime(2024, 5, 1, 12, 30),
        "mixed": {1, "a"},
    }
    assert json.loads(tojson(value)) == {
        "item": {"name": "茶", "when": "2024-05-01"},
        "point": {"x": 1, "y": 2},
        "color": "red",
        "at": "2024-05-01T12:30:00",
        "mixed": ["a", 1],  # a set of mixed types is sorted by repr: the same on every run
    }


def test_tojson_of_an_unconvertible_value_says_what_to_pass() -> None:
    with pytest.raises(TemplateError, match=r"t:1: TypeError: tojson cannot convert a object"):
        PromptTemplate("{{ v | tojson }}", name="t").render(v=object())


# ---------------------------------------------------------------------- truncate_tokens

LONG = "The quick brown fox jumps over the lazy dog. " * 300


def test_short_text_is_left_alone() -> None:
    assert truncate_tokens("short text", 100) == "short text"


def test_long_text_is_cut_to_the_budget_with_a_visible_marker() -> None:
    out = render("{{ doc | truncate_tokens(50) }}", doc=LONG)
    assert count_tokens(out) <= 50
    assert out.startswith("The quick brown fox")
    omitted = count_tokens(LONG) - count_tokens(out.split(" [")[0])
    assert out.endswith(f"[… {omitted} tokens truncated …]")


def test_keep_end_and_both() -> None:
    text = "START " + "filler words here " * 200 + "THE END"
    end = truncate_tokens(text, 30, keep="end")
    both = truncate_tokens(text, 40, keep="both")
    assert end.startswith("[…") and end.endswith("THE END") and "START" not in end
    assert both.startswith("START") and both.endswith("THE END") and "tokens truncated" in both
    assert count_tokens(end) <= 30 and count_tokens(both) <= 40


def test_chinese_text_is_cut_by_tokens() -> None:
    text = "我的订单三天了还没发货，能退款吗？" * 100
    out = truncate_tokens(text, 30, marker="……(省略 {omitted} 个词元)")
    assert count_tokens(out) <= 30
    assert out.startswith("我的订单") and "省略" in out


def test_custom_marker_and_model_and_environment_default_model() -> None:
    out = render("{{ doc | truncate_tokens(40, marker='<cut {omitted}/{total}>') }}", doc=LONG)
    assert out.endswith(f"/{count_tokens(LONG)}>")
    env = PromptEnvironment(model="atdak-llama-70b")
    template = PromptTemplate("{{ doc | truncate_tokens(40) }}", environment=env)
    assert count_tokens(template.render(doc=LONG), "atdak-llama-70b") <= 40
    explicit = render("{{ doc | truncate_tokens(40, model='atdak-gpt-4') }}", doc=LONG)
    assert count_tokens(explicit, "atdak-gpt-4") <= 40


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ 'x' | truncate_tokens(-1) }}", "needs a token count >= 0, got -1"),
        ("{{ ('x' * 99) | truncate_tokens(5, keep='middle') }}", "keep must be one of"),
        ("{{ ('x y' * 99) | truncate_tokens(9, marker='{bad}') }}", "bad marker '{bad}'"),
    ],
)
def test_bad_truncate_arguments(source: str, message: str) -> None:
    with pytest.raises(TemplateError, match=r"t:1: ValueError: truncate_tokens"):
        PromptTemplate(source, name="t").render()
    with pytest.raises(TemplateError, match=message):
        PromptTemplate(source, name="t").render()


@settings(max_examples=150, deadline=None)
@given(
    text=st.text(min_size=0, max_size=600),
    limit=st.integers(min_value=15, max_value=120),
    keep=st.sampled_from(["start", "end", "both"]),
)
def test_truncated_text_always_fits_and_keeps_its_ends(text: str, limit: int, keep: str) -> None:
    out = truncate_tokens(text, limit, keep=keep)
    if count_tokens(text) <= limit:
        assert out == text
        return
    assert count_tokens(out) <= limit
    head, _, tail = out.partition(DEFAULT_MARKER.split("{")[0])
    assert text.startswith(head.rstrip()) if keep != "end" else head == ""
    if keep != "start":
        assert text.rstrip().endswith(tail.split("truncated …]", 1)[1].strip())


# ---------------------------------------------------------------------- lists


def test_bullets_and_numbered_lists() -> None:
    items = ["one", "two\ncontinued", "three"]
    assert bullets(items) == "- one\n- two\n  continued\n- three"
    assert numbered(items) == "1. one\n2. two\n   continued\n3. three"
    assert render("{{ xs | bullets('* ') }}", xs=["a", "b"]) == "* a\n* b"
    assert render("{{ xs | numbered(start=9) }}", xs=["a", "b"]) == "9. a\n10. b"


def test_lists_from_mappings_strings_and_empty_lists() -> None:
    assert bullets({"订单": "order", "退款": "refund"}) == "- 订单: order\n- 退款: refund"
    assert bullets("first line\n\nsecond line") == "- first line\n- second line"
    assert bullets([]) == ""
    with pytest.raises(TypeError, match="expected a list of items, got a int"):
        bullets(3)


def test_jinja_builtin_indent_is_there_too() -> None:
    assert render("Doc:\n  {{ d | indent(2) }}", d="a\nb") == "Doc:\n  a\n  b"
