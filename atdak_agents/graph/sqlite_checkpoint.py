"""The default persistent checkpointer: runs, steps, journaled calls and leases in one SQLite file.

``SQLiteCheckpointer("runs.db")`` (or the memory store's file: its tables are all prefixed
``checkpoint_``). It runs SQLite the way the memory store does (:mod:`atdak_agents._sqlite`): one
worker thread with one connection, WAL, writes that take the lock up front and wait up to
``busy_timeout`` for it, so several processes can share the file and the event loop never waits
on disk.

What is stored, and how it stays small:

- ``checkpoint_runs``: one row per run (status, question, output, the graph's fingerprint) with
  its lease (owner, expiry, time-to-live).
- ``checkpoint_steps``: one row per completed step with its *updates* — ``(node, key, value)`` as
  the nodes returned them, not the state they produced — the next frontier and the bookkeeping.
  A run's storage grows with what its nodes wrote, never with steps × state size.
- ``checkpoint_calls``: the journal, one row per model or tool call, committed as it returns.

Every value is stored as JSON (``pydantic_core.to_json``): pydantic models and dataclasses become
objects, tuples and sets lists, datetimes ISO strings. What a resumed run reads back is that
plain data. A value JSON cannot hold is refused when the step is saved, naming the node and key.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Literal, TypeVar

from pydantic_core import PydanticSerializationError, from_json, to_json

from .._sqlite import Migration, SQLiteWorker, check_settings, migrate, write_transaction
from ..exceptions import NodeError, StoreError, UsageError
from .checkpoint import (
    DEFAULT_LEASE_TTL,
    RunRecord,
    StepRecord,
    check_run_fields,
    check_status,
    check_ttl,
    lease_lost,
    run_locked,
    unknown_run,
)

__all__ = ["MIGRATIONS", "SQLiteCheckpointer"]

_T = TypeVar("_T")

# --------------------------------------------------------------------------- schema


def _v1_runs_steps_calls(conn: sqlite3.Connection) -> None:
    conn.execute(
        """CREATE TABLE checkpoint_runs (
            id INTEGER PRIMARY KEY,
            run_id TEXT NOT NULL UNIQUE,
            graph TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            inputs TEXT NOT NULL,
            status TEXT NOT NULL,
            session_id TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            step INTEGER NOT NULL DEFAULT 0,
            question TEXT,
            output TEXT,
            error TEXT,
            parent_run_id TEXT,
            parent_step INTEGER
        )"""
    )
    conn.execute("CREATE INDEX checkpoint_runs_by_update ON checkpoint_runs (updated_at)")
    conn.execute(
        """CREATE TABLE checkpoint_steps (
            run INTEGER NOT NULL,
            step INTEGER NOT NULL,
            updates TEXT NOT NULL,
            frontier TEXT NOT NULL,
            bookkeeping TEXT NOT NULL,
            nodes TEXT NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (run, step)
        )"""
    )
    conn.execute(
        """CREATE TABLE checkpoint_calls (
            run INTEGER NOT NULL,
            step INTEGER NOT NULL,
            key TEXT NOT NULL,
            payload TEXT NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (run, step, key)
        )"""
    )


def _v2_leases(conn: sqlite3.Connection) -> None:
    for column in ("lease_owner TEXT", "lease_expires REAL", "lease_ttl REAL"):
        conn.execute(f"ALTER TABLE checkpoint_runs ADD COLUMN {column}")
    conn.execute(
        "CREATE INDEX checkpoint_runs_by_session ON checkpoint_runs (session_id, updated_at)"
    )


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "runs, steps as updates, journaled calls", _v1_runs_steps_calls),
    Migration(2, "leases on runs; runs listed by session", _v2_leases),
)

_RUN_COLUMNS = (
    "run_id, graph, fingerprint, inputs, status, session_id, created_at, updated_at, step,"
    " question, output, error, parent_run_id, parent_step"
)
_INSERT_RUN = (
    f"INSERT INTO checkpoint_runs ({_RUN_COLUMNS}, lease_owner, lease_expires, lease_ttl)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SAVE_RUN = """
    UPDATE checkpoint_runs SET step = ?, status = ?, question = ?, output = ?, updated_at = ?,
        lease_expires = ? + lease_ttl
    WHERE run_id = ? AND lease_owner = ?"""
_SAVE_RUN_RELEASING = """
    UPDATE checkpoint_runs SET step = ?, status = ?, question = ?, output = ?, updated_at = ?,
        lease_owner = NULL, lease_expires = NULL, lease_ttl = NULL
    WHERE run_id = ? AND lease_owner = ?"""
_INSERT_STEP = """
    INSERT INTO checkpoint_steps (run, step, updates, frontier, bookkeeping, nodes, created_at)
    SELECT id, ?, ?, ?, ?, ?, ? FROM checkpoint_runs WHERE run_id = ?"""
_SELECT_STEPS = """
    SELECT s.step, s.updates, s.frontier, s.bookkeeping, s.nodes, s.created_at
    FROM checkpoint_steps AS s JOIN checkpoint_runs AS r ON r.id = s.run
    WHERE r.run_id = ? AND s.step <= ? ORDER BY s.step"""
_INSERT_CALL = """
    INSERT OR REPLACE INTO checkpoint_calls (run, step, key, payload, created_at)
    SELECT id, ?, ?, ?, ? FROM checkpoint_runs WHERE run_id = ?"""
_SELECT_CALLS = """
    SELECT c.key, c.payload
    FROM checkpoint_calls AS c JOIN checkpoint_runs AS r ON r.id = c.run
    WHERE r.run_id = ? AND c.step = ? ORDER BY c.rowid"""
_SELECT_LEASE = "SELECT lease_owner, lease_expires FROM checkpoint_runs WHERE run_id = ?"
_TAKE_LEASE = (
    "UPDATE checkpoint_runs SET lease_owner = ?, lease_expires = ?, lease_ttl = ? WHERE run_id = ?"
)
_RELEASE = """
    UPDATE checkpoint_runs SET lease_owner = NULL, lease_expires = NULL, lease_ttl = NULL
    WHERE run_id = ? AND lease_owner = ?"""
_STEPS_ALL = 2**62


class SQLiteCheckpointer:
    """Checkpoints in an SQLite file (created, with its folder, on first use).

    - ``lease_ttl``: seconds a runner's lease on a run lasts without being renewed (each saved
      step renews it; a long step renews it every third of that).
    - ``busy_timeout``: seconds a write waits for another connection's lock before failing.
    - ``synchronous``: ``"NORMAL"`` (a committed step survives the process being killed) or
      ``"FULL"`` (it also survives power loss; an fsync per commit, slower).

    Use it with ``async with`` or call :meth:`close`. The file may hold other tables (the memory
    store's, the application's): this one only touches ``checkpoint_*`` tables.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        lease_ttl: float = DEFAULT_LEASE_TTL,
        busy_timeout: float = 10.0,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
    ) -> None:
        check_settings(busy_timeout, synchronous)
        check_ttl(lease_ttl)
        self.path = os.fspath(path)
        self.lease_ttl = lease_ttl
        self.busy_timeout = busy_timeout
        self.synchronous = synchronous
        self._worker = SQLiteWorker(
            self.path,
            owner=repr(self),
            busy_timeout=busy_timeout,
            synchronous=synchronous,
            setup=lambda conn: migrate(conn, self.path, "checkpoint_", MIGRATIONS),
            thread_name="atdak-checkpoint-sqlite",
        )

    def __repr__(self) -> str:
        return f"SQLiteCheckpointer({self.path!r})"

    async def __aenter__(self) -> SQLiteCheckpointer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _call(self, operation: str, fn: Callable[..., _T], *args: Any) -> _T:
        try:
            return await self._worker.call(operation, fn, *args)
        except _UnknownRun as exc:
            raise unknown_run(exc.run_id, repr(self)) from None

    # ------------------------------------------------------------------ runs

    async def create_run(self, record: RunRecord, *, owner: str | None = None) -> None:
        """Store a new run; with ``owner``, that runner holds its lease from the start."""
        check_status(record.status)
        inputs = _json(record.inputs, f"the inputs of run {record.run_id!r}", UsageError)
        output = _json_or_none(record.output, f"the output of run {record.run_id!r}")
        lease = (owner, time.time() + self.lease_ttl, self.lease_ttl) if owner else (None,) * 3
        row = (
            *(record.run_id, record.graph, record.fingerprint, inputs, record.status),
            *(record.session_id, record.created_at, record.updated_at, record.step),
            *(record.question, output, record.error, record.parent_run_id, record.parent_step),
            *lease,
        )
        await self._call("create_run", _create_run, row)

    async def get_run(self, run_id: str) -> RunRecord | None:
        """The stored run, or ``None``."""
        return await self._call("get_run", _get_run, run_id)

    async def update_run(self, run_id: str, *, owner: str | None = None, **fields: Any) -> None:
        """Change a run's status, question, output or error (with ``owner``: only while that
        runner holds the lease)."""
        check_run_fields(fields)
        if "output" in fields:
            fields["output"] = _json_or_none(fields["output"], f"the output of run {run_id!r}")
        await self._call("update_run", _update_run, run_id, owner, fields, time.time())

    async def list_runs(
        self, *, status: str | None = None, session_id: str | None = None, limit: int = 100
    ) -> list[RunRecord]:
        """Runs (of one status, of one session), most recently updated first."""
        if status is not None:
            check_status(status)
        return await self._call("list_runs", _list_runs, status, session_id, limit)

    # ------------------------------------------------------------------ steps

    async def save_step(
        self,
        record: StepRecord,
        *,
        owner: str,
        status: str,
        question: str | None = None,
        output: dict[str, Any] | None = None,
        release: bool = False,
    ) -> None:
        """Commit the step and the run's status, question and output in one transaction, if
        ``owner`` holds the lease; renews the lease, or gives it up with ``release=True``."""
        check_status(status)
        values = (
            _updates_json(record),
            _json(record.frontier, f"the frontier of step {record.step}"),
            _json(record.bookkeeping, f"the bookkeeping of step {record.step}"),
            _json(record.nodes, f"the nodes of step {record.step}"),
        )
        run = (status, question, _json_or_none(output, f"the output of run {record.run_id!r}"))
        await self._call("save_step", _save_step, record, values, run, owner, release, time.time())

    async def load_steps(self, run_id: str, *, upto: int | None = None) -> list[StepRecord]:
        """The run's steps in order (up to and including step ``upto``)."""
        limit = _STEPS_ALL if upto is None else upto
        return await self._call("load_steps", _load_steps, run_id, limit)

    # ------------------------------------------------------------------ the journal

    async def record_call(self, run_id: str, step: int, key: str, payload: Any) -> None:
        """Journal one call of ``step``; committed (durable) when this returns."""
        data = _json(payload, f"journal entry {key!r}")
        await self._call("record_call", _record_call, run_id, step, key, data, time.time())

    async def load_calls(self, run_id: str, step: int) -> dict[str, Any]:
        """The journaled calls of ``step`` by key."""
        return await self._call("load_calls", _load_calls, run_id, step)

    # ------------------------------------------------------------------ leases

    async def acquire(self, run_id: str, owner: str, *, ttl: float | None = None) -> None:
        """Take or renew the run's lease (:class:`RunLockedError` if another runner holds it)."""
        ttl = self.lease_ttl if ttl is None else ttl
        check_ttl(ttl)
        await self._call("acquire", _acquire, run_id, owner, ttl, time.time())

    async def release(self, run_id: str, owner: str) -> None:
        """Give up ``owner``'s lease (nothing happens if it does not hold it)."""
        await self._call("release", _release, run_id, owner)

    async def delete_run(self, run_id: str) -> bool:
        """Remove a run with its steps and journaled calls in one transaction (see
        :meth:`Checkpointer.delete_run`)."""
        deleted: bool = await self._call("delete_run", _delete_run, run_id, time.time())
        return deleted

    async def close(self) -> None:
        """Finish pending operations, close the connection and stop the worker thread."""
        await self._worker.close()


