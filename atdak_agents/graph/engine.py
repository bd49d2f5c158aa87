"""The step-by-step runner.

A run advances in *steps*. Each step runs every task of the current frontier (concurrently when
there are several), merges their updates into the state in frontier order — deterministic whatever
order they finished in — and computes the next frontier: static edges, routers (evaluated on the
merged state, no step of their own), joins (a target waits for all its sources). A checkpointer,
when given, commits the step atomically before the next one starts.

    run = graph.start({"question": "..."})
    report = await run.step()          # one step, and what happened
    result = await run.until_done()    # or graph.run(...) / graph.run_sync(...)
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextvars import Token
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .._ids import new_run_id
from ..exceptions import (
    GraphChangedError,
    NodeError,
    RunError,
    RunLockedError,
    StoreError,
    UsageError,
    UsageLimitExceeded,
)
from ..tracing.bus import Scope, current_scope
from ..tracing.bus import enter as _enter
from ..tracing.bus import leave as _leave
from ..tracing.events import (
    CheckpointSaved,
    EventBase,
    RunFailed,
    RunFinished,
    RunInterrupted,
    RunStarted,
    StateUpdated,
)
from ..usage import RunUsage, UsageLimits
from .checkpoint import DEFAULT_LEASE_TTL, Checkpointer, RunRecord, StepRecord
from .journal import Journal
from .nodes import HumanRunner, NodeContext, NodeOutcome, RunEnv, Task, run_node
from .spec import Limits

if TYPE_CHECKING:
    from .build import Graph

__all__ = ["Run", "RunResult", "StepReport", "empty_books", "new_run_id", "runner_id"]

TERMINAL = frozenset({"done", "failed"})
_STOPPED = TERMINAL | {"waiting", "interrupted"}  # statuses a run does not step on from
#: No usage limit (a graph without limits gives its runs this one: checked by identity).
NO_USAGE_LIMITS = UsageLimits()
_MAX_ROUTER_CHAIN = 64
_NOTHING: frozenset[str] = frozenset()


@dataclass(slots=True)
class StepReport:
    """What one step did."""

    step: int
    nodes: list[str]
    updated: list[str]
    status: str
    question: str | None = None


@dataclass
class RunResult:
    """How a run ended (or paused).

    ``status``: ``done``; ``waiting`` (for a human: see ``question``); ``interrupted`` (cancelled
    or a run-wide limit, see ``reason``; resumable); ``failed`` (see ``error``).
    """

    run_id: str
    status: str
    output: dict[str, Any]
    state: dict[str, Any]
    usage: RunUsage
    steps: int
    question: str | None = None
    reason: str | None = None
    error: str | None = None
    ended_at: str | None = None

    @property
    def done(self) -> bool:
        return self.status == "done"


def runner_id() -> str:
    """Identifies this process as a lease holder."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Run:
    """One execution of a graph, advanced step by step. Create with ``graph.start(...)``."""

    # What a run starts with unless told otherwise: class attributes, not set per run (most
    # runs never change them, and a run's start is on every call's path).
    question: str | None = None
    reason: str | None = None
    error: str | None = None
    _owner_id: str | None = None
    _made_root: Scope | None = None  # the run's span, made when first needed
    _resumed = False  # restored from checkpoints: announce it at the first step
    _stale_error = False  # the store still says why it stopped: clear it when it goes on
    _driver: asyncio.Task[RunResult] | None = None
    _shared_journal: Journal | None = None  # a subgraph's: its parent's step journal
    _leased = False  # this runner holds the run's lease in the checkpointer
    _calls_unknown = False  # another runner may have journaled calls of the next step
    _pending: Journal | None = None  # the journal of the step being attempted
    _renewal: asyncio.TimerHandle | None = None
    _renewing: asyncio.Future[None] | None = None  # the latest renewal, kept alive

    def __init__(
        self,
        graph: Graph,
        env: RunEnv,
        *,
        run_id: str,
        state: dict[str, Any],
        frontier: list[Task],
        checkpointer: Checkpointer | None = None,
        step: int = 0,
        bookkeeping: dict[str, Any] | None = None,
        status: str = "pending",
        path_prefix: str = "",
        limits: Limits | None = None,
        journal: Journal | None = None,
    ) -> None:
        self.id = run_id
        self.graph = graph
        self.env = env
        self.state = state
        self.frontier = frontier
        self.status = status
        self.checkpointer = checkpointer
        self._step = step
        self._prefix = path_prefix
        self._limits = limits = limits or graph.spec.limits
        self._bounded = limits.steps is not None or limits.wall_seconds is not None
        self._books = bookkeeping if bookkeeping is not None else empty_books()
        self._started_at = time.monotonic()
        ceilings = env.usage_limits
        self._usage_limited = ceilings is not NO_USAGE_LIMITS and ceilings != NO_USAGE_LIMITS
        if journal is not None:
            self._shared_journal = journal
        env.answers = self._books["answers"]

    # ------------------------------------------------------------------ public API

    @property
    def _owner(self) -> str:
        """This runner's name as a lease holder (made on first use: runs without a
        checkpointer never need it)."""
        if self._owner_id is None:
            self._owner_id = runner_id()
        return self._owner_id

    @property
    def _root(self) -> Scope:
        """The run's span: the parent of its nodes' spans and where run events are emitted
        (made on first use: a run nobody listens to never needs it)."""
        root = self._made_root
        if root is None:
            root = self._made_root = _root_scope(self.env, self._prefix)
            root.step = self._step
            if not self._prefix:  # a subgraph's nodes hang under its node's span instead
                self.env.bus.root = root
        return root

    @property
    def _unleased(self) -> bool:
        """A checkpointed run whose lease this runner does not hold (given back at a pause)."""
        return self.checkpointer is not None and not self._leased

    @property
    def steps(self) -> int:
        """Steps completed so far."""
        return self._step

    def events(
        self,
        *,
        include: Collection[str] | None = None,
        exclude: Collection[str] = (),
        content: bool = True,
    ) -> AsyncIterator[EventBase]:
        """A live stream of this run's events; iterating it drives the run if nothing else does.

        ``exclude={"token"}`` drops streamed tokens; ``content=False`` drops message contents.
        """
        subscription = self.env.bus.subscribe(include=include, exclude=exclude, content=content)
        return self._drive_while(subscription)

    async def _drive_while(
        self, subscription: AsyncIterator[EventBase]
    ) -> AsyncIterator[EventBase]:
        if self._driver is None and self.status not in _STOPPED - {"interrupted"}:
            self._driver = asyncio.ensure_future(self.until_done())
        async for event in subscription:
            yield event
        if self._driver is not None and self._driver.done():
            self._driver.result()  # surface a crash of the driver

    async def step(self) -> StepReport:
        """Run the next step and return what it did."""
        self._check_can_step()
        ran = await self._advance_one()
        if ran is None:  # stopped by a run-wide limit before or during it
            return StepReport(self._step, [], [], self.status)
        tasks, changed = ran
        return StepReport(self._step, [t.path for t in tasks], changed, self.status, self.question)

    async def _advance_one(self) -> tuple[Sequence[Task], list[str]] | None:
        """One step: the tasks it ran and the state keys they changed (``None`` when a
        run-wide limit stopped the run)."""
        if self.status == "interrupted":  # stepping on continues it: why it stopped is past
            self.status, self.reason = "running", None
            self._stale_error = self.checkpointer is not None
        token = self._enter_root() if self.env.bus.active else None
        try:
            if self.status == "pending" or self._resumed or self._unleased:
                await self._open()
            if self._stale_error:
                await self._forget_stop()
            try:
                if self._bounded:
                    changed = await self._step_within_limits()
                else:
                    changed = await self._run_step()
                if self._usage_limited:
                    self.env.check_usage()
            except RunLockedError as exc:
                self._lose_lease(exc)
                raise
            except (UsageLimitExceeded, asyncio.TimeoutError) as exc:
                reason = _limit_reason(exc, self._limits)
                await self._interrupt(reason)
                return None
            except asyncio.CancelledError:
                await self._interrupt("cancelled")
                raise
            except RunError as exc:
                await self._fail(exc)
                raise
        finally:
            if token is not None:
                _leave(token)
        return changed

    def _enter_root(self) -> Token[Scope | None] | None:
        """Someone listens: the nodes' spans need the run's span as their parent. The bus knows
        a top-level run's (``bus.root``); a subgraph's is made current for the step (a context
        variable switched per step costs more than the step, and under concurrency it
        multiplies the garbage collector's passes: see docs/agents-performance.md)."""
        root = self._root
        return _enter(root) if self._prefix else None

    async def until_done(self) -> RunResult:
        """Step until the run ends or pauses; returns the result (never raises for a failed
        node: the result says ``failed`` and why)."""
        try:
            while self.status not in _STOPPED:
                try:
                    await self._advance_one()
                except RunError:
                    break
            if self._leased and self.status in _STOPPED:
                await self.release()  # e.g. a run restored at a pause, and left there
        finally:
            if not self._prefix:
                env = self.env
                env.bus.end_subscriptions()
                if env.owns_provider:
                    await env.close_owned()
        return self.result()

    def answer(self, value: Any) -> None:
        """Give the waiting human node its answer; the next step continues the run."""
        waiting = self._books["waiting"]
        if self.status != "waiting" and not (waiting and self.status == "running"):
            # (a run forked at a pause is "running" with its human node still waiting)
            raise UsageError(f"run {self.id} is not waiting for an answer (status: {self.status})")
        answers = value if len(waiting) > 1 and isinstance(value, Mapping) else {waiting[0]: value}
        for path, answer in answers.items():
            self._check_answer(str(path), answer)
        self._books["answers"].update({str(k): v for k, v in answers.items()})
        self.status = "running"
        self.question = None

    async def release(self) -> None:
        """Give up this runner's lease on the run (another process may then resume it)."""
        if self.checkpointer is not None:
            self._leased = False
            await self.checkpointer.release(self.id, self._owner)

    def _check_answer(self, path: str, answer: Any) -> None:
        task = next((t for t in self.frontier if t.path == path), None)
        if task is None:
            raise UsageError(f"no human node {path!r} is waiting in run {self.id}")
        runner = self.graph.runners[task.node]
        if isinstance(runner, HumanRunner):
            runner.check_answer(path, answer)

    def result(self) -> RunResult:
        state = dict(self.state)
        output: dict[str, Any] = {}
        if self.status == "done":  # (no outputs declared: the output is the state, a copy)
            output = self._output() if self.graph.outputs else dict(state)
        return RunResult(
            run_id=self.id,
            status=self.status,
            output=output,
            state=state,
            usage=self.env.usage,
            steps=self._step,
            question=self.question,
            reason=self.reason,
            error=self.error,
            ended_at=(self._books["ended"] or [None])[-1],
        )

    # ------------------------------------------------------------------ lifecycle

    def _check_can_step(self) -> None:
        if self.status in TERMINAL:
            raise UsageError(f"run {self.id} has ended ({self.status}); start a new run")
        if self.status == "waiting":
            raise UsageError(
                f"run {self.id} is waiting for human input ({self.question!r}); "
                "call run.answer(...) or graph.resume(run_id, answer=...) first"
            )

    async def _open(self) -> None:
        """Before a step: start the run, take its lease back after a pause, announce a
        resumed run."""
        if self.status == "pending":
            self.status = "running"
            if not self.frontier:
                self.frontier = self._entry_frontier()
            if self.checkpointer is not None:
                await self._create()
            if RunStarted in self.env.bus.wanted:
                inputs = dict(self.env.inputs)
                self._root.emit(RunStarted, graph=self.graph.name, inputs=inputs, resumed=False)
        elif self.checkpointer is not None and not self._leased:
            try:
                await self._acquire()  # released at a pause: take the run back
            except RunLockedError as exc:
                self._lose_lease(exc)
                raise
        if self._resumed:
            self._resumed = False
            if RunStarted in self.env.bus.wanted:
                inputs = dict(self.env.inputs)
                self._root.emit(RunStarted, graph=self.graph.name, inputs=inputs, resumed=True)

    async def _forget_stop(self) -> None:
        """The stored run goes on: running again, without the error or reason it stopped with."""
        assert self.checkpointer is not None
        self._stale_error = False
        await self.checkpointer.update_run(self.id, owner=self._owner, status="running", error=None)

    async def _create(self) -> None:
        """Store the new run in the checkpointer, this runner holding its lease."""
        assert self.checkpointer is not None
        record = RunRecord(
            run_id=self.id,
            graph=self.graph.name,
            fingerprint=self.graph.fingerprint,
            inputs=dict(self.env.inputs),
            session_id=self.env.session_id,
        )
        await self.checkpointer.create_run(record, owner=self._owner)
        self._leased = True

    async def _step_within_limits(self) -> tuple[Sequence[Task], list[str]]:
        limits = self._limits
        if limits.steps is not None and self._step >= limits.steps:
            raise UsageLimitExceeded("steps", self._step + 1, limits.steps)
        if limits.wall_seconds is None:
            return await self._run_step()
        remaining = limits.wall_seconds - (time.monotonic() - self._started_at)
        if remaining <= 0:
            raise asyncio.TimeoutError
        return await asyncio.wait_for(self._run_step(), remaining)

    async def _acquire(self) -> None:
        assert self.checkpointer is not None
        await self.checkpointer.acquire(self.id, self._owner)
        self._leased = True
        self._calls_unknown = True

    def _lose_lease(self, exc: RunLockedError) -> None:
        """Another runner holds the run now: stop here, writing nothing more to the store."""
        self._leased = False
        self.status = "interrupted"
        self.reason = str(exc)
        self._root.emit(RunInterrupted, reason=self.reason, usage=self.env.usage.totals())

    async def interrupt(self, reason: str = "stopped") -> None:
        """Stop the run between steps, resumably: it is stored as ``interrupted`` with
        ``reason`` and its lease is given back (a run that has ended or waits is left as is).
        To stop a step in progress, cancel the task running it instead."""
        if self.status in TERMINAL | {"waiting", "interrupted"}:
            return
        if self.status == "pending":  # never started: nothing is stored
            self.status, self.reason = "interrupted", reason
            return
        await self._interrupt(reason)

    async def _interrupt(self, reason: str) -> None:
        self.status = "interrupted"
        self.reason = reason
        self._root.emit(RunInterrupted, reason=reason, usage=self.env.usage.totals())
        await self._store_status()

    async def _fail(self, exc: BaseException) -> None:
        self.status = "failed"
        self.error = str(exc)
        self._root.emit(
            RunFailed,
            error=str(exc),
            error_type=type(exc).__name__,
            usage=self.env.usage.totals(),
            duration=time.monotonic() - self._started_at,
        )
        await self._store_status()
        self._close()

    def _finish(self) -> None:
        if RunFinished in self.env.bus.wanted:
            self._root.emit(
                RunFinished,
                status="done",
                output=self._output(),
                usage=self.env.usage.totals(),
                duration=time.monotonic() - self._started_at,
            )
        self._close()

    async def _store_status(self) -> None:
        if self.checkpointer is None:
            return
        try:
            fields: dict[str, Any] = {"status": self.status, "question": self.question}
            fields["error"] = self.error if self.status == "failed" else self.reason
            if self.status == "done":
                fields["output"] = self._output()
            owner = self._owner if self._leased else None
            await self.checkpointer.update_run(self.id, owner=owner, **fields)
            if self.status in TERMINAL | {"interrupted", "waiting"} and self._leased:
                self._leased = False
                await self.checkpointer.release(self.id, self._owner)
        except StoreError:
            if self.status != "failed":
                raise

    def _close(self) -> None:
        if not self._prefix:  # a subgraph shares its parent's bus
            self.env.bus.close()

    # ------------------------------------------------------------------ one step

    async def _run_step(self) -> tuple[Sequence[Task], list[str]]:
        number = self._step + 1
        if self._made_root is not None:
            self._made_root.step = number
        tasks = self.frontier
        if self.checkpointer is None:  # (a subgraph journals into its parent's step)
            journal = self._shared_journal
        else:
            journal = await self._journal(number)
            self._keep_lease()
        try:
            if len(tasks) == 1:  # (run here: one coroutine less between the node and the loop)
                task = tasks[0]
                ctx = NodeContext(self.env, MappingProxyType(self.state), task.path, number)
                outcomes = [await run_node(self.graph.runners[task.node], ctx, journal)]
            else:
                outcomes = await self._execute(tasks, number, journal)
        finally:
            if self._renewal is not None:
                self._stop_keeping_lease()
        updates, changed, waiting = self._merge(tasks, outcomes)
        self.frontier = self._advance(tasks, waiting)
        self._step = number
        if waiting or self._books["waiting"]:
            self._books["waiting"] = [t.path for t in waiting]
        self.status = "waiting" if waiting else ("running" if self.frontier else "done")
        failed_end = self._failed_end() if self.status == "done" and self.graph.can_fail else None
        if failed_end is not None:
            self.status = "failed"
        if changed and StateUpdated in self.env.bus.wanted:  # live views only, by default
            values = {key: self.state[key] for key in changed}
            self._root.emit(StateUpdated, keys=changed, values=values)
        if self.checkpointer is not None:
            await self._save(number, tasks, updates)
        if self.status == "done":
            self._finish()
        elif failed_end is not None:
            await self._fail(NodeError(failed_end, "the run ended here (an end marked failed)"))
        elif waiting and not self._prefix and RunInterrupted in self.env.bus.wanted:
            usage = self.env.usage.totals()
            reason = "waiting for input"
            self._root.emit(RunInterrupted, reason=reason, question=self.question, usage=usage)
        return tasks, changed

    async def _journal(self, number: int) -> Journal:
        """The step's journal: the calls already made in it, by this runner or (after a
        resume) by one before it. While this runner holds the lease nobody else journals, so
        the store is read only when the lease was (re)taken."""
        assert self.checkpointer is not None
        pending = self._pending
        if self._calls_unknown:
            self._calls_unknown = False
            recorded = await self.checkpointer.load_calls(self.id, number)
        elif pending is not None and pending.step == number:
            return pending  # this step again (after a cancellation or a failure)
        else:
            recorded = {}
        self._pending = Journal(self.checkpointer, self.id, number, recorded)
        return self._pending

    def _keep_lease(self) -> None:
        """Renew the lease every third of its time-to-live while a long step runs."""
        ttl = getattr(self.checkpointer, "lease_ttl", DEFAULT_LEASE_TTL)
        loop = asyncio.get_running_loop()
        self._renewal = loop.call_later(ttl / 3, self._renew_lease, ttl)

    def _renew_lease(self, ttl: float) -> None:
        assert self.checkpointer is not None
        self._renewing = asyncio.ensure_future(self.checkpointer.acquire(self.id, self._owner))
        self._renewing.add_done_callback(_ignore_outcome)  # a lost lease shows at save_step
        self._renewal = asyncio.get_running_loop().call_later(ttl / 3, self._renew_lease, ttl)

    def _stop_keeping_lease(self) -> None:
        if self._renewal is not None:
            self._renewal.cancel()
            self._renewal = None

    async def _execute(
        self, tasks: Sequence[Task], number: int, journal: Journal | None
    ) -> list[NodeOutcome]:
        state = MappingProxyType(self.state)
        results = await asyncio.gather(
            *(self._run_task(t, state, number, journal) for t in tasks), return_exceptions=True
        )
        for outcome in results:  # the first failure in frontier order, whatever finished first
            if isinstance(outcome, BaseException):
                raise outcome
        return results  # type: ignore[return-value]

    async def _run_task(
        self, task: Task, state: Mapping[str, Any], number: int, journal: Journal | None
    ) -> NodeOutcome:
        ctx = NodeContext(self.env, state, task.path, number)
        return await run_node(self.graph.runners[task.node], ctx, journal)

    def _merge(
        self, tasks: Sequence[Task], outcomes: Sequence[NodeOutcome]
    ) -> tuple[list[tuple[str, str, Any]], list[str], list[Task]]:
        if len(tasks) == 1:
            return self._merge_one(tasks[0], outcomes[0])
        updates: list[tuple[str, str, Any]] = []
        changed: list[str] = []
        waiting: list[Task] = []
        apply = self.graph.schema.apply
        for task, outcome in zip(tasks, outcomes, strict=True):
            if outcome.interrupt is not None:
                waiting.append(task)
                self.question = outcome.interrupt
                continue
            if outcome.updates:
                for key in apply(self.state, task.path, outcome.updates):
                    updates.append((task.path, key, outcome.updates[key]))
                    if key not in changed:
                        changed.append(key)
        return updates, changed, waiting

    def _merge_one(
        self, task: Task, outcome: NodeOutcome
    ) -> tuple[list[tuple[str, str, Any]], list[str], list[Task]]:
        """:meth:`_merge` for a step of one node (the usual case)."""
        if outcome.interrupt is not None:
            self.question = outcome.interrupt
            return [], [], [task]
        values = outcome.updates
        if not values:
            return [], [], []
        path = task.path
        changed = self.graph.schema.apply(self.state, path, values)
        return [(path, key, values[key]) for key in changed], changed, []

    async def _save(self, number: int, tasks: Sequence[Task], updates: list[Any]) -> None:
        if self.checkpointer is None:
            return
        record = StepRecord(
            run_id=self.id,
            step=number,
            updates=updates,
            frontier=[{"node": t.node, "path": t.path} for t in self.frontier],
            bookkeeping=self._books,
            nodes=[t.path for t in tasks],
        )
        pausing = self.status in ("waiting", "done")
        await self.checkpointer.save_step(
            record,
            owner=self._owner,
            status=self.status,
            question=self.question if self.status == "waiting" else None,
            output=self._output() if self.status == "done" else None,
            release=pausing,
        )
        self._pending = None
        if pausing:
            self._leased = False
        self._root.emit(CheckpointSaved, checkpoint_id=f"{self.id}:{number}")

    # ------------------------------------------------------------------ routing

    def _advance(self, tasks: Sequence[Task], waiting: Sequence[Task]) -> list[Task]:
        """The next frontier: tasks still waiting first, then successors in edge order."""
        if len(tasks) == 1 and not waiting and not self._prefix:  # one node, one plain edge?
            graph, node = self.graph, tasks[0].node
            if node in graph.next_task:
                return [graph.next_task[node]]
            if node in graph.next_end:
                self._books["ended"].append(graph.next_end[node])
                return []
        frontier = list(waiting)
        scheduled = {t.node for t in waiting}
        waiting_nodes = frozenset(scheduled) if waiting else _NOTHING
        successors = self.graph.successors
        for task in tasks:
            if task.node in waiting_nodes:
                continue
            for target, join in successors[task.node]:
                self._reach(target, task.node, join, frontier, scheduled, 0)
        return frontier

    def _reach(
        self,
        target: str,
        source: str,
        join: int | None,
        frontier: list[Task],
        scheduled: set[str],
        depth: int,
    ) -> None:
        graph = self.graph
        if join is not None and not self._join_complete(join, source):
            return
        if target in graph.ends:
            self._books["ended"].append(target)
            return
        if target in graph.routers:
            if depth > _MAX_ROUTER_CHAIN:
                raise NodeError(target, "routers route to each other in a loop without a node")
            chosen = self._route(target)
            self._reach(chosen, target, None, frontier, scheduled, depth + 1)
            return
        if target not in scheduled:
            scheduled.add(target)
            prefix = self._prefix
            frontier.append(Task(target, prefix + target) if prefix else graph.tasks[target])

    def _failed_end(self) -> str | None:
        """The end the run reached, when that end says the run failed."""
        ended = self._books["ended"]
        last = ended[-1] if ended else None
        return last if last is not None and self.graph.end_status.get(last) == "failed" else None

    def _entry_frontier(self) -> list[Task]:
        if not self._prefix and self.graph.entry in self.graph.tasks:
            return [self.graph.tasks[self.graph.entry]]
        frontier: list[Task] = []
        self._reach(self.graph.entry, "", None, frontier, set(), 0)
        return frontier

    def _join_complete(self, join: int, source: str) -> bool:
        arrived = self._books["joins"].setdefault(str(join), [])
        if source not in arrived:
            arrived.append(source)
        if set(arrived) >= self.graph.joins[join]:
            del self._books["joins"][str(join)]
            return True
        return False

    def _route(self, router: str) -> str:
        names = {"state": MappingProxyType(self.state), "inputs": self.env.inputs}
        counts = self._books["routes"]
        for index, route in enumerate(self.graph.routers[router]):
            taken = f"{router}:{index}"
            if route.when is not None and not route.when.evaluate(names, where=router):
                continue
            if route.max_iterations is not None and counts.get(taken, 0) >= route.max_iterations:
                if route.is_otherwise:
                    return route.exhausted
                continue
            counts[taken] = counts.get(taken, 0) + 1
            return route.target
        raise NodeError(router, "no route matched and there is no `otherwise` route")

    def _output(self) -> dict[str, Any]:
        outputs = self.graph.outputs
        if not outputs:
            return dict(self.state)
        names = {"state": MappingProxyType(self.state), "inputs": self.env.inputs}
        return {name: expr.evaluate(names, where=f"outputs.{name}") for name, expr in outputs}

    # ------------------------------------------------------------------ resuming

    @classmethod
    async def restore(
        cls,
        graph: Graph,
        env: RunEnv,
        checkpointer: Checkpointer,
        *,
        migrate: bool = False,
    ) -> Run:
        """Rebuild a run from its checkpoints (after a crash, a pause or in another process)."""
        record = await checkpointer.get_run(env.run_id)
        if record is None:
            raise StoreError(f"no run {env.run_id!r} in the checkpointer")
        if record.fingerprint != graph.fingerprint and not migrate:
            raise GraphChangedError(
                f"run {env.run_id} was started with a different version of graph "
                f"{record.graph!r} (fingerprint {record.fingerprint[:12]}, now "
                f"{graph.fingerprint[:12]}); resume with migrate=True to continue it under "
                "the new graph, or start a new run"
            )
        steps = await checkpointer.load_steps(env.run_id)
        state, frontier, books = graph.replay(steps)
        _check_frontier(graph, env.run_id, frontier)
        run = cls(
            graph,
            env,
            run_id=env.run_id,
            state=state,
            frontier=frontier,
            checkpointer=checkpointer,
            step=steps[-1].step if steps else 0,
            bookkeeping=books,
            status=_resumed_status(record.status),
        )
        run.question = record.question
        run._resumed = True
        run._stale_error = record.error is not None and run.status == "running"
        if not steps:  # it died before its first step completed
            run.frontier = run._entry_frontier()
        if run.status != "done":  # a finished run has nothing to advance
            await run._acquire()
        return run


