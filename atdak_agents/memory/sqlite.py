"""The default persistent memory store: one SQLite file, safe across tasks and processes.

How it runs under asyncio (``atdak_agents/_sqlite.py``, shared with the SQLite checkpointer):
each store owns **one worker thread with one connection**. Every
operation is a short blocking function run on that thread (``loop.run_in_executor``), so the
event loop never waits on disk, a lock or a query, and the connection never crosses threads.
Within a process the worker serialises the store's operations; across stores and processes
SQLite's own locking does: the file is in WAL mode (readers never block the writer), writes
take the lock up front (``BEGIN IMMEDIATE``) and wait for it up to ``busy_timeout`` seconds.

Durability: each ``append`` is one transaction. With ``synchronous="NORMAL"`` (the default)
a committed append survives the process being killed at any moment; ``"FULL"`` also survives
power loss, at the cost of an fsync per append.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from typing import Any, Literal, TypeVar

from .._sqlite import SQLiteWorker, check_settings, write_transaction
from ..messages import Message, MessageLike
from . import _search
from ._records import Row, counted, decode, encode, message_list
from ._sqlite_schema import migrate, session_token
from .base import (
    MemoryStore,
    SearchHit,
    SessionInfo,
    StoredMessage,
    check_count,
    check_session_id,
)

__all__ = ["SQLiteStore"]

_T = TypeVar("_T")

_COLUMNS = "id, session_id, role, content, created_at, tokens, metadata, extra"
_INSERT_MESSAGE = (
    "INSERT INTO memory_messages (session_id, role, content, created_at, tokens, metadata, extra)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_FTS = "INSERT INTO memory_fts (rowid, body, sess) VALUES (?, ?, ?)"
_UPSERT_SESSION = """
    INSERT INTO memory_sessions (session_id, created_at, updated_at, message_count, token_count)
    VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (session_id) DO UPDATE SET
        updated_at = MAX(updated_at, excluded.updated_at),
        message_count = message_count + excluded.message_count,
        token_count = token_count + excluded.token_count"""
_DELETE_FTS = (
    "DELETE FROM memory_fts WHERE rowid IN (SELECT id FROM memory_messages WHERE session_id = ?)"
)
_SEARCH = f"""
    SELECT {", ".join("m." + c.strip() for c in _COLUMNS.split(","))},
           -bm25(memory_fts, 1.0, 0.0) AS score
    FROM memory_fts JOIN memory_messages AS m ON m.id = memory_fts.rowid
    WHERE memory_fts MATCH ? {{session}}
    ORDER BY score DESC, m.id DESC LIMIT ?"""


class SQLiteStore(MemoryStore):
    """Conversation memory in an SQLite file (created, with its folder, on first use).

    ``SQLiteStore("memory.db")``; use it with ``async with`` or call :meth:`close`.

    - ``token_model``: the model whose token estimate is stored with each message.
    - ``busy_timeout``: seconds a write waits for another connection's lock before failing.
    - ``synchronous``: ``"NORMAL"`` (safe against process crashes) or ``"FULL"`` (also against
      power loss, slower).

    The file may be shared with other tables: this store only touches ``memory_*`` tables.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        token_model: str | None = None,
        busy_timeout: float = 10.0,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
    ) -> None:
        check_settings(busy_timeout, synchronous)
        self.path = os.fspath(path)
        self.token_model = token_model
        self.busy_timeout = busy_timeout
        self.synchronous = synchronous
        self._worker = SQLiteWorker(
            self.path,
            owner=repr(self),
            busy_timeout=busy_timeout,
            synchronous=synchronous,
            setup=lambda conn: migrate(conn, self.path),
            thread_name="atdak-memory-sqlite",
        )

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    # ------------------------------------------------------------------ running on the worker

    async def _call(self, operation: str, fn: Callable[..., _T], *args: Any) -> _T:
        return await self._worker.call(operation, fn, *args)

    # ------------------------------------------------------------------ the interface

    async def append(
        self, session_id: str, messages: MessageLike | Iterable[MessageLike]
    ) -> list[StoredMessage]:
        """Store one message or several in one transaction, at the end of the session.

        Cancelling the awaiting task does not undo an append the worker has started: it is
        committed whole (never half), and the next operation sees it.
        """
        check_session_id(session_id)
        checked = message_list(messages)
        if not checked:
            return []
        return await self._call("append", self._append, session_id, checked)

    def _append(
        self, conn: sqlite3.Connection, session_id: str, messages: list[Message]
    ) -> list[StoredMessage]:
        rows = encode(messages, self.token_model)
        token = session_token(session_id)
        bodies = [_search.index_text(r.text) for r in rows]
        with write_transaction(conn):
            ids = [
                int(conn.execute(_INSERT_MESSAGE, (session_id, *_values(r))).lastrowid or 0)
                for r in rows
            ]
            conn.executemany(_INSERT_FTS, zip(ids, bodies, [token] * len(ids), strict=True))
            now = time.time()
            totals = (len(rows), sum(r.tokens for r in rows))
            conn.execute(_UPSERT_SESSION, (session_id, now, now, *totals))
        return [
            decode(i, session_id, r.role, r.content, r.created_at, r.tokens, r.metadata, r.extra)
            for i, r in zip(ids, rows, strict=True)
        ]

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
        found = await self._call("load", _load, session_id, last, since, after_id)
        return counted(found, self.token_model)

    async def clear(self, session_id: str) -> int:
        """Remove the session's messages (the session stays listed); returns how many."""
        check_session_id(session_id)
        return await self._call("clear", _clear, session_id)

    async def delete_session(self, session_id: str) -> bool:
        """Remove the session and all its messages; returns whether it existed."""
        check_session_id(session_id)
        return await self._call("delete_session", _delete_session, session_id)

    async def list_sessions(self, limit: int | None = None) -> list[SessionInfo]:
        """Every session (or the ``limit`` most recent), most recently updated first."""
        check_count(limit, "limit")
        return await self._call("list_sessions", _list_sessions, limit)

    async def search(
        self, query: str, *, session_id: str | None = None, limit: int = 10
    ) -> list[SearchHit]:
        """Messages matching ``query`` in one session (or all), best first (FTS5, BM25)."""
        if session_id is not None:
            check_session_id(session_id)
        check_count(limit, "limit", minimum=1)
        return await self._call("search", _search_messages, query, session_id, limit)

    async def close(self) -> None:
        """Finish pending operations, close the connection and stop the worker thread."""
        await self._worker.close()


