"""parse_text's fast paths (one plain action block, one line of prose) read exactly what the
scanner reads: every corpus case, and generated blocks and lines, both ways."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atdak_agents.tool_protocols import ParsedTurn, TextTurnParser, parse_text
from atdak_agents.tool_protocols.base import tool_index

from .corpus_tools import TOOLS, load_corpus

INDEX = tool_index(TOOLS)


def scanned(text: str) -> ParsedTurn:
    """The turn as the streaming scanner reads it (no fast path)."""
    parser = TextTurnParser(INDEX)
    parser.feed(text)
    return parser.finish()


def summary(turn: ParsedTurn) -> tuple[Any, ...]:
    """Everything but the call ids (new ones are made for every read)."""
    calls = [(c.name, c.arguments) for c in turn.calls]
    return (turn.kind, turn.text, calls, turn.problems, turn.correction, turn.raw, turn.format)


def assert_same(text: str) -> None:
    assert summary(parse_text(text, INDEX)) == summary(scanned(text))


@pytest.mark.parametrize("case", load_corpus(), ids=lambda case: str(case["id"]))
def test_every_corpus_case_reads_the_same(case: dict[str, Any]) -> None:
    assert_same(case["text"])


@pytest.mark.parametrize(
    "text",
    [
        '```json\n{"tool_calls": [{"name": "search", "arguments": {"query": "x"}}]}\n```',
        '```json\n{"tool_calls": [{"name": "search", "arguments": {"query": "x"}}]}\n```\n\n',
        '```json\n  {"tool_calls": [{"name": "nope", "arguments": {}}]}\n```',
        '```json\n{"tool_calls": []}\n```',
        '```json\n{"final_answer": "done"}\n```',
        '```json\n[{"name": "calculator", "arguments": {"expression": "1+1"}}]\n```',
        '```json\n{"tool_calls": [{"name": "search", "arguments": {"query": "```"}}]}\n```',
        '```json\n{"tool_calls": [{"name": "search", "arguments": {"query": "x"}}]}\n``` more',
        '```json\n{"name": "calculator", "arguments": "{\\"expression\\": \\"2\\"}"}\n```',
        "The answer is 42.",
        "  The answer is 42.  ",
        "calculator(expression='1+1')",
        "search",
        "sea",
        "Thought",
        "Final Answer: 42",
        "**Action:** search",
        "done.\r",
        "",
        "   ",
    ],
)
def test_edge_cases_read_the_same(text: str) -> None:
    assert_same(text)


names = st.sampled_from(["search", "calculator", "get_weather", "send_email", "searchh", "x"])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
calls = st.lists(
    st.fixed_dictionaries(
        {"name": names, "arguments": st.dictionaries(st.text(max_size=10), json_values)}
    ),
    max_size=3,
)


@settings(max_examples=200, deadline=None)
@given(calls, st.booleans(), st.sampled_from(["", "\n", " \n\n"]))
def test_generated_action_blocks_read_the_same(
    block: list[dict[str, Any]], ascii_: bool, tail: str
) -> None:
    body = json.dumps({"tool_calls": block}, ensure_ascii=ascii_)
    assert_same(f"```json\n{body}\n```{tail}")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_generated_lines_read_the_same(text: str) -> None:
    assert_same(text)
