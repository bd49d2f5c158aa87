"""The clients' call shape, settings and parameter checks (over real HTTP to the local server)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest

from atdak_agents.exceptions import (
    APIStatusError,
    AuthenticationError,
    InvalidParameterError,
    MissingAPIKeyError,
    UsageError,
)
from atdak_agents.messages import Message
from atdak_agents.providers._wire import ChatCompletionRequest
from atdak_agents.providers.base import CallOptions, ChatModel, ChatStream
from atdak_agents.providers.client import AsyncAtdakClient, AtdakClient
from atdak_agents.testing import LocalAtdakServer, Reply

USER = [{"role": "user", "content": "你好"}]


def test_the_providers_snippet_runs_with_only_the_import_changed(
    atdak_server: LocalAtdakServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    atdak_server.responder = ["春风拂面柳丝长", Reply(text="你好！", chunk_size=1)]
    monkeypatch.setenv("ATDAK_API_KEY", str(atdak_server.api_key))
    monkeypatch.setenv("ATDAK_BASE_URL", atdak_server.base_url)
    # --- the provider's snippet, verbatim below the import
    client = AtdakClient()
    response = client.chat.completions.create(
        model="atdak-gpt-4", messages=[{"role": "user", "content": "写一首关于春天的诗"}]
    )
    print(response.choices[0].message.content)
    stream = client.chat.completions.create(
        model="atdak-gpt-4", messages=[{"role": "user", "content": "你好"}], stream=True
    )
    for chunk in stream:
        print(chunk.choices[0].delta.content, end="")
    # ---
    assert capsys.readouterr().out == "春风拂面柳丝长\n你好！"
    assert [r.body["messages"][0]["content"] for r in atdak_server.requests] == [
        "写一首关于春天的诗",
        "你好",
    ]
    client.close()


def test_the_request_on_the_wire(atdak_server: LocalAtdakServer) -> None:
    with atdak_server.client() as client:
        client.chat.completions.create(
            model="atdak-gpt-4",
            messages=[
                {"role": "system", "content": "你是一个有帮助的助手"},
                Message(role="user", content="你好", metadata={"x": 1}),
            ],
            temperature=0.7,
            max_tokens=2048,
            top_p=0.9,
            frequency_penalty=-1.5,
            presence_penalty=2,
        )
    received = atdak_server.requests[0]
    assert received.path == "/v1/chat/completions"
    assert received.body == {
        "model": "atdak-gpt-4",
        "messages": [
            {"role": "system", "content": "你是一个有帮助的助手"},
            {"role": "user", "content": "你好"},
        ],
        "temperature": 0.7,
        "max_tokens": 2048,
        "top_p": 0.9,
        "frequency_penalty": -1.5,
        "presence_penalty": 2,
    }  # metadata is never sent; unset parameters are left out
    assert received.headers["Authorization"] == "***" and received.authorized
    assert received.headers["Content-Type"] == "application/json"


async def test_the_async_client_and_its_usage(atdak_server: LocalAtdakServer) -> None:
    atdak_server.responder = Reply(
        text="你好!有什么可以帮助你的吗?",
        usage={"prompt_tokens": 15, "completion_tokens": 12, "total_tokens": 27},
    )
    async with atdak_server.async_client() as client:
        response = await client.chat.completions.create(model="atdak-gpt-4", messages=USER)
    assert response.choices[0].message.content == "你好!有什么可以帮助你的吗?"
    assert response.choices[0].finish_reason == "stop"
    assert (
        response.usage is not None
        and response.usage.total_tokens == 27
        and not response.usage.estimated
    )
    assert response.id == "chatcmpl-0" and response.model == "atdak-gpt-4"


async def test_the_async_client_is_a_chat_model(atdak_server: LocalAtdakServer) -> None:
    request = ChatCompletionRequest(
        model="atdak-gpt-4", messages=[Message(role="user", content="ping")]
    )
    async with atdak_server.async_client() as client:
        assert isinstance(client, ChatModel)
        answer = await client.complete(request, options=CallOptions(max_retries=0))
        stream = await client.stream(request)
        assert isinstance(stream, ChatStream)
        async with stream:
            texts = [chunk.choices[0].delta.content async for chunk in stream]
    assert answer.text == "ping" and "".join(t or "" for t in texts) == "ping"
    assert [r.stream for r in atdak_server.requests] == [False, True]


def test_any_model_name_is_accepted(atdak_server: LocalAtdakServer) -> None:
    with atdak_server.client() as client:
        answer = client.chat.completions.create(
            model="qwen2.5-7b-instruct", messages=USER, max_tokens=10**6
        )
    assert answer.text == "你好"


def test_extra_body_reaches_the_endpoint(atdak_server: LocalAtdakServer) -> None:
    with atdak_server.client() as client:
        client.chat.completions.create(
            model="m", messages=USER, extra_body={"seed": 7}, extra_headers={"X-Trace": "t1"}
        )
        with pytest.raises(InvalidParameterError, match="pass 'temperature' as its own argument"):
            client.chat.completions.create(model="m", messages=USER, extra_body={"temperature": 1})
    assert atdak_server.requests[0].body["seed"] == 7
    assert atdak_server.requests[0].headers["X-Trace"] == "t1"


# --------------------------------------------------------------------------- checks before any I/O

BAD_PARAMETERS: list[tuple[dict[str, Any], str]] = [
    ({"temperature": 2.1}, "temperature"),
    ({"temperature": -0.1}, "temperature"),
    ({"temperature": "0.5"}, "temperature"),
    ({"temperature": float("nan")}, "temperature"),
    ({"top_p": 1.5}, "top_p"),
    ({"frequency_penalty": -2.5}, "frequency_penalty"),
    ({"presence_penalty": 3}, "presence_penalty"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": True}, "max_tokens"),
    ({"max_tokens": 1.5}, "max_tokens"),
    ({"max_tokens": 32_001, "model": "atdak-llama-70b"}, "max_tokens"),
    ({"messages": []}, "messages"),
    ({"messages": "你好"}, "messages"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
    ({"messages": [USER[0], {"role": "user", "content": 5}]}, "messages[1].content"),
    ({"messages": [USER[0], "hi"]}, "messages[1]"),
    ({"model": ""}, "model"),
    ({"stream": "yes"}, "stream"),
]


@pytest.mark.parametrize(
    ("change", "parameter"), BAD_PARAMETERS, ids=[str(c) for c, _ in BAD_PARAMETERS]
)
def test_bad_parameters_are_refused_before_any_request(
    atdak_server: LocalAtdakServer, change: dict[str, Any], parameter: str
) -> None:
    arguments: dict[str, Any] = {"model": "atdak-gpt-4", "messages": USER, **change}
    with atdak_server.client() as client, pytest.raises(InvalidParameterError) as caught:
        client.chat.completions.create(**arguments)
    error = caught.value
    assert error.parameter == parameter
    assert str(error).startswith(f"invalid {parameter}=")
    assert atdak_server.requests == []


def test_the_error_names_value_and_range() -> None:
    client = AtdakClient(api_key="k", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(InvalidParameterError) as caught:
        client.chat.completions.create(model="atdak-llama-70b", messages=USER, max_tokens=40_000)
    expected = "an integer from 1 to 32000 (the context window of atdak-llama-70b)"
    assert str(caught.value) == f"invalid max_tokens=40000: {expected}"
    with pytest.raises(InvalidParameterError) as caught:
        client.chat.completions.create(model="atdak-gpt-4", messages=USER, temperature=3)
    assert str(caught.value) == "invalid temperature=3: a number from 0 to 2"


async def test_a_prebuilt_request_is_checked_too(atdak_server: LocalAtdakServer) -> None:
    request = ChatCompletionRequest(
        model="atdak-gpt-4", messages=[Message(role="user", content="x")], top_p=7
    )
    async with atdak_server.async_client() as client:
        with pytest.raises(InvalidParameterError, match="top_p"):
            await client.complete(request)
    assert atdak_server.requests == []


def test_the_server_checks_the_contract_too(atdak_server: LocalAtdakServer) -> None:
    response = httpx.post(
        f"{atdak_server.base_url}/chat/completions",
        json={
            "model": "atdak-gpt-4",
            "messages": [{"role": "user", "content": "x"}],
            "temperature": 5,
        },
        headers={"Authorization": f"Bearer {atdak_server.api_key}"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "temperature"


# ------------------------------------------------------------------- key, base URL, settings


def test_a_missing_key_is_a_clear_error_at_the_first_request(
    atdak_server: LocalAtdakServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ATDAK_API_KEY", raising=False)
    client = AtdakClient(base_url=atdak_server.base_url)  # constructing is fine
    with pytest.raises(MissingAPIKeyError) as caught:
        client.chat.completions.create(model="atdak-gpt-4", messages=USER)
    assert "api_key=" in str(caught.value) and "ATDAK_API_KEY" in str(caught.value)
    assert atdak_server.requests == []


async def test_a_missing_key_async(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ATDAK_API_KEY", raising=False)
    client = AsyncAtdakClient(base_url="http://127.0.0.1:9/v1")
    with pytest.raises(MissingAPIKeyError):
        await client.chat.completions.create(model="atdak-gpt-4", messages=USER)
    assert "missing" in repr(client)


def test_base_url_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ATDAK_BASE_URL", raising=False)
    assert AtdakClient(api_key="k").base_url == "https://api.atdak.com/v1"
    monkeypatch.setenv("ATDAK_BASE_URL", "http://localhost:8000/v1/")
    assert AtdakClient(api_key="k").base_url == "http://localhost:8000/v1"
    assert (
        AtdakClient(api_key="k", base_url="https://x.example/v1").url
        == "https://x.example/v1/chat/completions"
    )
    with pytest.raises(InvalidParameterError, match="base_url"):
        AtdakClient(api_key="k", base_url="api.atdak.com")


@pytest.mark.parametrize(
    "argument", [{"max_retries": -1}, {"max_retries": 1.5}, {"max_connections": 0}, {"timeout": 0}]
)
def test_bad_client_settings(argument: dict[str, Any]) -> None:
    with pytest.raises(InvalidParameterError, match=next(iter(argument))):
        AtdakClient(api_key="k", **argument)


def test_a_wrong_key_is_an_authentication_error(atdak_server: LocalAtdakServer) -> None:
    client = atdak_server.client(api_key="sk-wrong-key-123")
    with client, pytest.raises(AuthenticationError) as caught:
        client.chat.completions.create(model="atdak-gpt-4", messages=USER)
    assert "HTTP 401" in str(caught.value) and "ATDAK_API_KEY" in str(caught.value)
    assert "sk-wrong-key-123" not in str(caught.value)
    assert (
        len(atdak_server.requests) == 1 and not atdak_server.requests[0].authorized
    )  # not retried


SECRET = "sk-very-secret-0123456789"


def test_the_key_never_appears_in_errors_reprs_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Even when the server echoes the key back in its error message."""
    echo_key = Reply(
        status=400, error=f"Incorrect API key provided: {SECRET}", error_code="invalid_api_key"
    )
    retry_then_fail = Reply(status=503, error=f"overloaded for {SECRET}")
    in_stream = Reply(
        text="abc", fault="stream_error", error=f"key {SECRET} revoked", fault_after=1
    )
    server = LocalAtdakServer(
        [echo_key, retry_then_fail, retry_then_fail, in_stream], api_key=SECRET
    )
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    with server, server.client(retry_policy=_fast()) as client:
        texts.append(repr(client))
        for stream in (False, False, True):
            with pytest.raises(APIStatusError) as caught:
                client.chat.completions.create(
                    model="atdak-gpt-4", messages=USER, stream=stream, max_retries=1
                ).collect()  # type: ignore[union-attr]
            error = caught.value
            texts += [str(error), repr(error), str(error.message), str(error.body), str(error.args)]
    texts += [record.getMessage() for record in caplog.records]
    assert len(texts) > 10
    for text in texts:
        assert SECRET not in text


