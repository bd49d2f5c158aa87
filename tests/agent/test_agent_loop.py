"""The agent loop over real HTTP against the local server, through both tool protocols."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from atdak_agents.agent import Agent
from atdak_agents.exceptions import ModelRetry, UsageError
from atdak_agents.providers.profiles import ModelProfile, ModelRegistry, default_registry
from atdak_agents.testing import LocalAtdakServer, Reply, ScriptedModel
from atdak_agents.tools import RunContext, tool
from atdak_agents.usage import UsageLimits

MODEL = "atdak-gpt-4-mini"


@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first number.
        b: The second number.
    """
    return a + b


def action(*calls: tuple[str, dict[str, Any]]) -> str:
    """What a well-behaved model writes for the prompt protocol."""
    block = {"tool_calls": [{"name": name, "arguments": args} for name, args in calls]}
    return f"```json\n{json.dumps(block)}\n```"


async def test_prompt_protocol_tool_call_then_answer(atdak_server: LocalAtdakServer) -> None:
    atdak_server.responder = [action(("add", {"a": 2, "b": 40})), "The sum is 42."]
    agent = Agent(MODEL, "You are a calculator.", tools=[add])
    async with atdak_server.async_client() as client:
        result = await agent.run("What is 2 + 40?", provider=client)
    assert (result.status, result.output, result.steps) == ("done", "The sum is 42.", 2)
    assert [c.name for c in result.tool_calls] == ["add"]
    first, second = atdak_server.requests
    system = first.body["messages"][0]
    assert system["role"] == "system" and "add" in system["content"]
    assert "tools" not in first.body  # the Atdak API has no tools parameter
    results = second.body["messages"][-1]
    assert results["role"] == "user" and "42" in results["content"]
    assert {m["role"] for m in second.body["messages"]} <= {"system", "user", "assistant"}
    assert result.usage.requests == 2 and result.usage.input_tokens > 0
    assert [m.role for m in result.messages] == ["user", "assistant", "user", "assistant"]


async def test_native_protocol_against_an_endpoint_with_tools() -> None:
    registry = ModelRegistry(list(default_registry))
    registry.register(
        ModelProfile(
            name="local-native", context_window=8000, max_output_tokens=1000, native_tools=True
        )
    )
    call = {"name": "add", "arguments": {"a": 1, "b": 2}}
    async with LocalAtdakServer([Reply(tool_calls=[call]), "three"], native_tools=True) as server:
        agent = Agent("local-native", "Add.", tools=[add], registry=registry)
        async with server.async_client() as client:
            result = await agent.run("1+2?", provider=client)
        first, second = server.requests
    assert result.output == "three"
    assert first.body["tools"][0]["function"]["name"] == "add"
    tool_message = second.body["messages"][-1]
    assert tool_message["role"] == "tool" and tool_message["content"] == "3"
    assert second.body["messages"][-2]["tool_calls"][0]["function"]["name"] == "add"


async def test_malformed_call_gets_a_correction(atdak_server: LocalAtdakServer) -> None:
    atdak_server.responder = [
        '```json\n{"tool_calls": [{"name": "ad", "arguments": {"a": 1, "b": 1}}]}\n```',
        action(("add", {"a": 1, "b": 1})),
        "2",
    ]
    agent = Agent(MODEL, tools=[add])
    async with atdak_server.async_client() as client:
        result = await agent.run("1+1?", provider=client)
    assert result.output == "2"
    correction = atdak_server.requests[1].body["messages"][-1]["content"]
    assert "ad" in correction and "add" in correction


async def test_a_tool_that_raises_goes_back_to_the_model(atdak_server: LocalAtdakServer) -> None:
    @tool
    def lookup_order(order_id: str) -> str:
        """Look an order up."""
        if not order_id.isdigit():
            raise ModelRetry(f"order ids are digits only, not {order_id!r}")
        raise RuntimeError("database is down")

    atdak_server.responder = [
        action(("lookup_order", {"order_id": "A1"})),
        action(("lookup_order", {"order_id": "10423"})),
        "Sorry, our order system is down.",
    ]
    agent = Agent(MODEL, tools=[lookup_order], max_retries=3)
    async with atdak_server.async_client() as client:
        result = await agent.run("where is my order?", provider=client)
    assert result.status == "done"
    feedback = [r.body["messages"][-1]["content"] for r in atdak_server.requests[1:]]
    assert "digits only" in feedback[0]
    assert "database is down" in feedback[1]


