"""Checkpoints, resume, human in the loop, the journal, history and forks (in-memory store)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from atdak_agents.exceptions import GraphChangedError, RunLockedError, UsageError
from atdak_agents.graph.builder import GraphBuilder
from atdak_agents.graph.checkpoint import InMemoryCheckpointer
from atdak_agents.graph.journal import journaled
from atdak_agents.graph.sqlite_checkpoint import SQLiteCheckpointer


def increment(state: Any) -> dict[str, Any]:
    return {"n": state["n"] + 1}


def approval_graph() -> GraphBuilder:
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


async def test_human_node_pauses_and_continues_after_an_answer(
    checkpointer: InMemoryCheckpointer,
) -> None:
    graph = approval_graph().build()
    result = await graph.run({"amount": 30}, checkpointer=checkpointer)
    assert result.status == "waiting"
    assert result.question == "Send 'refund 30'?"
    stored = await checkpointer.get_run(result.run_id)
    assert stored is not None and stored.status == "waiting" and stored.question == result.question
    with pytest.raises(UsageError, match="not one of: yes, no"):
        await graph.resume(result.run_id, answer="maybe", checkpointer=checkpointer)
    done = await graph.resume(result.run_id, answer="yes", checkpointer=checkpointer)
    assert done.status == "done"
    assert done.state["sent"] is True and done.state["decision"] == "yes"


async def test_waiting_run_cannot_step_without_an_answer() -> None:
    run = approval_graph().build().start({"amount": 1})
    await run.until_done()
    with pytest.raises(UsageError, match="waiting for human input"):
        await run.step()
    run.answer("no")
    result = await run.until_done()
    assert result.status == "done" and result.state["sent"] is False


async def test_history_state_at_and_fork(
    counter: GraphBuilder, checkpointer: InMemoryCheckpointer
) -> None:
    graph = counter.build()
    result = await graph.run(checkpointer=checkpointer)
    history = await graph.history(result.run_id, checkpointer=checkpointer)
    assert [h.step for h in history] == list(range(1, 11))
    assert history[0].updates == [("a", "n", 2)]
    assert await graph.state_at(result.run_id, 3, checkpointer=checkpointer) == {"n": 5}
    forked = await graph.fork(result.run_id, 3, checkpointer=checkpointer)
    child = await checkpointer.get_run(forked)
    assert child is not None and (child.parent_run_id, child.parent_step) == (result.run_id, 3)
    again = await graph.resume(forked, checkpointer=checkpointer)
    assert again.status == "done" and again.state["n"] == 94


async def test_resume_refuses_a_changed_graph_unless_migrating(
    counter: GraphBuilder, checkpointer: InMemoryCheckpointer
) -> None:
    counter.limits(steps=2)
    first = await counter.build().run(checkpointer=checkpointer)
    assert first.status == "interrupted"
    changed = GraphBuilder("counter")
    changed.state("n", int, default=1)
    changed.function("a", increment, writes=["n"])
    changed.function("b", increment, writes=["n"])  # b changed: now +1
    changed.router("loop", [("state.n < 50", "a")], otherwise="end")
    changed.chain("a", "b", "loop")
    graph = changed.build()
    with pytest.raises(GraphChangedError, match="migrate=True"):
        await graph.resume(first.run_id, checkpointer=checkpointer)
    result = await graph.resume(first.run_id, checkpointer=checkpointer, migrate=True)
    assert result.status == "done"


async def test_one_runner_at_a_time(
    counter: GraphBuilder, checkpointer: InMemoryCheckpointer
) -> None:
    counter.limits(steps=1)
    graph = counter.build()
    first = await graph.run(checkpointer=checkpointer)
    runner_a = await graph.restore(first.run_id, checkpointer=checkpointer)
    with pytest.raises(RunLockedError, match="another runner"):
        await graph.restore(first.run_id, checkpointer=checkpointer)
    await runner_a.step()


async def test_a_resumed_step_replays_journaled_calls_instead_of_repeating_them(
    checkpointer: InMemoryCheckpointer,
) -> None:
    """A step that crashed after its first call: on resume that call is replayed, not made."""
    calls: list[str] = []
    crash = {"armed": True}

    async def charge(card: str) -> dict[str, Any]:
        calls.append(card)
        return {"charged": card}

    async def pay_both(state: Any) -> dict[str, Any]:
        first = await journaled("tool", lambda: charge("visa"), dump=dict, load=dict)
        if crash["armed"]:
            crash["armed"] = False
            raise KeyboardInterrupt  # the process "dies" mid-step
        second = await journaled("tool", lambda: charge("amex"), dump=dict, load=dict)
        return {"receipts": [first, second]}

    g = GraphBuilder("payments")
    g.state("receipts", list)
    g.function("pay", pay_both, writes=["receipts"])
    g.chain("pay", "end")
    graph = g.build()
    run = graph.start(checkpointer=checkpointer, run_id="pay-1")
    with pytest.raises(KeyboardInterrupt):
        await run.step()
    assert calls == ["visa"]
    await run.release()  # as if the dead process's lease had expired
    result = await graph.resume("pay-1", checkpointer=checkpointer)
    assert result.status == "done"
    assert calls == ["visa", "amex"]  # visa was not charged twice
    assert result.state["receipts"] == [{"charged": "visa"}, {"charged": "amex"}]


async def test_deployment_settings_do_not_change_the_fingerprint(
    counter: GraphBuilder, checkpointer: InMemoryCheckpointer
) -> None:
    counter.limits(steps=2)
    first = await counter.build().run(checkpointer=checkpointer)
    counter.limits(steps=100)  # a higher limit is not a different graph
    result = await counter.build().resume(first.run_id, checkpointer=checkpointer)
    assert result.status == "done"


@pytest.mark.parametrize("how", ["same run object", "resumed by id"])
async def test_a_run_that_goes_on_after_an_interrupt_forgets_why_it_stopped(
    counter: GraphBuilder, tmp_path: Path, how: str
) -> None:
    graph = counter.build()
    async with SQLiteCheckpointer(tmp_path / "runs.db") as store:
        run = graph.start(checkpointer=store)
        await run.step()
        await run.interrupt("maintenance window")
        if how == "same run object":
            await run.step()
            stored = await store.get_run(run.id)
            assert stored is not None and (stored.status, stored.error) == ("running", None)
            result = await run.until_done()
        else:
            result = await graph.resume(run.id, checkpointer=store)
        stored = await store.get_run(run.id)
    assert (result.status, result.reason, result.error) == ("done", None, None)
    assert stored is not None and (stored.status, stored.error) == ("done", None)


async def test_a_run_can_be_interrupted_between_steps_and_resumed(
    counter: GraphBuilder, checkpointer: InMemoryCheckpointer
) -> None:
    graph = counter.build()
    run = graph.start(checkpointer=checkpointer)
    await run.step()
    await run.interrupt("maintenance window")
    stored = await checkpointer.get_run(run.id)
    assert stored is not None and (stored.status, stored.error) == (
        "interrupted",
        "maintenance window",
    )
    assert run.result().reason == "maintenance window"
    result = await graph.resume(run.id, checkpointer=checkpointer)  # the lease was given back
    assert result.status == "done" and result.state["n"] == 94
    never_started = graph.start(checkpointer=checkpointer)
    await never_started.interrupt()
    assert never_started.status == "interrupted"
    assert await checkpointer.get_run(never_started.id) is None