def _root_scope(env: RunEnv, prefix: str) -> Scope:
    """A run's root span; a subgraph's hangs under the node that runs it, so a trace is a tree."""
    parent = current_scope() if prefix else None
    parent_id = parent.span_id if parent is not None else None
    span_id = env.bus.new_span_id()
    return Scope(env.bus, env.run_id, span_id, parent_id, None, prefix.rstrip("/") or None)


def empty_books() -> dict[str, Any]:
    """Fresh run bookkeeping: join arrivals, router counters, answers, waiting, ends."""
    return {"joins": {}, "routes": {}, "answers": {}, "waiting": [], "ended": []}


def _check_frontier(graph: Graph, run_id: str, frontier: Sequence[Task]) -> None:
    """A migrated run continues with the nodes it had scheduled: they must still exist."""
    missing = sorted({t.node for t in frontier} - set(graph.runners))
    if missing:
        raise GraphChangedError(
            f"run {run_id} cannot continue under this version of graph {graph.name!r}: its "
            f"next step runs {', '.join(map(repr, missing))}, which the graph no longer has; "
            "keep those nodes until the runs that need them are done, or start a new run"
        )


def _ignore_outcome(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log it


def _resumed_status(stored: str) -> str:
    return {"interrupted": "running", "failed": "running", "pending": "running"}.get(stored, stored)


def _limit_reason(exc: BaseException, limits: Limits) -> str:
    if isinstance(exc, UsageLimitExceeded):
        return f"limit reached: {exc}"
    return f"limit reached: wall time of {limits.wall_seconds:g} s"
