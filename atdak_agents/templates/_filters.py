"""The filters prompts need, on top of jinja2's own (``indent``, ``join``, ``default``, ...).

- ``tojson``: JSON for a model to read: UTF-8 as is (Chinese is not escaped, nor ``<`` and
  ``&`` as jinja2's HTML-minded filter does), keys in their given order (``sort_keys=True`` to
  sort), sets sorted so the output is the same on every run; pydantic models, dataclasses, dates
  and enums are converted.
- ``truncate_tokens(n)``: at most ``n`` tokens by the project's tokenizer, with a visible marker
  saying how much was cut.
- ``bullets`` / ``numbered``: a list as ``- item`` / ``1. item`` lines.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import PurePath
from typing import Any
from uuid import UUID

from jinja2 import Undefined
from pydantic import BaseModel

from ..context.tokens import count_tokens

__all__ = ["DEFAULT_MARKER", "bullets", "make_filters", "numbered", "tojson", "truncate_tokens"]

DEFAULT_MARKER = "[… {omitted} tokens truncated …]"
_KEEP = ("start", "end", "both")


def tojson(value: Any, indent: int | None = None, sort_keys: bool = False) -> str:
    """``value`` as JSON, readable by a model: non-ASCII kept, stable order."""
    return json.dumps(
        value, ensure_ascii=False, indent=indent, sort_keys=sort_keys, default=_to_jsonable
    )


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, Undefined):
        str(value)  # a strict undefined raises here, naming what was missing
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (set, frozenset)):
        try:
            return sorted(value)
        except TypeError:
            return sorted(value, key=repr)
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (UUID, PurePath)):
        return str(value)
    raise TypeError(
        f"tojson cannot convert a {type(value).__name__} to JSON: pass plain data "
        "(dict, list, str, numbers, bool, None), a pydantic model or a dataclass"
    )


def truncate_tokens(
    value: Any,
    limit: int,
    marker: str = DEFAULT_MARKER,
    keep: str = "start",
    model: str | None = None,
) -> str:
    """``value`` cut to at most ``limit`` tokens (counted for ``model``), the cut marked.

    ``keep`` is ``"start"`` (cut the end), ``"end"`` (cut the start) or ``"both"`` (cut the
    middle). ``marker`` may use ``{omitted}`` and ``{total}`` (token counts); the result,
    marker included, fits in ``limit`` unless the marker alone does not.
    """
    text = str(value)
    if not isinstance(limit, int) or limit < 0:
        raise ValueError(f"truncate_tokens needs a token count >= 0, got {limit!r}")
    if keep not in _KEEP:
        raise ValueError(f"truncate_tokens: keep must be one of {_KEEP}, not {keep!r}")
    total = count_tokens(text, model)
    if total <= limit:
        return text
    budget = limit - count_tokens(_note(marker, total, total), model)
    while True:  # re-cut when joining the pieces cost a token more than their sum
        result = _cut(text, max(budget, 0), marker, keep, total, model)
        over = count_tokens(result, model) - limit
        if over <= 0 or budget <= 0:
            return result
        budget -= over


def _note(marker: str, omitted: int, total: int) -> str:
    try:
        return marker.format(omitted=omitted, total=total)
    except (KeyError, IndexError, ValueError):
        raise ValueError(
            f"truncate_tokens: bad marker {marker!r}; it may use {{omitted}} and {{total}}, "
            "and literal braces are written {{ and }}"
        ) from None


def _cut(text: str, budget: int, marker: str, keep: str, total: int, model: str | None) -> str:
    head_budget = {"start": budget, "both": budget // 2, "end": 0}[keep]
    head = _fit(text, head_budget, model)
    head_tokens = count_tokens(head, model)
    rest = text[len(head) :]
    tail = "" if keep == "start" else _fit(rest, budget - head_tokens, model, from_end=True)
    omitted = max(0, total - head_tokens - count_tokens(tail, model))
    return _join(head, _note(marker, omitted, total), tail)


def _fit(text: str, budget: int, model: str | None, *, from_end: bool = False) -> str:
    """The longest start (or end) of ``text`` that counts at most ``budget`` tokens."""

    def take(n: int) -> str:
        return text[len(text) - n :] if from_end else text[:n]

    def fits(n: int) -> bool:
        return count_tokens(take(n), model) <= budget

    if budget <= 0 or not text:
        return ""
    if fits(len(text)):
        return text
    good, bad = 0, len(text)  # take(good) fits, take(bad) does not
    probe = min(bad, budget * 4)
    while probe < bad and fits(probe):  # grow geometrically: cost stays near the kept size
        good, probe = probe, min(bad, probe * 2)
    bad = min(bad, probe)
    while bad - good > 1:
        middle = (good + bad) // 2
        good, bad = (middle, bad) if fits(middle) else (good, middle)
    first_dropped = text[len(text) - good - 1] if from_end else text[good]
    piece = take(good)
    if first_dropped == "\n":  # already at a line break: keep it, to place the marker on a line
        return "\n" + piece if from_end else piece + "\n"
    return piece if first_dropped.isspace() else _at_boundary(piece, from_end=from_end)


def _at_boundary(piece: str, *, from_end: bool) -> str:
    """Move the cut back to a line break near it, else to a space near it (CJK has none)."""
    line_window, word_window = min(200, len(piece) // 4), 24
    if from_end:
        newline = piece.find("\n", 0, line_window)
        if newline >= 0:
            return piece[newline:]
        space = piece.find(" ", 0, word_window)
        return piece[space:] if space > 0 else piece
    newline = piece.rfind("\n", len(piece) - line_window)
    if line_window and newline >= 0:
        return piece[: newline + 1]
    space = piece.rfind(" ", max(0, len(piece) - word_window))
    return piece[:space] if space > 0 else piece


def _join(head: str, note: str, tail: str) -> str:
    """``head``, marker, ``tail``: the marker on its own line where the cut is at a line break."""
    text = head.rstrip() + ("\n" if head.endswith("\n") else " ") if head.strip() else ""
    text += note
    if tail.startswith("\n") and tail.strip():
        text += "\n" + tail.lstrip("\n")  # keeps the indentation of the first kept line
    elif tail.strip():
        text += " " + tail.lstrip()
    return text


def bullets(items: Any, marker: str = "- ") -> str:
    """Items as lines starting with ``marker``; an item's further lines are indented under it."""
    return "\n".join(_item(marker, entry) for entry in _entries(items))


