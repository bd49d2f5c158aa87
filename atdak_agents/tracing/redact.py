"""Redaction: secrets never reach a trace, a log line or an error.

A :class:`Redactor` knows secret values (API keys, values interpolated from ``${ENV}``) and
patterns (bearer tokens, ``sk-...`` keys, configured regular expressions) and replaces them with
``***``. It works on text, bytes and nested values, and is also a structlog processor.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

__all__ = ["DEFAULT_PATTERNS", "MASK", "Redactor"]

MASK = "***"

DEFAULT_PATTERNS: tuple[str, ...] = (
    r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{8,}",
    r"\bsk-[A-Za-z0-9_-]{8,}",
)

_MIN_SECRET = 4  # shorter values would mask ordinary words


class Redactor:
    """Masks known secret values and secret-looking patterns."""

    def __init__(
        self, secrets: Iterable[str] = (), patterns: Iterable[str] = DEFAULT_PATTERNS
    ) -> None:
        self._secrets: list[str] = []
        self._patterns = [re.compile(p) for p in patterns]
        for secret in secrets:
            self.add_secret(secret)

    def add_secret(self, value: str) -> None:
        """Mask ``value`` from now on (values shorter than 4 characters are ignored)."""
        if len(value) >= _MIN_SECRET and value not in self._secrets:
            self._secrets.append(value)
            self._secrets.sort(key=len, reverse=True)  # longest first: no partial leftovers

    def add_pattern(self, pattern: str) -> None:
        self._patterns.append(re.compile(pattern))

    def text(self, value: str) -> str:
        """``value`` with every secret masked."""
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        for pattern in self._patterns:
            value = pattern.sub(MASK, value)
        return value

    def bytes(self, value: bytes) -> bytes:
        """Like :meth:`text`, for UTF-8 encoded data such as a serialised event."""
        return self.text(value.decode("utf-8")).encode("utf-8")

    def value(self, value: Any) -> Any:
        """A copy of a nested structure (dicts, lists, strings) with secrets masked."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """structlog processor: mask secrets in every value of the event dict."""
        for key, item in list(event_dict.items()):
            event_dict[key] = self.value(item)
        return event_dict
