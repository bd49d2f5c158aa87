"""The incremental scanner: splits a model's turn, as it streams, into text the user may see,
hidden reasoning, and the place where tool-call markup begins.

It walks the text once. Ordinary text is released as soon as it is known not to start any markup;
at a possible marker (``<``, ``[``, ``{``, a code fence, a line start that may be ``Action:``...)
it holds back until the marker is decided. Every decision depends only on the text from that
point on, and a decision once made never changes when more text arrives, so the released text is
the same however the turn is split into deltas. Once call markup is found, nothing more is
released: the rest is read at the end by :mod:`._formats`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import _json
from ._formats import read_fenced
from ._shapes import KNOWN_KEYS, FinalAnswer, ToolIndex, calls_from_python, shape_of

__all__ = ["Scanner"]


@dataclass(frozen=True)
class _Text:  # the first ``size`` characters are ordinary text
    size: int


@dataclass(frozen=True)
class _Hide:  # the first ``size`` characters are markup or reasoning, never shown
    size: int
    thought: str | None = None


@dataclass(frozen=True)
class _Show:  # the first ``size`` characters stand for ``text`` (a structured final answer)
    size: int
    text: str


@dataclass(frozen=True)
class _Call:  # tool-call markup starts here
    hint: str


@dataclass(frozen=True)
class _Code:  # a code fence that is not a call opens here: ``size`` is its opening line
    size: int


_Decision = _Text | _Hide | _Show | _Call | _Code | None  # None: cannot tell yet

_CANDIDATE = re.compile(r"[<\[{`\n]")
_TAGS: dict[str, str] = {
    "<tool_call>": "hermes",
    "<tool_calls>": "hermes",
    "<toolcall>": "hermes",
    "<function=": "function_tag",
    "<function_calls>": "invoke",
    "<invoke ": "invoke",
    "<invoke>": "invoke",
    "<｜tool▁calls▁begin｜>": "deepseek",
    "<｜tool▁call▁begin｜>": "deepseek",
}
_THINK = {"<think>": "</think>", "<thinking>": "</thinking>", "<reasoning>": "</reasoning>"}
_STRAY = ("</think>", "</thinking>", "</reasoning>", "</tool_call>", "</function_calls>")
_SPECIAL = re.compile(r"<\|([A-Za-z_][\w]*)\|>")
_SPECIAL_CALLS = {
    "python_tag": "llama",
    "python_start": "llama",
    "tool_calls_section_begin": "kimi",
    "tool_call_begin": "kimi",
}
_FULLWIDTH = re.compile(r"<｜[^｜>]{1,40}｜>")
_CALL_LANGS = {"json", "json5", "jsonc", "tool_call", "tool_calls", "tool_code", "tool", "xml"}
_KEYWORDS = ("thought:", "action input:", "action:", "final answer:")
_LONGEST_KEYWORD = max(map(len, _KEYWORDS))
_LINE_KEYWORD = re.compile(
    r"[ \t]*(?:\*\*)?(thought|action[ \t]*input|action|final[ \t]*answer)[ \t]*\d*[ \t]*"
    r"(?:\*\*)?[ \t]*:(?:\*\*)?[ \t]*",
    re.I,
)
_REACT_NEXT = re.compile(
    r"^[ \t>*#-]*(?:\*\*)?(?:action|final[ \t]*answer)[ \t]*\d*[ \t]*:", re.I | re.M
)
_NO_ACTION = re.compile(r"(none|n/a|no action|nothing)\b", re.I)
_FIRST_KEY = re.compile(r"\{\s*[\"']?([^\"':,{}\[\]\n]{1,40}?)[\"']?\s*:")


class Scanner:
    """Feed text, get back what may be shown; :attr:`call_at` says where call markup began."""

    def __init__(self, tools: ToolIndex) -> None:
        self.tools = tools
        self._chunks: list[str] = []
        self._tail = ""  # text not decided yet
        self._offset = 0  # position of ``_tail`` in the whole turn
        self._line_start = True
        self._in_code = False
        self._recheck_at = 0
        self._shown: list[str] = []  # decided text for the user, not yet taken
        self._visible: list[str] = []  # all decided text for the user (not stripped)
        self.thoughts: list[str] = []  # ReAct "Thought:" texts (hidden)
        self.markers: list[str] = []  # what was recognised, in order ("think", "react", ...)
        self.call_at: int | None = None
        self.hint: str | None = None

    @property
    def text(self) -> str:
        """Everything fed so far."""
        if len(self._chunks) > 1:
            self._chunks = ["".join(self._chunks)]
        return self._chunks[0] if self._chunks else ""

    @property
    def visible(self) -> str:
        """All the text decided to be for the user so far (blanks included)."""
        if len(self._visible) > 1:
            self._visible = ["".join(self._visible)]
        return self._visible[0] if self._visible else ""

    def take_new(self) -> str:
        """The text for the user decided since the last call."""
        new = "".join(self._shown)
        self._shown.clear()
        return new

    def feed(self, delta: str) -> None:
        self._chunks.append(delta)
        if self.call_at is not None:
            return
        self._tail += delta
        if self._offset + len(self._tail) >= self._recheck_at:
            self._advance(final=False)

    def finish(self) -> None:
        if self.call_at is None:
            self._advance(final=True)

    # ------------------------------------------------------------------ the walk

    def _advance(self, final: bool) -> None:
        while self._tail and self.call_at is None:
            if self._in_code:
                if not self._code_step(final):
                    return
                continue
            decision = self._step(final)
            if decision is None:
                held = len(self._tail)
                self._recheck_at = self._offset + held + max(1, held // 8)
                return
            self._apply(decision)

    def _apply(self, decision: _Decision) -> None:
        if isinstance(decision, _Call):
            self.call_at, self.hint = self._offset, decision.hint
            self.markers.append(decision.hint)
        elif isinstance(decision, _Text):
            self._consume(decision.size, self._tail[: decision.size])
        elif isinstance(decision, _Hide):
            if decision.thought is not None:
                self.thoughts.append(decision.thought)
            self._consume(decision.size, "")
        elif isinstance(decision, _Show):
            self.markers.append("json")
            self._consume(decision.size, decision.text)
        elif isinstance(decision, _Code):
            self._consume(decision.size, self._tail[: decision.size])
            self._in_code = True

    def _consume(self, size: int, shown: str) -> None:
        taken = self._tail[:size]
        if shown:
            self._shown.append(shown)
            self._visible.append(shown)
        self._tail = self._tail[size:]
        self._offset += size
        self._line_start = taken.endswith("\n")

    def _step(self, final: bool) -> _Decision:
        tail = self._tail
        if self._line_start:
            decision = self._line(tail, final)
            if decision is None or not (isinstance(decision, _Text) and decision.size == 0):
                return decision
        match = _CANDIDATE.search(tail)
        if match is None:
            return _Text(len(tail))
        if match.start() > 0:
            return _Text(match.start())
        char = tail[0]
        if char == "\n":
            return _Text(1)
        if char == "<":
            return self._angle(tail, final)
        if char == "[":
            return self._bracket(tail, final)
        if char == "{":
            return self._brace(tail, final)
        return self._backtick(tail, final)

    def _code_step(self, final: bool) -> bool:
        """Inside a code fence: release whole lines until the closing fence."""
        tail = self._tail
        lines = tail.splitlines(keepends=True)
        taken = 0
        for line in lines:
            if not line.endswith("\n") and not final:
                break
            taken += len(line)
            if line.strip().startswith("```"):
                self._in_code = False
                break
        if taken == 0:
            return False
        self._consume(taken, tail[:taken])
        return True

    # ------------------------------------------------------------------ line starts

    def _line(self, tail: str, final: bool) -> _Decision:
        """ReAct keywords and bare Python calls at the start of a line (``_Text(0)``: neither)."""
        match = _LINE_KEYWORD.match(tail)
        if match is None:
            letters = tail.lstrip(" \t*").lower()
            if not final and "\n" not in letters and any(k.startswith(letters) for k in _KEYWORDS):
                return None
            return self._python_line(tail, final)
        keyword = re.sub(r"[ \t]+", " ", match.group(1).lower())
        if keyword == "final answer":
            self.markers.append("react")
            return _Hide(match.end())
        if keyword == "thought":
            return self._thought(tail, match.end(), final)
        if keyword == "action input":
            return _Text(0)
        return self._action(tail, match.end(), final)

    def _thought(self, tail: str, start: int, final: bool) -> _Decision:
        following = _REACT_NEXT.search(tail, start)
        if following is None and not final:
            return None
        end = following.start() if following else len(tail)
        self.markers.append("react")
        return _Hide(end, thought=tail[start:end].strip())

    def _action(self, tail: str, start: int, final: bool) -> _Decision:
        newline = tail.find("\n", start)
        if newline < 0 and not final:
            return None
        end = len(tail) if newline < 0 else newline + 1
        value = tail[start:end].strip().strip("`*'\"").strip()
        if _NO_ACTION.match(value):
            return _Hide(end)
        if re.match(r"[\w.\-]+\s*(?:$|[(\[{])", value):
            return _Call("react")
        return _Text(0)

    def _python_line(self, tail: str, final: bool) -> _Decision:
        """``get_weather(city="Paris")`` alone at a line start, for a tool that exists."""
        word = re.match(r"[ \t]*([A-Za-z_][\w.]*)", tail)
        if word is None:
            return _Text(0)
        name = word.group(1)
        if word.end() == len(tail) and not final:
            canonical = self.tools.canonical(name)
            if any(n.startswith(canonical) for n in self.tools.names):
                return None
            return _Text(0)
        if self.tools.canonical(name) not in self.tools or not tail[word.end() :].startswith("("):
            return _Text(0)
        end = _matching(tail, word.end())
        if end is None:
            return None if not final else _Text(0)
        calls = calls_from_python(tail[:end], self.tools)
        return _Call("python") if calls else _Text(0)

    # ------------------------------------------------------------------ markers

    def _angle(self, tail: str, final: bool) -> _Decision:
        for tag, hint in _TAGS.items():
            if tail.startswith(tag):
                return _Call(hint)
        for opening, closing in _THINK.items():
            if tail.startswith(opening):
                return self._hidden_block(tail, closing, final)
        for stray in _STRAY:
            if tail.startswith(stray):
                return _Hide(len(stray))
        if tail.startswith("<|"):
            return self._special(tail, final)
        if tail.startswith("<｜"):
            token = _FULLWIDTH.match(tail)
            if token is None:
                return None if not final and len(tail) < 44 else _Text(1)
            return _Hide(token.end())
        if not final and _is_prefix_of_any(tail, [*_TAGS, *_THINK, *_STRAY, "<|", "<｜"]):
            return None
        return _Text(1)

    def _hidden_block(self, tail: str, closing: str, final: bool) -> _Decision:
        end = tail.find(closing)
        if end < 0:
            return _Hide(len(tail)) if final else None
        self.markers.append("think")
        return _Hide(end + len(closing))

    def _special(self, tail: str, final: bool) -> _Decision:
        token = _SPECIAL.match(tail)
        if token is None:
            if not final and len(tail) < 40 and re.fullmatch(r"<\|\w*\|?", tail):
                return None
            return _Text(1)
        name = token.group(1)
        if name in _SPECIAL_CALLS:
            return _Call(_SPECIAL_CALLS[name])
        if name == "channel":
            return self._channel(tail, token.end(), final)
        if name == "start":
            header = re.match(r"[^<]*", tail[token.end() :]).group()  # type: ignore[union-attr]
            if "to=" in header:
                return _Call("harmony")
            if token.end() + len(header) == len(tail) and not final:
                return None
            return _Hide(token.end() + len(header))
        if name in ("im_start", "start_header_id"):
            role = re.match(r"\w*(?:<\|end_header_id\|>)?\n?", tail[token.end() :])
            return _Hide(token.end() + (role.end() if role else 0))
        return _Hide(token.end())

    def _channel(self, tail: str, start: int, final: bool) -> _Decision:
        """gpt-oss harmony: ``<|channel|>final<|message|>`` shows, a ``to=`` header calls."""
        opened = tail.find("<|message|>", start)
        if opened < 0:
            if "to=" in tail[start:]:
                return _Call("harmony")
            return None if not final else _Hide(len(tail))
        header = tail[start:opened]
        if "to=" in header:
            return _Call("harmony")
        self.markers.append("harmony")
        if header.strip().startswith("final"):
            return _Hide(opened + len("<|message|>"))
        stop = re.compile(r"<\|(?:end|start|channel|return)\|>").search(tail, opened)
        if stop is None:
            return _Hide(len(tail)) if final else None
        return _Hide(stop.end() if stop.group() == "<|end|>" else stop.start())

    def _bracket(self, tail: str, final: bool) -> _Decision:
        if tail.startswith("[TOOL_CALLS]"):
            return _Call("mistral")
        if not final and "[TOOL_CALLS]".startswith(tail):
            return None
        body = tail[1:].lstrip()
        if not body:
            return None if not final else _Text(1)
        if body[0] == "{":
            return self._json(tail, final, _FIRST_KEY.match(body) is not None)
        word = re.match(r"[A-Za-z_][\w.]*", body)
        if word is None:
            return _Text(1)
        canonical = self.tools.canonical(word.group())
        if word.end() == len(body) and not final:
            return None if any(n.startswith(canonical) for n in self.tools.names) else _Text(1)
        if canonical not in self.tools or not body[word.end() :].lstrip().startswith("("):
            return _Text(1)
        end = _matching(tail, 0)
        if end is None:
            return None if not final else _Text(1)
        return _Call("python") if calls_from_python(tail[:end], self.tools) else _Text(1)

    def _brace(self, tail: str, final: bool) -> _Decision:
        first = _FIRST_KEY.match(tail)
        key = first.group(1).strip() if first else None
        if key is not None and key.lower() not in KNOWN_KEYS and key not in self.tools:
            return _Text(1)  # {"city": ...} opens data, not a call
        return self._json(tail, final, key is not None)

    def _json(self, tail: str, final: bool, keyed: bool = False) -> _Decision:
        try:
            value, end = _json.read_value(tail, 0, close_truncated=final)
        except _json.Invalid:
            return _Text(1)
        except _json.Incomplete:
            if not final:
                return None
            return _Call("json") if keyed else _Text(1)  # a call cut off inside a string
        found = shape_of(value, self.tools)
        if isinstance(found, FinalAnswer):
            return _Show(end, found.text)
        if found:
            return _Call("json")
        return _Text(end)

    def _backtick(self, tail: str, final: bool) -> _Decision:
        if not tail.startswith("```"):
            if not final and "```".startswith(tail):
                return None
            return _Text(len(tail) - len(tail.lstrip("`")) or 1)
        newline = tail.find("\n")
        if newline < 0:
            return None if not final else _Text(len(tail))
        lang = tail[3:newline].strip().lower()
        content = tail[newline + 1 :]
        if not self._may_hold_call(lang, content, final):
            return _Code(newline + 1)
        close = re.search(r"^[ \t]*```[ \t]*$", content, re.M)
        if close is None and not final:
            return None
        end = newline + 1 + close.end() if close else len(tail)
        found = read_fenced(tail[:end], self.tools)
        if isinstance(found, FinalAnswer):
            return _Show(end, found.text)
        if found:
            return _Call("python" if lang == "tool_code" else "json")
        return _Text(end)

    def _may_hold_call(self, lang: str, content: str, final: bool) -> bool:
        if lang in _CALL_LANGS:
            return True
        if lang not in ("", "python", "py"):
            return False
        head = content.lstrip()
        if not head:
            return not final
        if lang == "" and head[0] in "{[<":
            return True
        word = re.match(r"\[?\s*([A-Za-z_][\w.]*)", head)
        return bool(word) and self.tools.canonical(word.group(1)) in self.tools  # type: ignore[union-attr]


def is_plain_line(text: str) -> bool:
    """Whether ``text`` is one line the scanner releases as ordinary text at once: no marker
    character, no ReAct keyword (nor the start of one) at its start."""
    if _CANDIDATE.search(text) is not None or _LINE_KEYWORD.match(text) is not None:
        return False
    letters = text.lstrip(" \t*").lower()
    # (a line longer than every keyword cannot be the start of one)
    return len(letters) > _LONGEST_KEYWORD or not any(k.startswith(letters) for k in _KEYWORDS)


def _is_prefix_of_any(text: str, options: list[str]) -> bool:
    return any(option.startswith(text) for option in options)


def _matching(text: str, start: int) -> int | None:
    """The end of the bracketed expression opening at or after ``start`` (quote-aware)."""
    depth = 0
    quote: str | None = None
    i = start
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth <= 0:
                return i + 1
        i += 1
    return None
