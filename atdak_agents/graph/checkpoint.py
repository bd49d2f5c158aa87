"""Checkpointers: what a run persists, and the small interface every store implements.

What a checkpoint promises (see ``docs/checkpoints.md``):

- After a step completes, its state updates, the next frontier and the run's bookkeeping are
  committed together (:meth:`Checkpointer.save_step`).
- Every model call and tool call is journaled as soon as it returns (:meth:`record_call`), so a
  step re-executed after a crash replays them instead of making them again.
- Steps store *updates* (what changed), not the whole state again: a state is rebuilt by replaying
  its updates through the reducers, so a long run's storage grows with what it wrote.
- One runner at a time advances a run: :meth:`acquire` takes a lease (for ``lease_ttl`` seconds,
  renewed by every saved step) that :meth:`save_step` checks in the same transaction; a second
  runner gets :class:`~atdak_agents.exceptions.RunLockedError`. A lease stays with its owner until
  it is released or, once expired, taken by another runner.

:class:`InMemoryCheckpointer` is the reference implementation; the SQLite one lives in
``graph/sqlite_checkpoint.py``. New stores (Redis, Postgres) pass the shared conformance suite in
``tests/graph/checkpointer_suite.py``.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from ..exceptions import InvalidParameterError, RunLockedError, StoreError, UsageError

__all__ = [
    "DEFAULT_LEASE_TTL",
    "RUN_FIELDS",
    "RUN_STATUSES",
    "Checkpointer",
    "InMemoryCheckpointer",
    "RunRecord",
    "StepRecord",
    "check_run_fields",
    "check_status",
    "check_ttl",
    "lease_lost",
    "run_locked",
    "unknown_run",
]

DEFAULT_LEASE_TTL = 60.0
RUN_STATUSES = ("pending", "running", "waiting", "interrupted", "done", "cut_off", "failed")
RUN_FIELDS = ("status", "question", "output", "error")  # what update_run may change


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
    """Persistence for runs. Every method is safe to call from concurrent tasks and runs.

    Unknown runs are a :class:`~atdak_agents.exceptions.StoreError` (except in :meth:`get_run`,
    which returns ``None``, and :meth:`release`, which does nothing). ``tests/graph/
    checkpointer_suite.py`` is the contract: every implementation passes it.
    """

    lease_ttl: float
    """Seconds a lease lasts unless renewed (by :meth:`acquire` or a saved step)."""

    async def create_run(self, record: RunRecord, *, owner: str | None = None) -> None:
        """Store a new run (its id must be new); with ``owner``, that runner holds its lease
        from the start."""
        ...

    async def get_run(self, run_id: str) -> RunRecord | None: ...

    async def update_run(self, run_id: str, *, owner: str | None = None, **fields: Any) -> None:
        """Change a run's status, question, output or error (see :data:`RUN_FIELDS`); with
        ``owner``, only while that runner holds the lease (:class:`RunLockedError` otherwise)."""
        ...

    async def list_runs(
        self, *, status: str | None = None, session_id: str | None = None, limit: int = 100
    ) -> list[RunRecord]:
        """Runs (of one status, of one session), most recently updated first."""
        ...

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
        """Commit a completed step and the run's new status, question and output atomically,
        only if ``owner`` holds the lease (:class:`RunLockedError` otherwise, checked in the same
        transaction). The lease is renewed, or given up with ``release=True``. A step number
        saved twice is a :class:`StoreError`."""
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

    async def acquire(self, run_id: str, owner: str, *, ttl: float | None = None) -> None:
        """Take (or renew) the run's lease for ``ttl`` seconds (default :attr:`lease_ttl`);
        raises :class:`RunLockedError` when another owner holds an unexpired lease."""
        ...

    async def release(self, run_id: str, owner: str) -> None:
        """Give up ``owner``'s lease (nothing happens if it does not hold it)."""
        ...

    async def delete_run(self, run_id: str) -> bool:
        """Remove a run with its steps and journaled calls, atomically; ``False`` when there
        is no such run. A run another runner is advancing (an unexpired lease) is refused with
        :class:`RunLockedError`. Forks of it keep working (a fork starts from a snapshot)."""
        ...

    async def close(self) -> None: ...


