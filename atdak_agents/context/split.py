"""Splitting a long document into chunks that each fit a token budget (for map-reduce).

``split_text(text, 2000, model="atdak-llama-70b")`` cuts on the most natural boundary that works:
paragraphs, then lines, then sentences (``. ! ?`` and ``。！？；``), then clauses (``, ;`` and
``，、；：``), then words, and only as a last resort inside a word. Without overlap the chunks
cover the document exactly, in order (``"".join(c.text for c in chunks) == text``); with
``overlap=N`` each chunk repeats up to N tokens of whole pieces from the end of the previous one.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass

from ..exceptions import InvalidParameterError
from ..providers.profiles import ModelProfile
from .tokens import Tokenizer, get_tokenizer, tokenizer_for_model

__all__ = ["TextChunk", "split_text"]

_BOUNDARIES = (
    re.compile(r"\n[ \t]*\n\s*"),  # paragraphs
    re.compile(r"\n"),  # lines
    re.compile(r"[.!?]+[\"')\]]*\s+|[。！？；…]+[”’」』）)]*\s*"),  # sentences
    re.compile(r"[,;:]\s+|[，、；：]\s*"),  # clauses
    re.compile(r"\s+"),  # words
)


@dataclass(frozen=True)
class TextChunk:
    """One chunk: its text, its ``[start, end)`` character offsets in the document, its tokens."""

    text: str
    start: int
    end: int
    tokens: int

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class _Piece:
    start: int
    end: int
    tokens: int


def split_text(
    text: str,
    max_tokens: int,
    *,
    overlap: int = 0,
    model: str | ModelProfile | None = None,
    tokenizer: Tokenizer | str | None = None,
) -> list[TextChunk]:
    """Chunks of ``text`` of at most ``max_tokens`` tokens each, cut on natural boundaries.

    ``overlap``: tokens of context each chunk repeats from the previous one (less than half of
    ``max_tokens``). Tokens are counted with ``tokenizer``, else ``model``'s, else the estimator.
    """
    if max_tokens < 1:
        raise InvalidParameterError("max_tokens", max_tokens, "must be at least 1")
    if not 0 <= overlap < max_tokens / 2:
        raise InvalidParameterError("overlap", overlap, f"must be >= 0 and < {max_tokens / 2:g}")
    counter = _resolve(model, tokenizer)
    if not text:
        return []
    pieces = list(_pieces(text, 0, len(text), 0, max_tokens, counter))
    return list(_pack(text, pieces, max_tokens, overlap, counter))


def _resolve(model: str | ModelProfile | None, tokenizer: Tokenizer | str | None) -> Tokenizer:
    if tokenizer is None:
        return tokenizer_for_model(model)
    return get_tokenizer(tokenizer) if isinstance(tokenizer, str) else tokenizer


def _spans(text: str, start: int, end: int, level: int) -> list[tuple[int, int]]:
    """``[start, end)`` cut after each boundary of ``level`` (separators stay on the left)."""
    cuts = [m.end() for m in _BOUNDARIES[level].finditer(text, start, end) if m.end() < end]
    edges = [start, *(c for c in cuts if c > start), end]
    return [(a, b) for a, b in itertools.pairwise(edges) if b > a]


def _pieces(
    text: str, start: int, end: int, level: int, limit: int, counter: Tokenizer
) -> Iterator[_Piece]:
    """Pieces no larger than ``limit`` tokens, as coarse as possible."""
    tokens = counter.count(text[start:end])
    if tokens <= limit:
        yield _Piece(start, end, tokens)
        return
    if level == len(_BOUNDARIES):
        yield from _hard_cut(text, start, end, limit, counter)
        return
    spans = _spans(text, start, end, level)
    if len(spans) == 1:
        yield from _pieces(text, start, end, level + 1, limit, counter)
        return
    for a, b in spans:
        yield from _pieces(text, a, b, level, limit, counter)


def _hard_cut(text: str, start: int, end: int, limit: int, counter: Tokenizer) -> Iterator[_Piece]:
    """Cut inside a word: the longest prefixes that fit, found by bisection."""
    while start < end:
        low, high = start + 1, end
        while low < high:
            middle = (low + high + 1) // 2
            if counter.count(text[start:middle]) <= limit:
                low = middle
            else:
                high = middle - 1
        yield _Piece(start, low, counter.count(text[start:low]))
        start = low


def _pack(
    text: str, pieces: list[_Piece], limit: int, overlap: int, counter: Tokenizer
) -> Iterator[TextChunk]:
    """Greedily join consecutive pieces into chunks that fit ``limit``."""
    current: list[_Piece] = []
    used = 0
    for piece in pieces:
        if current and used + piece.tokens > limit:
            yield from _emit(text, current, limit, counter)
            current = _overlap_tail(text, current, overlap, limit - piece.tokens, counter)
            used = sum(p.tokens for p in current)
        current.append(piece)
        used += piece.tokens
    if current:
        yield from _emit(text, current, limit, counter)


def _overlap_tail(
    text: str, pieces: list[_Piece], overlap: int, room: int, counter: Tokenizer
) -> list[_Piece]:
    """The end of a chunk, up to ``overlap`` tokens (and the ``room`` left in the next chunk),
    cut finer than the chunk's own pieces where needed."""
    want = min(overlap, room)
    tail: list[_Piece] = []
    used = 0
    for piece in reversed(pieces):
        if used + piece.tokens <= want:
            tail.insert(0, piece)
            used += piece.tokens
            continue
        if want - used > 0:
            finer = list(_pieces(text, piece.start, piece.end, 0, want - used, counter))
            while finer and used + finer[-1].tokens <= want:
                tail.insert(0, finer.pop())
                used += tail[0].tokens
        break
    return tail


def _emit(text: str, pieces: list[_Piece], limit: int, counter: Tokenizer) -> Iterator[TextChunk]:
    """One chunk of ``pieces`` — or several, when joining them costs more than their sum."""
    start = 0
    while start < len(pieces):
        stop = len(pieces)
        while True:
            body = text[pieces[start].start : pieces[stop - 1].end]
            tokens = counter.count(body)
            if tokens <= limit or stop - start == 1:
                break
            stop -= 1
        yield TextChunk(body, pieces[start].start, pieces[stop - 1].end, tokens)
        start = stop