class _UnknownRun(Exception):
    """Raised on the worker thread; the checkpointer turns it into a clear StoreError."""

    def __init__(self, run_id: str) -> None:
        super().__init__(run_id)
        self.run_id = run_id


# ---------------------------------------------------------------------- encoding


def _json(value: Any, what: str, error: type[Exception] = StoreError) -> str:
    try:
        return to_json(value).decode()
    except PydanticSerializationError as exc:
        raise error(f"{what} cannot be stored as JSON: {exc}; {_JSON_ADVICE}") from None


def _json_or_none(value: Any, what: str) -> str | None:
    return None if value is None else _json(value, what)


def _updates_json(record: StepRecord) -> str:
    try:
        return to_json(record.updates).decode()
    except PydanticSerializationError:
        for node, key, value in record.updates:  # find the culprit, to name it
            try:
                to_json(value)
            except PydanticSerializationError as exc:
                raise NodeError(
                    node,
                    f"wrote state key {key!r} a {type(value).__name__} that the checkpointer "
                    f"cannot store as JSON ({exc}); {_JSON_ADVICE}",
                ) from None
        raise


_JSON_ADVICE = (
    "persisted values must be JSON data: str, numbers, bools, None, lists and dicts of them, "
    "pydantic models or dataclasses"
)


