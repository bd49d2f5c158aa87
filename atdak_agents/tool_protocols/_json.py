"""A forgiving JSON reader for what models write: JSON with the defects they commonly add.

Accepted beyond JSON: single-quoted and triple-quoted strings, raw newlines in strings, unknown
escapes, unquoted keys, Python literals (``True``/``False``/``None``), trailing commas and missing
commas between items, ``//``, ``/* */`` and ``#`` comments, ``+1``/``.5`` numbers, and — when
``close_truncated`` — a value whose closing brackets were cut off (not one cut inside a string).

:func:`read_value` tells *incomplete* (more text could finish the value: :class:`Incomplete`) from
*invalid* (no text can: :class:`Invalid`); the streaming parser relies on that difference.

Most blocks models write are plain JSON: an object or array is first offered to the standard
library's C decoder, and read by the forgiving reader only when that refuses it (or when the
two could disagree: ``\\u`` escapes, whose lone surrogates are replaced here, and nesting
near ``MAX_DEPTH``). The result is the same either way, about ten times sooner.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["Incomplete", "Invalid", "loads", "read_value"]

MAX_DEPTH = 100

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_PARTIAL_EXPONENT = re.compile(r"[eE][+-]?")
_WORD = re.compile(r"[A-Za-z_$][\w$-]*")
_LITERALS: dict[str, Any] = {
    "true": True,
    "false": False,
    "null": None,
    "True": True,
    "False": False,
    "None": None,
}
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r"}
_ESCAPES["t"] = "\t"


class Incomplete(ValueError):
    """The text ended inside the value; more text could complete it."""

    def __init__(self, position: int) -> None:
        self.position = position
        super().__init__(f"the JSON ends early (at character {position})")


class Invalid(ValueError):
    """The text cannot be read as a value, whatever follows."""

    def __init__(self, position: int, reason: str) -> None:
        self.position = position
        self.reason = reason
        super().__init__(f"{reason} at character {position}")


class _Reader:
    def __init__(self, text: str, close_truncated: bool) -> None:
        self.text = text
        self.close_truncated = close_truncated
        self.end = len(text)

    def skip(self, pos: int) -> int:
        """Skip whitespace and comments."""
        text, end = self.text, self.end
        while pos < end:
            char = text[pos]
            if char in " \t\r\n\ufeff":
                pos += 1
            elif char == "#" or text.startswith("//", pos):
                newline = text.find("\n", pos)
                pos = end if newline < 0 else newline + 1
            elif text.startswith("/*", pos):
                close = text.find("*/", pos + 2)
                if close < 0:
                    raise Incomplete(end)
                pos = close + 2
            else:
                break
        return pos

    def value(self, pos: int, depth: int) -> tuple[Any, int]:
        pos = self.skip(pos)
        if pos >= self.end:
            raise Incomplete(pos)
        char = self.text[pos]
        if char == "{":
            return self.container(pos, depth, "}")
        if char == "[":
            return self.container(pos, depth, "]")
        if char in "\"'":
            return self.string(pos)
        number = _NUMBER.match(self.text, pos)
        if number:
            if _PARTIAL_EXPONENT.fullmatch(self.text, number.end()):
                raise Incomplete(self.end)  # "1e" or "2.5E-" at the very end
            return self.number(number.group()), number.end()
        if self.text[pos:] in ("-", "+", ".", "-.", "+."):
            raise Incomplete(self.end)
        word = _WORD.match(self.text, pos)
        if word and word.group() in _LITERALS:
            return _LITERALS[word.group()], word.end()
        if word and word.end() == self.end and _is_literal_prefix(word.group()):
            raise Incomplete(self.end)
        raise Invalid(pos, f"unexpected {char!r}")

    def number(self, text: str) -> int | float:
        text = text.lstrip("+")
        if re.fullmatch(r"-?\d+", text):
            return int(text)
        return float(text)

    def string(self, pos: int) -> tuple[str, int]:
        text = self.text
        quote = text[pos]
        if text.startswith(quote * 3, pos):
            close = text.find(quote * 3, pos + 3)
            if close < 0:
                raise Incomplete(self.end)
            return text[pos + 3 : close], close + 3
        out: list[str] = []
        i = pos + 1
        while True:
            stop = _next_special(text, i, quote)
            if stop < 0:
                raise Incomplete(self.end)
            out.append(text[i:stop])
            if text[stop] == quote:
                return "".join(out), stop + 1
            piece, i = self.escape(stop)
            out.append(piece)

    def escape(self, pos: int) -> tuple[str, int]:
        """The character of the escape sequence at ``pos`` (a backslash) and where it ends."""
        text = self.text
        if pos + 1 >= self.end:
            raise Incomplete(self.end)
        code = text[pos + 1]
        if code == "u":
            digits = text[pos + 2 : pos + 6]
            if len(digits) < 4 and pos + 6 > self.end:
                raise Incomplete(self.end)
            if re.fullmatch(r"[0-9a-fA-F]{4}", digits):
                return _surrogates(text, pos, int(digits, 16))
        if code in _ESCAPES:
            return _ESCAPES[code], pos + 2
        return "\\" + code, pos + 2  # an unknown escape is kept as written

    def container(self, pos: int, depth: int, closer: str) -> tuple[Any, int]:
        if depth >= MAX_DEPTH:
            raise Invalid(pos, f"nested deeper than {MAX_DEPTH} levels")
        is_object = closer == "}"
        items: list[Any] = []
        members: dict[str, Any] = {}
        pos += 1
        while True:
            pos = self.skip(pos)
            if pos >= self.end:
                if self.close_truncated:
                    return (members if is_object else items), self.end
                raise Incomplete(pos)
            char = self.text[pos]
            if char == closer:
                return (members if is_object else items), pos + 1
            if char == ",":
                pos += 1
                continue
            if char in "]}":
                raise Invalid(pos, f"unexpected {char!r}")
            if is_object:
                key, pos = self.key(pos)
                members[key], pos = self.value(pos, depth + 1)
            else:
                item, pos = self.value(pos, depth + 1)
                items.append(item)

    def key(self, pos: int) -> tuple[str, int]:
        if self.text[pos] in "\"'":
            key, pos = self.string(pos)
        else:
            word = _WORD.match(self.text, pos)
            if not word:
                raise Invalid(pos, f"expected a key, found {self.text[pos]!r}")
            key, pos = word.group(), word.end()
        pos = self.skip(pos)
        if pos >= self.end:
            raise Incomplete(pos)
        if self.text[pos] != ":":
            raise Invalid(pos, f"expected ':' after the key {key!r}")
        return key, pos + 1


def _next_special(text: str, start: int, quote: str) -> int:
    """The next quote or backslash at or after ``start`` (-1 when there is none)."""
    q = text.find(quote, start)
    b = text.find("\\", start)
    if b < 0 or (0 <= q < b):
        return q
    return b


def _surrogates(text: str, pos: int, code: int) -> tuple[str, int]:
    if 0xD800 <= code < 0xDC00 and re.match(r"\\u[dD][c-fC-F][0-9a-fA-F]{2}", text[pos + 6 :]):
        low = int(text[pos + 8 : pos + 12], 16)
        return chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)), pos + 12
    if 0xD800 <= code < 0xE000:
        return "\ufffd", pos + 6  # a lone surrogate cannot be encoded later
    return chr(code), pos + 6


def _is_literal_prefix(word: str) -> bool:
    return any(literal.startswith(word) for literal in _LITERALS)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_STRICT = json.JSONDecoder(parse_constant=_refuse_constant)


def _strict(text: str, pos: int) -> tuple[Any, int] | None:
    """The object or array at ``text[pos]`` when it is standard JSON that the forgiving reader
    would read the same way; ``None`` when it must read it."""
    if pos >= len(text) or text[pos] not in "{[":
        return None
    try:
        value, end = _STRICT.raw_decode(text, pos)
    except (ValueError, RecursionError):
        return None
    if text.find("\\u", pos, end) >= 0:
        return None
    if text.count("{", pos, end) + text.count("[", pos, end) >= MAX_DEPTH:
        return None
    return value, end


def read_strict(text: str, pos: int) -> tuple[Any, int] | None:
    """The object or array at ``text[pos]`` when it is plain JSON (read as :func:`read_value`
    would read it), else ``None``."""
    return _strict(text, pos)


def read_value(text: str, pos: int = 0, *, close_truncated: bool = False) -> tuple[Any, int]:
    """Read one value starting at ``text[pos]`` (after blanks); returns ``(value, end)``.

    Raises :class:`Incomplete` or :class:`Invalid`. Recursion is bounded by ``MAX_DEPTH``.
    """
    reader = _Reader(text, close_truncated)
    pos = reader.skip(pos)
    return _strict(text, pos) or reader.value(pos, 0)


def loads(text: str, *, close_truncated: bool = True) -> Any:
    """The value that is the whole of ``text`` (blanks and comments around it allowed)."""
    reader = _Reader(text, close_truncated)
    start = reader.skip(0)
    value, end = _strict(text, start) or reader.value(start, 0)
    end = reader.skip(end)
    if end != len(text):
        raise Invalid(end, "unexpected text after the value")
    return value
