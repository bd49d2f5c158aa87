"""llm, agent and memory nodes: templates → budget → model (journaled) → state."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from atdak_agents.exceptions import GraphValidationError
from atdak_agents.graph.builder import GraphBuilder
from atdak_agents.graph.checkpoint import InMemoryCheckpointer
from atdak_agents.graph.spec import LlmNode, NodeSpec
from atdak_agents.providers._wire import ChatCompletion, ChatCompletionRequest
from atdak_agents.providers.base import CallOptions, ChatStream
from atdak_agents.testing import LocalAtdakServer, ScriptedModel
from atdak_agents.tools import RunContext, tool
from atdak_agents.tracing import MemorySink

MODEL = "atdak-gpt-4-mini"


def action(name: str, **arguments: Any) -> str:
    return (
        "```json\n" + json.dumps({"tool_calls": [{"name": name, "arguments": arguments}]}) + "\n```"
    )


async def test_llm_node_renders_calls_and_writes_text() -> None:
    g = GraphBuilder("greet", model=MODEL, parameters={"temperature": 0.2})
    g.input("name", str)
    g.state("greeting", str)
    g.llm("hello", "Greet {{ inputs.name }} in Chinese.", system="Be warm.", writes="greeting")
    g.chain("hello", "end")
    model = ScriptedModel(["你好，小明！"])
    result = await g.build().run({"name": "小明"}, provider=model)
    assert result.state["greeting"] == "你好，小明！"
    (request,) = model.requests
    assert [m.role for m in request.messages] == ["system", "user"]
    assert request.messages[1].content == "Greet 小明 in Chinese."
    assert request.temperature == 0.2
    assert result.usage.requests == 1
    model.assert_done()


async def test_llm_structured_output_fields_become_state_keys() -> None:
    g = GraphBuilder("classify", model=MODEL)
    g.input("message", str)
    g.state("category", str)
    g.state("urgent", bool)
    g.llm(
        "classify",
        "Classify: {{ inputs.message }}",
        output={"category": {"enum": ["billing", "shipping"]}, "urgent": {"type": "boolean"}},
    )
    g.chain("classify", "end")
    model = ScriptedModel(
        ['{"category": "shipment", "urgent": true}', '{"category": "shipping", "urgent": true}']
    )
    result = await g.build().run({"message": "Where is my parcel?"}, provider=model)
    assert (result.state["category"], result.state["urgent"]) == ("shipping", True)
    repair = model.requests[1].messages[-1].content
    assert "category" in repair and "shipping" in repair


async def test_agent_node_with_tools_over_real_http(atdak_server: LocalAtdakServer) -> None:
    @tool
    def lookup_order(order_id: str) -> dict[str, str]:
        """Look an order up by id."""
        return {"order_id": order_id, "status": "shipped"}

    g = GraphBuilder("support", model=MODEL)
    g.input("question", str)
    g.state("answer", str)
    g.agent(
        "helper",
        "You answer order questions.",
        tools=[lookup_order],
        writes="answer",
        input="{{ inputs.question }}",
    )
    g.chain("helper", "end")
    atdak_server.responder = [action("lookup_order", order_id="10423"), "It has shipped."]
    sink = MemorySink()
    async with atdak_server.async_client() as client:
        result = await g.build().run({"question": "订单 10423 呢？"}, provider=client, sinks=[sink])
    assert result.state["answer"] == "It has shipped."
    assert result.usage.requests == 2 and result.usage.tool_calls == 1
    called = sink.of_type("tool_called")[0]
    assert called.node == "helper" and called.arguments == {"order_id": "10423"}
    assert atdak_server.requests[0].body["messages"][-1]["content"] == "订单 10423 呢？"


@pytest.mark.parametrize(
    ("value", "sent"),
    [("订单 10423 呢？", "订单 10423 呢？"), (10423, "10423"), ({"id": 7}, "{'id': 7}")],
)
async def test_an_agent_input_of_one_value_is_that_value(value: object, sent: str) -> None:
    """`{{ inputs.question }}` gives the text itself (read without jinja2 when it is text),
    and any other value as the template renders it."""
    g = GraphBuilder("one_value", model=MODEL)
    g.input("question", "any")
    g.state("answer", str)
    g.agent("helper", "You answer.", writes="answer", input="{{ inputs.question }}")
    g.chain("helper", "end")
    model = ScriptedModel(["ok"])
    result = await g.build().run({"question": value}, provider=model)
    assert result.status == "done"
    assert model.requests[0].messages[-1].content == sent


@pytest.mark.parametrize("traced", [False, True])
async def test_tools_of_an_agent_node_see_the_graphs_run_id(traced: bool) -> None:
    seen: list[str] = []

    @tool
    async def note(ctx: RunContext[Any], text: str) -> str:
        """Note a text."""
        seen.append(ctx.run_id)
        return "noted"

    g = GraphBuilder("notes", model=MODEL)
    g.input("text", str)
    g.state("answer", str)
    g.agent("writer", "Take notes.", tools=[note], writes="answer", input="{{ inputs.text }}")
    g.chain("writer", "end")
    model = ScriptedModel([action("note", text="a"), "done"])
    sinks = [MemorySink()] if traced else []
    result = await g.build().run({"text": "a"}, provider=model, sinks=sinks)
    assert result.status == "done" and seen == [result.run_id]


async def test_an_agent_input_from_state_is_read_the_same_way() -> None:
    g = GraphBuilder("from_state", model=MODEL)
    g.state("answer", str)
    g.state("count", int, default=5)
    g.agent("helper", "You answer.", writes="answer", input="{{state.count}}")
    g.chain("helper", "end")
    model = ScriptedModel(["ok"])
    assert (await g.build().run({}, provider=model)).status == "done"
    assert model.requests[0].messages[-1].content == "5"


class CrashingModel:
    """Answers from a script, but 'the process dies' at call number ``crash_at``."""

    def __init__(self, replies: list[str], crash_at: int | None) -> None:
        self.inner = ScriptedModel(replies)
        self.crash_at = crash_at
        self.calls = 0

    async def complete(
        self, request: ChatCompletionRequest, *, options: CallOptions | None = None
    ) -> ChatCompletion:
        self.calls += 1
        if self.calls == self.crash_at:
            raise KeyboardInterrupt
        return await self.inner.complete(request, options=options)

    async def stream(
        self, request: ChatCompletionRequest, *, options: CallOptions | None = None
    ) -> ChatStream:
        return await self.inner.stream(request, options=options)


async def test_a_resumed_agent_step_replays_journaled_model_and_tool_calls() -> None:
    charges: list[str] = []

    @tool
    def charge(card: str) -> str:
        """Charge a card."""
        charges.append(card)
        return "charged"

    g = GraphBuilder("pay", model=MODEL)
    g.state("answer", str)
    g.agent("payer", "Charge the card.", tools=[charge], writes="answer", input="pay")
    g.chain("payer", "end")
    graph = g.build()
    store = InMemoryCheckpointer()
    first = CrashingModel([action("charge", card="visa"), "unused"], crash_at=2)
    run = graph.start(provider=first, checkpointer=store, run_id="r1")
    with pytest.raises(KeyboardInterrupt):
        await run.step()
    await run.release()
    assert charges == ["visa"]
    second = CrashingModel(["Done: charged."], crash_at=None)
    result = await graph.resume("r1", checkpointer=store, provider=second)
    assert result.state["answer"] == "Done: charged."
    assert charges == ["visa"]  # the tool call was replayed, not made again
    assert second.calls == 1  # the first model call too


async def test_map_of_llm_nodes_tags_each_item() -> None:
    g = GraphBuilder("summaries", model=MODEL)
    g.state("chunks", list, default=["第一段", "second part", "第三段"])
    g.state("summaries", list)
    body = NodeSpec(llm=LlmNode(prompt="Summarise: {{ item }}", writes="summary"))
    g.map("summarise", "state.chunks", body, writes="summaries", concurrency=2)
    g.chain("summarise", "end")
    model = ScriptedModel([lambda request: (request.messages[-1].content or "").upper()] * 3)
    sink = MemorySink()
    result = await g.build().run(provider=model, sinks=[sink])
    assert result.state["summaries"] == [
        "SUMMARISE: 第一段",
        "SUMMARISE: SECOND PART",
        "SUMMARISE: 第三段",
    ]
    paths = sorted({e.node for e in sink.of_type("model_request")})
    assert paths == ["summarise[0]/llm", "summarise[1]/llm", "summarise[2]/llm"]


async def test_memory_nodes_read_and_write_a_session(tmp_path: Path) -> None:
    from atdak_agents.memory import SQLiteStore

    g = GraphBuilder("diary")
    g.input("entry", str)
    g.state("recent", list)
    g.memory_write("remember", [{"role": "user", "content": "{{ inputs.entry }}"}])
    g.memory_read("recall", writes="recent", last=2)
    g.chain("remember", "recall", "end")
    graph = g.build()
    store = SQLiteStore(tmp_path / "memory.db")
    await graph.run({"entry": "今天下雨"}, memory=store, session_id="me")
    result = await graph.run({"entry": "明天晴天"}, memory=store, session_id="me")
    await store.close()
    assert result.state["recent"] == [
        {"role": "user", "content": "今天下雨"},
        {"role": "user", "content": "明天晴天"},
    ]


def test_models_are_validated() -> None:
    g = GraphBuilder("nomodel")
    g.state("out", str)
    g.llm("ask", "hi", writes="out")
    g.llm("other", "hi", writes="out", model="atdak-gpt4")
    g.chain("ask", "other", "end")
    with pytest.raises(GraphValidationError) as caught:
        g.build()
    text = str(caught.value)
    assert "nodes.ask.llm: has no model" in text
    assert "unknown model 'atdak-gpt4'" in text and "did you mean 'atdak-gpt-4'" in text


async def test_a_client_the_run_creates_is_closed_at_the_end(
    atdak_server: LocalAtdakServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATDAK_BASE_URL", atdak_server.base_url)
    monkeypatch.setenv("ATDAK_API_KEY", str(atdak_server.api_key))
    atdak_server.responder = ["hi"]
    g = GraphBuilder("own-client", model=MODEL)
    g.state("out", str)
    g.llm("ask", "hello", writes="out")
    g.chain("ask", "end")
    run = g.build().start()
    result = await run.until_done()
    assert result.state["out"] == "hi"
    assert run.env.provider is None and not run.env.owns_provider
