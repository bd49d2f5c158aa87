"""Per-key limits: how many runs one server key may have in progress."""

from __future__ import annotations

from ._errors import HTTPError

__all__ = ["KeyLimiter"]


class KeyLimiter:
    """At most ``limit`` runs in progress per server key."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._active: dict[str, int] = {}

    def acquire(self, key: str) -> None:
        count = self._active.get(key, 0)
        if count >= self.limit:
            raise HTTPError(
                429,
                f"this key already has {count} runs in progress (the limit is {self.limit}); "
                "retry when one has finished",
                code="too_many_runs",
                headers={"Retry-After": "1"},
            )
        self._active[key] = count + 1

    def release(self, key: str) -> None:
        count = self._active.get(key, 0) - 1
        if count > 0:
            self._active[key] = count
        else:
            self._active.pop(key, None)

    def active(self, key: str) -> int:
        return self._active.get(key, 0)