def _fast() -> Any:
    from atdak_agents.providers._retry import RetryPolicy

    return RetryPolicy(initial_backoff=0.01, max_backoff=0.02)


# ------------------------------------------------------------------- transports and lifecycles


async def test_a_user_http_client_is_used_and_not_closed(atdak_server: LocalAtdakServer) -> None:
    async with httpx.AsyncClient(headers={"X-Mine": "1"}) as http_client:
        client = atdak_server.async_client(http_client=http_client)
        answer = await client.chat.completions.create(model="atdak-gpt-4", messages=USER)
        stream = await client.chat.completions.create(
            model="atdak-gpt-4", messages=USER, stream=True
        )
        assert (await stream.collect()).text == "你好"
        await client.close()
        assert not http_client.is_closed
    assert answer.text == "你好" and atdak_server.requests[0].headers["X-Mine"] == "1"


def test_a_user_transport_is_used() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"id": "x", "choices": [{"message": {"role": "assistant", "content": "mocked"}}]}
        return httpx.Response(200, json=body)

    with AtdakClient(
        api_key="k", base_url="http://mock/v1", transport=httpx.MockTransport(handler)
    ) as client:
        answer = client.chat.completions.create(model="m", messages=USER)
    assert answer.text == "mocked"
    assert answer.usage is not None and answer.usage.estimated and answer.usage.total_tokens > 0


