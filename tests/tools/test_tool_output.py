"""Tool return values become clean text, and big outputs are cut visibly to a token budget."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import time
import uuid

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from atdak_agents.context.tokens import count_tokens
from atdak_agents.tools import ToolCall, cap_output, render_output, tool


class Color(enum.Enum):
    RED = "red"


class Item(BaseModel):
    name: str
    when: datetime.date


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Opaque:
    def __str__(self) -> str:
        return "<opaque thing>"


def test_render_output_of_common_values() -> None:
    assert render_output("plain text") == "plain text"
    assert render_output(None) == "(the tool returned no output)"
    assert render_output({"a": 1, "b": [True, None]}) == '{"a": 1, "b": [true, null]}'
    assert render_output(["x", 2.5]) == '["x", 2.5]'
    assert render_output(Item(name="pen", when=datetime.date(2024, 5, 1))) == (
        '{"name": "pen", "when": "2024-05-01"}'
    )
    assert render_output(Point(1, 2)) == '{"x": 1, "y": 2}'
    assert render_output({"c": Color.RED, "id": uuid.UUID(int=1)}) == (
        '{"c": "red", "id": "00000000-0000-0000-0000-000000000001"}'
    )
    assert render_output({"城市": "北京"}) == '{"城市": "北京"}'  # no \\u escapes: fewer tokens
    assert render_output(42) == "42"
    assert render_output(b"bytes ok") == "bytes ok"
    assert render_output(b"\xff\xfe") == "<2 bytes of binary data>"
    assert render_output(Opaque()) == '"<opaque thing>"'
    assert json.loads(render_output({1, 2})) in ([1, 2], [2, 1])


def test_small_outputs_are_untouched() -> None:
    assert cap_output("short", 100) == ("short", False)
    assert cap_output("x" * 10_000, None) == ("x" * 10_000, False)
    text = "word " * 300  # ~375 estimated tokens
    assert cap_output(text, 400) == (text, False)


def test_a_5_mb_result_is_cut_to_the_budget_with_a_visible_notice() -> None:
    lines = [f"row {i}: " + "data " * 10 for i in range(100_000)]
    text = "\n".join(lines)
    assert len(text) > 5_000_000
    started = time.perf_counter()
    capped, truncated = cap_output(text, 4_000)
    elapsed = time.perf_counter() - started
    assert truncated
    assert count_tokens(capped) <= 4_000
    assert count_tokens(capped) > 3_000  # the budget is used, not wasted
    assert capped.startswith("row 0: ")
    assert capped.endswith("row 99999: " + "data " * 10)
    assert f"the tool returned {len(text):,} characters" in capped
    assert "characters in between were left out" in capped
    assert "call the tool again asking for less" in capped
    head, _, tail = capped.partition("\n\n[... output cut")
    assert tail.split("...]\n\n", 1)[1].startswith("row ")  # the tail starts on a line
    assert head.endswith("\n") and head.count("row ") > 3 * tail.count("row ") // 2
    assert elapsed < 2


def test_cjk_output_is_measured_in_tokens_not_characters() -> None:
    text = "天气晴朗" * 2_000  # 8,000 characters, ~8,000 tokens
    capped, truncated = cap_output(text, 1_000)
    assert truncated and count_tokens(capped) <= 1_000


async def test_tools_cap_their_output_by_default_and_on_request() -> None:
    @tool
    def dump() -> str:
        return "line of log output\n" * 100_000

    @tool(max_output_tokens=200)
    def small() -> list[int]:
        return list(range(10_000))

    @tool(max_output_tokens=None)
    def uncapped() -> str:
        return "z" * 50_000

    big = await dump.run(ToolCall("1", "dump", {}))
    assert big.truncated and count_tokens(big.content) <= 4_000 and not big.is_error
    little = await small.run(ToolCall("2", "small", {}))
    assert little.truncated and count_tokens(little.content) <= 200
    assert little.content.startswith("[0, 1, 2")
    assert not (await uncapped.run(ToolCall("3", "uncapped", {}))).truncated


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=3_000), budget=st.integers(min_value=100, max_value=600))
def test_cap_output_always_fits_and_keeps_short_text(text: str, budget: int) -> None:
    capped, truncated = cap_output(text, budget)
    assert count_tokens(capped) <= budget
    assert truncated == (capped != text)
    if count_tokens(text) <= budget:
        assert capped == text
