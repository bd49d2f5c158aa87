"""Streams over real HTTP: chunks, accumulation, usage, early exits, every way a stream breaks."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from atdak_agents.exceptions import (
    APIResponseValidationError,
    IncompleteStreamError,
    RateLimitError,
    StreamError,
)
from atdak_agents.providers._retry import RetryPolicy, Timeouts
from atdak_agents.providers.client import AsyncAtdakClient, AtdakClient
from atdak_agents.providers.streaming import AsyncCompletionStream, CompletionStream
from atdak_agents.testing import LocalAtdakServer, Reply, rate_limited

USER = [{"role": "user", "content": "你好"}]
FAST = RetryPolicy(initial_backoff=0.01, max_backoff=0.02)
POEM = "春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。"


def open_stream(client: AtdakClient, **kwargs: Any) -> CompletionStream:
    return client.chat.completions.create(model="atdak-gpt-4", messages=USER, stream=True, **kwargs)


async def open_async(client: AsyncAtdakClient, **kwargs: Any) -> AsyncCompletionStream:
    return await client.chat.completions.create(
        model="atdak-gpt-4", messages=USER, stream=True, **kwargs
    )


def test_chunks_and_the_accumulated_answer(atdak_server: LocalAtdakServer) -> None:
    atdak_server.responder = [Reply(text=POEM, chunk_size=1)]
    with atdak_server.client() as client:
        stream = open_stream(client)
        pieces = [chunk.choices[0].delta.content for chunk in stream]
    assert pieces == list(POEM)
    assert stream.text == POEM and stream.received_chunks == len(POEM) and stream.closed
    assert stream.request_id == "req_0"


async def test_collect_estimates_usage_when_the_stream_has_none(
    atdak_server: LocalAtdakServer,
) -> None:
    atdak_server.responder = [Reply(text=POEM)]
    async with atdak_server.async_client() as client:
        stream = await open_async(client)
        answer = await stream.collect()
    assert answer.text == POEM and answer.choices[0].finish_reason == "stop"
    usage = answer.usage
    assert usage is not None and usage.estimated
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


async def test_collect_uses_the_servers_usage_when_sent(atdak_server: LocalAtdakServer) -> None:
    figures = {"prompt_tokens": 11, "completion_tokens": 22, "total_tokens": 33}
    atdak_server.responder = [Reply(text="a", usage=figures), Reply(text="b", usage=figures)]
    async with atdak_server.async_client() as client:
        asked = await open_async(client, extra_body={"stream_options": {"include_usage": True}})
        async with asked:
            chunks = [chunk async for chunk in asked]  # the usage chunk has no choices: not yielded
        assert all(chunk.choices for chunk in chunks)
        assert asked.usage is not None and asked.usage.total_tokens == 33
        answer = await (await open_async(client)).collect()  # no usage asked for: estimated
    assert answer.usage is not None and answer.usage.estimated


def test_a_chunk_without_choices_is_skipped(atdak_server: LocalAtdakServer) -> None:
    atdak_server.responder = [Reply(text="ok!", fault="empty_choices")]
    with atdak_server.client() as client:
        stream = open_stream(client)
        assert "".join(chunk.choices[0].delta.content or "" for chunk in stream) == "ok!"
    assert stream.usage is not None and not stream.usage.estimated


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
async def test_utf8_split_across_network_writes(atdak_server: LocalAtdakServer, sync: bool) -> None:
    text = "你好，世界！🌸 Grüße — 春天"
    atdak_server.responder = [Reply(text=text, fault="split_utf8", chunk_size=3)]
    if sync:
        with atdak_server.client() as client:
            assert open_stream(client).collect().text == text
        return
    async with atdak_server.async_client() as client:
        assert (await (await open_async(client)).collect()).text == text


async def test_native_tool_calls_accumulate(atdak_server: LocalAtdakServer) -> None:
    atdak_server.native_tools = True
    call = {"name": "lookup_order", "arguments": {"order_id": "10423", "note": "三天了还没发货"}}
    atdak_server.responder = [Reply(text="让我查一下。", tool_calls=[call])]
    tools = [
        {"type": "function", "function": {"name": "lookup_order", "parameters": {"type": "object"}}}
    ]
    async with atdak_server.async_client() as client:
        answer = await (await open_async(client, tools=tools)).collect()
    message = answer.choices[0].message
    assert message.content == "让我查一下。" and answer.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls is not None and message.tool_calls[0].function.name == "lookup_order"
    assert message.tool_calls[0].parsed_arguments() == call["arguments"]


# --------------------------------------------------------------------------- broken streams


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
async def test_a_connection_lost_mid_stream_says_how_much_arrived(
    atdak_server: LocalAtdakServer, sync: bool
) -> None:
    atdak_server.responder = [
        Reply(text="abcdefghijkl", fault="drop_mid_stream", fault_after=2),
        "never used",
    ]
    received: list[str] = []

    async def consume() -> None:
        if sync:
            with atdak_server.client(retry_policy=FAST) as client:
                for chunk in open_stream(client):
                    received.append(chunk.choices[0].delta.content or "")
            return
        async with atdak_server.async_client(retry_policy=FAST) as client:
            async for chunk in await open_async(client):
                received.append(chunk.choices[0].delta.content or "")

    with pytest.raises(StreamError) as caught:
        await consume()
    error = caught.value
    assert received == ["abcd", "efgh"]
    assert (error.received_chunks, error.received_text) == (2, "abcdefgh")
    assert "(after 2 chunks, 8 characters of text)" in str(error) and "broke" in str(error)
    assert len(atdak_server.requests) == 1  # never retried after the first chunk


async def test_a_stream_without_done_is_an_error(atdak_server: LocalAtdakServer) -> None:
    atdak_server.responder = [Reply(text="truncated answer", fault="no_done")]
    async with atdak_server.async_client() as client:
        stream = await open_async(client)
        with pytest.raises(IncompleteStreamError, match="without `data: \\[DONE\\]`") as caught:
            await stream.collect()
    assert caught.value.received_text == "truncated answer"


def test_malformed_sse_is_a_stream_error(atdak_server: LocalAtdakServer) -> None:
    atdak_server.responder = [
        Reply(text="abcdefgh", fault="malformed_sse", fault_after=1),
        "unused",
    ]
    with atdak_server.client(retry_policy=FAST) as client, pytest.raises(StreamError) as caught:
        open_stream(client).collect()
    assert (
        "not a chat-completion chunk" in str(caught.value) and caught.value.received_text == "abcd"
    )
    assert len(atdak_server.requests) == 1


async def test_an_error_inside_the_stream_is_the_matching_error(
    atdak_server: LocalAtdakServer,
) -> None:
    in_band = Reply(
        text="abcdefgh",
        fault="stream_error",
        fault_after=1,
        error="slow down",
        error_code="rate_limit_exceeded",
    )
    atdak_server.responder = [in_band, "unused"]
    async with atdak_server.async_client(retry_policy=FAST) as client:
        stream = await open_async(client)
        with pytest.raises(RateLimitError, match="slow down"):
            await stream.collect()
    assert len(atdak_server.requests) == 1


# ----------------------------------------------------------------- retried before the first chunk


@pytest.mark.parametrize(
    "first",
    [
        rate_limited(retry_after=0.05),
        Reply(fault="disconnect"),
        Reply(text="x", fault="drop_mid_stream", fault_after=0),
        Reply(fault="stream_error", fault_after=0, status=503, error="overloaded"),
        Reply(fault="hang"),
    ],
    ids=["429", "disconnect", "dropped-before-first-chunk", "in-band-503-first", "hang"],
)
async def test_a_stream_is_retried_until_its_first_chunk(
    atdak_server: LocalAtdakServer, first: Reply
) -> None:
    atdak_server.responder = [first, Reply(text="second try")]
    async with atdak_server.async_client(retry_policy=FAST, timeout=Timeouts(read=0.3)) as client:
        answer = await (await open_async(client)).collect()
    assert answer.text == "second try"
    assert len(atdak_server.requests) == 2


def test_a_sync_stream_is_retried_until_its_first_chunk(atdak_server: LocalAtdakServer) -> None:
    atdak_server.responder = [Reply(fault="disconnect"), rate_limited(), Reply(text="third try")]
    with atdak_server.client(retry_policy=FAST) as client:
        assert open_stream(client).collect().text == "third try"


# --------------------------------------------------------------------------- leaving early


def test_breaking_out_early_releases_the_connection_sync(atdak_server: LocalAtdakServer) -> None:
    slow = Reply(text="x" * 200, chunk_size=1, chunk_delay=0.01)
    atdak_server.responder = [slow, slow, "third"]
    with atdak_server.client(
        max_connections=1, timeout=Timeouts(connect=1, read=2, total=3)
    ) as client:
        for chunk in open_stream(client):
            assert chunk.choices[0].delta.content == "x"
            break
        with open_stream(client) as stream:
            next(iter(stream))
        assert (
            client.chat.completions.create(model="m", messages=USER).text == "third"
        )  # a free connection


async def test_breaking_out_early_releases_the_connection_async(
    atdak_server: LocalAtdakServer,
) -> None:
    slow = Reply(text="x" * 200, chunk_size=1, chunk_delay=0.01)
    atdak_server.responder = [slow, slow, "third"]
    async with atdak_server.async_client(
        max_connections=1, timeout=Timeouts(connect=1, read=2, total=3)
    ) as client:
        async for _chunk in await open_async(client):
            break
        async with await open_async(client) as stream:
            async for _chunk in stream:
                break
        assert stream.closed
        answer = await asyncio.wait_for(client.chat.completions.create(model="m", messages=USER), 2)
    assert answer.text == "third"


# ----------------------------------------------------------------- what no server here produces


def test_a_json_answer_to_a_stream_request() -> None:
    """An endpoint that ignores ``stream=True`` (the local server never does: a mock transport)."""

    def handler(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content)["stream"] is True
        if request.headers.get("x-case") == "error":
            return httpx.Response(
                200, json={"error": {"message": "quota", "code": "insufficient_quota"}}
            )
        return httpx.Response(200, json={"id": "x", "choices": []})

    transport = httpx.MockTransport(handler)
    with AtdakClient(
        api_key="k", base_url="http://mock/v1", transport=transport, max_retries=0
    ) as client:
        with pytest.raises(
            APIResponseValidationError, match="does this endpoint support stream=True"
        ):
            open_stream(client)
        with pytest.raises(Exception, match="quota"):
            open_stream(client, extra_headers={"x-case": "error"})
