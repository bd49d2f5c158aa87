"""Typed errors and retries, over real HTTP against the local server (sync and async)."""

from __future__ import annotations

import email.utils
import socket
import time
from typing import Any

import pytest

from atdak_agents.exceptions import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    ContextLengthExceededError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
)
from atdak_agents.providers._retry import RetryPolicy, Timeouts
from atdak_agents.providers.client import AsyncAtdakClient, AtdakClient
from atdak_agents.testing import LocalAtdakServer, Reply, rate_limited, server_error

USER = [{"role": "user", "content": "你好"}]
FAST = RetryPolicy(initial_backoff=0.01, max_backoff=0.02)


def ask(client: AtdakClient, **kwargs: Any) -> str:
    return client.chat.completions.create(model="atdak-gpt-4", messages=USER, **kwargs).text


async def ask_async(client: AsyncAtdakClient, **kwargs: Any) -> str:
    answer = await client.chat.completions.create(model="atdak-gpt-4", messages=USER, **kwargs)
    return answer.text


# --------------------------------------------------------------------------- status -> error class

STATUSES = [
    (400, BadRequestError, False),
    (401, AuthenticationError, False),
    (403, PermissionDeniedError, False),
    (404, NotFoundError, False),
    (409, ConflictError, True),
    (422, UnprocessableEntityError, False),
    (429, RateLimitError, True),
    (500, InternalServerError, True),
    (502, InternalServerError, True),
    (503, InternalServerError, True),
    (408, APIStatusError, True),
]


@pytest.mark.parametrize(("status", "error_class", "retried"), STATUSES)
def test_each_status_is_its_error_and_retried_only_when_transient(
    atdak_server: LocalAtdakServer, status: int, error_class: type[APIStatusError], retried: bool
) -> None:
    failure = Reply(
        status=status, error=f"failure {status}", error_code=f"code_{status}", error_type="t"
    )
    atdak_server.responder = [failure, "recovered"] if retried else [failure]
    with atdak_server.client(retry_policy=FAST) as client:
        if retried:
            assert ask(client) == "recovered"
            assert len(atdak_server.requests) == 2
            return
        with pytest.raises(error_class) as caught:
            ask(client)
    error = caught.value
    assert type(error) is error_class
    assert (error.status_code, error.message, error.code, error.type) == (
        status,
        f"failure {status}",
        f"code_{status}",
        "t",
    )
    assert error.request_id == "req_0" and "[request id req_0]" in str(error)
    assert len(atdak_server.requests) == 1  # not retried


@pytest.mark.parametrize("status", [409, 429, 500, 503])
async def test_retries_run_out(atdak_server: LocalAtdakServer, status: int) -> None:
    atdak_server.responder = [Reply(status=status, error="nope")] * 3
    async with atdak_server.async_client(retry_policy=FAST) as client:
        with pytest.raises(APIStatusError) as caught:
            await ask_async(client)
    assert caught.value.status_code == status
    assert len(atdak_server.requests) == 3  # max_retries defaults to 2


def test_any_error_body_or_none(atdak_server: LocalAtdakServer) -> None:
    atdak_server.responder = [
        Reply(status=404, body="<html>no such route</html>"),
        Reply(status=403, body=""),
    ]
    with atdak_server.client() as client:
        with pytest.raises(NotFoundError) as caught:
            ask(client)
        assert caught.value.message == "<html>no such route</html>"
        assert "check the model name and the base URL" in str(caught.value)
        with pytest.raises(PermissionDeniedError, match="HTTP 403 with an empty body"):
            ask(client)


def test_the_context_window_is_enforced_by_the_server(atdak_server: LocalAtdakServer) -> None:
    long_text = "春" * 31_000  # about one token per Han character
    with atdak_server.client() as client, pytest.raises(ContextLengthExceededError) as caught:
        client.chat.completions.create(
            model="atdak-llama-70b",
            messages=[{"role": "user", "content": long_text}],
            max_tokens=4000,
        )
    error = caught.value
    assert error.status_code == 400 and error.code == "context_length_exceeded"
    assert "maximum context length is 32000 tokens" in error.message
    assert "shorten the messages or lower max_tokens" in str(error)
    assert len(atdak_server.requests) == 1


