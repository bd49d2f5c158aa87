"""A tool's return value as text for the model, capped to a token budget with a visible notice."""

from __future__ import annotations

import json
from typing import Any

import pydantic_core

from ..context.tokens import count_tokens, tokenizer_for_model

__all__ = ["DEFAULT_MAX_OUTPUT_TOKENS", "cap_output", "render_output"]

DEFAULT_MAX_OUTPUT_TOKENS = 4_000
"""Tokens of tool output the model sees by default; the rest is cut with a visible notice."""

_NO_OUTPUT = "(the tool returned no output)"


def render_output(value: Any) -> str:
    """A tool's return value as text for the model (JSON for structured values)."""
    if isinstance(value, str):
        return value
    if value is None:
        return _NO_OUTPUT
    kind = type(value)
    if kind is int:  # what the JSON encoder writes, without converting anything first
        return int.__repr__(value)
    if kind is bool:
        return "true" if value else "false"
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return f"<{len(value)} bytes of binary data>"
    try:
        data = pydantic_core.to_jsonable_python(value, fallback=str)
        return json.dumps(data, ensure_ascii=False)
    except (TypeError, ValueError, pydantic_core.PydanticSerializationError):
        return str(value)


def cap_output(text: str, max_tokens: int | None, *, model: str | None = None) -> tuple[str, bool]:
    """``(text, False)`` when it fits ``max_tokens``, else a cut version and ``True``.

    The cut keeps the beginning and the end (3:1) on line boundaries where possible, and puts a
    notice in the middle saying how much was left out and how to get the rest.
    """
    if max_tokens is None or not text:
        return text, False
    if len(text) <= 16 * max_tokens and _within(text, max_tokens, model):
        return text, False
    budget = max_tokens - 100  # room for the notice
    for _ in range(8):  # token counts are not additive: check the whole, shrink if over
        capped = _cut(text, max(budget, 0), max_tokens, model)
        over = count_tokens(capped, model) - max_tokens
        if over <= 0:
            return capped, True
        budget -= over + 8
    return _cut(text, 0, max_tokens, model), True


def _within(text: str, max_tokens: int, model: str | None) -> bool:
    """Whether ``text`` has at most ``max_tokens``: surely by its size (the tokenizer's
    ``upper_bound``), else counted."""
    upper = getattr(tokenizer_for_model(model), "upper_bound", None)
    if upper is not None and upper(text) <= max_tokens:
        return True
    return count_tokens(text, model) <= max_tokens


def _cut(text: str, budget: int, max_tokens: int, model: str | None) -> str:
    head = _prefix_within(text, budget * 3 // 4, model)
    tail = _suffix_within(text[len(head) :], budget - count_tokens(head, model), model)
    kept = len(head) + len(tail)
    per_char = count_tokens(head + tail, model) / kept if kept else 0.3
    omitted = len(text) - kept
    notice = (
        f"\n\n[... output cut: the tool returned {len(text):,} characters (about "
        f"{int(len(text) * per_char):,} tokens), more than its budget of {max_tokens:,} tokens. "
        f"Shown: the first {len(head):,} and the last {len(tail):,} characters; {omitted:,} "
        "characters in between were left out. To see them, call the tool again asking for less "
        "(a narrower query, a filter, a page or a range). ...]\n\n"
    )
    return head + notice + tail


def _prefix_within(text: str, tokens: int, model: str | None) -> str:
    """The longest prefix of ``text`` (cut at a line end when one is near) within ``tokens``."""
    if tokens <= 0:
        return ""
    sample = text[: tokens * 6]
    guess = int(tokens * len(sample) / max(count_tokens(sample, model), 1))
    lo, hi = 0, min(len(text), guess + guess // 4 + 16)
    while hi < len(text) and count_tokens(text[:hi], model) <= tokens:
        lo, hi = hi, min(len(text), hi * 2)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count_tokens(text[:mid], model) <= tokens:
            lo = mid
        else:
            hi = mid - 1
    newline = text.rfind("\n", 0, lo)
    return text[: newline + 1] if newline >= lo * 4 // 5 else text[:lo]


def _suffix_within(text: str, tokens: int, model: str | None) -> str:
    if tokens <= 0:
        return ""
    suffix = _prefix_within(text[::-1], tokens, model)[::-1]
    return suffix[1:] if suffix.startswith("\n") else suffix  # start on a line of its own
