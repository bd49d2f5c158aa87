"""Checkpointers: what a run persists, and the small interface every store implements.

What a checkpoint promises (see ``docs/graphs.md``):

- After a step completes, its state updates, the next frontier and the run's bookkeeping are
  committed together (:meth:`Checkpointer.save_step`).
- Every model call and tool call is journaled as soon as it returns (:meth:`record_call`), so a
  step re-executed after a crash replays them instead of making them again.
- Steps store *updates* (what changed), not the whole state again: a state is rebuilt by replaying
  its updates through the reducers, so a long run's storage grows with what it wrote.
- One runner at a time advances a run: :meth:`acquire` takes a lease that :meth:`save_step`
  checks; a second runner gets :class:`~atdak_agents.exceptions.RunLockedError`.

:class:`InMemoryCheckpointer` is the reference implementation; the SQLite one lives in
``graph/sqlite_checkpoint.py``. New stores (Redis, Postgres) pass the shared conformance suite in
``tests/graph/checkpointer_suite.py``.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from ..exceptions import RunLockedError, StoreError

__all__ = [
    "Checkpointer",
    "InMemoryCheckpointer",
    "RunRecord",
    "StepRecord",
]


@dataclass
class RunRecord:
    """A run as stored: identity, graph fingerprint, inputs and where it stands.

    ``status`` is one of ``running``, ``waiting`` (for a human), ``interrupted`` (cancelled or a
    limit reached; resumable), ``done``, ``cut_off``, ``failed``.
    """

    run_id: str
    graph: str
    fingerprint: str
    inputs: dict[str, Any]
    status: str = "running"
    session_id: str | None = None
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    step: int = 0
    question: str | None = None
    output: dict[str, Any] | None = None
    error: str | None = None
    parent_run_id: str | None = None
    parent_step: int | None = None


@dataclass
class StepRecord:
    """One completed step.

    ``updates`` are ``(node path, key, value)`` in the order they were applied; ``frontier`` is the
    list of tasks the next step runs; ``bookkeeping`` holds join arrivals, router counters and
    human answers — everything else needed to continue exactly where the step left off.
    """

    run_id: str
    step: int
    updates: list[tuple[str, str, Any]]
    frontier: list[dict[str, Any]]
    bookkeeping: dict[str, Any]
    nodes: list[str] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)


@runtime_checkable
class Checkpointer(Protocol):
    """Persistence for runs. Every method is safe to call from concurrent runs."""

    async def create_run(self, record: RunRecord) -> None:
        """Store a new run (its id must be new)."""
        ...

    async def get_run(self, run_id: str) -> RunRecord | None: ...

    async def update_run(self, run_id: str, **fields: Any) -> None:
        """Change a run's status, question, output or error."""
        ...

    async def list_runs(self, *, status: str | None = None, limit: int = 100) -> list[RunRecord]:
        """Most recently updated first."""
        ...

    async def save_step(self, record: StepRecord, *, owner: str, status: str) -> None:
        """Commit a completed step and the run's new status, atomically, if ``owner`` holds the
        lease (raises :class:`RunLockedError` otherwise)."""
        ...

    async def load_steps(self, run_id: str, *, upto: int | None = None) -> list[StepRecord]:
        """The run's steps in order (up to and including step ``upto``)."""
        ...

    async def record_call(self, run_id: str, step: int, key: str, payload: Any) -> None:
        """Journal one model or tool call of ``step``, committed before returning."""
        ...

    async def load_calls(self, run_id: str, step: int) -> dict[str, Any]:
        """The journaled calls of ``step`` by key."""
        ...

    async def acquire(self, run_id: str, owner: str, *, ttl: float = 60.0) -> None:
        """Take (or renew) the run's lease for ``ttl`` seconds; raises :class:`RunLockedError`
        when another owner holds an unexpired lease."""
        ...

    async def release(self, run_id: str, owner: str) -> None: ...

    async def close(self) -> None: ...


class InMemoryCheckpointer:
    """Checkpoints in a dict: fast, process-local, for tests and short-lived runs."""

    def __init__(self) -> None:
        self._runs: dict[str, RunRecord] = {}
        self._steps: dict[str, list[StepRecord]] = {}
        self._calls: dict[tuple[str, int], dict[str, Any]] = {}
        self._leases: dict[str, tuple[str, float]] = {}

    async def create_run(self, record: RunRecord) -> None:
        if record.run_id in self._runs:
            raise StoreError(f"run {record.run_id!r} already exists; choose another run id")
        self._runs[record.run_id] = copy.deepcopy(record)
        self._steps[record.run_id] = []

    async def get_run(self, run_id: str) -> RunRecord | None:
        record = self._runs.get(run_id)
        return copy.deepcopy(record) if record is not None else None

    async def update_run(self, run_id: str, **fields: Any) -> None:
        record = self._require(run_id)
        self._runs[run_id] = replace(record, updated_at=time.time(), **copy.deepcopy(fields))

    async def list_runs(self, *, status: str | None = None, limit: int = 100) -> list[RunRecord]:
        runs = [r for r in self._runs.values() if status is None or r.status == status]
        runs.sort(key=lambda r: r.updated_at, reverse=True)
        return [copy.deepcopy(r) for r in runs[:limit]]

    async def save_step(self, record: StepRecord, *, owner: str, status: str) -> None:
        run = self._require(record.run_id)
        self._check_owner(record.run_id, owner)
        self._steps[record.run_id].append(copy.deepcopy(record))
        self._runs[record.run_id] = replace(
            run, step=record.step, status=status, updated_at=time.time()
        )

    async def load_steps(self, run_id: str, *, upto: int | None = None) -> list[StepRecord]:
        self._require(run_id)
        steps = self._steps[run_id]
        chosen = [s for s in steps if upto is None or s.step <= upto]
        return copy.deepcopy(chosen)

    async def record_call(self, run_id: str, step: int, key: str, payload: Any) -> None:
        self._calls.setdefault((run_id, step), {})[key] = copy.deepcopy(payload)

    async def load_calls(self, run_id: str, step: int) -> dict[str, Any]:
        return copy.deepcopy(self._calls.get((run_id, step), {}))

    async def acquire(self, run_id: str, owner: str, *, ttl: float = 60.0) -> None:
        self._check_owner(run_id, owner)
        self._leases[run_id] = (owner, time.monotonic() + ttl)

    async def release(self, run_id: str, owner: str) -> None:
        held = self._leases.get(run_id)
        if held is not None and held[0] == owner:
            del self._leases[run_id]

    async def close(self) -> None:
        return None

    def _require(self, run_id: str) -> RunRecord:
        record = self._runs.get(run_id)
        if record is None:
            raise StoreError(f"no run {run_id!r} in this checkpointer")
        return record

    def _check_owner(self, run_id: str, owner: str) -> None:
        held = self._leases.get(run_id)
        if held is not None and held[0] != owner and held[1] > time.monotonic():
            raise RunLockedError(
                f"run {run_id!r} is being advanced by another runner ({held[0]}); "
                "wait for it to finish or for its lease to expire"
            )
