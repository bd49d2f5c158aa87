"""The native protocol: OpenAI-style tools, streamed tool_calls deltas, role "tool" results."""

from __future__ import annotations

import json

from atdak_agents.messages import EXCHANGE, KIND, Message
from atdak_agents.providers._wire import (
    ChatCompletionRequest,
    Delta,
    DeltaFunctionCall,
    DeltaToolCall,
)
from atdak_agents.testing import LocalAtdakServer, Reply
from atdak_agents.tool_protocols import NativeProtocol, NativeTurnParser, ParsedTurn
from atdak_agents.tools import ToolRegistry

from .corpus_tools import TOOLS, get_weather

PROTOCOL = NativeProtocol()


def test_prepare_sends_openai_tools() -> None:
    messages = [Message(role="user", content="hi")]
    prepared = PROTOCOL.prepare(messages, TOOLS)
    assert prepared.messages == messages
    assert prepared.params["tools"][0] == {"type": "function", "function": get_weather.spec()}
    assert [t["function"]["name"] for t in prepared.params["tools"]] == [t.name for t in TOOLS]
    assert prepared.overhead_tokens() > 100
    chosen = NativeProtocol(tool_choice="required").prepare(messages, TOOLS)
    assert chosen.params["tool_choice"] == "required"
    assert NativeProtocol().prepare(messages, []).params == {}


def feed_deltas(parser: NativeTurnParser, deltas: list[Delta]) -> str:
    return "".join(parser.feed(d) for d in deltas)


def test_deltas_are_assembled_by_index() -> None:
    parser = PROTOCOL.parser(TOOLS)
    deltas = [
        Delta(content="Looking"),
        Delta(content=" it up."),
        Delta(
            tool_calls=[DeltaToolCall(index=0, id="c1", function=DeltaFunctionCall(name="get_"))]
        ),
        Delta(tool_calls=[DeltaToolCall(index=0, function=DeltaFunctionCall(name="weather"))]),
        Delta(
            tool_calls=[
                DeltaToolCall(
                    index=1,
                    id="c2",
                    function=DeltaFunctionCall(name="get_time", arguments='{"time'),
                )
            ]
        ),
        Delta(
            tool_calls=[DeltaToolCall(index=0, function=DeltaFunctionCall(arguments='{"city": '))]
        ),
        Delta(
            tool_calls=[
                DeltaToolCall(index=1, function=DeltaFunctionCall(arguments='zone": "UTC"}'))
            ]
        ),
        Delta(tool_calls=[DeltaToolCall(index=0, function=DeltaFunctionCall(arguments='"Oslo"}'))]),
    ]
    assert feed_deltas(parser, deltas) == "Looking it up."
    turn = parser.finish()
    assert turn.kind == "tool_calls" and turn.format == "native" and turn.text == "Looking it up."
    assert [(c.id, c.name, c.arguments) for c in turn.calls] == [
        ("c1", "get_weather", {"city": "Oslo"}),
        ("c2", "get_time", {"timezone": "UTC"}),
    ]


def test_bad_arguments_and_unknown_tools_get_a_tool_message_each() -> None:
    message = Message.model_validate(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "a", "function": {"name": "get_weather", "arguments": '{"city": "Par'}},
                {"id": "b", "function": {"name": "serach", "arguments": "{}"}},
                {"id": "c", "function": {"name": "get_time", "arguments": "{}"}},
            ],
        }
    )
    turn = PROTOCOL.parse(message, TOOLS)
    assert turn.kind == "unreadable" and len(turn.problems) == 2
    assert turn.correction is not None and "did you mean 'search'" in turn.correction
    said, *answers = PROTOCOL.correction_messages(turn)
    assert said.role == "assistant" and [c.id for c in said.tool_calls or []] == ["a", "b", "c"]
    assert [(m.role, m.tool_call_id) for m in answers] == [
        ("tool", "a"),
        ("tool", "b"),
        ("tool", "c"),
    ]
    assert "not valid JSON" in answers[0].text
    assert "no tool named 'serach'" in answers[1].text
    assert answers[2].text.startswith("Not run")
    assert {m.metadata[KIND] for m in [said, *answers]} == {"correction"}
    assert len({m.metadata[EXCHANGE] for m in [said, *answers]}) == 1


