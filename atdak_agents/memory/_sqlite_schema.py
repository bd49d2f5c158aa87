"""The SQLite schema of the memory store, as an ordered list of migrations.

Every table is prefixed ``memory_``, so the same file can hold other parts of atdak_agents
(checkpoints) or of the application. The schema version lives in ``memory_schema`` - not in
``PRAGMA user_version``, which belongs to the whole file.

Opening a store brings its file up to :data:`LATEST` by running, in one ``BEGIN IMMEDIATE``
transaction, every migration above the stored version; several processes opening the same
file at once are safe (the first one migrates, the others see the new version). A file newer
than this code is refused rather than guessed at. To change the schema, append a migration;
never edit one that has shipped. The full-text index depends on ``_search.index_text``: a
change to that segmentation needs a migration that rebuilds ``memory_fts``.
"""

from __future__ import annotations

import hashlib
import sqlite3

from .._sqlite import Migration
from .._sqlite import migrate as migrate_tables
from .._sqlite import schema_version as tables_version
from . import _search

__all__ = ["LATEST", "MIGRATIONS", "Migration", "migrate", "schema_version", "session_token"]


def _v1_messages(conn: sqlite3.Connection) -> None:
    conn.execute(
        """CREATE TABLE memory_messages (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            session_id TEXT NOT NULL,
            role TEXT NOT NULL,
            content TEXT,
            created_at REAL NOT NULL,
            tokens INTEGER NOT NULL,
            metadata TEXT NOT NULL DEFAULT '{}',
            extra TEXT
        )"""
    )
    conn.execute("CREATE INDEX memory_messages_by_session ON memory_messages (session_id, id)")


def _v2_sessions(conn: sqlite3.Connection) -> None:
    conn.execute(
        """CREATE TABLE memory_sessions (
            session_id TEXT PRIMARY KEY,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            message_count INTEGER NOT NULL DEFAULT 0,
            token_count INTEGER NOT NULL DEFAULT 0
        )"""
    )
    conn.execute(
        """INSERT INTO memory_sessions
           SELECT session_id, MIN(created_at), MAX(created_at), COUNT(*), SUM(tokens)
           FROM memory_messages GROUP BY session_id"""
    )


def _v3_recall(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE VIRTUAL TABLE memory_fts USING fts5("
        "body, sess, tokenize = 'porter unicode61 remove_diacritics 2')"
    )
    rows = conn.execute("SELECT id, session_id, content FROM memory_messages ORDER BY id")
    conn.executemany(
        "INSERT INTO memory_fts (rowid, body, sess) VALUES (?, ?, ?)",
        ((i, _search.index_text(text or ""), session_token(sid)) for i, sid, text in rows),
    )


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "messages, keyed by session", _v1_messages),
    Migration(2, "sessions with counts, backfilled from messages", _v2_sessions),
    Migration(3, "full-text recall index (CJK bigrams, words), backfilled", _v3_recall),
)
LATEST = MIGRATIONS[-1].version


def session_token(session_id: str) -> str:
    """The token that stands for a session in the full-text index's ``sess`` column."""
    return "s" + hashlib.blake2b(session_id.encode(), digest_size=8).hexdigest()


def schema_version(conn: sqlite3.Connection) -> int:
    """The memory schema version of the open file (0: no memory tables yet)."""
    return tables_version(conn, "memory_")


def migrate(conn: sqlite3.Connection, path: str) -> int:
    """Bring the file up to :data:`LATEST`; returns the version it had before."""
    return migrate_tables(conn, path, "memory_", MIGRATIONS)