# ---------------------------------------------------------------------- worker-side functions


def _create_run(conn: sqlite3.Connection, row: Sequence[Any]) -> None:
    try:
        conn.execute(_INSERT_RUN, row)
    except sqlite3.IntegrityError:
        raise StoreError(f"run {row[0]!r} already exists; choose another run id") from None


def _get_run(conn: sqlite3.Connection, run_id: str) -> RunRecord | None:
    sql = f"SELECT {_RUN_COLUMNS} FROM checkpoint_runs WHERE run_id = ?"
    row = conn.execute(sql, (run_id,)).fetchone()
    return _run_record(row) if row is not None else None


def _run_record(row: Sequence[Any]) -> RunRecord:
    values = list(row)
    values[3] = from_json(values[3])
    values[10] = from_json(values[10]) if values[10] is not None else None
    return RunRecord(*values)


def _update_run(
    conn: sqlite3.Connection,
    run_id: str,
    owner: str | None,
    fields: dict[str, Any],
    now: float,
) -> None:
    assignments = ", ".join([*(f"{name} = ?" for name in fields), "updated_at = ?"])
    with write_transaction(conn):
        holder = _lease_holder(conn, run_id)
        if owner is not None and holder != owner:
            raise lease_lost(run_id, owner, holder)
        conn.execute(
            f"UPDATE checkpoint_runs SET {assignments} WHERE run_id = ?",
            (*fields.values(), now, run_id),
        )


