"""Fuzzing the turn parser: no input crashes it, and splitting the input never changes it."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atdak_agents.tool_protocols import ParsedTurn, TextTurnParser, parse_text

from .corpus_tools import TOOLS, load_corpus

FRAGMENTS = [
    "<tool_call>",
    "</tool_call>",
    "<tool_call>\n",
    "{",
    "}",
    "[",
    "]",
    '"name"',
    '"arguments"',
    ": ",
    ", ",
    '"get_weather"',
    '"search"',
    '{"city": "Paris"}',
    "'",
    '"',
    "\\",
    "\n",
    " ",
    "[TOOL_CALLS]",
    "[ARGS]",
    "[CALL_ID]",
    "get_time",
    "(",
    ")",
    "timezone=",
    '"UTC"',
    "<|python_tag|>",
    "<|eom_id|>",
    "<|channel|>",
    "analysis",
    "final",
    "commentary",
    " to=functions.search",
    "<|constrain|>json",
    "<|message|>",
    "<|end|>",
    "<|start|>assistant",
    "<|call|>",
    "<|return|>",
    "<|im_end|>",
    "Thought:",
    "Action:",
    "Action Input:",
    "Final Answer:",
    "Observation:",
    "```",
    "```json\n",
    "```python\n",
    "```tool_code\n",
    "<think>",
    "</think>",
    "<function=search>",
    "<parameter=query>",
    "</parameter>",
    "</function>",
    "<function_calls>",
    '<invoke name="search">',
    '<parameter name="query">',
    "</invoke>",
    "<｜tool▁call▁begin｜>",
    "<｜tool▁sep｜>",
    "<｜tool▁call▁end｜>",
    "<|tool_call_begin|>",
    "<|tool_call_argument_begin|>",
    "//",
    "/*",
    "*/",
    "#",
    "True",
    "None",
    "null",
    '"tool_calls"',
    '"final_answer"',
    "**",
    "<",
    "|",
    "｜",
    "天气",
    "🙂",
]

protocol_text = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=6), max_size=40).map("".join)


def check_invariants(turn: ParsedTurn) -> None:
    assert turn.kind in ("final", "tool_calls", "unreadable")
    if turn.kind == "tool_calls":
        assert turn.calls and all(call.name in {t.name for t in TOOLS} for call in turn.calls)
        assert all(isinstance(call.arguments, dict) for call in turn.calls)
    if turn.kind == "unreadable":
        assert turn.problems and turn.correction
    if turn.kind == "final":
        assert turn.text and turn.text == turn.text.strip()


def streamed(text: str, cuts: list[int]) -> tuple[str, ParsedTurn, TextTurnParser]:
    points = sorted({min(c, len(text)) for c in cuts})
    pieces = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    parser = TextTurnParser(TOOLS)
    shown = "".join(parser.feed(piece) for piece in pieces)
    return shown, parser.finish(), parser


def key(turn: ParsedTurn) -> tuple[object, ...]:
    return (turn.kind, turn.text, [(c.name, c.arguments) for c in turn.calls], turn.problems)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=protocol_text)
def test_markup_soup_never_crashes(text: str) -> None:
    check_invariants(parse_text(text, TOOLS))


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200))
def test_arbitrary_text_never_crashes(text: str) -> None:
    check_invariants(parse_text(text, TOOLS))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=protocol_text, cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=12))
def test_any_split_gives_the_same_turn_and_a_prefix_of_its_text(text: str, cuts: list[int]) -> None:
    whole = parse_text(text, TOOLS)
    shown, turn, parser = streamed(text, cuts)
    assert key(turn) == key(whole)
    if turn.kind == "final":
        assert shown + parser.remainder(turn) == turn.text
    else:
        assert turn.text.startswith(shown)


CORPUS_TEXTS = [case["text"] for case in load_corpus()]


@settings(max_examples=200, deadline=None)
@given(
    base=st.sampled_from(CORPUS_TEXTS),
    noise=st.text(max_size=8),
    at=st.integers(min_value=0, max_value=400),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=8),
)
def test_corpus_outputs_with_noise_inserted(
    base: str, noise: str, at: int, cuts: list[int]
) -> None:
    text = base[:at] + noise + base[at:]
    whole = parse_text(text, TOOLS)
    check_invariants(whole)
    shown, turn, parser = streamed(text, cuts)
    assert key(turn) == key(whole)
    if turn.kind == "final":
        assert shown + parser.remainder(turn) == turn.text
