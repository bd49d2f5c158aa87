"""Fixtures: the replies the local Atdak server gives when a workflow runs offline.

Next to ``NAME.yaml`` lives ``NAME.fixture.yaml``::

    # replies the local Atdak server gives when NAME.yaml runs offline
    replies:
      - when: "Classify the customer message"     # a substring of the request's messages
        reply: '{"category": "shipping"}'
      - when: "/order #\\d+/"                       # /.../ is a regular expression
        reply: {text: "...", chunk_size: 3}         # a string, or the fields of testing.Reply
        times: 2                                     # requests it answers (default 1; 0: any)
      - reply: "anything else"                       # no `when`: whatever is still unanswered

Each request is answered by the first entry, in file order, that has uses left and whose
``when`` matches the request's message contents (joined with newlines). A request no entry
matches gets a loud HTTP 500 naming the fixture file and quoting the request, so a test fails
with the reason in its message. ``atdak-agents run --offline`` uses it; so can a test::

    responder = load_fixture("recipes/triage.fixture.yaml")
    async with LocalAtdakServer(responder) as server: ...

Problems in the file are reported all at once, each as ``file:line:col path: message (hint)``
(a :class:`~atdak_agents.exceptions.WorkflowError`).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from ..exceptions import WorkflowError
from ..workflow._interpolate import Interpolation, Interpolator
from ..workflow._source import Position, Source, WorkflowProblem, YamlPath
from ..workflow._yaml import read_yaml
from .responders import ReceivedRequest, Reply

__all__ = [
    "FixtureEntry",
    "FixtureResponder",
    "fixture_path",
    "load_fixture",
    "loads_fixture",
    "request_text",
]

_TOP_KEYS = ("replies",)
_ENTRY_KEYS = ("when", "reply", "times")
_REPLY_FIELDS = tuple(f.name for f in dataclasses.fields(Reply))
_REPLY_ADAPTER: TypeAdapter[Reply] = TypeAdapter(Reply)
_QUOTE = 120  # characters of an unmatched request quoted in the error


def fixture_path(workflow: str | os.PathLike[str]) -> Path:
    """Where the fixture of a workflow file lives: ``NAME.fixture.yaml`` next to ``NAME.yaml``
    (``NAME.fixture.yml`` is accepted when only that one exists)."""
    path = Path(workflow)
    preferred = path.with_name(f"{path.stem}.fixture.yaml")
    alternative = path.with_name(f"{path.stem}.fixture.yml")
    return alternative if not preferred.exists() and alternative.exists() else preferred


@dataclass(frozen=True)
class FixtureEntry:
    """One entry of a fixture: which requests it answers (``when``), how, and how often
    (``times``; 0 is any number). ``line`` is where it starts in the file."""

    reply: Reply
    when: str | None = None
    times: int = 1
    line: int = 0

    @property
    def pattern(self) -> re.Pattern[str] | None:
        """The regular expression of a ``/.../`` condition."""
        if self.when is not None and _is_pattern(self.when):
            return re.compile(self.when[1:-1])
        return None

    def matches(self, text: str) -> bool:
        """Whether this entry's condition holds for a request's message contents."""
        if self.when is None:
            return True
        pattern = self.pattern
        return pattern.search(text) is not None if pattern is not None else self.when in text

    def describe(self, index: int) -> str:
        where = f" (line {self.line})" if self.line else ""
        condition = f" when {self.when!r}" if self.when is not None else " (no `when`)"
        return f"entry {index + 1}{where}{condition}"


class FixtureResponder:
    """A local-server responder answering from fixture entries (see the module docstring).

    ``uses`` counts the requests each entry answered; :meth:`restore` sets them back (a resumed
    run continues where the first process left off). ``unused`` lists the entries that still
    expect requests, for tests that want every scripted reply used.
    """

    def __init__(self, entries: Sequence[FixtureEntry], *, file: str = "<fixture>") -> None:
        self.entries = list(entries)
        self.file = file
        self._uses = [0] * len(self.entries)

    def __repr__(self) -> str:
        return f"FixtureResponder({self.file!r}, {len(self.entries)} entries)"

    @property
    def uses(self) -> list[int]:
        return list(self._uses)

    def restore(self, uses: Sequence[int]) -> bool:
        """Set the use counts saved from an earlier process; ``False`` (nothing changed) when
        they do not fit this fixture (the file changed since)."""
        if len(uses) != len(self.entries) or not all(isinstance(u, int) for u in uses):
            return False
        self._uses = list(uses)
        return True

    @property
    def unused(self) -> list[FixtureEntry]:
        return [
            entry
            for entry, used in zip(self.entries, self._uses, strict=True)
            if entry.times and used < entry.times
        ]

    def __call__(self, request: ReceivedRequest) -> Reply:
        text = request_text(request)
        spent: list[str] = []
        for index, entry in enumerate(self.entries):
            if not entry.matches(text):
                continue
            if entry.times and self._uses[index] >= entry.times:
                spent.append(entry.describe(index))
                continue
            self._uses[index] += 1
            return entry.reply
        return self._unmatched(request, text, spent)

    def _unmatched(self, request: ReceivedRequest, text: str, spent: list[str]) -> Reply:
        quoted = _one_line(text, _QUOTE)
        last = _one_line(request.last_user_text, _QUOTE)
        about = f"; its last user message starts {last!r}" if last and last not in quoted else ""
        used_up = f"; matched but used up: {', '.join(spent)}" if spent else ""
        message = (
            f"no reply in {self.file} matches the request (model {request.model or '?'}) "
            f"that starts {quoted!r}{about}{used_up}. Add an entry "
            "whose `when` is a substring of the request (or /a regular expression/), or raise "
            "the `times` of the entry meant for it"
        )
        return Reply(
            status=500,
            error=message,
            error_code="fixture_unmatched",
            error_type="server_error",
            retry_after=0,  # retried at once: the answer cannot change
        )


def request_text(request: ReceivedRequest) -> str:
    """A request's message contents joined with newlines (what ``when`` is matched against)."""
    parts: list[str] = []
    for message in request.messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):  # content parts: keep the text ones
            content = "".join(
                str(part.get("text", "")) for part in content if isinstance(part, dict)
            )
        if content:
            parts.append(str(content))
    return "\n".join(parts)