async def test_a_tool_that_hangs_times_out(atdak_server: LocalAtdakServer) -> None:
    @tool(timeout=0.1)
    async def slow() -> str:
        """Never answers in time."""
        await asyncio.sleep(10)
        return "late"

    atdak_server.responder = [action(("slow", {})), "gave up waiting"]
    agent = Agent(MODEL, tools=[slow])
    async with atdak_server.async_client() as client:
        started = time.monotonic()
        result = await agent.run("go", provider=client)
    assert time.monotonic() - started < 5
    assert result.output == "gave up waiting"
    assert "0.1" in atdak_server.requests[1].body["messages"][-1]["content"]


async def test_a_model_that_never_answers_is_cut_off(atdak_server: LocalAtdakServer) -> None:
    atdak_server.responder = lambda request: Reply(text=action(("add", {"a": 1, "b": 1})))
    agent = Agent(MODEL, tools=[add], max_steps=3)
    async with atdak_server.async_client() as client:
        result = await agent.run("loop forever", provider=client)
    assert result.status == "cut_off"
    assert "max_steps=3" in (result.reason or "")
    assert len(atdak_server.requests) == 3


async def test_unreadable_output_retries_are_bounded(atdak_server: LocalAtdakServer) -> None:
    atdak_server.responder = lambda request: Reply(text="Action: nope\nAction Input: {}")
    agent = Agent(MODEL, tools=[add], max_retries=1)
    async with atdak_server.async_client() as client:
        result = await agent.run("x", provider=client)
    assert result.status == "failed"
    assert "after 1 retries" in (result.reason or "")
    assert len(atdak_server.requests) == 2


class Ticket(BaseModel):
    category: Literal["billing", "shipping", "other"]
    urgent: bool


async def test_structured_output_is_validated_and_repaired(atdak_server: LocalAtdakServer) -> None:
    atdak_server.responder = [
        'Sure! {"category": "shiping", "urgent": true}',
        'Here you go:\n```json\n{"category": "shipping", "urgent": true,}\n```',
    ]
    agent = Agent(MODEL, "Classify the ticket.", output_type=Ticket)
    async with atdak_server.async_client() as client:
        result = await agent.run("包裹三天没到！", provider=client)
    assert result.output == Ticket(category="shipping", urgent=True)
    assert "JSON schema" in atdak_server.requests[0].body["messages"][0]["content"]
    assert "category" in atdak_server.requests[1].body["messages"][-1]["content"]


async def test_several_calls_of_one_turn_run_concurrently() -> None:
    @tool
    async def wait(seconds: float) -> str:
        """Wait."""
        await asyncio.sleep(seconds)
        return "ok"

    model = ScriptedModel([action(*[("wait", {"seconds": 0.2})] * 5), "done"])
    agent = Agent(MODEL, tools=[wait])
    started = time.monotonic()
    result = await agent.run("wait five times", provider=model)
    assert time.monotonic() - started < 0.8
    assert len(result.tool_calls) == 5 and result.output == "done"
    model.assert_done()


async def test_usage_limits_stop_the_run_cleanly(atdak_server: LocalAtdakServer) -> None:
    atdak_server.responder = lambda request: Reply(text=action(("add", {"a": 1, "b": 1})))
    agent = Agent(MODEL, tools=[add], usage_limits=UsageLimits(max_requests=2), max_steps=10)
    async with atdak_server.async_client() as client:
        result = await agent.run("x", provider=client)
    assert result.status == "cut_off"
    assert "requests 3 exceeds the limit of 2" in (result.reason or "")


async def test_usage_accumulates_into_the_callers_record_traced_or_not() -> None:
    from atdak_agents.tracing import MemorySink
    from atdak_agents.usage import RunUsage

    record = RunUsage()
    model = ScriptedModel([action(("add", {"a": 1, "b": 2})), "3", "again"])
    agent = Agent(MODEL, tools=[add])
    untraced = await agent.run("1 + 2?", provider=model, usage=record)
    sink = MemorySink()
    traced = await agent.run("hi", provider=model, usage=record, sinks=[sink])
    assert untraced.usage is record and traced.usage is record
    assert (record.requests, record.tool_calls) == (3, 1)
    assert sink.events[0].type == "run_started"


