"""What a workflow means at run time (found while writing the recipes): `history` of an llm
node, output field specs, named ends, prompts that do not fit, declared stores, state types."""

from __future__ import annotations

import pytest

from atdak_agents.exceptions import WorkflowError
from atdak_agents.testing import LocalAtdakServer
from atdak_agents.workflow import loads_workflow


async def test_llm_history_names_a_state_key() -> None:
    # docs: LlmNode.history "Conversation history to send before the prompt: a state key, ..."
    workflow = loads_workflow("""
name: t
model: atdak-gpt-4-mini
state:
  past: {type: list, default: [{role: user, content: I am Li Lei}, {role: assistant, content: Hi}]}
  reply: {type: string}
nodes:
  a: {llm: {prompt: Who am I?, history: past, writes: reply}, next: end}
""")  # today: WorkflowError at 2:1 "invalid history.strategy='past'"
    async with LocalAtdakServer("Li Lei") as server, server.async_client() as client:
        await workflow.run({}, provider=client)
    assert [m["content"] for m in server.requests[0].messages][:2] == ["I am Li Lei", "Hi"]


def test_output_field_specs_refuse_unknown_keys() -> None:
    with pytest.raises(WorkflowError, match="descripton"):
        loads_workflow("""
name: t
model: atdak-gpt-4-mini
state: {category: {type: string}}
nodes:
  a:
    llm: {prompt: hi, output: {category: {enum: [a, b], descripton: typo}}}
    next: end
""")  # today: accepted silently (so is `{type: list, description: Steps, in order}`)


def test_an_end_node_sets_the_run_status(tmp_path) -> None:
    (tmp_path / "gap_steps.py").write_text("def noop(state):\n    return None\n")
    workflow = loads_workflow(
        """
name: t
nodes:
  check: {function: {function: "gap_steps:noop"}, next: give_up}
  give_up: {end: {status: failed}}
""",
        base_dir=tmp_path,
    )
    assert workflow.run_sync().status == "failed"  # today: "done"


async def test_an_llm_prompt_longer_than_the_window_is_not_cut_silently() -> None:
    workflow = loads_workflow("""
name: t
model: atdak-llama-70b
inputs: {doc: {type: string}}
state: {s: {type: string}}
nodes:
  a: {llm: {prompt: "Summarise: {{ inputs.doc }}", writes: s}, next: end}
""")
    async with LocalAtdakServer("ok") as server, server.async_client() as client:
        result = await workflow.run({"doc": "第一条 甲方应当按时付款。" * 6_000}, provider=client)
    assert result.status == "failed"  # today: "done"; the middle of the prompt was dropped


async def test_workflow_run_uses_the_stores_the_file_declares(tmp_path) -> None:
    (tmp_path / "chat.yaml").write_text("""
name: chat
model: atdak-gpt-4-mini
memory: {store: sqlite, path: memory.db, session: demo}
state: {m: {type: list}}
nodes:
  read: {memory_read: {writes: m}, next: end}
""")
    from atdak_agents.workflow import load_workflow

    result = await load_workflow(tmp_path / "chat.yaml").run({})
    assert result.status == "done", result.error  # today: failed, "needs a memory store"


def test_state_types_are_checked_when_written() -> None:
    workflow = loads_workflow("""
name: t
state: {approved: {type: boolean, default: false}}
nodes:
  ask: {human: {ask: OK?, writes: approved, choices: ["yes", "no"]}}
  route:
    router:
      - {when: state.approved, to: end}
      - {otherwise: end}
edges: [ask -> route]
""")
    import asyncio

    async def go():
        run = workflow.graph.start()
        await run.until_done()
        run.answer("no")
        return await run.until_done()

    result = asyncio.run(go())
    assert result.status == "failed"  # today: done, state.approved == "no" (truthy)