def _list_runs(
    conn: sqlite3.Connection, status: str | None, session_id: str | None, limit: int
) -> list[RunRecord]:
    where: list[str] = []
    params: list[Any] = []
    if status is not None:
        where, params = [*where, "status = ?"], [*params, status]
    if session_id is not None:
        where, params = [*where, "session_id = ?"], [*params, session_id]
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    sql = f"SELECT {_RUN_COLUMNS} FROM checkpoint_runs {clause} ORDER BY updated_at DESC, id"
    rows = conn.execute(f"{sql} LIMIT ?", (*params, limit))
    return [_run_record(row) for row in rows]


def _save_step(
    conn: sqlite3.Connection,
    record: StepRecord,
    values: tuple[str, str, str, str],
    run: tuple[str, str | None, str | None],
    owner: str,
    release: bool,
    now: float,
) -> None:
    run_id = record.run_id
    with write_transaction(conn):
        if release:
            saved = conn.execute(_SAVE_RUN_RELEASING, (record.step, *run, now, run_id, owner))
        else:
            saved = conn.execute(_SAVE_RUN, (record.step, *run, now, now, run_id, owner))
        if saved.rowcount == 0:
            holder = _lease_holder(conn, run_id)  # raises for an unknown run
            raise lease_lost(run_id, owner, holder)
        try:
            conn.execute(_INSERT_STEP, (record.step, *values, record.created_at, run_id))
        except sqlite3.IntegrityError:
            raise StoreError(f"run {run_id!r} already has a step {record.step}") from None