async def test_tools_see_one_run_id_per_run_traced_or_not() -> None:
    from atdak_agents.tracing import MemorySink

    seen: list[str] = []

    @tool
    async def note(ctx: RunContext[None], text: str) -> str:
        """Note a text."""
        seen.append(ctx.run_id)
        return "noted"

    script = [action(("note", {"text": "a"})), action(("note", {"text": "b"})), "done"]
    agent = Agent(MODEL, tools=[note])
    await agent.run("x", provider=ScriptedModel(script))
    sink = MemorySink()
    await agent.run("x", provider=ScriptedModel(script), sinks=[sink])
    assert len(seen) == 4 and seen[0] == seen[1] and seen[2] == seen[3] != seen[0]
    assert all(len(run_id) == 32 for run_id in seen)
    assert seen[2] == sink.events[0].run_id


async def test_a_tool_that_may_read_the_context_gets_it_whatever_other_tools_do() -> None:
    """Plain tools get no RunContext (they would not read it); a tool with a RunContext
    parameter, or a Tool subclass with its own ``run``, gets one with the run's id."""
    from atdak_agents.tools import Tool, ToolCall, ToolResult

    seen: list[Any] = []

    @tool
    async def note(ctx: RunContext[str], text: str) -> str:
        """Note a text."""
        seen.append(("note", ctx.run_id, ctx.deps, ctx.step))
        return "noted"

    class Recorded(Tool[Any, Any]):
        async def run(self, call: ToolCall, context: RunContext[Any] | None = None) -> ToolResult:
            assert context is not None
            seen.append(("recorded", context.run_id, context.deps, context.step))
            return await super().run(call, context)

    async def echo(text: str) -> str:
        """Echo a text."""
        return text

    script = [
        action(("add", {"a": 1, "b": 2})),
        action(("note", {"text": "a"})),
        action(("echo", {"text": "b"}), ("add", {"a": 3, "b": 4})),
        "done",
    ]
    agent = Agent(MODEL, tools=[add, note, Recorded(echo)])
    result = await agent.run("x", provider=ScriptedModel(script), deps="deps")
    assert result.status == "done" and len(result.tool_calls) == 4
    assert [(name, deps, step) for name, _, deps, step in seen] == [
        ("note", "deps", 2),
        ("recorded", "deps", 3),
    ]
    assert seen[0][1] == seen[1][1] and len(seen[0][1]) == 32


async def test_the_system_message_follows_the_instructions_from_run_to_run() -> None:
    """Static instructions: every run sends them (the same message object may be reused, never
    edited); templated ones are rendered for each run's variables."""
    static = Agent(MODEL, "Be brief.")
    model = ScriptedModel(["one", "two"])
    first = await static.run("a", provider=model)
    second = await static.run("b", provider=model)
    sent = [[(m.role, m.text) for m in r.messages] for r in model.requests]
    assert sent == [
        [("system", "Be brief."), ("user", "a")],
        [("system", "Be brief."), ("user", "b")],
    ]
    assert [m.role for m in first.messages + second.messages] == ["user", "assistant"] * 2
    assert all(not m.metadata for r in model.requests for m in r.messages if m.role == "system")
    templated = Agent(MODEL, "Greet {{ name }}.")
    model = ScriptedModel(["hi Ann", "hi Bo"])
    await templated.run("a", provider=model, variables={"name": "Ann"})
    await templated.run("b", provider=model, variables={"name": "Bo"})
    assert [r.messages[0].text for r in model.requests] == ["Greet Ann.", "Greet Bo."]


