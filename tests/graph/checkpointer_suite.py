"""The contract of a Checkpointer: every implementation (in-memory, SQLite, later Redis, Postgres)
passes all of this unchanged.

To run it against a new store, subclass :class:`CheckpointerSuite` in a test module and give it a
``checkpointer`` fixture yielding a fresh, empty store (closed afterwards)::

    from checkpointer_suite import CheckpointerSuite   # tests/graph is on sys.path in pytest

    class TestRedisCheckpointer(CheckpointerSuite):
        @pytest.fixture
        async def checkpointer(self):
            store = RedisCheckpointer(url, prefix=uuid4().hex)
            yield store
            await store.close()

The suite needs only pytest, pytest-asyncio (``asyncio_mode = auto``), hypothesis and
atdak_agents. Values in the suite are JSON data, which every store must give back equal.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atdak_agents.exceptions import (
    GraphChangedError,
    InvalidParameterError,
    RunLockedError,
    StoreError,
    UsageError,
)
from atdak_agents.graph.builder import GraphBuilder
from atdak_agents.graph.checkpoint import Checkpointer, RunRecord, StepRecord
from atdak_agents.graph.journal import journaled
from atdak_agents.graph.spec import Limits

__all__ = ["CheckpointerSuite"]

OWNER = "host:1:aaaa"
OTHER = "host:2:bbbb"
_ids = itertools.count()


def new_run(run_id: str | None = None, **fields: Any) -> RunRecord:
    """A run record with every field filled in (ids unique within the test process)."""
    values: dict[str, Any] = {
        "run_id": run_id or f"run-{next(_ids)}",
        "graph": "triage",
        "fingerprint": "f" * 64,
        "inputs": {"question": "我的订单 #10423 还没发货 📦", "n": 3, "tags": ["a", "b"]},
        "session_id": "session-1",
    }
    values.update(fields)
    return RunRecord(**values)


def step(run_id: str, number: int, *updates: tuple[str, str, Any], **fields: Any) -> StepRecord:
    values: dict[str, Any] = {
        "run_id": run_id,
        "step": number,
        "updates": list(updates) or [("node", "n", number)],
        "frontier": [{"node": "next", "path": "next"}],
        "bookkeeping": {"joins": {}, "routes": {"loop:0": number}, "answers": {}, "ended": []},
        "nodes": ["node"],
    }
    values.update(fields)
    return StepRecord(**values)


async def started(store: Checkpointer, **fields: Any) -> str:
    """A stored run whose lease OWNER holds."""
    record = new_run(**fields)
    await store.create_run(record, owner=OWNER)
    return record.run_id


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


class CheckpointerSuite:
    """Subclass with a ``checkpointer`` fixture; pytest collects the subclass (``Test…``)."""

    @pytest.fixture
    def checkpointer(self) -> Checkpointer:  # pragma: no cover
        raise NotImplementedError("give the subclass a `checkpointer` fixture")

    # ------------------------------------------------------------------ runs

    async def test_is_a_checkpointer(self, checkpointer: Checkpointer) -> None:
        assert isinstance(checkpointer, Checkpointer)
        assert checkpointer.lease_ttl > 0

    async def test_create_and_get_round_trip_every_field(self, checkpointer: Checkpointer) -> None:
        record = new_run(
            "运行-1 🚀",
            status="interrupted",
            created_at=1_700_000_000.5,
            updated_at=1_700_000_001.25,
            step=3,
            question="继续吗？",
            output={"answer": "好的", "nested": {"list": [1, 2.5, None, True]}},
            error="limit reached: steps",
            parent_run_id="parent-run",
            parent_step=3,
        )
        await checkpointer.create_run(record)
        assert await checkpointer.get_run("运行-1 🚀") == record

    async def test_unknown_run_is_none(self, checkpointer: Checkpointer) -> None:
        assert await checkpointer.get_run("no-such-run") is None

    async def test_duplicate_run_id_is_refused(self, checkpointer: Checkpointer) -> None:
        run_id = await started(checkpointer)
        with pytest.raises(StoreError, match=rf"run '{run_id}' already exists; choose another"):
            await checkpointer.create_run(new_run(run_id, graph="other"))
        stored = await checkpointer.get_run(run_id)
        assert stored is not None and stored.graph == "triage"

    async def test_update_run_changes_fields_and_time(self, checkpointer: Checkpointer) -> None:
        run_id = await started(checkpointer)
        before = await checkpointer.get_run(run_id)
        await checkpointer.update_run(
            run_id, status="done", output={"text": "完成"}, question=None, error=None
        )
        after = await checkpointer.get_run(run_id)
        assert before is not None and after is not None
        assert (after.status, after.output) == ("done", {"text": "完成"})
        assert after.updated_at >= before.updated_at
        assert (after.inputs, after.created_at) == (before.inputs, before.created_at)

    async def test_update_run_refuses_what_it_cannot_change(
        self, checkpointer: Checkpointer
    ) -> None:
        run_id = await started(checkpointer)
        with pytest.raises(UsageError, match="cannot change 'step'.*save_step"):
            await checkpointer.update_run(run_id, step=9)
        with pytest.raises(InvalidParameterError, match="status"):
            await checkpointer.update_run(run_id, status="finished")
        with pytest.raises(StoreError, match="no run 'nope'"):
            await checkpointer.update_run("nope", status="done")

    async def test_update_run_with_owner_needs_the_lease(self, checkpointer: Checkpointer) -> None:
        run_id = await started(checkpointer)
        await checkpointer.update_run(run_id, owner=OWNER, status="interrupted")
        with pytest.raises(RunLockedError, match=f"runner {OTHER} does not hold"):
            await checkpointer.update_run(run_id, owner=OTHER, status="failed")
        stored = await checkpointer.get_run(run_id)
        assert stored is not None and stored.status == "interrupted"

    async def test_list_runs_most_recently_updated_first(self, checkpointer: Checkpointer) -> None:
        ids = []
        for _ in range(3):
            ids.append(await started(checkpointer))
            await asyncio.sleep(0.002)
        await checkpointer.update_run(ids[0], status="waiting", question="?")
        listed = [r.run_id for r in await checkpointer.list_runs()]
        assert listed == [ids[0], ids[2], ids[1]]
        assert [r.run_id for r in await checkpointer.list_runs(limit=2)] == [ids[0], ids[2]]

    async def test_list_runs_filters(self, checkpointer: Checkpointer) -> None:
        a = await started(checkpointer, session_id="alice")
        b = await started(checkpointer, session_id="bob")
        c = await started(checkpointer, session_id="alice")
        await checkpointer.update_run(c, status="done")
        assert {r.run_id for r in await checkpointer.list_runs(session_id="alice")} == {a, c}
        assert [r.run_id for r in await checkpointer.list_runs(status="done")] == [c]
        running = await checkpointer.list_runs(status="running", session_id="bob")
        assert [r.run_id for r in running] == [b]
        assert await checkpointer.list_runs(session_id="nobody") == []

    # ------------------------------------------------------------------ steps

    async def test_steps_load_in_order_and_upto(self, checkpointer: Checkpointer) -> None:
        run_id = await started(checkpointer)
        saved = [step(run_id, n) for n in range(1, 6)]
        for record in saved:
            await checkpointer.save_step(record, owner=OWNER, status="running")
        assert await checkpointer.load_steps(run_id) == saved
        assert await checkpointer.load_steps(run_id, upto=3) == saved[:3]
        assert await checkpointer.load_steps(run_id, upto=0) == []

    async def test_step_values_round_trip(self, checkpointer: Checkpointer) -> None:
        run_id = await started(checkpointer)
        record = step(
            run_id,
            1,
            ("map[0]/summarise", "summaries", {"text": "摘要：退款已处理 ✅", "score": 0.75}),
            ("map[1]/summarise", "summaries", None),
            ("draft", "drafts", ["第一稿", {"quotes": ['"x"', "\\n", "\u2028"]}]),
            frontier=[{"node": "review", "path": "review"}, {"node": "log", "path": "log"}],
            bookkeeping={"joins": {"0": ["a"]}, "routes": {}, "answers": {"审核": "是"}},
            nodes=["map", "draft"],
        )
        await checkpointer.save_step(record, owner=OWNER, status="running")
        (loaded,) = await checkpointer.load_steps(run_id)
        assert loaded == record
        assert all(isinstance(u, tuple) for u in loaded.updates)

    async def test_save_step_updates_the_run(self, checkpointer: Checkpointer) -> None:
        run_id = await started(checkpointer)
        await checkpointer.save_step(step(run_id, 1), owner=OWNER, status="running")
        await checkpointer.save_step(
            step(run_id, 2), owner=OWNER, status="waiting", question="Send it?", release=True
        )
        run = await checkpointer.get_run(run_id)
        assert run is not None and (run.step, run.status, run.question) == (
            2,
            "waiting",
            "Send it?",
        )
        await checkpointer.acquire(run_id, OTHER)  # released: another runner may take it
        await checkpointer.save_step(
            step(run_id, 3), owner=OTHER, status="done", output={"sent": True}, release=True
        )
        run = await checkpointer.get_run(run_id)
        assert run is not None
        assert (run.step, run.status, run.question, run.output) == (3, "done", None, {"sent": True})

    async def test_save_step_needs_the_lease(self, checkpointer: Checkpointer) -> None:
        run_id = await started(checkpointer)
        with pytest.raises(RunLockedError, match=f"runner {OTHER} does not hold.*held by {OWNER}"):
            await checkpointer.save_step(step(run_id, 1), owner=OTHER, status="running")
        await checkpointer.release(run_id, OWNER)
        with pytest.raises(RunLockedError, match="it was released.*restore it"):
            await checkpointer.save_step(step(run_id, 1), owner=OWNER, status="running")
        assert await checkpointer.load_steps(run_id) == []  # nothing of the refused steps
        run = await checkpointer.get_run(run_id)
        assert run is not None and (run.step, run.status) == (0, "running")

    async def test_save_step_twice_is_refused(self, checkpointer: Checkpointer) -> None:
        run_id = await started(checkpointer)
        await checkpointer.save_step(step(run_id, 1), owner=OWNER, status="running")
        with pytest.raises(StoreError, match="already has a step 1"):
            await checkpointer.save_step(step(run_id, 1), owner=OWNER, status="done")
        run = await checkpointer.get_run(run_id)
        assert run is not None and run.status == "running"  # the refused save changed nothing
        assert len(await checkpointer.load_steps(run_id)) == 1

    async def test_steps_of_an_unknown_run(self, checkpointer: Checkpointer) -> None:
        with pytest.raises(StoreError, match="no run 'ghost'"):
            await checkpointer.save_step(step("ghost", 1), owner=OWNER, status="running")
        with pytest.raises(StoreError, match="no run 'ghost'"):
            await checkpointer.load_steps("ghost")
        assert await checkpointer.load_steps(await started(checkpointer)) == []

    async def test_a_refused_status_is_a_clear_error(self, checkpointer: Checkpointer) -> None:
        run_id = await started(checkpointer)
        with pytest.raises(InvalidParameterError, match="status"):
            await checkpointer.save_step(step(run_id, 1), owner=OWNER, status="finished")
        with pytest.raises(InvalidParameterError, match="status"):
            await checkpointer.create_run(new_run(status="unknown"))

    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.differing_executors,
        ],
    )
    @given(values=st.lists(json_values, min_size=1, max_size=4))
    async def test_any_json_update_round_trips(
        self, checkpointer: Checkpointer, values: list[Any]
    ) -> None:
        run_id = await started(checkpointer)
        updates = [(f"node{i}", f"key{i}", value) for i, value in enumerate(values)]
        record = step(run_id, 1, *updates)
        await checkpointer.save_step(record, owner=OWNER, status="running")
        assert (await checkpointer.load_steps(run_id))[0].updates == updates

    # ------------------------------------------------------------------ the journal

    async def test_calls_are_journaled_by_step(self, checkpointer: Checkpointer) -> None:
        run_id = await started(checkpointer)
        await checkpointer.record_call(run_id, 1, "agent#model:1", {"content": "你好"})
        await checkpointer.record_call(run_id, 1, "agent#tool:call_7", {"result": [1, 2]})
        await checkpointer.record_call(run_id, 2, "agent#model:1", {"content": "second"})
        assert await checkpointer.load_calls(run_id, 1) == {
            "agent#model:1": {"content": "你好"},
            "agent#tool:call_7": {"result": [1, 2]},
        }
        assert await checkpointer.load_calls(run_id, 2) == {"agent#model:1": {"content": "second"}}
        assert await checkpointer.load_calls(run_id, 3) == {}

    async def test_recording_a_key_again_keeps_the_last(self, checkpointer: Checkpointer) -> None:
        run_id = await started(checkpointer)
        await checkpointer.record_call(run_id, 1, "k", "first")
        await checkpointer.record_call(run_id, 1, "k", "second")
        assert await checkpointer.load_calls(run_id, 1) == {"k": "second"}

    async def test_calls_of_an_unknown_run(self, checkpointer: Checkpointer) -> None:
        with pytest.raises(StoreError, match="no run 'ghost'"):
            await checkpointer.record_call("ghost", 1, "k", {})
        with pytest.raises(StoreError, match="no run 'ghost'"):
            await checkpointer.load_calls("ghost", 1)

    # ------------------------------------------------------------------ leases

    async def test_lease_refused_to_another_owner(self, checkpointer: Checkpointer) -> None:
        run_id = await started(checkpointer)
        with pytest.raises(RunLockedError) as caught:
            await checkpointer.acquire(run_id, OTHER)
        message = str(caught.value)
        assert f"run '{run_id}' is being advanced by another runner ({OWNER}" in message
        assert "lease expires in" in message and "wait for it to finish" in message
        await checkpointer.acquire(run_id, OWNER)  # the holder renews freely

    async def test_lease_expires(self, checkpointer: Checkpointer) -> None:
        run_id = await started(checkpointer)
        await checkpointer.acquire(run_id, OWNER, ttl=0.05)
        await asyncio.sleep(0.1)
        await checkpointer.acquire(run_id, OTHER)  # expired: another runner takes it
        with pytest.raises(RunLockedError, match=f"does not hold.*held by {OTHER}"):
            await checkpointer.save_step(step(run_id, 1), owner=OWNER, status="running")

    async def test_an_expired_lease_stays_with_its_owner_until_taken(
        self, checkpointer: Checkpointer
    ) -> None:
        run_id = await started(checkpointer)
        await checkpointer.acquire(run_id, OWNER, ttl=0.05)
        await asyncio.sleep(0.1)
        await checkpointer.save_step(step(run_id, 1), owner=OWNER, status="running")

    async def test_lease_renewal(self, checkpointer: Checkpointer) -> None:
        run_id = await started(checkpointer)
        await checkpointer.acquire(run_id, OWNER, ttl=0.05)
        await asyncio.sleep(0.1)  # expired, but nobody took it
        await checkpointer.acquire(run_id, OWNER, ttl=30)  # renewed: 30 s from now
        with pytest.raises(RunLockedError, match=r"expires in (29|30) s"):
            await checkpointer.acquire(run_id, OTHER)

    async def test_a_saved_step_renews_the_lease(self, checkpointer: Checkpointer) -> None:
        run_id = await started(checkpointer)
        await checkpointer.acquire(run_id, OWNER, ttl=0.5)
        await asyncio.sleep(0.6)  # expired, but nobody took it
        await checkpointer.save_step(step(run_id, 1), owner=OWNER, status="running")
        with pytest.raises(RunLockedError):  # renewed by its time-to-live, 0.5 s
            await checkpointer.acquire(run_id, OTHER)

    async def test_release(self, checkpointer: Checkpointer) -> None:
        run_id = await started(checkpointer)
        await checkpointer.release(run_id, OTHER)  # not the holder: nothing happens
        with pytest.raises(RunLockedError):
            await checkpointer.acquire(run_id, OTHER)
        await checkpointer.release(run_id, OWNER)
        await checkpointer.acquire(run_id, OTHER)
        await checkpointer.release("ghost", OWNER)  # an unknown run: nothing to release

    async def test_lease_errors(self, checkpointer: Checkpointer) -> None:
        with pytest.raises(StoreError, match="no run 'ghost'"):
            await checkpointer.acquire("ghost", OWNER)
        run_id = await started(checkpointer)
        with pytest.raises(InvalidParameterError, match="ttl"):
            await checkpointer.acquire(run_id, OWNER, ttl=0)

    # ------------------------------------------------------------------ concurrency

    async def test_concurrent_writers_lose_nothing(self, checkpointer: Checkpointer) -> None:
        async def runner(index: int) -> str:
            run_id = await started(checkpointer, session_id=f"s{index % 3}")
            for number in range(1, 11):
                await checkpointer.record_call(run_id, number, f"n#model:{number}", index)
                record = step(run_id, number, ("n", "log", f"{index}:{number}"))
                await checkpointer.save_step(record, owner=OWNER, status="running")
            await checkpointer.update_run(run_id, status="done")
            return run_id

        ids = await asyncio.gather(*(runner(i) for i in range(12)))
        for index, run_id in enumerate(ids):
            steps = await checkpointer.load_steps(run_id)
            assert [s.updates[0][2] for s in steps] == [f"{index}:{n}" for n in range(1, 11)]
            assert await checkpointer.load_calls(run_id, 10) == {"n#model:10": index}
        assert len(await checkpointer.list_runs(status="done")) == 12

    async def test_concurrent_calls_of_one_step(self, checkpointer: Checkpointer) -> None:
        """A map node's items journal their calls into the same step at once."""
        run_id = await started(checkpointer)
        keys = [f"map[{i}]/body#model:1" for i in range(40)]
        await asyncio.gather(*(checkpointer.record_call(run_id, 1, k, k) for k in keys))
        assert await checkpointer.load_calls(run_id, 1) == {k: k for k in keys}

    async def test_racing_runners_one_wins(self, checkpointer: Checkpointer) -> None:
        record = new_run()
        await checkpointer.create_run(record)
        owners = [f"host:{i}:x" for i in range(8)]
        results = await asyncio.gather(
            *(checkpointer.acquire(record.run_id, o) for o in owners), return_exceptions=True
        )
        winners = [o for o, r in zip(owners, results, strict=True) if r is None]
        assert len(winners) == 1
        assert all(isinstance(r, RunLockedError) for r in results if r is not None)

    # ------------------------------------------------------------------ deleting

    async def test_delete_run_removes_it_with_its_steps_and_calls(
        self, checkpointer: Checkpointer
    ) -> None:
        run_id = await started(checkpointer)
        kept = await started(checkpointer)
        for run in (run_id, kept):
            await checkpointer.save_step(step(run, 1), owner=OWNER, status="done", release=True)
            await checkpointer.record_call(run, 1, "agent#model:1", {"content": "你好"})
        await checkpointer.record_call(run_id, 2, "agent#model:1", {"content": "unsaved step"})
        assert await checkpointer.delete_run(run_id) is True
        assert await checkpointer.get_run(run_id) is None
        assert [r.run_id for r in await checkpointer.list_runs()] == [kept]
        with pytest.raises(StoreError, match=f"no run '{run_id}'"):
            await checkpointer.load_steps(run_id)
        assert await checkpointer.delete_run(run_id) is False  # gone: nothing to delete
        assert len(await checkpointer.load_steps(kept)) == 1
        assert await checkpointer.load_calls(kept, 1) == {"agent#model:1": {"content": "你好"}}
        await checkpointer.create_run(new_run(run_id))  # the id is free again
        assert await checkpointer.load_calls(run_id, 2) == {}

    async def test_a_run_being_advanced_is_not_deleted(self, checkpointer: Checkpointer) -> None:
        run_id = await started(checkpointer)
        with pytest.raises(RunLockedError, match="being advanced by another runner"):
            await checkpointer.delete_run(run_id)
        assert await checkpointer.get_run(run_id) is not None
        await checkpointer.acquire(run_id, OWNER, ttl=0.05)
        await asyncio.sleep(0.1)  # an expired lease: its runner is gone
        assert await checkpointer.delete_run(run_id) is True

    async def test_a_fork_outlives_the_run_it_came_from(self, checkpointer: Checkpointer) -> None:
        graph = _counter().build()
        result = await graph.run(checkpointer=checkpointer)
        forked = await graph.fork(result.run_id, 3, checkpointer=checkpointer)
        assert await checkpointer.delete_run(result.run_id) is True
        again = await graph.resume(forked, checkpointer=checkpointer)
        assert (again.status, again.state["n"]) == ("done", 94)

    # ------------------------------------------------------------------ with the engine

    async def test_engine_history_state_at_fork(self, checkpointer: Checkpointer) -> None:
        graph = _counter().build()
        result = await graph.run(checkpointer=checkpointer)
        assert (result.status, result.state["n"]) == ("done", 94)
        history = await graph.history(result.run_id, checkpointer=checkpointer)
        assert [h.step for h in history] == list(range(1, 11))
        assert await graph.state_at(result.run_id, 3, checkpointer=checkpointer) == {"n": 5}
        stored = await checkpointer.get_run(result.run_id)
        assert stored is not None and (stored.status, stored.output) == ("done", {"n": 94})
        forked = await graph.fork(result.run_id, 3, checkpointer=checkpointer)
        again = await graph.resume(forked, checkpointer=checkpointer)
        assert (again.status, again.state["n"]) == ("done", 94)

    async def test_engine_human_pause_and_resume(self, checkpointer: Checkpointer) -> None:
        graph = _approval().build()
        paused = await graph.run({"amount": 30}, checkpointer=checkpointer)
        stored = await checkpointer.get_run(paused.run_id)
        assert stored is not None
        assert (stored.status, stored.question) == ("waiting", "Send 'refund 30'?")
        await checkpointer.acquire(paused.run_id, OTHER, ttl=0.01)  # nobody holds a paused run
        await asyncio.sleep(0.02)
        done = await graph.resume(paused.run_id, answer="yes", checkpointer=checkpointer)
        assert (done.status, done.state["sent"]) == ("done", True)

    async def test_engine_fingerprint_and_migration(self, checkpointer: Checkpointer) -> None:
        first = await _counter().build().run(checkpointer=checkpointer, limits=Limits(steps=1))
        assert first.status == "interrupted"  # 'a' ran; 'b' is next
        graph = _counter(times=3).build()  # b now triples
        with pytest.raises(GraphChangedError, match=r"different version.*migrate=True"):
            await graph.resume(first.run_id, checkpointer=checkpointer)
        result = await graph.resume(first.run_id, checkpointer=checkpointer, migrate=True)
        assert (result.status, result.state["n"]) == ("done", 66)  # 2 -> 6, 7 -> 21, 22 -> 66
        again = await _counter().build().run(checkpointer=checkpointer, limits=Limits(steps=1))
        without_b = GraphBuilder("counter")
        without_b.state("n", int, default=1)
        without_b.function("a", lambda state: {"n": state["n"] + 1}, writes=["n"])
        without_b.router("loop", [("state.n < 50", "a")], otherwise="end")
        without_b.chain("a", "loop")
        with pytest.raises(GraphChangedError, match="runs 'b', which the graph no longer has"):
            await without_b.build().resume(again.run_id, checkpointer=checkpointer, migrate=True)

    async def test_engine_fork_at_a_pause_and_answer(self, checkpointer: Checkpointer) -> None:
        graph = _approval().build()
        paused = await graph.run({"amount": 4}, checkpointer=checkpointer)
        await graph.resume(paused.run_id, answer="no", checkpointer=checkpointer)
        child = await graph.fork(paused.run_id, 2, checkpointer=checkpointer)  # at the pause
        other = await graph.resume(child, answer="yes", checkpointer=checkpointer)
        assert (other.status, other.state["decision"], other.state["sent"]) == ("done", "yes", True)
        original = await checkpointer.get_run(paused.run_id)
        assert original is not None and original.output == {
            "draft": "refund 4",
            "decision": "no",
            "sent": False,
        }

    async def test_engine_answer_in_the_same_process(self, checkpointer: Checkpointer) -> None:
        run = _approval().build().start({"amount": 7}, checkpointer=checkpointer)
        paused = await run.until_done()
        assert paused.status == "waiting"
        run.answer("no")  # the paused run released its lease; stepping takes it back
        result = await run.until_done()
        stored = await checkpointer.get_run(run.id)
        assert result.status == "done" and stored is not None and stored.status == "done"
        assert [s.step for s in await checkpointer.load_steps(run.id)] == [1, 2, 3]

    async def test_engine_leaves_no_lease_on_a_paused_or_finished_run(
        self, checkpointer: Checkpointer
    ) -> None:
        graph = _approval().build()
        paused = await graph.run({"amount": 3}, checkpointer=checkpointer)
        again = await graph.resume(paused.run_id, checkpointer=checkpointer)  # no answer yet
        assert (again.status, again.question) == ("waiting", "Send 'refund 3'?")
        await checkpointer.acquire(paused.run_id, OTHER)  # nobody kept the lease
        await checkpointer.release(paused.run_id, OTHER)
        done = await graph.resume(paused.run_id, answer="no", checkpointer=checkpointer)
        assert done.status == "done"
        for _ in range(2):  # looking at a finished run takes no lease
            assert (await graph.resume(done.run_id, checkpointer=checkpointer)).status == "done"
        await checkpointer.acquire(done.run_id, OTHER)

    async def test_engine_stops_when_it_loses_the_run(self, checkpointer: Checkpointer) -> None:
        """Another runner took the run mid-step: this one saves nothing and says why."""

        async def taken(state: Any) -> dict[str, Any]:
            await checkpointer.release(run.id, run._owner)  # as if its lease had expired
            await checkpointer.acquire(run.id, OTHER)
            return {"n": 100}

        g = GraphBuilder("taken")
        g.state("n", int, default=0)
        g.function("first", lambda: {"n": 1}, writes=["n"])
        g.function("second", taken, writes=["n"])
        g.chain("first", "second", "end")
        run = g.build().start(checkpointer=checkpointer)
        result = await run.until_done()
        assert result.status == "interrupted"
        assert f"held by {OTHER}" in (result.reason or "")
        stored = await checkpointer.get_run(run.id)
        assert stored is not None and (stored.status, stored.step) == ("running", 1)
        assert [s.step for s in await checkpointer.load_steps(run.id)] == [1]

    async def test_engine_replays_journaled_calls(self, checkpointer: Checkpointer) -> None:
        made: list[str] = []
        crash = {"armed": True}

        async def charge(card: str) -> dict[str, Any]:
            made.append(card)
            return {"charged": card, "at": time.time()}

        async def pay(state: Any) -> dict[str, Any]:
            first = await journaled("tool", lambda: charge("visa"), dump=dict, load=dict)
            if crash.pop("armed", False):
                raise KeyboardInterrupt  # the process "dies" mid-step
            second = await journaled("tool", lambda: charge("银联"), dump=dict, load=dict)
            return {"receipts": [first, second]}

        g = GraphBuilder("payments")
        g.state("receipts", list)
        g.function("pay", pay, writes=["receipts"])
        g.chain("pay", "end")
        graph = g.build()
        run = graph.start(checkpointer=checkpointer)
        with pytest.raises(KeyboardInterrupt):
            await run.step()
        await run.release()  # as if the dead runner's lease had expired
        result = await graph.resume(run.id, checkpointer=checkpointer)
        assert made == ["visa", "银联"]
        assert [r["charged"] for r in result.state["receipts"]] == ["visa", "银联"]


def _double(state: Any) -> dict[str, Any]:
    return {"n": state["n"] * 2}


def _triple(state: Any) -> dict[str, Any]:
    return {"n": state["n"] * 3}


def _counter(times: int = 2) -> GraphBuilder:
    g = GraphBuilder("counter")
    g.state("n", int, default=1)
    g.function("a", lambda state: {"n": state["n"] + 1}, writes=["n"])
    g.function("b", _double if times == 2 else _triple, writes=["n"])
    g.router("loop", [("state.n < 50", "a")], otherwise="end")
    g.chain("a", "b", "loop")
    return g


def _approval() -> GraphBuilder:
    g = GraphBuilder("approval")
    g.input("amount", int)
    g.state("draft", str)
    g.state("decision", str)
    g.state("sent", bool, default=False)
    g.function("draft_it", lambda inputs: {"draft": f"refund {inputs['amount']}"}, writes=["draft"])
    g.human("review", "Send '{{ state.draft }}'?", writes="decision", choices=["yes", "no"])
    g.router("decide", [("state.decision == 'yes'", "send")], otherwise="end")
    g.function("send", lambda: {"sent": True}, writes=["sent"])
    g.chain("draft_it", "review", "decide")
    g.edge("send", "end")
    return g
