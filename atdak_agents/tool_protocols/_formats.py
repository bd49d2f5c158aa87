"""Reading tool calls out of the part of a model's turn where call markup starts.

One extractor per format family, chosen by what the streaming scanner saw first (its *hint*),
with the plain-JSON and Python-call readers as fallbacks. Each returns the calls it read, a
structured final answer if that is what it found, and the problems that stopped it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import _json
from ._shapes import FinalAnswer, RawCall, ToolIndex, calls_from_python, read_shape, shape_of

__all__ = ["Extracted", "extract", "strip_fence"]


@dataclass
class Extracted:
    calls: list[RawCall] = field(default_factory=list)
    final: str | None = None
    problems: list[str] = field(default_factory=list)

    def add(self, found: list[RawCall] | FinalAnswer | None, problem: str) -> None:
        if isinstance(found, FinalAnswer):
            self.final = found.text if self.final is None else self.final
        elif found:
            self.calls.extend(found)
        else:
            self.problems.append(problem)


_FENCE = re.compile(r"^\s*```[\w.+-]*[ \t]*\n?(.*?)(?:\n[ \t]*```.*)?\s*$", re.S)


def strip_fence(text: str) -> str:
    """The content of a fenced block (or ``text`` itself when it is not fenced)."""
    match = _FENCE.match(text)
    return match.group(1) if match and text.lstrip().startswith("```") else text


def _clip(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _xml_value(text: str) -> Any:
    """A parameter value written between tags: JSON objects/arrays are read, the rest is text."""
    if text.startswith("\n"):
        text = text[1:]
    if text.endswith("\n"):
        text = text[:-1]
    stripped = text.strip()
    if stripped[:1] in "[{":
        try:
            return _json.loads(stripped, close_truncated=False)
        except ValueError:
            pass
    return text


def _json_then_rest(text: str, tools: ToolIndex) -> list[RawCall] | FinalAnswer | None:
    """Calls from JSON at the start of ``text`` (text after the value is ignored)."""
    start = len(text) - len(text.lstrip())
    try:
        value, _ = _json.read_value(text, start, close_truncated=True)
    except ValueError:
        return None
    return shape_of(value, tools)


# --------------------------------------------------------------------------- tagged formats


def _body_calls(body: str, tools: ToolIndex) -> list[RawCall] | FinalAnswer | None:
    """The calls inside a ``<tool_call>`` block, in any of the shapes models put there."""
    body = strip_fence(body.strip()).strip()
    if body.startswith("<function="):
        return _function_tags(body, tools).calls or None
    glm = re.match(r"([\w.\-]+)\s*\n?\s*(<arg_key>.*)", body, re.S)
    if glm:  # GLM: name <arg_key>k</arg_key><arg_value>v</arg_value>
        pairs = re.findall(
            r"<arg_key>(.*?)</arg_key>\s*<arg_value>(.*?)(?:</arg_value>|$)", body, re.S
        )
        return [RawCall(glm.group(1), {k.strip(): _xml_value(v) for k, v in pairs})]
    found = _json_then_rest(body, tools)
    if found is not None:
        return found
    named = re.match(r"([\w.\-]+)\s*[\n:]?\s*(\{.*)", body, re.S)  # name {json}
    if named:
        found = _json_then_rest(named.group(2), tools)
        if found is None:
            try:
                return [RawCall(named.group(1), _json.loads(named.group(2)))]
            except ValueError:
                return None
        return found
    return calls_from_python(body, tools)


def _hermes(region: str, tools: ToolIndex) -> Extracted:
    out = Extracted()
    pattern = r"<tool_?calls?>(.*?)(?=</tool_?calls?>|<tool_?calls?>|<\|im_end\|>|$)"
    for match in re.finditer(pattern, region, re.S):
        body = match.group(1)
        if body.strip():
            out.add(_body_calls(body, tools), f"the <tool_call> block {_clip(body)!r}")
    return out


def _function_tags(region: str, tools: ToolIndex) -> Extracted:
    out = Extracted()
    pattern = r"<function=([^>\n]+?)>(.*?)(?=</function>|<function=|</tool_call>|$)"
    for match in re.finditer(pattern, region, re.S):
        name, body = match.group(1).strip().strip("'\""), match.group(2)
        if body.strip().startswith("{"):
            try:
                out.calls.append(RawCall(name, _json.loads(body.strip())))
            except ValueError as exc:
                out.problems.append(f"the arguments of <function={name}> ({exc})")
            continue
        pairs = re.findall(
            r"<parameter=([^>\n]+?)>(.*?)(?=</parameter>|<parameter=|</function>|$)", body, re.S
        )
        out.calls.append(RawCall(name, {k.strip(): _xml_value(v) for k, v in pairs}))
    return out


_INVOKE_PARAMETER = (
    r"<parameter\s+name\s*=\s*[\"']([^\"']+)[\"']\s*>(.*?)(?=</parameter>|<parameter\b|$)"
)


def _invoke(region: str, tools: ToolIndex) -> Extracted:
    out = Extracted()
    for match in re.finditer(r"<invoke\b([^>]*)>(.*?)(?=</invoke>|<invoke\b|$)", region, re.S):
        attributes, body = match.groups()
        named = re.search(r"name\s*=\s*[\"']([^\"']+)[\"']", attributes)
        legacy = re.search(r"<tool_name>\s*(.*?)\s*</tool_name>", body, re.S)
        if named:
            pairs = re.findall(_INVOKE_PARAMETER, body, re.S)
        elif legacy:
            inner = re.search(r"<parameters>(.*?)(?:</parameters>|$)", body, re.S)
            pairs = re.findall(r"<([\w.\-]+)>(.*?)</\1>", inner.group(1) if inner else "", re.S)
        else:
            out.problems.append(f"an <invoke> without a tool name: {_clip(match.group(0))!r}")
            continue
        name = named.group(1) if named else legacy.group(1) if legacy else ""
        out.calls.append(RawCall(name, {k.strip(): _xml_value(v) for k, v in pairs}))
    return out


def _mistral(region: str, tools: ToolIndex) -> Extracted:
    out = Extracted()
    for segment in region.split("[TOOL_CALLS]")[1:]:
        segment = segment.replace("</s>", "").strip()
        if segment[:1] in "[{":
            out.add(
                _json_then_rest(segment, tools), f"the JSON after [TOOL_CALLS] {_clip(segment)!r}"
            )
            continue
        out.add(_mistral_named(segment), f"the call after [TOOL_CALLS] {_clip(segment)!r}")
    return out


def _mistral_named(segment: str) -> list[RawCall] | None:
    """``name[ARGS]{...}`` (also with ``[CALL_ID]id`` and without ``[ARGS]``), repeated."""
    calls: list[RawCall] = []
    head = re.compile(r"\s*([\w.\-]+)\s*(?:\[CALL_ID\]\s*([\w-]+)\s*)?(?:\[ARGS\])?\s*(?=[{\[])")
    pos = 0
    while pos < len(segment) and (match := head.match(segment, pos)):
        try:
            arguments, pos = _json.read_value(segment, match.end(), close_truncated=True)
        except ValueError:
            return None
        calls.append(RawCall(match.group(1), arguments, match.group(2)))
    return calls or None


_LLAMA_END = re.compile(r"<\|(?:eom_id|eot_id|python_end|end_of_text)\|>")


def _llama(region: str, tools: ToolIndex) -> Extracted:
    out = Extracted()
    for part in re.split(r"<\|python_(?:tag|start)\|>", region)[1:]:
        body = _LLAMA_END.split(part, maxsplit=1)[0].strip()
        out.add(_json_sequence(body, tools) or calls_from_python(body, tools), _clip(body))
    return out


def _json_sequence(text: str, tools: ToolIndex) -> list[RawCall] | FinalAnswer | None:
    """JSON calls one after another, separated by blanks, ``;`` or commas."""
    calls: list[RawCall] = []
    pos = 0
    while pos < len(text):
        while pos < len(text) and text[pos] in " \t\r\n;,":
            pos += 1
        if pos >= len(text):
            break
        try:
            value, pos = _json.read_value(text, pos, close_truncated=True)
        except ValueError:
            return None
        found = shape_of(value, tools)
        if isinstance(found, FinalAnswer):
            return found if not calls else None
        if not found:
            return None
        calls.extend(found)
    return calls or None


_HARMONY_STOP = re.compile(r"<\|(?:call|end|return|start|channel)\|>")
_HARMONY_BODY_END = re.compile(r"<\|(?:call|end|return|start)\|>")


def _harmony(region: str, tools: ToolIndex) -> Extracted:
    out = Extracted()
    done = 0
    for match in re.finditer(r"to=([\w.\-]+)", region):
        if match.start() < done:
            continue  # inside a message body already read
        opened = region.find("<|message|>", match.end())
        if opened < 0 or _HARMONY_BODY_END.search(region, match.end(), opened):
            out.problems.append(f"the call to {match.group(1)} has no <|message|> with arguments")
            continue
        body_start = opened + len("<|message|>")
        stop = _HARMONY_STOP.search(region, body_start)
        done = stop.start() if stop else len(region)
        body = region[body_start:done].strip()
        try:
            out.calls.append(RawCall(match.group(1), _json.loads(body) if body else {}))
        except ValueError as exc:
            out.problems.append(f"the arguments of the call to {match.group(1)} ({exc})")
    return out


# --------------------------------------------------------------------------- ReAct

_ACTION = re.compile(r"^[ \t>*#-]*Action[ \t]*\d*[ \t]*:[ \t*]*(.*?)[ \t*]*$", re.M | re.I)
_INPUT = re.compile(r"^[ \t>*#-]*Action[ \t]*Input[ \t]*\d*[ \t]*:[ \t*]*", re.M | re.I)
_INPUT_END = re.compile(
    r"^[ \t>*#-]*(?:Observation|Thought|Action|Final[ \t]*Answer)[ \t]*\d*[ \t]*:", re.M | re.I
)


def _react(region: str, tools: ToolIndex) -> Extracted:
    out = Extracted()
    actions = list(_ACTION.finditer(region))
    for index, action in enumerate(actions):
        limit = actions[index + 1].start() if index + 1 < len(actions) else len(region)
        value = action.group(1).strip().strip("`'\"").strip()
        inline = re.match(r"([\w.\-]+)\s*([(\[{].*)$", value, re.S)
        if inline:  # Action: get_weather({"city": "Paris"}) or get_weather(city="Paris")
            calls = calls_from_python(value, tools) or _inline_json(inline.groups())
            out.add(calls, f"the action {_clip(value)!r}")
            continue
        given = _INPUT.search(region, action.end(), limit)
        arguments: Any = {}
        if given:
            end = _INPUT_END.search(region, given.end(), limit)
            arguments = _react_input(region[given.end() : end.start() if end else limit])
        out.calls.append(RawCall(value, arguments))
    return out


def _inline_json(groups: tuple[str, ...]) -> list[RawCall] | None:
    name, rest = groups
    inner = rest[1:-1] if rest[:1] in "([" and rest[-1:] in ")]" else rest
    try:
        return [RawCall(name, _json.loads(inner) if inner.strip() else {})]
    except ValueError:
        return None


def _react_input(text: str) -> Any:
    text = strip_fence(text.strip()).strip()
    if text.startswith("`") and text.endswith("`"):
        text = text.strip("`").strip()
    if text[:1] in "[{":
        try:
            return _json.loads(text)
        except ValueError:
            return text
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


# --------------------------------------------------------------------------- JSON and Python


def _json_blocks(region: str, tools: ToolIndex) -> Extracted:
    """Every JSON call in the region, fenced or bare, in order (text between is skipped)."""
    out = Extracted()
    pos = 0
    while True:
        start = _next_json_start(region, pos)
        if start < 0:
            break
        try:
            value, end = _json.read_value(region, start, close_truncated=True)
        except _json.Invalid as exc:
            pos = max(start + 1, exc.position)
            continue
        except _json.Incomplete:
            out.problems.append(f"the JSON {_clip(region[start:])!r} ends before it is complete")
            break
        found = shape_of(value, tools)
        if isinstance(found, FinalAnswer) and not out.calls:
            out.final = found.text
            break
        if isinstance(found, list):
            out.calls.extend(found)
        pos = end
    return out


def _next_json_start(text: str, pos: int) -> int:
    match = re.compile(r"[{\[]").search(text, pos)
    return match.start() if match else -1


def _python(region: str, tools: ToolIndex) -> Extracted:
    out = Extracted()
    body = strip_fence(region.strip()).strip()
    out.add(calls_from_python(body, tools), f"the call {_clip(body)!r}")
    return out


# --------------------------------------------------------------------------- others


def _deepseek(region: str, tools: ToolIndex) -> Extracted:
    """DeepSeek V3 ``<｜tool▁call▁begin｜>[function<｜tool▁sep｜>]name ... <｜tool▁call▁end｜>``."""
    out = Extracted()
    pattern = r"<｜tool▁call▁begin｜>(.*?)(?=<｜tool▁call▁end｜>|<｜tool▁call▁begin｜>|$)"
    for match in re.finditer(pattern, region, re.S):
        parts = match.group(1).split("<｜tool▁sep｜>")
        head, body = (parts[0], parts[1]) if len(parts) == 2 else ("", parts[-1])
        named = re.match(r"\s*([\w.\-]+)\s*(.*)$", body, re.S)
        if head.strip() not in ("", "function") or not named:
            name, arguments = head.strip(), body
        else:
            name, arguments = named.group(1), named.group(2)
        try:
            out.calls.append(RawCall(name, _json.loads(strip_fence(arguments.strip()).strip())))
        except ValueError as exc:
            out.problems.append(f"the arguments of the call to {name} ({exc})")
    return out


def _kimi(region: str, tools: ToolIndex) -> Extracted:
    """Kimi K2 ``<|tool_call_begin|>functions.name:0<|tool_call_argument_begin|>{...}``."""
    out = Extracted()
    pattern = (
        r"<\|tool_call_begin\|>\s*([\w.\-]+?)(?::\d+)?\s*<\|tool_call_argument_begin\|>"
        r"(.*?)(?=<\|tool_call_end\|>|<\|tool_call_begin\|>|<\|tool_calls_section_end\|>|$)"
    )
    for match in re.finditer(pattern, region, re.S):
        try:
            out.calls.append(RawCall(match.group(1), _json.loads(match.group(2).strip())))
        except ValueError as exc:
            out.problems.append(f"the arguments of the call to {match.group(1)} ({exc})")
    return out


Extractor = Callable[[str, ToolIndex], Extracted]

EXTRACTORS: dict[str, Extractor] = {
    "hermes": _hermes,
    "function_tag": _function_tags,
    "invoke": _invoke,
    "mistral": _mistral,
    "llama": _llama,
    "harmony": _harmony,
    "react": _react,
    "json": _json_blocks,
    "python": _python,
    "deepseek": _deepseek,
    "kimi": _kimi,
}


def extract(region: str, hint: str, tools: ToolIndex) -> Extracted:
    """The calls in ``region`` read as ``hint``; falls back to JSON and Python readers."""
    first = EXTRACTORS[hint](region, tools)
    if first.calls or first.final is not None:
        return first
    for fallback in ("json", "python"):
        if fallback != hint:
            other = EXTRACTORS[fallback](region, tools)
            if other.calls or other.final is not None:
                return other
    if not first.problems:
        first.problems.append(f"no tool call could be read in {_clip(region)!r}")
    return first


def read_fenced(block: str, tools: ToolIndex) -> list[RawCall] | FinalAnswer | None:
    """Calls (or a final answer) in the content of a fenced block, else ``None``."""
    content = strip_fence(block).strip()
    found = read_shape(content, tools)
    if found is not None:
        return found
    if "<tool_call>" in content:
        return _hermes(content, tools).calls or None
    return calls_from_python(content, tools)