# --------------------------------------------------------------------------- shared checks


def check_status(status: str) -> None:
    """Refuse a run status that is not one of :data:`RUN_STATUSES`."""
    if status not in RUN_STATUSES:
        raise InvalidParameterError("status", status, f"one of {', '.join(RUN_STATUSES)}")


def check_run_fields(fields: Mapping[str, Any]) -> None:
    """Refuse fields ``update_run`` may not change (and unknown statuses)."""
    unknown = sorted(set(fields) - set(RUN_FIELDS))
    if unknown:
        raise UsageError(
            f"update_run() cannot change {', '.join(map(repr, unknown))}: it changes only "
            f"{', '.join(RUN_FIELDS)} (steps are saved with save_step)"
        )
    if "status" in fields:
        check_status(fields["status"])


def check_ttl(ttl: float) -> None:
    if not ttl > 0:
        raise InvalidParameterError("ttl", ttl, "seconds, > 0")


def unknown_run(run_id: str, where: str) -> StoreError:
    return StoreError(
        f"no run {run_id!r} in {where}; check the run id (list_runs() shows the stored runs)"
    )


def run_locked(run_id: str, holder: str, expires_in: float) -> RunLockedError:
    """The error for a runner that wants a run another runner holds."""
    return RunLockedError(
        f"run {run_id!r} is being advanced by another runner ({holder}, lease expires in "
        f"{max(expires_in, 0.0):.0f} s); wait for it to finish or for its lease to expire, "
        "then resume it"
    )


def lease_lost(run_id: str, owner: str, holder: str | None) -> RunLockedError:
    """The error for a runner that no longer holds the lease it writes under."""
    now = f"it is now held by {holder}" if holder else "it was released"
    return RunLockedError(
        f"run {run_id!r}: runner {owner} does not hold the run's lease ({now}); another runner "
        "may have advanced the run: restore it to continue from its latest checkpoint"
    )


# --------------------------------------------------------------------------- in memory


@dataclass
class _Lease:
    owner: str
    expires: float  # time.monotonic()
    ttl: float


_ATOMS = (str, int, float, bool, type(None))


def _copy(value: Any) -> Any:
    """A deep copy, quick for plain data (what steps mostly hold); ``copy.deepcopy`` for the
    rest."""
    kind = type(value)
    if kind in _ATOMS:
        return value
    if kind is dict:
        return {key: _copy(item) for key, item in value.items()}
    if kind is list:
        return [_copy(item) for item in value]
    if kind is tuple:
        return tuple(_copy(item) for item in value)
    return copy.deepcopy(value)


def _copy_step(record: StepRecord) -> StepRecord:
    return StepRecord(
        run_id=record.run_id,
        step=record.step,
        updates=_copy(record.updates),
        frontier=_copy(record.frontier),
        bookkeeping=_copy(record.bookkeeping),
        nodes=list(record.nodes),
        created_at=record.created_at,
    )


