"""Benchmark: how many model outputs the prompt protocol's parser recovers, and at what cost.

Run on demand: ``.venv/bin/python tests/benchmarks/bench_tool_parser.py``.

On the checked-in corpus (``tests/tool_protocols/corpus.yaml``: model outputs in the JSON
protocol and in the formats models drift to, each with its expected calls or final answer), it
measures in one run:

- **recovery**: the share of cases read exactly as expected (same tools, same arguments, or the
  same final answer), for atdak_agents' parser and for two baselines written here from their
  published behaviour (no code copied): a *first-brace/last-brace* JSON reader with fixed
  ``name``/``arguments`` keys (the text-fallback approach of smolagents' ToolCallingAgent), and a
  *ReAct regex* reader of ``Action:``/``Action Input:``/``Final Answer:`` (LangChain's classic
  ReAct output parser). Both baselines are scored generously: text they cannot read counts as a
  final answer. Cases whose expected outcome is a correction are scored as "not executed".
- **cost**: the time to read each case whole, and streamed in 3-character deltas (the agent's
  streaming path, which also decides what the user may see), per case, against the naive
  JSON reader.

The corpus was written together with the parser, so ours recovering all of it says the formats
are covered; the baselines' figures say how much of that a simpler reader would lose.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tool_protocols"))

from corpus_tools import TOOLS, load_corpus

from atdak_agents.tool_protocols import TextTurnParser, parse_text

Outcome = tuple[str, Any]  # ("calls", [(name, args)]) | ("final", text) | ("error", None)
NAMES = {t.name for t in TOOLS}


def ours(text: str) -> Outcome:
    turn = parse_text(text, TOOLS)
    if turn.kind == "tool_calls":
        return "calls", [(c.name, c.arguments) for c in turn.calls]
    if turn.kind == "final":
        return "final", turn.text
    return "error", None


def first_last_brace(text: str) -> Outcome:
    """The JSON between the first '{' and the last '}', read with name/arguments keys.

    Generous: it also understands this project's ``{"tool_calls": [...]}`` wrapper.
    """
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return "final", text.strip()
    try:
        blob = json.loads(text[start : end + 1])
    except json.JSONDecodeError:
        return "error", None
    if isinstance(blob, dict) and isinstance(blob.get("tool_calls"), list):  # generous: our wrapper
        calls = [_named(item) for item in blob["tool_calls"]]
        return ("calls", calls) if all(calls) else ("error", None)
    if not isinstance(blob, dict) or "name" not in blob:
        return "error", None
    arguments = blob.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            return "error", None
    if blob["name"] == "final_answer":
        answer = arguments.get("answer") if isinstance(arguments, dict) else arguments
        return "final", str(answer)
    return "calls", [(blob["name"], arguments)]


def _named(item: Any) -> tuple[str, Any] | None:
    if not isinstance(item, dict) or "name" not in item:
        return None
    return item["name"], item.get("arguments", {})


_REACT = re.compile(r"Action\s*\d*\s*:[\s]*(.*?)[\s]*Action\s*\d*\s*Input\s*\d*\s*:[\s]*(.*)", re.S)


def react_regex(text: str) -> Outcome:
    """Final Answer wins when alone; else Action / Action Input."""
    action = _REACT.search(text)
    if "Final Answer:" in text and not action:
        return "final", text.split("Final Answer:")[-1].strip()
    if not action:
        return "final", text.strip()
    name, given = action.group(1).strip(), action.group(2).strip(' "')
    given = given.split("\nObservation")[0].strip()
    try:
        arguments = json.loads(given)
    except json.JSONDecodeError:
        arguments = given
    if not isinstance(arguments, dict):
        return "calls", [(name, arguments)]
    return "calls", [(name, arguments)]


def expected(case: dict[str, Any]) -> Outcome:
    if "calls" in case:
        return "calls", [(c["name"], c["arguments"]) for c in case["calls"]]
    if "final" in case:
        return "final", case["final"]
    return "error", None


def correct(case: dict[str, Any], got: Outcome) -> bool:
    want = expected(case)
    if want[0] != "error":
        return got == want
    # a case that must be corrected: recovered when no tool outside the set would run
    return got[0] != "calls" or not all(name in NAMES for name, _ in got[1])


def per_case_seconds(reader: Callable[[str], Outcome], texts: list[str], rounds: int) -> float:
    started = time.perf_counter()
    for _ in range(rounds):
        for text in texts:
            reader(text)
    return (time.perf_counter() - started) / (rounds * len(texts))


def streamed(text: str) -> Outcome:
    parser = TextTurnParser(TOOLS)
    for i in range(0, len(text), 3):
        parser.feed(text[i : i + 3])
    turn = parser.finish()
    return turn.kind, None


def main() -> None:
    cases = load_corpus()
    recoverable = [c for c in cases if "unreadable" not in c]
    texts = [c["text"] for c in cases]
    readers: dict[str, Callable[[str], Outcome]] = {
        "atdak_agents": ours,
        "first/last brace JSON": first_last_brace,
        "ReAct regex": react_regex,
    }
    print(
        f"corpus: {len(cases)} outputs ({len(recoverable)} recoverable, "
        f"{len(cases) - len(recoverable)} to be corrected)"
    )
    print(f"{'reader':<24}{'recovered':>12}{'of all':>10}{'by format (recoverable only)':>34}")
    base: dict[str, float] = {}
    for label, reader in readers.items():
        hits = [correct(c, reader(c["text"])) for c in recoverable]
        everything = [correct(c, reader(c["text"])) for c in cases]
        rate = sum(hits) / len(hits)
        base[label] = rate
        by_format: dict[str, list[bool]] = {}
        for case, hit in zip(recoverable, hits, strict=True):
            by_format.setdefault(case["format"], []).append(hit)
        detail = " ".join(f"{name}:{sum(v)}/{len(v)}" for name, v in sorted(by_format.items()))
        print(f"{label:<24}{rate:>11.1%}{sum(everything) / len(everything):>10.1%}   {detail}")
    ours_rate = base["atdak_agents"]
    for label in list(readers)[1:]:
        ratio = ours_rate / base[label] if base[label] else float("inf")
        print(f"recovery ratio atdak_agents / {label}: {ratio:.1f}x")

    rounds = 20
    naive = per_case_seconds(first_last_brace, texts, rounds)
    whole = per_case_seconds(ours, texts, rounds)
    stream = per_case_seconds(streamed, texts, rounds)
    print(
        f"time per output: naive {naive * 1e6:.0f} us, ours whole {whole * 1e6:.0f} us "
        f"({whole / naive:.1f}x naive), ours streamed in 3-char deltas {stream * 1e6:.0f} us "
        f"({stream / naive:.1f}x naive, {stream / whole:.1f}x whole)"
    )
    prose = "The quick brown fox jumps over the lazy dog, {not a call} [1] <b>x</b>.\n" * 2000
    started = time.perf_counter()
    streamed(prose)
    elapsed = time.perf_counter() - started
    print(
        f"streaming a {len(prose) / 1000:.0f} kB prose answer in 3-char deltas: "
        f"{elapsed * 1000:.0f} ms ({len(prose) / elapsed / 1e6:.1f} MB/s)"
    )


if __name__ == "__main__":
    main()