# ---------------------------------------------------------------------- worker-side functions


def _values(row: Row) -> tuple[Any, ...]:
    return (row.role, row.content, row.created_at, row.tokens, row.metadata, row.extra)


def _load(
    conn: sqlite3.Connection,
    session_id: str,
    last: int | None,
    since: float | None,
    after_id: int | None,
) -> list[StoredMessage]:
    where, params = "session_id = ?", list[object]([session_id])
    if after_id is not None:
        where, params = f"{where} AND id > ?", [*params, after_id]
    if since is not None:
        where, params = f"{where} AND created_at >= ?", [*params, since]
    sql = f"SELECT {_COLUMNS} FROM memory_messages WHERE {where} ORDER BY id"
    if last is None:
        return [decode(*row) for row in conn.execute(sql, params)]
    rows = conn.execute(f"{sql} DESC LIMIT ?", [*params, last]).fetchall()
    return [decode(*row) for row in reversed(rows)]


def _clear(conn: sqlite3.Connection, session_id: str) -> int:
    with write_transaction(conn):
        conn.execute(_DELETE_FTS, (session_id,))
        removed = conn.execute("DELETE FROM memory_messages WHERE session_id = ?", (session_id,))
        conn.execute(
            "UPDATE memory_sessions SET message_count = 0, token_count = 0, updated_at = ?"
            " WHERE session_id = ?",
            (time.time(), session_id),
        )
    return removed.rowcount


def _delete_session(conn: sqlite3.Connection, session_id: str) -> bool:
    with write_transaction(conn):
        conn.execute(_DELETE_FTS, (session_id,))
        removed = conn.execute("DELETE FROM memory_messages WHERE session_id = ?", (session_id,))
        listed = conn.execute("DELETE FROM memory_sessions WHERE session_id = ?", (session_id,))
    return removed.rowcount > 0 or listed.rowcount > 0


def _list_sessions(conn: sqlite3.Connection, limit: int | None) -> list[SessionInfo]:
    rows = conn.execute(
        "SELECT session_id, created_at, updated_at, message_count, token_count"
        " FROM memory_sessions ORDER BY updated_at DESC, session_id LIMIT ?",
        (-1 if limit is None else limit,),
    )
    return [SessionInfo(*row) for row in rows]


def _search_messages(
    conn: sqlite3.Connection, query: str, session_id: str | None, limit: int
) -> list[SearchHit]:
    terms = _search.parse_query(query)
    if not terms:
        return []
    match = _search.fts_match(terms)
    if session_id is None:
        rows = conn.execute(_SEARCH.format(session=""), (match, limit))
    else:
        match = f'sess : "{session_token(session_id)}" AND {match}'
        sql = _SEARCH.format(session="AND m.session_id = ?")
        rows = conn.execute(sql, (match, session_id, limit))
    return [SearchHit(decode(*row[:-1]), float(row[-1])) for row in rows]
