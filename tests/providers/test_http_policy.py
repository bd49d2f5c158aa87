"""Pure parts of the HTTP layer: Retry-After, backoff, error bodies, redaction, in-stream errors."""

from __future__ import annotations

import email.utils

import pytest

from atdak_agents.exceptions import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ContextLengthExceededError,
    InternalServerError,
    InvalidParameterError,
    RateLimitError,
)
from atdak_agents.providers._errors import redact, status_error
from atdak_agents.providers._retry import RetryPolicy, Timeouts, parse_retry_after
from atdak_agents.providers.streaming import ChunkDecoder

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "0.25"}, 0.25),
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after": email.utils.formatdate(NOW + 30, usegmt=True)}, 30.0),
        ({"retry-after": email.utils.formatdate(NOW - 30, usegmt=True)}, 0.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers, now=NOW) == expected


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(initial_backoff=0.5, max_backoff=4.0)
    for attempt, base in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)]:
        waits = {policy.wait_before_retry(attempt, None) for _ in range(50)}
        assert all(base / 2 <= w <= base for w in waits)
        assert len(waits) > 1  # jittered


def test_retry_after_replaces_backoff_up_to_its_cap() -> None:
    policy = RetryPolicy(max_retry_after=10.0)
    assert policy.wait_before_retry(1, 3.0) == 3.0
    assert policy.wait_before_retry(1, 3600.0) == 10.0


def test_timeouts_from_a_number() -> None:
    assert Timeouts.of(30) == Timeouts(connect=5.0, read=30.0, total=30.0)
    assert Timeouts.of(2) == Timeouts(connect=2.0, read=2.0, total=2.0)
    assert Timeouts.of(None) == Timeouts()
    with pytest.raises(InvalidParameterError, match="timeout"):
        Timeouts.of(-1)


def _error(status: int, body: bytes, **headers: str) -> APIStatusError:
    return status_error(
        status, headers, body, url="http://x/v1/chat/completions", secret="sk-SECRET"
    )


def test_openai_style_body() -> None:
    body = b'{"error": {"message": "Bad value", "type": "invalid_request_error", "code": "bad"}}'
    error = _error(400, body, **{"x-request-id": "req_9"})
    assert type(error) is BadRequestError
    assert (error.message, error.code, error.type, error.request_id) == (
        "Bad value",
        "bad",
        "invalid_request_error",
        "req_9",
    )
    assert "req_9" in str(error) and "HTTP 400" in str(error)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"error": "plain string error"}', "plain string error"),
        (b'{"message": "top-level message"}', "top-level message"),
        (b"<html>Bad Gateway</html>", "<html>Bad Gateway</html>"),
        (b"", "the endpoint answered HTTP 502 with an empty body"),
    ],
)
def test_any_other_body(body: bytes, message: str) -> None:
    error = _error(502, body)
    assert type(error) is InternalServerError
    assert error.message == message


def test_context_length_is_its_own_case() -> None:
    body = b'{"error": {"message": "too long", "code": "context_length_exceeded"}}'
    assert type(_error(400, body)) is ContextLengthExceededError
    body = b'{"error": {"message": "This model\'s maximum context length is 8192 tokens"}}'
    assert type(_error(400, body)) is ContextLengthExceededError


def test_rate_limit_carries_retry_after_and_a_hint() -> None:
    error = _error(429, b'{"error": {"message": "slow down"}}', **{"retry-after": "7"})
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 7.0
    assert "max_retries" in str(error)


def test_a_401_says_how_to_set_the_key() -> None:
    error = _error(401, b'{"error": {"message": "Incorrect API key provided: sk-SECRET"}}')
    assert isinstance(error, AuthenticationError)
    assert "ATDAK_API_KEY" in str(error)
    assert "sk-SECRET" not in str(error) and "sk-SECRET" not in str(error.body)


def test_redact() -> None:
    assert redact("key sk-1 and sk-1", "sk-1") == "key *** and ***"
    assert redact("nothing", None) == "nothing"


@pytest.mark.parametrize(
    ("event", "error_class", "status"),
    [
        (
            b'data: {"error": {"message": "slow", "code": "rate_limit_exceeded"}}\n\n',
            RateLimitError,
            429,
        ),
        (
            b'data: {"error": {"message": "x", "code": "context_length_exceeded"}}\n\n',
            ContextLengthExceededError,
            400,
        ),
        (b'data: {"error": {"message": "boom", "code": 503}}\n\n', InternalServerError, 503),
        (b'data: {"error": {"message": "?"}}\n\n', InternalServerError, 500),
        (
            b"event: error\n"
            b'data: {"error": {"message": "bad key", "type": "authentication_error"}}\n\n',
            AuthenticationError,
            401,
        ),
    ],
)
def test_an_error_inside_a_stream_is_raised_as_the_matching_error(
    event: bytes, error_class: type[APIStatusError], status: int
) -> None:
    decoder = ChunkDecoder()
    ok = b'data: {"id": "c", "choices": [{"delta": {"content": "hi"}}]}\n\n'
    assert decoder.feed(ok)[0].choices[0].delta.content == "hi"
    with pytest.raises(error_class) as caught:
        decoder.feed(event)
    assert caught.value.status_code == status


def test_a_chunk_needs_only_id_and_delta() -> None:
    decoder = ChunkDecoder()
    stream = (
        'data: {"id":"chatcmpl-abc","choices":[{"delta":{"content":"你"}}]}\n\ndata: [DONE]\n\n'
    )
    chunks = decoder.feed(stream.encode())
    assert [c.choices[0].delta.content for c in chunks] == ["你"]
    assert decoder.done