async def test_a_summarizing_context_borrows_the_runs_own_endpoint() -> None:
    """``context="summarize"``: the summary is asked of the endpoint the run was given."""
    registry = default_registry.copy()
    registry.register(ModelProfile(name="tiny", context_window=700, max_output_tokens=50))
    agent = Agent("tiny", "Answer briefly.", context="summarize", registry=registry)
    history: list[dict[str, str]] = []
    for i in range(30):
        history.append({"role": "user", "content": f"Where is order {1000 + i}, please?"})
        history.append({"role": "assistant", "content": f"Order {1000 + i} left depot {i % 3}."})
    history.append({"role": "user", "content": "Which orders left depot 1?"})
    model = ScriptedModel(["Orders 1000-1029 left depots 0-2 in turn.", "1001, 1004, 1007, ..."])
    result = await agent.run(history, provider=model)
    assert result.output == "1001, 1004, 1007, ..."
    summary_request, answer_request = model.requests
    assert summary_request.model == "atdak-gpt-4-mini"
    kinds = [m.metadata.get("kind") for m in answer_request.messages]
    assert "summary" in kinds and len(answer_request.messages) < len(history)
    assert answer_request.messages[-1].content == "Which orders left depot 1?"


def test_run_sync_and_clear_errors() -> None:
    with pytest.raises(UsageError, match="unknown model 'atdak-gpt4'"):
        Agent("atdak-gpt4")
    model = ScriptedModel(["hello"])
    assert Agent(MODEL).run_sync("hi", provider=model).output == "hello"


async def test_streamed_tokens_never_show_protocol_markup(atdak_server: LocalAtdakServer) -> None:
    atdak_server.responder = [
        Reply(text="Let me add that. " + action(("add", {"a": 20, "b": 22})), chunk_size=3),
        Reply(text="二十加二十二等于 42。", chunk_size=2),
    ]
    agent = Agent(MODEL, tools=[add])
    async with atdak_server.async_client() as client:
        stream = agent.stream("20+22?", provider=client)
        events = [event async for event in stream]
    tokens = "".join(e.text for e in events if e.type == "token")
    assert "tool_calls" not in tokens and "```" not in tokens
    assert tokens.endswith("二十加二十二等于 42。")
    types = [e.type for e in events]
    assert types[0] == "run_started" and types[-1] == "run_finished"
    assert types.index("tool_called") < types.index("tool_returned")
    assert all(r.stream for r in atdak_server.requests)  # someone listened, so it streamed
    assert stream.result is not None and stream.result.output == "二十加二十二等于 42。"
    request = next(e for e in events if e.type == "model_request")
    assert request.context_window == 128_000 and request.estimated_tokens > 0
    response = next(e for e in events if e.type == "model_response")
    assert response.usage_estimated and response.prompt_tokens > 0


async def test_memory_keeps_a_session_across_runs(
    atdak_server: LocalAtdakServer, tmp_path: Any
) -> None:
    from atdak_agents.memory import SQLiteStore

    store = SQLiteStore(tmp_path / "memory.db")
    agent = Agent(MODEL, "Be brief.", memory=store)
    atdak_server.responder = ["Nice to meet you, 小王.", "Your name is 小王.", "I don't know."]
    async with atdak_server.async_client() as client:
        await agent.run("My name is 小王.", provider=client, session_id="alice")
        second = await agent.run("What is my name?", provider=client, session_id="alice")
        other = await agent.run("What is my name?", provider=client, session_id="bob")
    await store.close()
    assert second.output == "Your name is 小王."
    seen = [m["content"] for m in atdak_server.requests[1].body["messages"]]
    assert "My name is 小王." in seen and "Nice to meet you, 小王." in seen
    unseen = [m["content"] for m in atdak_server.requests[2].body["messages"]]
    assert "My name is 小王." not in unseen
    assert other.output == "I don't know."


async def test_retries_are_traced_under_their_model_call(atdak_server: LocalAtdakServer) -> None:
    from atdak_agents import RetryPolicy
    from atdak_agents.testing import rate_limited
    from atdak_agents.tracing import MemorySink

    atdak_server.responder = [rate_limited(retry_after=0.01), "fine"]
    sink = MemorySink()
    agent = Agent(MODEL)
    policy = RetryPolicy(initial_backoff=0.01, max_backoff=0.05)
    async with atdak_server.async_client(retry_policy=policy) as client:
        result = await agent.run("hi", provider=client, sinks=[sink])
    assert result.output == "fine"
    (retry,) = sink.of_type("model_retrying")
    request = sink.of_type("model_request")[0]
    assert retry.attempt == 1 and "429" in retry.reason
    assert retry.span_id == request.span_id  # under the model call it belongs to
