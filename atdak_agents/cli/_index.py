"""What ``atdak-agents run`` remembers about the runs it starts, beside their checkpoints.

The checkpointer stores a run's graph name, fingerprint, inputs and steps; to resume a run by
its id alone the command line also needs to know *how* it started it: the workflow file, the
``--model`` override (it is part of the graph's fingerprint), whether it ran offline, how far
the offline fixture got, and the trace file. Those live in one ``cli_runs`` table of the same
SQLite file as the checkpoints (tables of different stores share a file under their own
prefixes, see :mod:`atdak_agents._sqlite`).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic_core import from_json, to_json

from .._sqlite import Migration, SQLiteWorker, migrate

__all__ = ["IndexEntry", "RunIndex"]


def _v1_runs(conn: sqlite3.Connection) -> None:
    conn.execute(
        """CREATE TABLE cli_runs (
            run_id TEXT PRIMARY KEY,
            workflow TEXT NOT NULL,
            model TEXT,
            offline INTEGER NOT NULL,
            fixture_uses TEXT,
            trace TEXT,
            created_at REAL NOT NULL
        )"""
    )


_MIGRATIONS = (Migration(1, "runs started by atdak-agents run", _v1_runs),)
_COLUMNS = "run_id, workflow, model, offline, fixture_uses, trace, created_at"


@dataclass
class IndexEntry:
    """How the command line started one run. ``workflow`` and ``trace`` are absolute paths."""

    run_id: str
    workflow: str
    model: str | None = None
    offline: bool = False
    fixture_uses: list[int] | None = None
    trace: str | None = None
    created_at: float = field(default_factory=time.time)


class RunIndex:
    """The ``cli_runs`` table of a checkpoint file (created on first use)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._worker = SQLiteWorker(
            path,
            owner=f"RunIndex({path!r})",
            busy_timeout=10.0,
            synchronous="NORMAL",
            setup=lambda conn: migrate(conn, path, "cli_", _MIGRATIONS),
            thread_name="atdak-cli-index",
        )

    async def add(self, entry: IndexEntry) -> None:
        row = (
            entry.run_id,
            entry.workflow,
            entry.model,
            int(entry.offline),
            _json(entry.fixture_uses),
            entry.trace,
            entry.created_at,
        )
        sql = f"INSERT OR REPLACE INTO cli_runs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
        await self._worker.call("add", _execute, sql, row)

    async def get(self, run_id: str) -> IndexEntry | None:
        found = await self.get_many([run_id])
        return found.get(run_id)

    async def get_many(self, run_ids: list[str]) -> dict[str, IndexEntry]:
        """The entries of those runs that have one."""
        if not run_ids:
            return {}
        marks = ", ".join("?" * len(run_ids))
        sql = f"SELECT {_COLUMNS} FROM cli_runs WHERE run_id IN ({marks})"
        rows = await self._worker.call("get", _fetch, sql, tuple(run_ids))
        return {row[0]: _entry(row) for row in rows}

    async def delete(self, run_id: str) -> None:
        """Forget how a run was started (its checkpoints were deleted)."""
        sql = "DELETE FROM cli_runs WHERE run_id = ?"
        await self._worker.call("delete", _execute, sql, (run_id,))

    async def save_fixture_uses(self, run_id: str, uses: list[int]) -> None:
        sql = "UPDATE cli_runs SET fixture_uses = ? WHERE run_id = ?"
        await self._worker.call("save_fixture_uses", _execute, sql, (_json(uses), run_id))

    async def close(self) -> None:
        await self._worker.close()


def _json(value: Any) -> str | None:
    return None if value is None else to_json(value).decode()


def _entry(row: tuple[Any, ...]) -> IndexEntry:
    run_id, workflow, model, offline, uses, trace, created_at = row
    fixture_uses = from_json(uses) if uses is not None else None
    return IndexEntry(run_id, workflow, model, bool(offline), fixture_uses, trace, created_at)


def _execute(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> None:
    conn.execute(sql, params)


def _fetch(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    return list(conn.execute(sql, params).fetchall())
