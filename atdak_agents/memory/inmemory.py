"""A memory store kept in the process's memory: for tests, notebooks and short-lived runs."""

from __future__ import annotations

import bisect
import itertools
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..messages import MessageLike
from . import _search
from ._records import Row, counted, decode, encode, message_list
from .base import (
    MemoryStore,
    SearchHit,
    SessionInfo,
    StoredMessage,
    check_count,
    check_session_id,
    closed_error,
)

__all__ = ["InMemoryStore"]


@dataclass
class _Session:
    created_at: float
    updated_at: float
    ids: list[int] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    words: list[list[str]] = field(default_factory=list)

    @property
    def token_count(self) -> int:
        return sum(r.tokens for r in self.rows)


class InMemoryStore(MemoryStore):
    """Conversation memory in a dict; lost when the process ends.

    Behaves exactly like :class:`~atdak_agents.memory.SQLiteStore` (same records, same search),
    so tests written against it hold for the persistent store. Every operation is a short
    piece of work under a lock, so it is safe from many tasks and threads.

    ``token_model``: the model whose token estimate is stored with each message.
    """

    def __init__(self, *, token_model: str | None = None) -> None:
        self.token_model = token_model
        self._sessions: dict[str, _Session] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"InMemoryStore(sessions={len(self._sessions)})"

    def _check_open(self) -> None:
        if self._closed:
            raise closed_error(repr(self))

    async def append(
        self, session_id: str, messages: MessageLike | Iterable[MessageLike]
    ) -> list[StoredMessage]:
        """Store one message or several, atomically, at the end of the session."""
        check_session_id(session_id)
        rows = encode(message_list(messages), self.token_model)
        words = [_search.tokens(row.text) for row in rows]
        if not rows:
            return []
        with self._lock:
            self._check_open()
            now = time.time()
            session = self._sessions.setdefault(session_id, _Session(now, now))
            ids = [next(self._ids) for _ in rows]
            session.ids += ids
            session.rows += rows
            session.words += words
            session.updated_at = now
        return [_decode(i, session_id, r) for i, r in zip(ids, rows, strict=True)]

    async def load(
        self,
        session_id: str,
        *,
        last: int | None = None,
        since: float | None = None,
        after_id: int | None = None,
    ) -> list[StoredMessage]:
        """The session's messages, oldest first (see :meth:`MemoryStore.load`)."""
        check_session_id(session_id)
        check_count(last, "last")
        with self._lock:
            self._check_open()
            session = self._sessions.get(session_id)
            if session is None:
                return []
            start = 0 if after_id is None else bisect.bisect_right(session.ids, after_id)
            chosen = [
                (i, r)
                for i, r in zip(session.ids[start:], session.rows[start:], strict=True)
                if since is None or r.created_at >= since
            ]
        if last is not None:
            chosen = chosen[max(0, len(chosen) - last) :]
        return counted([_decode(i, session_id, r) for i, r in chosen], self.token_model)

    async def clear(self, session_id: str) -> int:
        """Remove the session's messages (the session stays listed); returns how many."""
        check_session_id(session_id)
        with self._lock:
            self._check_open()
            session = self._sessions.get(session_id)
            if session is None:
                return 0
            removed = len(session.rows)
            session.ids, session.rows, session.words = [], [], []
            session.updated_at = time.time()
            return removed

    async def delete_session(self, session_id: str) -> bool:
        """Remove the session and all its messages; returns whether it existed."""
        check_session_id(session_id)
        with self._lock:
            self._check_open()
            return self._sessions.pop(session_id, None) is not None

    async def list_sessions(self, limit: int | None = None) -> list[SessionInfo]:
        """Every session (or the ``limit`` most recent), most recently updated first."""
        check_count(limit, "limit")
        with self._lock:
            self._check_open()
            infos = [
                SessionInfo(sid, s.created_at, s.updated_at, len(s.rows), s.token_count)
                for sid, s in self._sessions.items()
            ]
        infos.sort(key=lambda info: (-info.updated_at, info.session_id))
        return infos if limit is None else infos[:limit]

    async def search(
        self, query: str, *, session_id: str | None = None, limit: int = 10
    ) -> list[SearchHit]:
        """Messages matching ``query`` in one session (or all), best first (BM25)."""
        if session_id is not None:
            check_session_id(session_id)
        check_count(limit, "limit", minimum=1)
        terms = _search.parse_query(query)
        with self._lock:
            self._check_open()
            chosen = [session_id] if session_id is not None else list(self._sessions)
            candidates = [
                (i, sid, row, words)
                for sid in chosen
                if (s := self._sessions.get(sid)) is not None
                for i, row, words in zip(s.ids, s.rows, s.words, strict=True)
            ]
        scores = _search.bm25_scores(terms, [c[3] for c in candidates])
        ranked = sorted(
            ((score, c) for score, c in zip(scores, candidates, strict=True) if score > 0),
            key=lambda sc: (-sc[0], -sc[1][0]),
        )
        return [
            SearchHit(_decode(i, sid, row), score) for score, (i, sid, row, _) in ranked[:limit]
        ]

    async def close(self) -> None:
        """Drop everything; later calls raise."""
        with self._lock:
            self._closed = True
            self._sessions.clear()


def _decode(message_id: int, session_id: str, row: Row) -> StoredMessage:
    return decode(
        message_id,
        session_id,
        row.role,
        row.content,
        row.created_at,
        row.tokens,
        row.metadata,
        row.extra,
    )