def _load_steps(conn: sqlite3.Connection, run_id: str, upto: int) -> list[StepRecord]:
    rows = conn.execute(_SELECT_STEPS, (run_id, upto)).fetchall()
    if not rows:
        _lease_holder(conn, run_id)  # raises for an unknown run
    return [
        StepRecord(
            run_id=run_id,
            step=step,
            updates=[(node, key, value) for node, key, value in from_json(updates)],
            frontier=from_json(frontier),
            bookkeeping=from_json(bookkeeping),
            nodes=from_json(nodes),
            created_at=created_at,
        )
        for step, updates, frontier, bookkeeping, nodes, created_at in rows
    ]


def _record_call(
    conn: sqlite3.Connection, run_id: str, step: int, key: str, payload: str, now: float
) -> None:
    if conn.execute(_INSERT_CALL, (step, key, payload, now, run_id)).rowcount == 0:
        raise _UnknownRun(run_id)


def _load_calls(conn: sqlite3.Connection, run_id: str, step: int) -> dict[str, Any]:
    rows = conn.execute(_SELECT_CALLS, (run_id, step)).fetchall()
    if not rows:
        _lease_holder(conn, run_id)  # raises for an unknown run
    return {key: from_json(payload) for key, payload in rows}


def _acquire(conn: sqlite3.Connection, run_id: str, owner: str, ttl: float, now: float) -> None:
    with write_transaction(conn):
        row = conn.execute(_SELECT_LEASE, (run_id,)).fetchone()
        if row is None:
            raise _UnknownRun(run_id)
        holder, expires = row
        if holder is not None and holder != owner and expires > now:
            raise run_locked(run_id, holder, expires - now)
        conn.execute(_TAKE_LEASE, (owner, now + ttl, ttl, run_id))


def _delete_run(conn: sqlite3.Connection, run_id: str, now: float) -> bool:
    with write_transaction(conn):
        row = conn.execute(
            "SELECT id, lease_owner, lease_expires FROM checkpoint_runs WHERE run_id = ?",
            (run_id,),
        ).fetchone()
        if row is None:
            return False
        key, holder, expires = row
        if holder is not None and expires > now:
            raise run_locked(run_id, holder, expires - now)
        conn.execute("DELETE FROM checkpoint_calls WHERE run = ?", (key,))
        conn.execute("DELETE FROM checkpoint_steps WHERE run = ?", (key,))
        conn.execute("DELETE FROM checkpoint_runs WHERE id = ?", (key,))
    return True


def _release(conn: sqlite3.Connection, run_id: str, owner: str) -> None:
    conn.execute(_RELEASE, (run_id, owner))


def _lease_holder(conn: sqlite3.Connection, run_id: str) -> str | None:
    row = conn.execute(_SELECT_LEASE, (run_id,)).fetchone()
    if row is None:
        raise _UnknownRun(run_id)
    holder: str | None = row[0]
    return holder