class InMemoryCheckpointer:
    """Checkpoints in a dict: fast, process-local, for tests and short-lived runs.

    Values are kept as Python objects (deep-copied), not JSON: a value that the SQLite
    checkpointer would refuse or turn into plain data stays as it is here.
    """

    def __init__(self, *, lease_ttl: float = DEFAULT_LEASE_TTL) -> None:
        check_ttl(lease_ttl)
        self.lease_ttl = lease_ttl
        self._runs: dict[str, RunRecord] = {}
        self._steps: dict[str, dict[int, StepRecord]] = {}
        self._calls: dict[tuple[str, int], dict[str, Any]] = {}
        self._leases: dict[str, _Lease] = {}

    def __repr__(self) -> str:
        return "InMemoryCheckpointer()"

    async def create_run(self, record: RunRecord, *, owner: str | None = None) -> None:
        check_status(record.status)
        if record.run_id in self._runs:
            raise StoreError(f"run {record.run_id!r} already exists; choose another run id")
        self._runs[record.run_id] = copy.deepcopy(record)
        self._steps[record.run_id] = {}
        if owner is not None:
            self._take(record.run_id, owner, self.lease_ttl)

    async def get_run(self, run_id: str) -> RunRecord | None:
        record = self._runs.get(run_id)
        return copy.deepcopy(record) if record is not None else None

    async def update_run(self, run_id: str, *, owner: str | None = None, **fields: Any) -> None:
        check_run_fields(fields)
        record = self._require(run_id)
        if owner is not None:
            self._check_holder(run_id, owner)
        self._runs[run_id] = replace(record, updated_at=time.time(), **copy.deepcopy(fields))

    async def list_runs(
        self, *, status: str | None = None, session_id: str | None = None, limit: int = 100
    ) -> list[RunRecord]:
        runs = [
            r
            for r in self._runs.values()
            if (status is None or r.status == status)
            and (session_id is None or r.session_id == session_id)
        ]
        runs.sort(key=lambda r: r.updated_at, reverse=True)
        return [copy.deepcopy(r) for r in runs[:limit]]

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
        check_status(status)
        run = self._require(record.run_id)
        lease = self._check_holder(record.run_id, owner)
        steps = self._steps[record.run_id]
        if record.step in steps:
            raise StoreError(f"run {record.run_id!r} already has a step {record.step}")
        steps[record.step] = _copy_step(record)
        run.step, run.status, run.question = record.step, status, question
        run.output, run.updated_at = _copy(output), time.time()
        if release:
            del self._leases[record.run_id]
        else:
            lease.expires = time.monotonic() + lease.ttl

    async def load_steps(self, run_id: str, *, upto: int | None = None) -> list[StepRecord]:
        self._require(run_id)
        steps = self._steps[run_id]
        return [_copy_step(steps[n]) for n in sorted(steps) if upto is None or n <= upto]

    async def record_call(self, run_id: str, step: int, key: str, payload: Any) -> None:
        self._require(run_id)
        self._calls.setdefault((run_id, step), {})[key] = _copy(payload)

    async def load_calls(self, run_id: str, step: int) -> dict[str, Any]:
        self._require(run_id)
        return {key: _copy(value) for key, value in self._calls.get((run_id, step), {}).items()}

    async def acquire(self, run_id: str, owner: str, *, ttl: float | None = None) -> None:
        self._require(run_id)
        held = self._leases.get(run_id)
        now = time.monotonic()
        if held is not None and held.owner != owner and held.expires > now:
            raise run_locked(run_id, held.owner, held.expires - now)
        self._take(run_id, owner, self.lease_ttl if ttl is None else ttl)

    async def release(self, run_id: str, owner: str) -> None:
        held = self._leases.get(run_id)
        if held is not None and held.owner == owner:
            del self._leases[run_id]

    async def delete_run(self, run_id: str) -> bool:
        if run_id not in self._runs:
            return False
        held = self._leases.get(run_id)
        now = time.monotonic()
        if held is not None and held.expires > now:
            raise run_locked(run_id, held.owner, held.expires - now)
        del self._runs[run_id]
        self._leases.pop(run_id, None)
        for step in self._steps.pop(run_id, {}):
            self._calls.pop((run_id, step), None)
        for key in [k for k in self._calls if k[0] == run_id]:  # calls of a step never saved
            del self._calls[key]
        return True

    async def close(self) -> None:
        return None

    def _take(self, run_id: str, owner: str, ttl: float) -> None:
        check_ttl(ttl)
        self._leases[run_id] = _Lease(owner, time.monotonic() + ttl, ttl)

    def _require(self, run_id: str) -> RunRecord:
        record = self._runs.get(run_id)
        if record is None:
            raise unknown_run(run_id, repr(self))
        return record

    def _check_holder(self, run_id: str, owner: str) -> _Lease:
        held = self._leases.get(run_id)
        if held is None or held.owner != owner:
            raise lease_lost(run_id, owner, held.owner if held is not None else None)
        return held