def numbered(items: Any, start: int = 1) -> str:
    """Items as ``1. item`` lines; an item's further lines are indented under it."""
    return "\n".join(_item(f"{n}. ", e) for n, e in enumerate(_entries(items), start=start))


def _entries(items: Any) -> list[str]:
    if isinstance(items, Undefined):
        str(items)  # raises, naming what was missing
    if isinstance(items, str):
        return [line for line in items.splitlines() if line.strip()]
    if isinstance(items, Mapping):
        return [f"{key}: {value}" for key, value in items.items()]
    if isinstance(items, Iterable):
        return [str(item) for item in items]
    raise TypeError(f"expected a list of items, got a {type(items).__name__}")


def _item(prefix: str, text: str) -> str:
    first, *rest = text.splitlines() or [""]
    pad = " " * len(prefix)
    return "\n".join([prefix + first, *(pad + line if line else "" for line in rest)])


def make_filters(model: str | None) -> dict[str, Callable[..., Any]]:
    """The filters, with ``truncate_tokens`` counting for ``model`` unless told otherwise."""

    def truncate(
        value: Any,
        limit: int,
        marker: str = DEFAULT_MARKER,
        keep: str = "start",
        model: str | None = model,
    ) -> str:
        return truncate_tokens(value, limit, marker=marker, keep=keep, model=model)

    return {"tojson": tojson, "truncate_tokens": truncate, "bullets": bullets, "numbered": numbered}