def test_one_async_client_cannot_hop_event_loops(atdak_server: LocalAtdakServer) -> None:
    client = atdak_server.async_client()

    async def once(close: bool) -> str:
        try:
            return (await client.chat.completions.create(model="m", messages=USER)).text
        finally:
            if close:
                await client.close()

    async def first() -> str:
        text = await once(close=False)
        with pytest.raises(UsageError, match="one client per event loop"):
            await asyncio.to_thread(asyncio.run, once(close=False))
        await client.close()
        return text

    assert asyncio.run(first()) == "你好"


async def test_many_concurrent_calls_share_one_pool(atdak_server: LocalAtdakServer) -> None:
    async with atdak_server.async_client() as client:
        answers = await asyncio.gather(
            *(
                client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": str(i)}]
                )
                for i in range(200)
            )
        )
    assert [a.text for a in answers] == [str(i) for i in range(200)]


async def test_a_compressed_answer_is_decoded() -> None:
    """A server may gzip its answer (the client accepts it): the body is read whole, then
    decoded, before it is parsed."""
    import gzip
    import json

    from aiohttp import web

    answer = {
        "id": "c1",
        "model": "atdak-gpt-4",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "压缩的回答"}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
    }

    async def complete(request: web.Request) -> web.Response:
        body = gzip.compress(json.dumps(answer).encode())
        headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
        return web.Response(body=body, headers=headers)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", complete)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with AsyncAtdakClient(api_key="sk-test", base_url=f"http://127.0.0.1:{port}/v1") as c:
            response = await c.chat.completions.create(model="atdak-gpt-4", messages=USER)
    finally:
        await runner.cleanup()
    assert response.choices[0].message.content == "压缩的回答"
    assert response.usage is not None and response.usage.total_tokens == 8