def _one_line(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _is_pattern(when: str) -> bool:
    return len(when) >= 2 and when.startswith("/") and when.endswith("/")


# --------------------------------------------------------------------------- loading


def load_fixture(path: str | os.PathLike[str]) -> FixtureResponder:
    """Read and check a fixture file; every problem at once as a
    :class:`~atdak_agents.exceptions.WorkflowError` (``file:line:col path: message``)."""
    file = os.fspath(path)
    try:
        text = Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        problem = WorkflowProblem(Position(file, 1, 1), "", f"cannot read the fixture: {reason}")
        raise WorkflowError([problem], file=file) from None
    return loads_fixture(text, name=file)


def loads_fixture(text: str, *, name: str = "<fixture>") -> FixtureResponder:
    """:func:`load_fixture` from text; ``name`` is the file name shown in problems."""
    source = Source(name, text.splitlines())
    document = read_yaml(text, source, _Literal(env={}))
    checker = _Checker(source, list(document.problems))
    entries = checker.fixture(document.data) if not document.problems else []
    if checker.problems:
        problems = sorted(checker.problems, key=lambda p: (p.position.line, p.position.column or 0))
        raise WorkflowError(problems, file=name)
    return FixtureResponder(entries, file=name)


class _Literal(Interpolator):
    """Fixtures are data: ``${...}`` in a reply is text, not an environment reference."""

    def __call__(self, text: str) -> Interpolation:
        return Interpolation(text)


class _Checker:
    """Turns the read YAML into entries, collecting every problem with its position."""

    def __init__(self, source: Source, problems: list[WorkflowProblem]) -> None:
        self.source = source
        self.problems = problems

    def fail(self, path: YamlPath, message: str, hint: str | None = None, **at: Any) -> None:
        self.problems.append(self.source.problem(path, message, hint, as_written=True, **at))

    def fixture(self, data: Any) -> list[FixtureEntry]:
        if not isinstance(data, dict) or "replies" not in data:
            self.fail((), "a fixture is a mapping with a `replies:` list", _EXAMPLE)
            return []
        self.unknown_keys(data, (), _TOP_KEYS, "fixture")
        replies = data["replies"]
        if not isinstance(replies, list) or not replies:
            self.fail(("replies",), "`replies` must be a non-empty list of entries", _EXAMPLE)
            return []
        entries = [self.entry(item, ("replies", i)) for i, item in enumerate(replies)]
        return [entry for entry in entries if entry is not None]

    def unknown_keys(
        self, data: dict[str, Any], path: YamlPath, known: Sequence[str], what: str
    ) -> None:
        for key in data:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
                self.fail((*path, key), f"unknown {what} key {key!r}", hint, at_key=True)

    def entry(self, item: Any, path: YamlPath) -> FixtureEntry | None:
        if not isinstance(item, dict):
            self.fail(path, "an entry is a mapping: {when: ..., reply: ..., times: ...}")
            return None
        self.unknown_keys(item, path, _ENTRY_KEYS, "entry")
        when, times = self.when(item, path), self.times(item, path)
        if "reply" not in item:
            self.fail(path, "missing required key 'reply'", "the text (or Reply fields) to send")
            return None
        reply = self.reply(item["reply"], (*path, "reply"))
        if reply is None or when is False or times is None:
            return None
        line = self.source.position(path).line
        return FixtureEntry(reply, None if when is True else when, times, line)

    def when(self, item: dict[str, Any], path: YamlPath) -> str | bool:
        """The condition; ``True`` when there is none, ``False`` when it is wrong."""
        if "when" not in item or item["when"] is None:
            return True
        when = item["when"]
        if not isinstance(when, str) or not when:
            self.fail((*path, "when"), "`when` must be a non-empty string", _WHEN_HINT)
            return False
        if _is_pattern(when):
            try:
                re.compile(when[1:-1])
            except re.error as exc:
                self.fail((*path, "when"), f"invalid regular expression: {exc}", _WHEN_HINT)
                return False
        return when

    def times(self, item: dict[str, Any], path: YamlPath) -> int | None:
        times = item.get("times", 1)
        if isinstance(times, bool) or not isinstance(times, int) or times < 0:
            self.fail(
                (*path, "times"),
                f"`times` must be a whole number >= 0 (got {times!r})",
                "how many requests the entry answers; 0 means any number",
            )
            return None
        return times

    def reply(self, value: Any, path: YamlPath) -> Reply | None:
        if isinstance(value, str):
            return Reply(text=value)
        if not isinstance(value, dict):
            self.fail(path, "a reply is a text or a mapping of Reply fields", _REPLY_HINT)
            return None
        unknown = [key for key in value if key not in _REPLY_FIELDS]
        if value and len(unknown) == len(value):  # most likely JSON meant as the text
            keys = ", ".join(map(repr, unknown))
            self.fail(path, f"a reply mapping holds Reply fields, not {keys}", _REPLY_HINT)
            return None
        for key in unknown:
            close = difflib.get_close_matches(key, _REPLY_FIELDS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else _REPLY_HINT
            self.fail((*path, key), f"unknown reply field {key!r}", hint, at_key=True)
        try:
            reply = _REPLY_ADAPTER.validate_python(value)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                where = (*path, *(p for p in error["loc"] if isinstance(p, str | int)))
                message = str(error["msg"])
                self.fail(where[: len(path) + 1], message[:1].lower() + message[1:])
            return None
        return None if unknown else reply


_EXAMPLE = 'for example:  replies: [{when: "Classify", reply: "shipping"}]'
_WHEN_HINT = "a substring of the request's messages, or /a regular expression/"
_REPLY_HINT = (
    f"Reply fields: {', '.join(_REPLY_FIELDS)}; to answer with JSON text, quote it: "
    """reply: '{"category": "shipping"}'"""
)
