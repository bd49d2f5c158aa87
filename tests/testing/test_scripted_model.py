"""The scripted chat model: answers in order, loud on surprises; and the network guard."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from atdak_agents.exceptions import (
    APIConnectionError,
    APIResponseValidationError,
    IncompleteStreamError,
    RateLimitError,
    StreamError,
)
from atdak_agents.messages import Message
from atdak_agents.providers._wire import ChatCompletionRequest
from atdak_agents.providers.base import ChatModel, ChatStream
from atdak_agents.testing import NetworkBlockedError, Reply, ScriptedModel, ScriptError
from atdak_agents.testing.pytest_plugin import _check


def request(text: str = "你好") -> ChatCompletionRequest:
    return ChatCompletionRequest(model="atdak-gpt-4", messages=[Message(role="user", content=text)])


async def test_answers_in_order_and_records_requests() -> None:
    with ScriptedModel(
        [
            "first",
            Reply(
                text="second", usage={"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
            ),
        ]
    ) as model:
        assert isinstance(model, ChatModel)
        one = await model.complete(request("a"))
        two = await model.complete(request("b"))
    assert (one.text, two.text) == ("first", "second")
    assert one.usage is not None and one.usage.total_tokens > 0 and not one.usage.estimated
    assert two.usage is not None and two.usage.total_tokens == 3
    assert [r.messages[0].text for r in model.requests] == ["a", "b"]


async def test_an_unexpected_call_fails_loudly() -> None:
    model = ScriptedModel(["only one"])
    await model.complete(request())
    with pytest.raises(
        ScriptError, match=r"unexpected call #2 \(its script has 1 steps\).*'again'"
    ):
        await model.complete(request("again"))


async def test_unused_steps_fail_loudly() -> None:
    model = ScriptedModel(["used", "unused", Reply(text="also unused")])
    await model.complete(request())
    with pytest.raises(ScriptError, match="2 of 3 script steps were never used"):
        model.assert_done()
    with pytest.raises(ScriptError), ScriptedModel(["never called"]):
        pass


async def test_streams_chunk_and_collect() -> None:
    model = ScriptedModel([Reply(text="春眠不觉晓", chunk_size=2), "second"])
    stream = await model.stream(request())
    assert isinstance(stream, ChatStream)
    async with stream:
        pieces = [chunk.choices[0].delta.content async for chunk in stream]
    assert pieces == ["春眠", "不觉", "晓"]
    answer = await (await model.stream(request())).collect()
    assert answer.text == "second"
    assert answer.usage is not None and answer.usage.estimated and answer.usage.total_tokens > 0


async def test_tool_calls() -> None:
    call = {"name": "lookup_order", "arguments": {"id": 7}}
    model = ScriptedModel([Reply(tool_calls=[call]), Reply(text="ok", tool_calls=[call])])
    answer = await model.complete(request())
    message = answer.choices[0].message
    assert answer.choices[0].finish_reason == "tool_calls" and message.content is None
    assert message.tool_calls is not None and message.tool_calls[0].parsed_arguments() == {"id": 7}
    streamed = (await (await model.stream(request())).collect()).choices[0].message
    assert streamed.content == "ok" and streamed.tool_calls is not None
    assert streamed.tool_calls[0].function == message.tool_calls[0].function


async def test_errors_and_faults() -> None:
    model = ScriptedModel(
        [
            ValueError("raised as is"),
            Reply(status=429, error="slow down", retry_after=2),
            Reply(fault="disconnect"),
            Reply(fault="empty_choices"),
            lambda req: f"computed from {req.messages[0].text}",
        ]
    )
    with pytest.raises(ValueError, match="raised as is"):
        await model.complete(request())
    with pytest.raises(RateLimitError, match="slow down") as caught:
        await model.complete(request())
    assert caught.value.retry_after == 2.0
    with pytest.raises(APIConnectionError):
        await model.complete(request())
    with pytest.raises(APIResponseValidationError):
        await model.complete(request())
    assert (await model.complete(request("x"))).text == "computed from x"
    model.assert_done()


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("drop_mid_stream", StreamError),
        ("malformed_sse", StreamError),
        ("no_done", IncompleteStreamError),
    ],
)
async def test_stream_faults(fault: str, error: type[Exception]) -> None:
    model = ScriptedModel([Reply(text="abcdefgh", fault=fault, fault_after=1)])  # type: ignore[arg-type]
    stream = await model.stream(request())
    received = []

    async def consume() -> None:
        async for chunk in stream:
            received.append(chunk.choices[0].delta.content)

    with pytest.raises(error):
        await consume()
    assert received[0] == "abcd"


async def test_an_error_inside_a_scripted_stream() -> None:
    model = ScriptedModel(
        [Reply(text="abcdefgh", fault="stream_error", fault_after=1, status=429, error="later")]
    )
    with pytest.raises(RateLimitError, match="later"):
        await (await model.stream(request())).collect()


async def test_the_fixture_checks_the_script_at_the_end(scripted_model: Any) -> None:
    model = scripted_model(["one", "two"])
    assert (await model.complete(request())).text == "one"
    assert (await (await model.stream(request())).collect()).text == "two"
    # (a step left unused here would fail this test at teardown)


def test_the_fixture_fails_a_test_that_leaves_steps_unused(tmp_path: Path) -> None:
    test_file = tmp_path / "test_unused.py"
    test_file.write_text(
        "async def test_forgets(scripted_model):\n    scripted_model(['used', 'forgotten'])\n",
        encoding="utf-8",
    )
    command = [sys.executable, "-m", "pytest", str(test_file), "-q", "-p", "no:cacheprovider"]
    command += ["-o", "asyncio_mode=auto"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stdout
    assert "2 of 2 script steps were never used" in result.stdout


def test_the_guard_blocks_real_hosts_and_allows_loopback() -> None:
    for host in ("127.0.0.1", "localhost", "::1", "127.8.9.10"):
        _check((host, 80))
    with pytest.raises(NetworkBlockedError, match="@pytest.mark.network"):
        _check(("203.0.113.7", 443))  # a documentation address: checked, never connected to
