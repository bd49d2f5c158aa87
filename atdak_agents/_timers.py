"""Long time limits on a coarse clock: one timer per event loop, not one per call.

Every model call runs under a time limit (600 s by default) and every tool call too (60 s), and
almost none of them ever fires. An ``asyncio`` timer per call costs a heap push and, once
cancelled, a heap clean-up, whose comparisons are Python calls: about 40,000 instructions a call
at 64 calls in flight, a noticeable share of an agent run. A limit of :data:`COARSE_FROM` seconds
or more is kept here instead: the loop's :class:`Clock` looks at the calls in flight every
:data:`TICK` seconds, so such a limit fires up to one tick late (aiohttp itself rounds limits
of 5 s and more up to the next whole second). Shorter limits get a timer of their own, as exact
as ``asyncio`` makes them.

``async with timeout(seconds) as scope`` behaves like ``asyncio.timeout(seconds)`` (the block is
cancelled when the time is up and :class:`TimeoutError` raised from it; ``scope.expired()``
tells whether that happened).
"""

from __future__ import annotations

import asyncio
import sys
import weakref
from types import TracebackType
from typing import Any, Protocol

__all__ = ["COARSE_FROM", "TICK", "Clock", "clock", "expired", "timeout"]

TICK = 1.0
"""Seconds between two looks of a loop's clock at its limits: how late a coarse limit may fire."""
COARSE_FROM = 5.0
"""Limits at least this long go on the coarse clock; shorter ones get a timer of their own."""

_CLOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Clock] = (
    weakref.WeakKeyDictionary()
)  # the default registry: one clock per running loop


class _Limit(Protocol):
    """What a :class:`Clock` watches: a time (loop time) and what to do when it comes."""

    _when: float

    def _expire(self) -> None: ...


class Clock:
    """The coarse limits of one event loop: a single loop timer, running only while some are
    pending, expires every limit whose time has come (the limits themselves are the keys: no
    key, tuple or callback object is made per limit). It holds its loop weakly: the registry's
    key must not be kept alive by its own value."""

    __slots__ = ("_due", "_ticking", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = weakref.ref(loop)
        self._due: set[_Limit] = set()
        self._ticking = False  # (its timer is not kept here: a timer holds its loop)

    def watch(self, limit: _Limit) -> None:
        """Expire ``limit`` at its time (up to :data:`TICK` later)."""
        self._due.add(limit)
        if not self._ticking:
            self._ticking = True
            asyncio.get_running_loop().call_later(TICK, self._fire)

    def forget(self, limit: _Limit) -> None:
        """Stop watching ``limit`` (nothing happens if it already expired)."""
        self._due.discard(limit)

    def _fire(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        due = self._due
        for limit in [limit for limit in due if limit._when <= now]:
            due.discard(limit)
            limit._expire()
        self._ticking = bool(due)
        if due:
            loop.call_later(TICK, self._fire)


_last: Clock | None = None
"""The clock :func:`clock` gave last: most programs run one loop, whose clock is then found
without a registry look-up (a ``WeakKeyDictionary.get`` is a Python call)."""


def clock() -> Clock:
    """The coarse clock of the running event loop."""
    global _last
    loop = asyncio.get_running_loop()
    last = _last
    if last is not None and last.loop() is loop:
        return last
    found = _CLOCKS.get(loop)
    if found is None:
        found = _CLOCKS[loop] = Clock(loop)
    _last = found
    return found


if sys.version_info >= (3, 11):

    class _CoarseTimeout:
        """``asyncio.timeout`` for a long limit, kept on the loop's :class:`Clock` (the same
        cancel-then-raise logic as ``asyncio.Timeout``, Python 3.11+)."""

        __slots__ = ("_cancelling", "_clock", "_seconds", "_state", "_task", "_when")

        # Set on entering (a scope is made for every model and tool call, and entered at once):
        _task: asyncio.Task[Any]
        _cancelling: int  # the task's cancel requests from elsewhere, when it entered
        _clock: Clock
        _when: float  # loop time

        def __init__(self, seconds: float) -> None:
            self._seconds = seconds
            self._state = 0  # 0 entered or not yet, 1 expiring, 2 expired, 3 exited

        def expired(self) -> bool:
            """Whether the limit was reached (the block was cancelled for it)."""
            return self._state in (1, 2)

        async def __aenter__(self) -> _CoarseTimeout:
            task = asyncio.current_task()
            if task is None:
                raise RuntimeError("timeout() should be used inside a task")
            self._task = task
            self._cancelling = task.cancelling()
            watching = self._clock = clock()
            self._when = task.get_loop().time() + self._seconds
            watching.watch(self)
            return self

        def _expire(self) -> None:
            self._state = 1
            self._task.cancel()

        async def __aexit__(
            self,
            kind: type[BaseException] | None,
            error: BaseException | None,
            traceback: TracebackType | None,
        ) -> None:
            self._clock.forget(self)
            if self._state == 1:
                self._state = 2
                if self._task.uncancel() <= self._cancelling and kind is asyncio.CancelledError:
                    raise TimeoutError from error
            else:
                self._state = 3


if sys.version_info >= (3, 11):  # (decided once: timeout() is called for every model call)

    def timeout(seconds: float | None) -> Any:
        """An async context manager that cancels its block after ``seconds`` (``None``: never),
        like ``asyncio.timeout``; a long limit is kept on the loop's coarse clock."""
        if seconds is not None and seconds >= COARSE_FROM:
            return _CoarseTimeout(seconds)
        return asyncio.timeout(seconds)

else:
    from async_timeout import timeout as _fallback  # type: ignore[import-not-found]

    def timeout(seconds: float | None) -> Any:
        """An async context manager that cancels its block after ``seconds`` (``None``: never):
        ``async_timeout``'s, aiohttp's own dependency on Python 3.10."""
        return _fallback(seconds)


def expired(scope: Any) -> bool:
    """Whether a scope made by :func:`timeout` fired (``asyncio.Timeout.expired()``, ours, or
    ``async_timeout``'s flag on Python 3.10)."""
    fired = scope.expired
    return bool(fired() if callable(fired) else fired)
