"""The prompt protocol: specs in the system prompt, calls read from text, results as user text."""

from __future__ import annotations

import json
from typing import Any

import pytest

from atdak_agents.exceptions import InvalidParameterError
from atdak_agents.messages import EXCHANGE, KIND, Message
from atdak_agents.providers._wire import ChatCompletionRequest
from atdak_agents.providers.profiles import ModelProfile
from atdak_agents.testing import LocalAtdakServer, Reply
from atdak_agents.tool_protocols import (
    NativeProtocol,
    ParsedTurn,
    PromptProtocol,
    TextTurnParser,
    get_protocol,
)
from atdak_agents.tools import ToolCall, ToolRegistry, ToolResult

from .corpus_tools import TOOLS, get_time, get_weather

PROTOCOL = PromptProtocol()


def test_prepare_appends_the_tools_to_the_system_message() -> None:
    messages = [
        Message(role="system", content="You are terse."),
        Message(role="user", content="hi"),
    ]
    prepared = PROTOCOL.prepare(messages, TOOLS)
    system = prepared.messages[0].text
    assert system.startswith("You are terse.\n\n# Tools")
    assert messages[0].text == "You are terse."  # the caller's messages are not changed
    for item in TOOLS:
        assert f"## {item.name}\n{item.description}\nArguments: " in system
    assert json.dumps(get_weather.parameters, separators=(",", ":")) in system
    example = '{"tool_calls": [{"name": "get_weather", "arguments": {"city": "..."}}]}'
    assert f"```json\n{example}\n```" in system
    assert '"[tool results]"' in system and "plain text" in system
    assert prepared.params == {} and prepared.overhead_tokens() == 0


def test_prepare_inserts_a_system_message_and_leaves_toolless_requests_alone() -> None:
    messages = [Message(role="user", content="hi")]
    prepared = PROTOCOL.prepare(messages, [get_time])
    assert [m.role for m in prepared.messages] == ["system", "user"]
    assert prepared.messages[0].text.startswith("# Tools")
    # get_time has no required argument: its first one is the example
    assert '"arguments": {"timezone": "..."}' in prepared.messages[0].text
    assert PROTOCOL.prepare(messages, []).messages == messages


def test_the_tools_text_is_kept_for_the_same_tools_and_made_again_when_they_change() -> None:
    # The text is rendered once and given again while the tools are the same (every turn of an
    # agent sends it); it must read exactly like a fresh rendering, and change with the tools.
    protocol = PromptProtocol()
    registry = ToolRegistry([get_weather])
    first = protocol.render_tools(registry)
    assert protocol.render_tools(registry) is first
    assert protocol.render_tools(ToolRegistry([get_weather])) is first  # the same tools
    assert first == PromptProtocol().render_tools([get_weather])

    registry.add(get_time)  # one more tool
    assert protocol.render_tools(registry) == PromptProtocol().render_tools(registry)
    assert "## get_time" in protocol.render_tools(registry)

    described = ToolRegistry([get_weather])
    old = get_weather.description
    try:
        get_weather.description = "Weather, anywhere."  # a tool's attribute replaced
        changed = protocol.render_tools(described)
        assert "Weather, anywhere." in changed and changed != first
    finally:
        get_weather.description = old
    assert protocol.render_tools(described) == first

    protocol.instructions = "Call tools as <call>name</call>."  # other instructions
    assert protocol.render_tools(described).endswith("Call tools as <call>name</call>.")


def test_custom_instructions_replace_the_how_to() -> None:
    custom = PromptProtocol(instructions="Answer with <call>name</call> only.")
    system = custom.prepare([Message(role="user", content="x")], TOOLS).messages[0].text
    assert system.endswith("Answer with <call>name</call> only.")
    assert "How to use the tools" not in system


def turn_with_calls() -> ParsedTurn:
    calls = (
        ToolCall("call_a", "get_weather", {"city": "Paris"}),
        ToolCall("call_b", "get_time", {"timezone": "UTC"}),
    )
    return ParsedTurn("tool_calls", "Checking both.", calls, raw="<tool_call>...", format="hermes")


def test_tool_messages_keep_one_exchange_in_canonical_form() -> None:
    turn = turn_with_calls()
    results = [
        ToolResult("call_a", "get_weather", "Paris: 20 celsius"),
        ToolResult("call_b", "get_time", "bad </result> inside", is_error=True),
    ]
    call, answer = PROTOCOL.tool_messages(turn, results)
    assert (call.role, answer.role) == ("assistant", "user")
    assert call.metadata[EXCHANGE] == answer.metadata[EXCHANGE]
    assert (call.metadata[KIND], answer.metadata[KIND]) == ("tool_call", "tool_result")
    assert call.metadata["raw"] == "<tool_call>..."
    assert call.text.startswith("Checking both.\n\n```json\n")
    again = PROTOCOL.parse(call, TOOLS)  # the canonical form reads back to the same calls
    assert [(c.name, c.arguments) for c in again.calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_time", {"timezone": "UTC"}),
    ]
    assert answer.text.splitlines() == [
        "[tool results] (written by the tools you called, not by the user)",
        '<result tool="get_weather" id="call_a">',
        "Paris: 20 celsius",
        "</result>",
        '<result tool="get_time" id="call_b" error="true">',
        "bad <\\/result> inside",
        "</result>",
        "Call more tools if you need to, or answer the user in plain text.",
    ]
    assert "metadata" not in call.to_wire()


