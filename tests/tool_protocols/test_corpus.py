"""The corpus of real-world-shaped model outputs: every case read right, whole or streamed."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from atdak_agents.messages import Message
from atdak_agents.tool_protocols import ParsedTurn, PromptProtocol, TextTurnParser

from .corpus_tools import TOOLS, load_corpus

CASES = load_corpus()
PROTOCOL = PromptProtocol()

# Markup that must never reach the user's token stream.
MARKERS = (
    "<tool_call",
    "</tool_call",
    "[TOOL_CALLS]",
    "[ARGS]",
    "<|",
    "|>",
    "<function",
    "<parameter",
    "<invoke",
    "<think>",
    "</think>",
    "<｜",
    "Action:",
    "Action Input:",
    "Thought:",
    "Final Answer:",
    '"tool_calls"',
    '"arguments"',
)


def parse(text: str) -> ParsedTurn:
    return PROTOCOL.parse(Message(role="assistant", content=text), TOOLS)


def recovered(case: dict[str, Any], turn: ParsedTurn) -> bool:
    if "calls" in case:
        got = [{"name": c.name, "arguments": c.arguments} for c in turn.calls]
        return turn.kind == "tool_calls" and got == case["calls"]
    if "final" in case:
        return turn.kind == "final" and turn.text == case["final"]
    correction = turn.correction or ""
    return turn.kind == "unreadable" and all(w in correction for w in case["unreadable"])


def test_corpus_size_and_coverage() -> None:
    formats = Counter(case["format"] for case in CASES)
    assert len(CASES) >= 100
    for required in ("json", "hermes", "react", "mistral", "llama", "python", "function_tag"):
        assert formats[required] >= 2, required
    for required in ("invoke", "harmony", "text"):
        assert formats[required] >= 4, required
    assert len({case["id"] for case in CASES}) == len(CASES)
    assert all(case.get("source") for case in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case_is_read_as_expected(case: dict[str, Any]) -> None:
    turn = parse(case["text"])
    assert recovered(case, turn), (turn.kind, turn.text, turn.calls, turn.problems)


def test_recovery_rate() -> None:
    results = [recovered(case, parse(case["text"])) for case in CASES]
    recoverable = [ok for ok, case in zip(results, CASES, strict=True) if "unreadable" not in case]
    assert sum(recoverable) / len(recoverable) == 1.0
    assert all(results)


def stream(text: str, pieces: list[str]) -> tuple[str, ParsedTurn, TextTurnParser]:
    parser = PROTOCOL.parser(TOOLS)
    shown = "".join(parser.feed(piece) for piece in pieces)
    assert "".join(pieces) == text
    return shown, parser.finish(), parser


def key(turn: ParsedTurn) -> tuple[Any, ...]:
    return (turn.kind, turn.text, [(c.name, c.arguments) for c in turn.calls], turn.problems)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_streamed_at_every_split_the_result_is_the_same_and_nothing_leaks(
    case: dict[str, Any],
) -> None:
    text = case["text"]
    whole = parse(text)
    splits = [[text[:i], text[i:]] for i in range(len(text) + 1)]
    splits += [list(text), [text[i : i + 3] for i in range(0, len(text), 3)]]
    for pieces in splits:
        shown, turn, parser = stream(text, pieces)
        assert key(turn) == key(whole), pieces
        if turn.kind == "final":
            assert shown + parser.remainder(turn) == turn.text
        else:
            assert turn.text.startswith(shown)
            assert not any(marker in shown for marker in MARKERS), shown