def test_bad_json_and_empty_choices_are_response_errors(atdak_server: LocalAtdakServer) -> None:
    atdak_server.responder = [
        Reply(text="x", fault="malformed_sse"),
        Reply(text="x", fault="empty_choices"),
    ]
    with atdak_server.client() as client:
        with pytest.raises(APIResponseValidationError, match="not a chat completion") as caught:
            ask(client)
        assert caught.value.request_id == "req_0"
        with pytest.raises(APIResponseValidationError, match="no choices"):
            ask(client)
    assert len(atdak_server.requests) == 2


# ------------------------------------------------------------------- Retry-After and backoff


def test_429_without_retry_after_backs_off(atdak_server: LocalAtdakServer) -> None:
    atdak_server.responder = [rate_limited(), rate_limited(), "ok"]
    policy = RetryPolicy(initial_backoff=0.2, max_backoff=1.0)
    with atdak_server.client(retry_policy=policy) as client:
        start = time.monotonic()
        assert ask(client) == "ok"
        elapsed = time.monotonic() - start
    assert 0.1 + 0.2 <= elapsed < 1.5  # jittered waits of 0.1-0.2 s then 0.2-0.4 s


@pytest.mark.parametrize("retry_after", [0.4, "0.4"])
async def test_429_retry_after_seconds_is_honoured(
    atdak_server: LocalAtdakServer, retry_after: Any
) -> None:
    atdak_server.responder = [rate_limited(retry_after=retry_after), "ok"]
    async with atdak_server.async_client(retry_policy=FAST) as client:
        start = time.monotonic()
        assert await ask_async(client) == "ok"
    assert 0.38 <= time.monotonic() - start < 1.5


def test_429_retry_after_http_date_is_honoured_and_capped(atdak_server: LocalAtdakServer) -> None:
    far = email.utils.formatdate(time.time() + 3600, usegmt=True)
    soon = email.utils.formatdate(time.time() + 2, usegmt=True)
    atdak_server.responder = [rate_limited(retry_after=far), rate_limited(retry_after=soon), "ok"]
    policy = RetryPolicy(initial_backoff=0.01, max_retry_after=0.3)
    with atdak_server.client(retry_policy=policy) as client:
        start = time.monotonic()
        assert ask(client) == "ok"
    assert 0.55 <= time.monotonic() - start < 1.5  # two waits, each capped at 0.3 s


def test_per_call_max_retries(atdak_server: LocalAtdakServer) -> None:
    atdak_server.responder = [server_error(), "ok"]
    with atdak_server.client(retry_policy=FAST) as client:
        with pytest.raises(InternalServerError, match="retried up to max_retries"):
            ask(client, max_retries=0)
        assert ask(client) == "ok"
    assert len(atdak_server.requests) == 2


def test_per_client_max_retries(atdak_server: LocalAtdakServer) -> None:
    atdak_server.responder = [server_error(502)] * 5
    with (
        atdak_server.client(retry_policy=FAST, max_retries=4) as client,
        pytest.raises(InternalServerError),
    ):
        ask(client)
    assert len(atdak_server.requests) == 5
    atdak_server.reset([server_error(502)] * 5)
    with (
        atdak_server.client(retry_policy=FAST, max_retries=4) as client,
        pytest.raises(InternalServerError),
    ):
        ask(client, max_retries=1)
    assert len(atdak_server.requests) == 2


# --------------------------------------------------------------------------- timeouts and deadlines


async def test_a_hang_past_the_timeout_is_retried(atdak_server: LocalAtdakServer) -> None:
    atdak_server.responder = [Reply(fault="hang"), "after the hang"]
    async with atdak_server.async_client(timeout=Timeouts(read=0.3), retry_policy=FAST) as client:
        start = time.monotonic()
        assert await ask_async(client) == "after the hang"
    assert 0.25 <= time.monotonic() - start < 2


