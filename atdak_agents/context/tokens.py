"""Token counting (placeholder: a crude estimate until the real estimator lands)."""

from __future__ import annotations

from collections.abc import Sequence

from ..messages import Message, MessageLike, as_message

__all__ = ["count_tokens"]


def count_tokens(text_or_messages: str | Sequence[MessageLike], model: str | None = None) -> int:
    """Estimated tokens of a text or of a list of chat messages for ``model``."""
    if isinstance(text_or_messages, str):
        return _estimate(text_or_messages)
    messages: list[Message] = [as_message(m) for m in text_or_messages]
    return sum(4 + _estimate(m.text) for m in messages) + 3


def _estimate(text: str) -> int:
    cjk = sum(1 for ch in text if ord(ch) >= 0x2E80)
    return cjk + (len(text) - cjk + 3) // 4