def test_correction_messages_show_the_model_what_it_wrote_and_what_to_fix() -> None:
    turn = PROTOCOL.parse(Message(role="assistant", content='{"name": "get_wether"}'), TOOLS)
    assert turn.kind == "final"  # no arguments and not a known tool: that is data, not a call
    turn = PROTOCOL.parse(
        Message(role="assistant", content='<tool_call>{"name": "get_wether", "arguments": {}}'),
        TOOLS,
    )
    assert turn.kind == "unreadable"
    said, fix = PROTOCOL.correction_messages(turn)
    assert said.role == "assistant" and said.text == turn.raw
    assert fix.role == "user" and fix.text.startswith("[format error]")
    assert "there is no tool named 'get_wether' (did you mean 'get_weather'?)" in fix.text
    assert "get_weather, search, calculator, send_email, read_file, get_time" in fix.text
    assert {said.metadata[KIND], fix.metadata[KIND]} == {"correction"}
    assert said.metadata[EXCHANGE] == fix.metadata[EXCHANGE]


def test_answer_message() -> None:
    answer = PROTOCOL.answer_message(ParsedTurn("final", "Done."))
    assert (answer.role, answer.text) == ("assistant", "Done.")


@pytest.mark.parametrize(
    ("choice", "profile", "expected"),
    [
        (None, None, PromptProtocol),
        (
            "auto",
            ModelProfile(name="m", context_window=8000, max_output_tokens=100),
            PromptProtocol,
        ),
        (
            "auto",
            ModelProfile(name="m", context_window=8000, max_output_tokens=100, native_tools=True),
            NativeProtocol,
        ),
        ("native", None, NativeProtocol),
        ("prompt", None, PromptProtocol),
    ],
)
def test_get_protocol(choice: Any, profile: ModelProfile | None, expected: type) -> None:
    assert isinstance(get_protocol(choice, profile=profile), expected)


def test_get_protocol_passes_objects_and_refuses_unknown_names() -> None:
    custom = PromptProtocol(instructions="x")
    assert get_protocol(custom) is custom
    with pytest.raises(InvalidParameterError, match="'auto', 'native', 'prompt'"):
        get_protocol("xml")  # type: ignore[arg-type]


async def test_a_tool_exchange_over_http_streams_no_markup() -> None:
    """Two model turns against the local server, streamed in 3-character chunks."""
    first = (
        "Let me check.\n<tool_call>\n"
        '{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    )
    second = "It is 20 °C in Paris."
    replies = [Reply(text=first, chunk_size=3), Reply(text=second, chunk_size=3)]
    registry = ToolRegistry(TOOLS)
    history = [Message(role="user", content="Weather in Paris?")]
    shown: list[str] = []
    turns: list[ParsedTurn] = []
    with LocalAtdakServer(responder=replies) as server:
        async with server.async_client() as client:
            for _ in range(2):
                prepared = PROTOCOL.prepare(history, registry)
                request = ChatCompletionRequest(model="atdak-gpt-4", messages=prepared.messages)
                parser: TextTurnParser = PROTOCOL.parser(registry)
                stream = await client.stream(request)
                async with stream:
                    async for chunk in stream:
                        shown.append(parser.feed(chunk.choices[0].delta))
                turn = parser.finish()
                shown.append(parser.remainder(turn))
                turns.append(turn)
                if turn.kind == "tool_calls":
                    history += PROTOCOL.tool_messages(turn, await registry.run_all(turn.calls))
        sent = [r.body for r in server.requests]
    assert [t.kind for t in turns] == ["tool_calls", "final"]
    assert [(c.name, c.arguments) for c in turns[0].calls] == [("get_weather", {"city": "Paris"})]
    assert "".join(shown) == "Let me check.It is 20 °C in Paris."
    assert len(shown) > 10  # it really streamed
    assert sent[0] is not None and sent[1] is not None
    assert "# Tools" in sent[0]["messages"][0]["content"]
    roles = [m["role"] for m in sent[1]["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    assert sent[1]["messages"][3]["content"].startswith("[tool results]")
    assert "Paris: 20 celsius" in sent[1]["messages"][3]["content"]
    assert "tools" not in sent[1]
