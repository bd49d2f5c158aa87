"""Runs in a server: started, driven in the background, paused, answered, cancelled, resumed,
deleted.

The :class:`RunManager` owns every live run. A run is driven step by step by a background task
(never by the request that started it), so a client that goes away changes nothing; each step is
checkpointed by the engine before the next starts. A paused run (``waiting``, ``interrupted``)
leaves memory: answering or resuming it restores it from its checkpoints, the same path as after
a restart. When the server stops, runs stop at the end of their current step and are resumed
when it starts again. A stopped run can be deleted (checkpoints and events); a running one must
be cancelled first.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import (
    GraphChangedError,
    MissingAPIKeyError,
    ProviderError,
    RunError,
    RunLockedError,
    StoreError,
    UsageError,
)
from ..graph.checkpoint import Checkpointer, RunRecord
from ..graph.engine import Run, RunResult, new_run_id
from ..tracing.events import EventBase, RunFailed, RunInterrupted, event_to_json
from ._config import ServerConfig
from ._errors import HTTPError
from ._events import EventRecorder, EventStore, RunChannel, RunMeta, StoredEvent, add_usage
from ._limits import KeyLimiter
from ._runinfo import cancel_first, deleted_info, live_info, stored_info, unknown_run
from ._served import ServedWorkflow

__all__ = ["CANCELLED", "SHUTDOWN_REASON", "LiveRun", "RunManager"]

log = logging.getLogger("atdak_agents.server")

SHUTDOWN_REASON = "the server stopped; the run continues when it starts again"
CANCELLED = "cancelled"
WAITING_REASON = "waiting for an answer"
STOPPED = frozenset({"done", "failed", "cut_off", "waiting", "interrupted"})
ENDED = frozenset({"done", "failed", "cut_off"})
_NOTHING: Any = object()
_RESUME_TRIES = 5


@dataclass(eq=False)
class LiveRun:
    """A run this server is driving right now."""

    run: Run
    served: ServedWorkflow
    channel: RunChannel
    meta: RunMeta
    limited: bool
    task: asyncio.Task[None] | None = None
    step_task: asyncio.Future[Any] | None = None
    stop_after_step: bool = False
    cancel_requested: bool = False
    upstream_failed: bool = False
    finished: asyncio.Future[RunResult] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def cancelling(self) -> bool:
        """Whether a cancel was asked for (read anew each time: it changes while driving)."""
        return self.cancel_requested


class RunManager:
    """Starts, drives, answers, cancels and resumes the runs of the served workflows."""

    def __init__(
        self,
        workflows: Mapping[str, ServedWorkflow],
        checkpointer: Checkpointer,
        events: EventStore,
        config: ServerConfig,
        redact: Callable[[bytes], bytes],
    ) -> None:
        self.workflows = workflows
        self.checkpointer = checkpointer
        self.events = events
        self.config = config
        self.redact = redact
        self.live: dict[str, LiveRun] = {}
        self.limits = KeyLimiter(config.max_runs_per_key)
        self.stopping = False
        self._reserved: set[str] = set()  # being restored to run again
        self._deleting: set[str] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self._grace: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ starting

    def workflow(self, name: str) -> ServedWorkflow:
        served = self.workflows.get(name)
        if served is None:
            known = ", ".join(self.workflows)
            raise HTTPError(
                404,
                f"no workflow named {name!r} is served here (served: {known})",
                code="model_not_found",
                param="model",
            )
        return served

    async def start(
        self,
        served: ServedWorkflow,
        inputs: Mapping[str, Any],
        *,
        session_id: str | None,
        key_id: str,
        tokens: bool,
        kind: str,
    ) -> LiveRun:
        """A new run of ``served``, driven in the background from now on."""
        self._check_open()
        self.limits.acquire(key_id)
        try:
            run_id = new_run_id()
            channel = RunChannel(run_id, self.events, base=0, buffer=self.config.event_buffer)
            run = served.graph.start(
                inputs,
                provider=served.provider,
                checkpointer=self.checkpointer,
                run_id=run_id,
                session_id=session_id,
                sinks=[self._recorder(served, channel, tokens)],
                memory=served.memory,
            )
            meta = RunMeta(run_id, served.name, key_id, tokens, kind)
            await self.events.save_meta(meta)
        except UsageError as exc:
            self.limits.release(key_id)
            raise HTTPError(400, str(exc), param="inputs", code="invalid_inputs") from None
        except BaseException:
            self.limits.release(key_id)
            raise
        return self._launch(run, served, channel, meta, limited=True)

    async def resume(
        self,
        run_id: str,
        *,
        key_id: str,
        answer: Any = _NOTHING,
        tokens: bool | None = None,
        limited: bool = True,
    ) -> LiveRun:
        """Continue a stored run: answer the human node it waits for, or resume it after an
        interruption (a cancel, a limit, a server restart)."""
        self._check_open()
        record = await self._resumable(run_id, answering=answer is not _NOTHING)
        served = self.workflow(record.graph)
        self._check_not_deleting(run_id)  # again: a delete may have begun while we read
        self._reserved.add(run_id)
        if limited:
            self.limits.acquire(key_id)
        try:
            live = await self._restore(record, served, key_id, answer, tokens, limited)
        except BaseException:
            if limited:
                self.limits.release(key_id)
            raise
        finally:
            self._reserved.discard(run_id)
        return live

    async def _resumable(self, run_id: str, *, answering: bool) -> RunRecord:
        if run_id in self.live or run_id in self._reserved:
            raise HTTPError(409, f"run {run_id} is running now", code="run_running")
        self._check_not_deleting(run_id)
        record = await self.checkpointer.get_run(run_id)
        if record is None:
            raise unknown_run(run_id)
        status = record.status
        if status in ENDED:
            raise HTTPError(409, f"run {run_id} has ended ({status})", code="run_ended")
        if answering and status != "waiting":
            raise HTTPError(
                409,
                f"run {run_id} is not waiting for an answer (status: {status})",
                code="not_waiting",
            )
        if not answering and status == "waiting":
            raise HTTPError(
                409,
                f"run {run_id} is waiting for an answer to {record.question!r}: "
                f"POST /v1/runs/{run_id}/answer",
                code="waiting",
            )
        return record

    async def _restore(
        self,
        record: RunRecord,
        served: ServedWorkflow,
        key_id: str,
        answer: Any,
        tokens: bool | None,
        limited: bool,
    ) -> LiveRun:
        run_id = record.run_id
        meta = await self.events.get_meta(run_id) or RunMeta(
            run_id, served.name, key_id, False, "api"
        )
        if tokens is not None:
            meta.tokens = tokens
        base = await self.events.last_seq(run_id)
        channel = RunChannel(run_id, self.events, base=base, buffer=self.config.event_buffer)
        try:
            run = await served.graph.restore(
                run_id,
                checkpointer=self.checkpointer,
                provider=served.provider,
                sinks=[self._recorder(served, channel, meta.tokens)],
                memory=served.memory,
            )
        except (RunLockedError, GraphChangedError) as exc:
            raise HTTPError(409, str(exc), code="run_locked") from None
        if answer is not _NOTHING:
            try:
                run.answer(answer)
            except UsageError as exc:
                await run.release()
                raise HTTPError(400, str(exc), param="answer", code="invalid_answer") from None
        return self._launch(run, served, channel, meta, limited=limited)

    def _recorder(self, served: ServedWorkflow, channel: RunChannel, tokens: bool) -> EventRecorder:
        redact = self.redact

        def masked(data: bytes) -> bytes:
            return served.redact(redact(data))

        return EventRecorder(channel, masked, wants_tokens=tokens)

    def _launch(
        self, run: Run, served: ServedWorkflow, channel: RunChannel, meta: RunMeta, *, limited: bool
    ) -> LiveRun:
        live = LiveRun(run, served, channel, meta, limited)
        self.live[run.id] = live
        live.task = asyncio.ensure_future(self._drive(live))
        if self.stopping:
            live.stop_after_step = True
        return live

    def _check_open(self) -> None:
        if self.stopping:
            raise HTTPError(
                503,
                "the server is shutting down; retry in a moment",
                code="shutting_down",
                headers={"Retry-After": "5"},
            )

    # ------------------------------------------------------------------ driving

    async def _drive(self, live: LiveRun) -> None:
        try:
            await self._steps(live)
            await self._settle(live)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a store failure while settling: the run stays resumable
            log.error("run %s: %s: %s", live.run.id, type(exc).__name__, self._text(str(exc)))
        finally:
            await self._retire(live)

    async def _steps(self, live: LiveRun) -> None:
        run = live.run
        while run.status not in STOPPED:
            if live.stop_after_step or live.cancelling():
                return
            live.step_task = step = asyncio.ensure_future(run.step())
            try:
                await step
            except asyncio.CancelledError:
                if live.cancelling() and step.cancelled():
                    return  # the engine stored the run as interrupted: cancelled
                raise
            except ProviderError:
                live.upstream_failed = True
                return  # the engine stored the run as failed
            except RunError:
                return
            except Exception as exc:  # a mistake the engine lets through (a missing API key)
                live.upstream_failed = isinstance(exc, MissingAPIKeyError)
                await self._fail(live, exc)
                return
            finally:
                live.step_task = None

    async def _settle(self, live: LiveRun) -> None:
        """Say why a run stopped when the engine does not: a pause for a human, a cancel
        between steps, a server shutdown."""
        run = live.run
        if run.status == "waiting":
            if live.channel.last_type != "run_interrupted":  # the engine says so itself
                self._publish(run, RunInterrupted, reason=WAITING_REASON, question=run.question)
        elif run.status not in STOPPED:
            await run.interrupt(CANCELLED if live.cancel_requested else SHUTDOWN_REASON)

    async def _fail(self, live: LiveRun, exc: Exception) -> None:
        run = live.run
        run.status, run.error = "failed", str(exc)
        self._publish(run, RunFailed, error=str(exc), error_type=type(exc).__name__)
        try:
            await self.checkpointer.update_run(run.id, status="failed", error=str(exc))
            await run.release()
        except StoreError as store_error:
            log.error("run %s: could not store its failure: %s", run.id, store_error)

    def _publish(self, run: Run, cls: Callable[..., EventBase], **fields: Any) -> None:
        event = cls(run_id=run.id, ts=time.time(), usage=run.env.usage.totals(), **fields)
        run.env.bus.publish(event)

    async def _retire(self, live: LiveRun) -> None:
        run = live.run
        if run.status not in ENDED:
            run.env.bus.close()  # a paused run leaves memory (the engine closes ended ones)
        try:
            await live.channel.end()
        finally:
            self.live.pop(run.id, None)
            if live.limited:
                self.limits.release(live.meta.key_id)
            if not live.finished.done():
                live.finished.set_result(run.result())

    def _text(self, text: str) -> str:
        return self.redact(text.encode("utf-8")).decode("utf-8", errors="replace")

    # ------------------------------------------------------------------ cancelling

    async def cancel(self, run_id: str) -> None:
        """Stop a run: a live one now (its current step is abandoned; what completed stays),
        a paused one where it is. It stays resumable."""
        live = self.live.get(run_id)
        if live is not None:
            live.cancel_requested = True
            if live.step_task is not None and not live.step_task.done():
                live.step_task.cancel()
            await asyncio.shield(live.finished)
            return
        self._check_not_deleting(run_id)
        record = await self.checkpointer.get_run(run_id)
        if record is None:
            raise unknown_run(run_id)
        if record.status in ENDED:
            raise HTTPError(409, f"run {run_id} has ended ({record.status})", code="run_ended")
        if record.status == "interrupted" and record.error == CANCELLED:
            return
        self._check_not_deleting(run_id)  # again, with no wait before the lease is taken
        await self._cancel_stored(record)

    async def _cancel_stored(self, record: RunRecord) -> None:
        owner = f"cancel:{uuid.uuid4().hex[:8]}"
        try:
            await self.checkpointer.acquire(record.run_id, owner)
        except RunLockedError as exc:
            raise HTTPError(409, str(exc), code="run_locked") from None
        try:
            await self.checkpointer.update_run(
                record.run_id, owner=owner, status="interrupted", error=CANCELLED
            )
        finally:
            await self.checkpointer.release(record.run_id, owner)
        await self._append(record.run_id, RunInterrupted, reason=CANCELLED)

    async def _append(self, run_id: str, cls: Callable[..., EventBase], **fields: Any) -> None:
        """Store an event of a run that is not live (numbered after its last one)."""
        seq = await self.events.last_seq(run_id) + 1
        event = cls(run_id=run_id, seq=seq, ts=time.time(), **fields)
        data = self.redact(event_to_json(event))
        await self.events.append(run_id, [StoredEvent(seq, event.type, data)])

    # ------------------------------------------------------------------ deleting

    async def delete(self, run_id: str) -> dict[str, Any]:
        """Forget a stopped run (see :data:`STOPPED`): its checkpoints — steps and journaled
        calls, one transaction — then its events. What ``DELETE /v1/runs/{id}`` answers."""
        self._check_open()
        if run_id in self.live or run_id in self._reserved:
            raise cancel_first(run_id, "is running in this server")
        self._check_not_deleting(run_id)
        self._deleting.add(run_id)  # from here, resume and cancel refuse it (they check again)
        try:
            record = await self.checkpointer.get_run(run_id)
            if record is None:
                raise unknown_run(run_id)
            if record.status not in STOPPED:  # left running by a stopped server, or another's
                raise cancel_first(run_id, f"is {record.status}")
            try:
                found = await self.checkpointer.delete_run(run_id)
            except RunLockedError:
                raise cancel_first(run_id, "is being advanced by another runner") from None
            if not found:
                raise unknown_run(run_id)
            events = await self.events.delete(run_id)
        finally:
            self._deleting.discard(run_id)
        return deleted_info(record, events)

    def _check_not_deleting(self, run_id: str) -> None:
        if run_id in self._deleting:
            raise HTTPError(
                409,
                f"run {run_id} is being deleted; it is gone once that delete returns (GET "
                f"/v1/runs/{run_id} then answers 404): start a new run instead",
                code="run_deleting",
            )

    # ------------------------------------------------------------------ reading

    async def info(self, run_id: str) -> dict[str, Any]:
        """What ``GET /v1/runs/{id}`` answers."""
        live = self.live.get(run_id)
        record = await self.checkpointer.get_run(run_id)
        if record is None and live is None:
            raise unknown_run(run_id)
        usage = await self.events.usage(run_id)
        if live is not None:
            add_usage(usage, live.run.env.usage.totals())
            return live_info(live, record, usage)
        assert record is not None
        last = await self.events.last_seq(run_id)
        return stored_info(record, usage, last)

    async def list(
        self, *, workflow: str | None, status: str | None, session_id: str | None, limit: int
    ) -> list[dict[str, Any]]:
        records = await self.checkpointer.list_runs(
            status=status, session_id=session_id, limit=limit if workflow is None else 10_000
        )
        chosen = [r for r in records if r.graph in self.workflows]
        if workflow is not None:
            chosen = [r for r in chosen if r.graph == workflow][:limit]
        return [await self.info(r.run_id) for r in chosen]

    async def waiting_in_session(self, workflow: str, session_id: str) -> RunRecord | None:
        """The latest run of ``workflow`` in the session that waits for an answer."""
        records = await self.checkpointer.list_runs(status="waiting", session_id=session_id)
        return next((r for r in records if r.graph == workflow), None)

    # ------------------------------------------------------------------ restarting

    async def resume_interrupted(self) -> int:
        """Resume the runs a previous server left running or stopped at shutdown; returns how
        many. Runs still held by a crashed server are retried once its lease expires."""
        count = 0
        for status in ("running", "interrupted"):
            for record in await self.checkpointer.list_runs(status=status, limit=100_000):
                if record.graph not in self.workflows or record.run_id in self.live:
                    continue
                if status == "interrupted" and record.error != SHUTDOWN_REASON:
                    continue
                self.in_background(self._resume_when_free(record.run_id))
                count += 1
        return count

    async def _resume_when_free(self, run_id: str) -> None:
        for attempt in range(_RESUME_TRIES):
            if self.stopping:
                return
            try:
                await self.resume(run_id, key_id="server", limited=False)
                return
            except HTTPError as exc:
                if exc.code != "run_locked" or attempt == _RESUME_TRIES - 1:
                    log.warning("run %s was not resumed: %s", run_id, self._text(exc.message))
                    return
            await asyncio.sleep(self.config.lease_ttl / 2)

    def in_background(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------------ stopping

    def begin_shutdown(self) -> None:
        """Refuse new runs; background runs stop after their current step, chat runs get
        ``shutdown_grace`` seconds to finish first."""
        if self.stopping:
            return
        self.stopping = True
        for task in self._background:
            task.cancel()
        for live in self.live.values():
            if live.meta.kind != "chat":
                live.stop_after_step = True
            live.channel.wake()  # event streams end (their clients reconnect later)
        loop = asyncio.get_running_loop()
        self._grace = loop.call_later(self.config.shutdown_grace, self._stop_all)

    def _stop_all(self) -> None:
        for live in self.live.values():
            live.stop_after_step = True

    async def close(self, timeout: float = 30.0) -> None:
        """Stop every run at a step boundary (cancelling those still busy after ``timeout``
        seconds more), with everything checkpointed and stored."""
        self.begin_shutdown()
        tasks = [live.task for live in self.live.values() if live.task is not None]
        if tasks:
            _, busy = await asyncio.wait(tasks, timeout=self.config.shutdown_grace + timeout)
            if busy:
                await self._cancel_busy(busy)
        if self._grace is not None:
            self._grace.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def _cancel_busy(self, busy: set[asyncio.Task[None]]) -> None:
        stuck = [live.run.id for live in self.live.values() if live.task in busy]
        for task in busy:
            task.cancel()
        await asyncio.gather(*busy, return_exceptions=True)
        for run_id in stuck:  # resumable at the next start, like a run stopped at a step
            try:
                await self.checkpointer.update_run(
                    run_id, status="interrupted", error=SHUTDOWN_REASON
                )
            except StoreError as exc:
                log.error("run %s: %s", run_id, exc)
