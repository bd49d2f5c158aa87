"""Redaction: secrets never reach a trace, a log line or an error.

A :class:`Redactor` knows secret values (API keys, values interpolated from ``${ENV}``) and
patterns (bearer tokens, ``sk-...`` keys, configured regular expressions) and replaces them with
``***``. It works on text, on serialised events (bytes), on nested values and on events, and it is
a structlog processor too::

    structlog.configure(processors=[redactor, structlog.processors.JSONRenderer()])

Scanning is cheap when there is nothing to find: secrets are looked up as plain substrings, and
each default pattern only runs when its literal *hint* (``bearer``, ``sk-``) is in the text.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import re
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, TypeVar

from .events import SENSITIVE_FIELDS, EventBase

__all__ = ["DEFAULT_PATTERNS", "MASK", "Redactor"]

MASK = "***"

DEFAULT_PATTERNS: tuple[str, ...] = (
    r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{8,}",
    r"\bsk-[A-Za-z0-9_-]{8,}",
)

# literal text (lower case) that every match of a default pattern contains
_HINTS: dict[str, str] = {DEFAULT_PATTERNS[0]: "bearer", DEFAULT_PATTERNS[1]: "sk-"}

_MIN_SECRET = 4  # shorter values would mask ordinary words
_SCALARS = frozenset({int, float, bool, type(None)})  # nothing to mask in them

E = TypeVar("E", bound=EventBase)


class Redactor:
    """Masks known secret values and secret-looking patterns."""

    def __init__(
        self, secrets: Iterable[str] = (), patterns: Iterable[str] = DEFAULT_PATTERNS
    ) -> None:
        self._secrets: list[str] = []
        self._byte_secrets: list[builtins.bytes] = []
        self._patterns: list[tuple[re.Pattern[str], str | None]] = []
        self._byte_hints: list[builtins.bytes] = []
        self._always_scan = False  # a pattern without a hint must run on everything
        for pattern in patterns:
            self.add_pattern(pattern)
        for secret in secrets:
            self.add_secret(secret)

    def __repr__(self) -> str:  # never shows the secrets themselves
        return f"Redactor(secrets={len(self._secrets)}, patterns={len(self._patterns)})"

    def add_secret(self, value: str) -> None:
        """Mask ``value`` from now on (values shorter than 4 characters are ignored)."""
        if len(value) < _MIN_SECRET:
            return
        escaped = json.dumps(value, ensure_ascii=False)[1:-1]  # how it appears inside JSON
        for form in {value, escaped}:
            if form not in self._secrets:
                self._secrets.append(form)
                self._byte_secrets.append(form.encode("utf-8"))
        self._secrets.sort(key=len, reverse=True)  # longest first: no partial leftovers

    def add_pattern(self, pattern: str, *, hint: str | None = None) -> None:
        """Mask every match of the regular expression ``pattern``.

        ``hint``: a literal that every match contains (compared case-insensitively); the pattern
        then only runs on text containing it, which keeps scanning cheap.
        """
        hint = hint if hint is not None else _HINTS.get(pattern)
        self._patterns.append((re.compile(pattern), hint.lower() if hint else None))
        if hint is None:
            self._always_scan = True
        else:
            self._byte_hints.append(hint.lower().encode("utf-8"))

    # ------------------------------------------------------------------ text

    def text(self, value: str) -> str:
        """``value`` with every secret masked."""
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        lowered: str | None = None
        for pattern, hint in self._patterns:
            if hint is not None:
                if lowered is None:
                    lowered = value.lower()
                if hint not in lowered:
                    continue
            value = pattern.sub(MASK, value)
        return value

    def bytes(self, value: bytes) -> bytes:
        """Like :meth:`text`, for UTF-8 data such as a serialised event (returned as is, without
        decoding, when it holds nothing to mask)."""
        if not self._may_hold(value):
            return value
        return self.text(value.decode("utf-8", errors="replace")).encode("utf-8")

    def _may_hold(self, value: builtins.bytes) -> bool:
        if self._always_scan:
            return True
        for secret in self._byte_secrets:
            if secret in value:
                return True
        lowered = value.lower()
        for hint in self._byte_hints:  # noqa: SIM110 - a loop: no generator on the hot path
            if hint in lowered:
                return True
        return False

    # ------------------------------------------------------------------ values and events

    def value(self, value: Any) -> Any:
        """A nested structure (dicts, lists, strings) with secrets masked in its text: a copy
        where something was masked, the same object where nothing was (numbers, booleans and
        text without secrets cost a type check or a scan, nothing is rebuilt)."""
        kind = type(value)
        if kind in _SCALARS:
            return value
        if kind is str or isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            for item in value.values():
                if self.value(item) is not item:
                    return {k: self.value(v) for k, v in value.items()}
            return value
        if isinstance(value, list | tuple):
            for item in value:
                if self.value(item) is not item:
                    return [self.value(v) for v in value]
            return value
        return value

    def event(self, event: E) -> E:
        """``event`` with secrets masked in the fields that may hold outside data (the same
        object when there was nothing to mask)."""
        changes: dict[str, Any] = {}
        for name in SENSITIVE_FIELDS[type(event)]:
            value = getattr(event, name)
            if value:
                masked = self.value(value)
                if masked is not value:
                    changes[name] = masked
        return dataclasses.replace(event, **changes) if changes else event

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """structlog processor: mask secrets in every value of the event dict."""
        for key, item in list(event_dict.items()):
            event_dict[key] = self.value(item)
        return event_dict
