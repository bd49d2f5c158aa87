"""parse_text's fast paths (one plain action block, one line of prose) read exactly what the
scanner reads: every corpus case, and generated blocks and lines, both ways."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atdak_agents.tool_protocols import ParsedTurn, TextTurnParser, parse_text
from atdak_agents.tool_protocols._shapes import ToolIndex, shape_of
from atdak_agents.tool_protocols.base import tool_index
from atdak_agents.tool_protocols.parsing import _canonical_calls, resolve_calls

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


# --------------------------------------------------------------------------- the canonical shape

ODD_INDEX = ToolIndex(
    {"search": ["query"], "`odd`": [], " padded": [], "final_answer": ["text"], "add": ["a"]},
    {"search": ["query"], "add": ["a"]},
)
odd_names = st.sampled_from(
    ["search", "add", "`odd`", "odd", " padded", "padded", "final_answer", "answer", "add "]
)
odd_keys = st.sampled_from(["name", "arguments", "Name", "args", "id", "function", "type"])
more_names = st.sampled_from(["functions.add", "Search", "search ", "", "nope"])
arguments = st.dictionaries(st.text(max_size=5), json_values, max_size=2)
items = st.one_of(
    st.fixed_dictionaries({"name": odd_names | more_names, "arguments": arguments}),
    st.fixed_dictionaries({"name": odd_names | more_names, "arguments": json_values}),
    st.dictionaries(odd_keys, st.one_of(odd_names, json_values), max_size=3),
    json_values,
)
values = st.one_of(
    st.fixed_dictionaries({"tool_calls": st.lists(items, max_size=3)}),
    st.dictionaries(st.sampled_from(["tool_calls", "Tool_Calls", "calls", "x"]), st.lists(items)),
    st.lists(items, max_size=2),
    json_values,
)


def generic(value: Any, index: ToolIndex) -> list[tuple[str, Any]] | None:
    """What shape_of and resolve_calls make of ``value`` (ids aside), or None."""
    found = shape_of(value, index)
    if not isinstance(found, list):
        return None
    calls, problems = resolve_calls(found, index)
    return None if problems else [(c.name, c.arguments) for c in calls]


@settings(max_examples=400, deadline=None)
@given(values, st.sampled_from([INDEX, ODD_INDEX]))
def test_the_canonical_shape_reads_as_the_generic_reader_reads_it(
    value: Any, index: ToolIndex
) -> None:
    fast = _canonical_calls(value, index)
    if fast is not None:  # (None: the generic reader is asked, as before)
        assert [(c.name, c.arguments) for c in fast] == generic(value, index)
        assert len({c.id for c in fast}) == len(fast)


@pytest.mark.parametrize(
    "name", ["search", "add", "`odd`", " padded", "final_answer", "add ", "functions.add", "nope"]
)
def test_odd_tool_names_in_the_canonical_shape_read_as_the_generic_reader_reads_them(
    name: str,
) -> None:
    value = {"tool_calls": [{"name": name, "arguments": {"a": 1}}]}
    fast = _canonical_calls(value, ODD_INDEX)
    expected = generic(value, ODD_INDEX)
    assert (fast is None and name not in ("search", "add")) or (
        fast is not None and [(c.name, c.arguments) for c in fast] == expected
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("add", "add"),
        (" `add` ", "add"),
        ("functions.add", "add"),
        ("tool.search", "search"),
        ("tools.nope", "tools.nope"),
        ("Search", "Search"),  # no dot: no namespace to take off
        ("tools", "tools"),
        ("function", "function"),
    ],
)
def test_a_namespace_is_taken_off_a_tool_name_only_when_there_is_one(
    name: str, expected: str
) -> None:
    assert ODD_INDEX.canonical(name) == expected


def test_the_canonical_shape_is_taken_for_what_the_prompt_asks() -> None:
    value = {"tool_calls": [{"name": "search", "arguments": {"query": "x"}}]}
    calls = _canonical_calls(value, INDEX)
    assert calls is not None and [(c.name, c.arguments) for c in calls] == [
        ("search", value["tool_calls"][0]["arguments"])
    ]
    assert calls[0].arguments is not value["tool_calls"][0]["arguments"]  # a copy, as before


@pytest.mark.parametrize(
    "text",
    [
        "final answer",
        "final answer:",
        "Final Answer: 42",
        "action inpu",
        "thought:x",
        "x" * 14,
        "  **Action",
        "action input: {}",
        "FINAL ANSWER",
        "Thoughtful answer",
        "final answer!!",
    ],
)
def test_lines_around_the_keywords_read_the_same(text: str) -> None:
    assert_same(text)
