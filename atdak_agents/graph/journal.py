"""The call journal: model and tool calls are recorded as they return and replayed on resume.

When a step is re-executed after a crash, every call it had already made is answered from the
journal instead of being made again, so a resumed run never pays for (or repeats the side effects
of) a call twice. Calls are keyed by the task's path and the call's place in it
(``"map_docs[2]/summarise#model:1"``, ``"…#tool:call_7"``); node code stays deterministic given
the same inputs and replayed answers, so the keys line up.

Code that makes calls uses :func:`journaled`; outside a checkpointed run it just calls.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from .checkpoint import Checkpointer

__all__ = ["Journal", "TaskJournal", "current_journal", "journaled", "task_journal"]

T = TypeVar("T")


class Journal:
    """The journal of one step of one run."""

    __slots__ = ("_checkpointer", "recorded", "replayed", "run_id", "step")

    def __init__(
        self, checkpointer: Checkpointer, run_id: str, step: int, recorded: dict[str, Any]
    ) -> None:
        self._checkpointer = checkpointer
        self.run_id = run_id
        self.step = step
        self.recorded = recorded
        self.replayed = 0

    async def record(self, key: str, payload: Any) -> None:
        self.recorded[key] = payload
        await self._checkpointer.record_call(self.run_id, self.step, key, payload)


class TaskJournal:
    """One task's view of the step journal: numbers its calls in order."""

    __slots__ = ("_counters", "journal", "path")

    def __init__(self, journal: Journal, path: str) -> None:
        self.journal = journal
        self.path = path
        self._counters: dict[str, int] = {}

    def next_key(self, kind: str) -> str:
        count = self._counters.get(kind, 0) + 1
        self._counters[kind] = count
        return f"{self.path}#{kind}:{count}"


_current: ContextVar[TaskJournal | None] = ContextVar("atdak_agents_journal", default=None)


def current_journal() -> Journal | None:
    """The step journal the running code records into (``None`` outside a checkpointed run)."""
    entry = _current.get()
    return entry.journal if entry is not None else None


@contextmanager
def task_journal(journal: Journal | None, path: str) -> Iterator[TaskJournal | None]:
    """Journal the calls made inside the block under ``path`` (no-op without a journal)."""
    if journal is None:
        yield None
        return
    entry = TaskJournal(journal, path)
    token = _current.set(entry)
    try:
        yield entry
    finally:
        _current.reset(token)


async def journaled(
    kind: str,
    call: Callable[[], Awaitable[T]],
    *,
    dump: Callable[[T], Any],
    load: Callable[[Any], T],
    key: str | None = None,
) -> T:
    """``await call()`` unless the journal already holds its answer.

    ``kind`` numbers calls of that kind in order (``"model"``); pass ``key`` for calls with their
    own stable identity (a tool call id). ``dump``/``load`` convert the result to and from JSON.
    """
    entry = _current.get()
    if entry is None:
        return await call()
    full_key = f"{entry.path}#{kind}:{key}" if key is not None else entry.next_key(kind)
    journal = entry.journal
    if full_key in journal.recorded:
        journal.replayed += 1
        return load(journal.recorded[full_key])
    result = await call()
    await journal.record(full_key, dump(result))
    return result
