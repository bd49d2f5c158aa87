"""A blocking facade over any memory store, for scripts that have no event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable
from types import TracebackType
from typing import Any, TypeVar

from ..exceptions import UsageError
from ..messages import MessageLike
from .base import MemoryStore, SearchHit, SessionInfo, StoredMessage

__all__ = ["SyncMemoryStore"]

_T = TypeVar("_T")


class SyncMemoryStore:
    """The same operations as :class:`MemoryStore`, without ``await``.

    ``with SQLiteStore("chat.db").sync() as memory: memory.append("s1", {...})``. Each call
    runs the store's coroutine to completion on a private event loop, so it costs a few tens
    of microseconds more than the async call. It must not be used inside a running event loop
    (use the store itself there); closing the facade closes the store.
    """

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self._loop = asyncio.new_event_loop()

    def __repr__(self) -> str:
        return f"SyncMemoryStore({self.store!r})"

    def _run(self, operation: str, coro: Coroutine[Any, Any, _T]) -> _T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coro.close()
            raise UsageError(
                f"{self!r}.{operation}() was called inside a running event loop, where it would "
                f"block it: use `await store.{operation}(...)` on the store itself"
            )
        if self._loop.is_closed():
            coro.close()
            raise UsageError(f"{self!r} is closed: create a new store")
        return self._loop.run_until_complete(coro)

    def append(
        self, session_id: str, messages: MessageLike | Iterable[MessageLike]
    ) -> list[StoredMessage]:
        """Store one message or several, atomically, at the end of the session."""
        return self._run("append", self.store.append(session_id, messages))

    def load(
        self,
        session_id: str,
        *,
        last: int | None = None,
        since: float | None = None,
        after_id: int | None = None,
    ) -> list[StoredMessage]:
        """The session's messages, oldest first (see :meth:`MemoryStore.load`)."""
        coro = self.store.load(session_id, last=last, since=since, after_id=after_id)
        return self._run("load", coro)

    def clear(self, session_id: str) -> int:
        """Remove the session's messages (the session stays listed); returns how many."""
        return self._run("clear", self.store.clear(session_id))

    def delete_session(self, session_id: str) -> bool:
        """Remove the session and all its messages; returns whether it existed."""
        return self._run("delete_session", self.store.delete_session(session_id))

    def list_sessions(self, limit: int | None = None) -> list[SessionInfo]:
        """Every session (or the ``limit`` most recent), most recently updated first."""
        return self._run("list_sessions", self.store.list_sessions(limit))

    def search(
        self, query: str, *, session_id: str | None = None, limit: int = 10
    ) -> list[SearchHit]:
        """Messages matching ``query`` in one session (or all), best match first."""
        coro = self.store.search(query, session_id=session_id, limit=limit)
        return self._run("search", coro)

    def close(self) -> None:
        """Close the store and the private event loop (closing twice is harmless)."""
        if self._loop.is_closed():
            return
        try:
            self._run("close", self.store.close())
            self._loop.run_until_complete(self._loop.shutdown_default_executor())
        finally:
            self._loop.close()

    def __enter__(self) -> SyncMemoryStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
