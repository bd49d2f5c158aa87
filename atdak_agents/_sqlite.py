"""SQLite under asyncio, shared by the stores that keep data in an SQLite file.

Each store owns a :class:`SQLiteWorker`: **one worker thread with one connection**. Every
operation is a short blocking function run on that thread (``loop.run_in_executor``), so the
event loop never waits on disk, a lock or a query, and the connection never crosses threads.
Within a process the worker serialises the store's operations; across stores and processes
SQLite's own locking does: the file is in WAL mode (readers never block the writer), writes take
the lock up front (:func:`write_transaction`, ``BEGIN IMMEDIATE``) and wait for it up to
``busy_timeout`` seconds.

Several stores may share one file: each keeps its tables under its own prefix and its schema
version in its own ``<prefix>schema`` table (:func:`migrate`), never in ``PRAGMA user_version``,
which belongs to the whole file.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .exceptions import InvalidParameterError, StoreError, UsageError

__all__ = [
    "Migration",
    "SQLiteWorker",
    "check_settings",
    "enable_wal",
    "migrate",
    "schema_version",
    "store_error",
    "write_transaction",
]

_T = TypeVar("_T")


def check_settings(busy_timeout: float, synchronous: str) -> None:
    """Refuse settings a worker cannot use, naming the parameter."""
    if synchronous not in ("NORMAL", "FULL"):
        raise InvalidParameterError("synchronous", synchronous, "'NORMAL' or 'FULL'")
    if not busy_timeout >= 0:
        raise InvalidParameterError("busy_timeout", busy_timeout, "seconds, >= 0")


class SQLiteWorker:
    """One connection to ``path`` on one worker thread (opened, set up, on first use).

    ``setup(conn)`` runs once on the fresh connection (after WAL and ``synchronous`` are set):
    the place to migrate the store's tables. ``owner`` names the store in error messages.
    """

    def __init__(
        self,
        path: str,
        *,
        owner: str,
        busy_timeout: float,
        synchronous: str,
        setup: Callable[[sqlite3.Connection], object],
        thread_name: str,
    ) -> None:
        check_settings(busy_timeout, synchronous)
        self.path = path
        self.owner = owner
        self.busy_timeout = busy_timeout
        self.synchronous = synchronous
        self._setup = setup
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=thread_name)
        self._conn: sqlite3.Connection | None = None  # used only on the worker thread
        self.closed = False

    async def call(self, operation: str, fn: Callable[..., _T], *args: Any) -> _T:
        """``fn(conn, *args)`` on the worker thread; SQLite errors become :class:`StoreError`."""
        if self.closed:
            raise self.closed_error()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self._work, operation, fn, args)
        except RuntimeError:  # the executor was shut down by a concurrent close()
            if self.closed:
                raise self.closed_error() from None
            raise

    def closed_error(self) -> UsageError:
        return UsageError(f"{self.owner} is closed: create a new one (or keep it open until done)")

    def _work(self, operation: str, fn: Callable[..., _T], args: tuple[Any, ...]) -> _T:
        try:
            conn = self._conn if self._conn is not None else self._open()
            return fn(conn, *args)
        except sqlite3.Error as exc:
            raise store_error(self.owner, operation, exc, self.busy_timeout) from exc

    def _open(self) -> sqlite3.Connection:
        if self.path != ":memory:" and not self.path.startswith("file:"):
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        try:
            enable_wal(conn, self.busy_timeout)
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            self._setup(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    async def close(self) -> None:
        """Finish pending operations, close the connection and stop the thread (idempotent)."""
        if self.closed:
            return
        self.closed = True
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._close_connection)
        self._executor.shutdown(wait=True)

    def _close_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def enable_wal(conn: sqlite3.Connection, timeout: float) -> None:
    """Switch the file to WAL (once per file: the mode is stored in it).

    Switching needs an exclusive lock and SQLite reports "locked" at once, without waiting
    for the busy timeout, when another process opens the new file at the same moment; so
    retry with backoff until ``timeout``.
    """
    deadline, delay = time.monotonic() + timeout, 0.001
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction, holding the write lock from its start (no upgrade deadlocks)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def store_error(owner: str, operation: str, exc: sqlite3.Error, busy_timeout: float) -> StoreError:
    """A :class:`StoreError` saying which operation failed, why, and what to do."""
    text = str(exc)
    if "locked" in text or "busy" in text:
        advice = (
            f"another connection held the write lock for over busy_timeout={busy_timeout}s;"
            " find the long transaction or raise busy_timeout"
        )
    elif "not a database" in text or "malformed" in text:
        advice = "the file is not an SQLite database or is damaged; point the store at a new file"
    elif "unable to open" in text or "readonly" in text:
        advice = "check that the folder exists and that this process may write the file"
    else:
        advice = "see the SQLite error above"
    return StoreError(f"{owner}.{operation}() failed: {text} ({advice})")


# ---------------------------------------------------------------------- versioned schemas


@dataclass(frozen=True)
class Migration:
    """One step of a schema: ``apply`` turns version ``version - 1`` into ``version``."""

    version: int
    description: str
    apply: Callable[[sqlite3.Connection], None]


def schema_version(conn: sqlite3.Connection, prefix: str) -> int:
    """The version of the ``prefix`` tables in the open file (0: none of them yet)."""
    try:
        row = conn.execute(f"SELECT version FROM {prefix}schema").fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return 0
        raise
    return int(row[0]) if row else 0


def migrate(
    conn: sqlite3.Connection, path: str, prefix: str, migrations: Sequence[Migration]
) -> int:
    """Bring the ``prefix`` tables up to the last of ``migrations``; returns the old version.

    Every migration above the stored version runs in one ``BEGIN IMMEDIATE`` transaction, so
    several processes opening the same file at once are safe (the first one migrates, the others
    see the new version). A file newer than ``migrations`` is refused rather than guessed at.
    """
    latest = migrations[-1].version
    if schema_version(conn, prefix) == latest:
        return latest
    with write_transaction(conn):
        found = schema_version(conn, prefix)
        if found > latest:
            name = prefix.rstrip("_")
            raise StoreError(
                f"{path}: the {name} tables are at schema version {found}, newer than this "
                f"atdak_agents understands ({latest}); upgrade atdak_agents to open this file"
            )
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {prefix}schema "
            "(id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)"
        )
        for migration in migrations[found:]:
            migration.apply(conn)
        upsert = f"INSERT OR REPLACE INTO {prefix}schema (id, version) VALUES (1, ?)"
        conn.execute(upsert, (latest,))
    return found