def test_a_hang_past_the_timeout_sync(atdak_server: LocalAtdakServer) -> None:
    atdak_server.responder = [Reply(fault="hang")]
    with (
        atdak_server.client(timeout=0.3, max_retries=0) as client,
        pytest.raises(APITimeoutError) as caught,
    ):
        ask(client)
    assert "timeout=" in str(caught.value)


async def test_the_total_timeout_bounds_a_slow_trickle(atdak_server: LocalAtdakServer) -> None:
    atdak_server.responder = [Reply(text="abcdefghij", chunk_size=1, chunk_delay=0.1)]
    timeouts = Timeouts(read=5.0, total=0.35)
    async with atdak_server.async_client(timeout=timeouts, max_retries=0) as client:
        stream = await client.chat.completions.create(model="m", messages=USER, stream=True)
        with pytest.raises(Exception, match="did not finish within its total timeout") as caught:
            await stream.collect()
    assert 1 <= caught.value.received_chunks < 10  # type: ignore[attr-defined]


async def test_the_deadline_bounds_all_attempts(atdak_server: LocalAtdakServer) -> None:
    atdak_server.responder = [Reply(fault="hang")] * 5
    async with atdak_server.async_client(timeout=Timeouts(read=0.3), retry_policy=FAST) as client:
        start = time.monotonic()
        with pytest.raises(APITimeoutError, match="deadline of 0.5s"):
            await ask_async(client, deadline=0.5, max_retries=10)
    assert 0.45 <= time.monotonic() - start < 1.0
    assert len(atdak_server.requests) == 2


def test_the_deadline_sync(atdak_server: LocalAtdakServer) -> None:
    atdak_server.responder = [Reply(fault="hang")] * 5
    with atdak_server.client(timeout=Timeouts(read=0.3), retry_policy=FAST) as client:
        start = time.monotonic()
        with pytest.raises(APITimeoutError):
            ask(client, deadline=0.5, max_retries=10)
    assert 0.45 <= time.monotonic() - start < 1.0


async def test_no_wait_that_the_deadline_cannot_afford(atdak_server: LocalAtdakServer) -> None:
    atdak_server.responder = [rate_limited(retry_after=5), "too late"]
    async with atdak_server.async_client() as client:
        start = time.monotonic()
        with pytest.raises(RateLimitError) as caught:
            await ask_async(client, deadline=2)
    assert time.monotonic() - start < 0.5 and caught.value.retry_after == 5.0
    assert len(atdak_server.requests) == 1


# --------------------------------------------------------------------------- connections


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_connection_refused_is_retried_then_raised() -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"
    async with AsyncAtdakClient(api_key="k", base_url=url, retry_policy=FAST) as client:
        with pytest.raises(APIConnectionError) as caught:
            await ask_async(client)
    message = str(caught.value)
    assert url in message and "check base_url" in message and "Connect" in message
    assert not isinstance(caught.value, APITimeoutError)


def test_connection_refused_sync() -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"
    client = AtdakClient(api_key="k", base_url=url, retry_policy=FAST)
    with client, pytest.raises(APIConnectionError, match="connection failed while connecting to"):
        ask(client)


@pytest.mark.parametrize("fault", ["disconnect", "drop_mid_stream"])
async def test_a_dropped_connection_is_retried(atdak_server: LocalAtdakServer, fault: str) -> None:
    atdak_server.responder = [Reply(text="x" * 100, fault=fault), "second try"]  # type: ignore[arg-type]
    async with atdak_server.async_client(retry_policy=FAST) as client:
        assert await ask_async(client) == "second try"
    assert len(atdak_server.requests) == 2


@pytest.mark.parametrize("fault", ["disconnect", "drop_mid_stream"])
def test_a_dropped_connection_is_retried_sync(atdak_server: LocalAtdakServer, fault: str) -> None:
    atdak_server.responder = [Reply(text="x" * 100, fault=fault), "second try"]  # type: ignore[arg-type]
    with atdak_server.client(retry_policy=FAST) as client:
        assert ask(client) == "second try"
    assert len(atdak_server.requests) == 2