def test_calls_written_as_text_are_still_understood_and_hidden() -> None:
    parser = PROTOCOL.parser(TOOLS)
    text = 'Sure.<tool_call>{"name": "search", "arguments": {"query": "vllm"}}</tool_call>'
    shown = "".join(parser.feed(Delta(content=text[i : i + 4])) for i in range(0, len(text), 4))
    turn = parser.finish()
    assert shown == "Sure." and turn.kind == "tool_calls" and turn.format == "hermes"
    assert turn.calls[0].id.startswith("call_")
    messages = PROTOCOL.tool_messages(turn, [])
    assert messages[0].tool_calls is not None
    assert messages[0].tool_calls[0].function.name == "search"


def test_a_plain_answer_streams_through() -> None:
    parser = PROTOCOL.parser(TOOLS)
    shown = parser.feed(Delta(content="Hello ")) + parser.feed("world")
    turn = parser.finish()
    assert turn.kind == "final" and shown + parser.remainder(turn) == "Hello world"


async def test_native_exchange_over_http() -> None:
    replies = [
        Reply(
            tool_calls=[
                {"name": "get_weather", "arguments": {"city": "Paris"}, "id": "call_w"},
                {"name": "get_time", "arguments": {"timezone": "Europe/Paris"}},
            ],
            chunk_size=4,
        ),
        Reply(text="Sunny, and it is noon.", chunk_size=4),
    ]
    registry = ToolRegistry(TOOLS)
    history = [Message(role="user", content="Weather and time in Paris?")]
    turns: list[ParsedTurn] = []
    with LocalAtdakServer(responder=replies, native_tools=True) as server:
        async with server.async_client() as client:
            for _ in range(2):
                prepared = PROTOCOL.prepare(history, registry)
                request = ChatCompletionRequest(
                    model="atdak-gpt-4", messages=prepared.messages, **prepared.params
                )
                parser = PROTOCOL.parser(registry)
                stream = await client.stream(request)
                async with stream:
                    async for chunk in stream:
                        parser.feed(chunk.choices[0].delta)
                turn = parser.finish()
                turns.append(turn)
                if turn.kind == "tool_calls":
                    history += PROTOCOL.tool_messages(turn, await registry.run_all(turn.calls))
        sent = [r.body for r in server.requests]
    assert [t.kind for t in turns] == ["tool_calls", "final"]
    assert [(c.name, c.arguments) for c in turns[0].calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_time", {"timezone": "Europe/Paris"}),
    ]
    assert turns[0].calls[0].id == "call_w"
    assert turns[1].text == "Sunny, and it is noon."
    assert sent[1] is not None
    wire = sent[1]["messages"]
    assert [m["role"] for m in wire] == ["user", "assistant", "tool", "tool"]
    assert wire[1]["tool_calls"][0]["id"] == "call_w"
    assert json.loads(wire[1]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
    assert wire[2] == {"role": "tool", "content": "Paris: 20 celsius", "tool_call_id": "call_w"}


async def test_non_streamed_native_answer() -> None:
    reply = Reply(tool_calls=[{"name": "read_file", "arguments": '{"path": "a.txt"}'}])
    with LocalAtdakServer(responder=[reply], native_tools=True) as server:
        async with server.async_client() as client:
            prepared = PROTOCOL.prepare([Message(role="user", content="read a.txt")], TOOLS)
            request = ChatCompletionRequest(
                model="m", messages=prepared.messages, **prepared.params
            )
            answer = await client.complete(request)
    turn = PROTOCOL.parse(answer.choices[0].message, TOOLS)
    assert turn.kind == "tool_calls" and turn.calls[0].arguments == {"path": "a.txt"}
