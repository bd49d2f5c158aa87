"""The local Atdak-compatible server, spoken to with plain httpx (not with our own client)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from atdak_agents.providers.profiles import ModelProfile, ModelRegistry
from atdak_agents.testing import (
    EchoResponder,
    LocalAtdakServer,
    ReceivedRequest,
    Reply,
    ScriptedResponder,
)

BODY = {"model": "atdak-gpt-4", "messages": [{"role": "user", "content": "你好"}]}


def post(server: LocalAtdakServer, body: Any = BODY, key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key or server.api_key}"}
    return httpx.post(f"{server.base_url}/chat/completions", json=body, headers=headers, timeout=10)


def test_a_non_streamed_answer_follows_the_contract(atdak_server: LocalAtdakServer) -> None:
    atdak_server.responder = "你好!有什么可以帮助你的吗?"
    response = post(atdak_server)
    assert response.status_code == 200 and response.headers["x-request-id"] == "req_0"
    body = response.json()
    assert body["object"] == "chat.completion" and body["model"] == "atdak-gpt-4"
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "你好!有什么可以帮助你的吗?"},
            "finish_reason": "stop",
        }
    ]
    usage = body["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_a_stream_follows_the_contract(atdak_server: LocalAtdakServer) -> None:
    atdak_server.responder = Reply(text="你好", chunk_size=1)
    response = post(atdak_server, {**BODY, "stream": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    lines = [line for line in response.text.split("\n") if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert [c["choices"][0]["delta"]["content"] for c in chunks] == ["你", "好"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in c for c in chunks)  # like Atdak: no usage in a stream


def test_the_bearer_key_is_checked(atdak_server: LocalAtdakServer) -> None:
    response = post(atdak_server, key="sk-wrong")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    no_auth = httpx.post(f"{atdak_server.base_url}/chat/completions", json=BODY)
    assert no_auth.status_code == 401
    assert [r.authorized for r in atdak_server.requests] == [False, False]


def test_without_a_key_any_caller_is_accepted() -> None:
    with LocalAtdakServer(api_key=None) as server:
        assert httpx.post(f"{server.base_url}/chat/completions", json=BODY).status_code == 200


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"model": ""}, "model"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"temperature": 2.5}, "temperature"),
        ({"top_p": -1}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"tools": [{"type": "function"}]}, "tools"),
    ],
)
def test_requests_outside_the_contract_get_a_400(
    atdak_server: LocalAtdakServer, change: dict[str, Any], param: str
) -> None:
    response = post(atdak_server, {**BODY, **change})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error" and error["message"]


def test_a_body_that_is_not_json(atdak_server: LocalAtdakServer) -> None:
    headers = {"Authorization": f"Bearer {atdak_server.api_key}"}
    response = httpx.post(
        f"{atdak_server.base_url}/chat/completions", content=b"{oops", headers=headers
    )
    assert response.status_code == 400
    assert atdak_server.requests[0].body is None


def test_the_context_window_of_known_models() -> None:
    registry = ModelRegistry([ModelProfile(name="tiny", context_window=50, max_output_tokens=10)])
    with LocalAtdakServer(token_counter=lambda value, model: 30, registry=registry) as server:
        fits = post(server, {**BODY, "model": "tiny", "max_tokens": 20})
        too_long = post(server, {**BODY, "model": "tiny", "max_tokens": 21})
        unknown = post(server, {**BODY, "model": "other", "max_tokens": 10**6})
    assert fits.status_code == 200 and unknown.status_code == 200
    assert too_long.status_code == 400
    error = too_long.json()["error"]
    assert error["code"] == "context_length_exceeded" and error["param"] == "messages"
    assert (
        "maximum context length is 50 tokens" in error["message"]
        and "(30 in the messages, 21 in" in error["message"]
    )


def test_a_pluggable_token_counter_fills_usage() -> None:
    seen: list[tuple[Any, str]] = []

    def counter(value: Any, model: str) -> int:
        seen.append((value, model))
        return 100 if isinstance(value, list) else len(value)

    with LocalAtdakServer("abcde", token_counter=counter) as server:
        usage = post(server).json()["usage"]
    assert usage == {"prompt_tokens": 100, "completion_tokens": 5, "total_tokens": 105}
    assert seen[0] == (BODY["messages"], "atdak-gpt-4")


def test_exact_counts_with_a_real_tokenizer() -> None:
    """The server can report cl100k counts (bpe-openai), e.g. to test calibration."""
    pytest.importorskip("bpe_openai")
    from atdak_agents.context.tokens import get_tokenizer

    encoding = get_tokenizer("cl100k_base")

    def cl100k(value: Any, model: str) -> int:
        if isinstance(value, str):
            return encoding.count(value)
        return sum(4 + encoding.count(m["content"]) for m in value) + 3

    with LocalAtdakServer("Hello world", token_counter=cl100k) as server:
        usage = post(
            server, {**BODY, "messages": [{"role": "user", "content": "Hello world"}]}
        ).json()["usage"]
    assert usage["completion_tokens"] == 2 and usage["prompt_tokens"] == 4 + 2 + 3


def test_native_tools_when_configured() -> None:
    call = {"name": "get_weather", "arguments": {"city": "北京"}, "id": "call_1"}
    with LocalAtdakServer([Reply(tool_calls=[call])], native_tools={"atdak-gpt-4"}) as server:
        tools = [{"type": "function", "function": {"name": "get_weather"}}]
        body = post(server, {**BODY, "tools": tools}).json()
        refused = post(server, {**BODY, "model": "atdak-llama-70b", "tools": tools})
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"] == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"北京"}'},
        }
    ]
    assert refused.status_code == 400


def test_requests_are_recorded_without_the_key(atdak_server: LocalAtdakServer) -> None:
    post(atdak_server, {**BODY, "temperature": 0.7})
    [received] = atdak_server.requests
    assert isinstance(received, ReceivedRequest)
    assert (received.index, received.path, received.model, received.stream) == (
        0,
        "/v1/chat/completions",
        "atdak-gpt-4",
        False,
    )
    assert received.body["temperature"] == 0.7 and received.last_user_text == "你好"
    assert received.headers["Authorization"] == "***"
    atdak_server.reset("next")
    assert (
        atdak_server.requests == []
        and post(atdak_server).json()["choices"][0]["message"]["content"] == "next"
    )


def test_responders() -> None:
    async def slow_upper(request: ReceivedRequest) -> str:
        await asyncio.sleep(0.01)
        return request.last_user_text.upper()

    script = ScriptedResponder(["one", slow_upper, lambda r: Reply(text=f"#{r.index}")])
    with LocalAtdakServer(script) as server:
        texts = [
            post(server, {**BODY, "messages": [{"role": "user", "content": "abc"}]}).json()
            for _ in range(4)
        ]
    contents = [
        t["choices"][0]["message"]["content"] if "choices" in t else t["error"]["message"]
        for t in texts
    ]
    assert contents[:3] == ["one", "ABC", "#2"]
    assert "script is used up: request #3" in contents[3]
    assert EchoResponder("echo: ")(ReceivedRequest(0, "/", {}, BODY, True)).text == "echo: 你好"
    with pytest.raises(ValueError, match="unknown fault 'explode'"):
        Reply(fault="explode")  # type: ignore[arg-type]


def test_latency_is_added_to_every_answer() -> None:
    with LocalAtdakServer(latency=0.2) as server:
        start = time.monotonic()
        assert post(server).status_code == 200
    assert time.monotonic() - start >= 0.2


def test_a_hang_ends_when_the_server_stops() -> None:
    server = LocalAtdakServer([Reply(fault="hang")]).start_in_thread()
    start = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        post_with_timeout(server, 0.2)
    server.stop_in_thread()
    assert time.monotonic() - start < 3


def post_with_timeout(server: LocalAtdakServer, timeout: float) -> httpx.Response:
    headers = {"Authorization": f"Bearer {server.api_key}"}
    return httpx.post(
        f"{server.base_url}/chat/completions", json=BODY, headers=headers, timeout=timeout
    )


async def test_inside_a_running_event_loop() -> None:
    async with LocalAtdakServer(["in the loop"]) as server, httpx.AsyncClient() as http:
        headers = {"Authorization": f"Bearer {server.api_key}"}
        response = await http.post(
            f"{server.base_url}/chat/completions", json=BODY, headers=headers
        )
    assert response.json()["choices"][0]["message"]["content"] == "in the loop"


def test_models_are_listed(atdak_server: LocalAtdakServer) -> None:
    models = httpx.get(f"{atdak_server.base_url}/models").json()["data"]
    assert {"atdak-gpt-4", "atdak-llama-70b"} <= {m["id"] for m in models}


async def test_a_thousand_connections_at_once() -> None:
    """1,000 concurrent requests with 200 ms latency, one connection each, in about 2 s."""
    server = LocalAtdakServer(latency=0.2, record=False)
    async with server, server.async_client(max_retries=0) as client:
        start = time.monotonic()
        answers = await asyncio.gather(
            *(
                client.chat.completions.create(model="m", messages=BODY["messages"])
                for _ in range(1000)
            )  # type: ignore[arg-type]
        )
        elapsed = time.monotonic() - start
    assert [a.text for a in answers] == ["你好"] * 1000
    assert elapsed < 3  # one process plays client and server here (about 1.4 s measured)


def test_the_command_line_server() -> None:
    command = [
        sys.executable,
        "-m",
        "atdak_agents.cli",
        "local-server",
        "--port",
        "0",
        "--reply",
        "来自命令行",
    ]
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=environment) as process:
        try:
            assert process.stdout is not None
            first = process.stdout.readline()
            assert "listening on http://127.0.0.1:" in first
            base_url = first.rsplit(" ", 1)[-1].strip()
            assert "export ATDAK_BASE_URL=" in process.stdout.readline()
            headers = {"Authorization": "Bearer sk-local-atdak"}
            answer = httpx.post(f"{base_url}/chat/completions", json=BODY, headers=headers).json()
            assert answer["choices"][0]["message"]["content"] == "来自命令行"
        finally:
            process.send_signal(signal.SIGINT)
            assert process.wait(10) == 0
