"""The client's own HTTP/1.1 pool (``providers._h1``) over real loopback sockets: a raw server
answers each request as a script says (bytes to send, or ``CLOSE`` to hang up unanswered) and
counts the connections it was given. (The client's other tests run over the pool too, against
the local Atdak server.)"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
import pytest
import trustme

from atdak_agents.exceptions import APIConnectionError, UsageError
from atdak_agents.providers._h1 import H1Pool
from atdak_agents.providers._h1_connection import Connection, Origin
from atdak_agents.providers.client import AsyncAtdakClient

BODY = b'{"ok": true}'
HEADERS = [("Content-Type", "application/json"), ("Authorization", "Bearer sk-test")]
LIMITS: dict[str, float | None] = {"connect": 2.0, "read": 2.0, "pool": None}
CLOSE = b""  # hang up without answering
Answer = bytes | Callable[[asyncio.StreamWriter], Awaitable[None]]


def ok(body: bytes = BODY, *extra: str) -> bytes:
    lines = [f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n", *(f"{h}\r\n" for h in extra)]
    return "".join(lines).encode() + b"\r\n" + body


@dataclass
class RawServer:
    """What the server was sent, and how many connections it was given (and at most at once)."""

    url: str
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    open_now: int = 0
    most_open: int = 0


@asynccontextmanager
async def raw_server(
    answers: Sequence[Answer], *, tls: ssl.SSLContext | None = None
) -> AsyncIterator[RawServer]:
    """Answer the n-th request with ``answers[n]`` (the last one for any further request)."""
    scheme = "https" if tls else "http"
    state = RawServer(url="")
    handlers: set[asyncio.Task[None]] = set()
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        writers.append(writer)
        state.connections += 1
        state.open_now += 1
        state.most_open = max(state.most_open, state.open_now)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                state.requests.append(head + await reader.readexactly(length))
                answer = answers[min(len(state.requests), len(answers)) - 1]
                if answer == CLOSE:
                    return
                if isinstance(answer, bytes):
                    writer.write(answer)
                else:
                    await answer(writer)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client hung up
        finally:
            state.open_now -= 1
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    state.url = f"{scheme}://localhost:{port}/v1/chat/completions"
    try:
        yield state
    finally:
        server.close()
        for writer in writers:
            writer.close()  # a handler still reading or writing ends
        if handlers:
            await asyncio.wait(handlers, timeout=5)
        await server.wait_closed()


@asynccontextmanager
async def pool(**options: object) -> AsyncIterator[H1Pool]:
    made = H1Pool(**options)  # type: ignore[arg-type]
    try:
        yield made
    finally:
        await made.aclose()


async def fetch(p: H1Pool, url: str, limits: dict[str, float | None] = LIMITS) -> bytes:
    answer = await p.fetch(url, HEADERS, b'{"q": 1}', limits)
    assert answer.status_code == 200, answer.content
    return answer.content


def delayed(seconds: float, data: bytes) -> Callable[[asyncio.StreamWriter], Awaitable[None]]:
    async def answer(writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(seconds)
        writer.write(data)

    return answer


# --------------------------------------------------------------------------- keep-alive


async def test_requests_one_after_another_share_one_connection() -> None:
    async with raw_server([ok()]) as server, pool() as p:
        assert [await fetch(p, server.url) for _ in range(5)] == [BODY] * 5
    assert server.connections == 1
    first = server.requests[0].decode()
    assert first.startswith("POST /v1/chat/completions HTTP/1.1\r\n")
    assert f"Host: localhost:{server.url.split(':')[2].split('/')[0]}\r\n" in first
    assert "Authorization: Bearer sk-test\r\n" in first and first.endswith('{"q": 1}')


async def test_an_answer_that_says_close_is_not_kept() -> None:
    async with raw_server([ok(BODY, "Connection: close")]) as server, pool() as p:
        assert [await fetch(p, server.url) for _ in range(3)] == [BODY] * 3
    assert server.connections == 3


async def test_a_connection_idle_past_keepalive_is_not_reused() -> None:
    async with raw_server([ok()]) as server, pool(keepalive=0.05) as p:
        await fetch(p, server.url)
        await asyncio.sleep(0.1)
        await fetch(p, server.url)
    assert server.connections == 2


async def test_connections_left_idle_are_closed_without_further_requests() -> None:
    async with raw_server([delayed(0.02, ok())]) as server, pool(keepalive=0.05) as p:
        await asyncio.gather(*(fetch(p, server.url) for _ in range(3)))
        assert server.open_now == 3
        await asyncio.sleep(0.3)  # no request: the pool looks on its own
        assert server.open_now == 0 and not p._open


async def test_a_kept_connection_the_server_closed_is_replaced() -> None:
    """The second request goes over the kept connection, which the server then closes
    without answering (as a server does with an idle connection): it is sent again over a
    new one, unseen by the caller."""
    async with raw_server([ok(), CLOSE, ok(b'{"again": 1}')]) as server, pool() as p:
        assert await fetch(p, server.url) == BODY
        assert await fetch(p, server.url) == b'{"again": 1}'
    assert server.connections == 2 and len(server.requests) == 3


async def test_a_new_connection_closed_unanswered_is_an_error() -> None:
    async with raw_server([CLOSE]) as server, pool() as p:
        with pytest.raises(httpx.RemoteProtocolError, match="closed the connection without"):
            await fetch(p, server.url)
    assert server.connections == 1


# --------------------------------------------------------------------------- answers


async def test_a_chunked_answer_is_read_whole() -> None:
    async with raw_server([chunked([b"hello", b" world"])]) as server, pool() as p:
        assert await fetch(p, server.url) == b"hello world"
        assert await fetch(p, server.url) == b"hello world"
    assert server.connections == 1


async def test_an_answer_ended_by_closing_the_connection_is_read_whole() -> None:
    async def until_close(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of ")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"it")
        writer.close()

    async with raw_server([until_close]) as server, pool() as p:
        assert await fetch(p, server.url) == b"all of it"


async def test_an_interim_answer_is_skipped() -> None:
    async with raw_server([b"HTTP/1.1 100 Continue\r\n\r\n" + ok()]) as server, pool() as p:
        assert await fetch(p, server.url) == BODY


async def test_an_answer_that_is_not_http_is_a_protocol_error() -> None:
    async with raw_server([b"SMTP ready\r\n\r\n"]) as server, pool() as p:
        with pytest.raises(httpx.RemoteProtocolError, match="not valid HTTP"):
            await fetch(p, server.url)


async def test_bytes_after_the_answer_retire_the_connection() -> None:
    async with raw_server([ok() + b"HTTP/1.1 200 OK\r\n"]) as server, pool() as p:
        assert await fetch(p, server.url) == BODY
        await asyncio.sleep(0.05)
        assert await fetch(p, server.url) == BODY
    assert server.connections == 2


async def test_an_answer_cut_short_is_an_error() -> None:
    async def half(writer: asyncio.StreamWriter) -> None:
        writer.write(ok()[:-4])
        await writer.drain()
        writer.close()

    async with raw_server([half]) as server, pool() as p:
        with pytest.raises(httpx.RemoteProtocolError, match="mid-answer"):
            await fetch(p, server.url)


# --------------------------------------------------------------------------- limits


async def test_no_more_connections_than_the_limit() -> None:
    async with raw_server([delayed(0.05, ok())]) as server, pool(max_connections=2) as p:
        answers = await asyncio.gather(*(fetch(p, server.url) for _ in range(6)))
    assert answers == [BODY] * 6
    assert server.most_open == 2 and server.connections == 2


async def test_a_wait_for_a_connection_has_its_own_limit() -> None:
    limits = {**LIMITS, "pool": 0.1}
    async with raw_server([delayed(0.5, ok())]) as server, pool(max_connections=1) as p:
        first = asyncio.ensure_future(fetch(p, server.url))
        await asyncio.sleep(0.05)
        with pytest.raises(httpx.PoolTimeout):
            await fetch(p, server.url, limits)
        assert await first == BODY


async def test_a_request_that_gave_up_waiting_is_skipped_at_hand_over() -> None:
    async with raw_server([delayed(0.1, ok())]) as server, pool(max_connections=1) as p:
        first = asyncio.ensure_future(fetch(p, server.url))
        await asyncio.sleep(0.02)
        gave_up = asyncio.ensure_future(fetch(p, server.url))
        third = asyncio.ensure_future(fetch(p, server.url))
        await asyncio.sleep(0.02)
        gave_up.cancel()
        assert await first == BODY and await third == BODY
        assert gave_up.cancelled()
    assert server.connections == 1 and len(server.requests) == 2


async def test_a_silent_server_is_a_read_timeout() -> None:
    limits = {**LIMITS, "read": 0.1}
    async with raw_server([delayed(1.0, ok())]) as server, pool() as p:
        with pytest.raises(httpx.ReadTimeout):
            await fetch(p, server.url, limits)


async def test_a_cancelled_request_does_not_leave_its_connection_to_another() -> None:
    async with raw_server([delayed(0.3, ok()), ok(b'{"second": 1}')]) as server, pool() as p:
        first = asyncio.ensure_future(fetch(p, server.url))
        await asyncio.sleep(0.05)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert await fetch(p, server.url) == b'{"second": 1}'  # not the first one's answer
    assert server.connections == 2


async def test_no_server_is_a_connect_error_naming_where() -> None:
    async with raw_server([ok()]) as server:
        url = server.url
    async with pool() as p:
        with pytest.raises(httpx.ConnectError, match=r"cannot connect to localhost:\d+"):
            await fetch(p, url)


@pytest.mark.parametrize(
    ("name", "value"),
    [("Authorization", "Bearer sk\r\nX: 1"), ("Authorization", "Bearer clé→"), ("Bad Name", "1")],
)
async def test_a_header_that_cannot_be_sent_is_a_usage_error(name: str, value: str) -> None:
    async with raw_server([ok()]) as server, pool() as p:
        with pytest.raises(UsageError, match=f"'{name}' cannot be sent"):
            await p.fetch(server.url, [(name, value)], b"{}", LIMITS)
    assert server.connections == 0


async def test_the_client_says_what_failed_and_where() -> None:
    async with raw_server([CLOSE]) as server:
        base_url = server.url.removesuffix("/chat/completions")
        async with AsyncAtdakClient(api_key="sk-test", base_url=base_url, max_retries=1) as client:
            with pytest.raises(APIConnectionError, match="without answering") as caught:
                await client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "hi"}]
                )
    assert base_url in str(caught.value)
    assert len(server.requests) == 2  # retried once, as the client was told


class Watched(H1Pool):
    """A pool that remembers the most connections it had open or opening at once."""

    most = 0

    async def _connect(self, origin: Origin, limit: float | None) -> Connection:
        connection = await super()._connect(origin, limit)
        self.most = max(self.most, len(self._open) + self._opening)
        return connection


async def test_many_requests_some_cancelled_leave_the_pool_consistent() -> None:
    """300 requests through 8 connections, answers late by 0 to 20 ms, every seventh saying
    ``Connection: close``, one in five cancelled at some point: every other one is answered,
    never more than 8 connections are open, and at the end every open connection is idle."""
    rng = random.Random(7)
    answers: list[Answer] = [
        delayed(rng.random() / 50, ok(b"%d" % i, *(["Connection: close"] if i % 7 == 0 else [])))
        for i in range(400)
    ]
    p = Watched(max_connections=8)
    async with raw_server(answers) as server:
        tasks = [asyncio.ensure_future(fetch(p, server.url)) for _ in range(300)]
        for task in rng.sample(tasks, 60):
            asyncio.get_running_loop().call_later(rng.random() / 10, task.cancel)
        done = await asyncio.gather(*tasks, return_exceptions=True)
        kept = sum(len(idle) for idle in p._idle.values())
        assert len(p._open) == kept <= 8 and not p._waiting and p._opening == 0
        await p.aclose()
    assert all(isinstance(d, (bytes, asyncio.CancelledError)) for d in done)
    assert sum(isinstance(d, bytes) for d in done) >= 240
    assert p.most <= 8 and server.connections > 8  # closed ones were replaced


# --------------------------------------------------------------------------- https


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


def server_tls(authority: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(context)
    return context


async def test_https_with_a_trusted_authority(authority: trustme.CA) -> None:
    trusting = ssl.create_default_context()
    authority.configure_trust(trusting)
    async with raw_server([ok()], tls=server_tls(authority)) as server:
        assert server.url.startswith("https://")
        async with pool(ssl_context=trusting) as p:
            assert [await fetch(p, server.url) for _ in range(2)] == [BODY] * 2
        assert server.connections == 1


async def test_https_refuses_an_unknown_authority(authority: trustme.CA) -> None:
    async with raw_server([ok()], tls=server_tls(authority)) as server, pool() as p:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await fetch(p, server.url)


# --------------------------------------------------------------------------- streams


def chunked(pieces: Sequence[bytes]) -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body + b"0\r\n\r\n"


async def read_stream(p: H1Pool, url: str, *, pause: float = 0.0, stop_after: int = -1) -> bytes:
    response = await p.send(url, HEADERS, b"{}", {**LIMITS, "read": 0.2})
    assert response.status_code == 200
    parts: list[bytes] = []
    try:
        async for part in response.stream:  # type: ignore[union-attr]
            parts.append(part)
            if len(parts) == 1:
                await asyncio.sleep(pause)
            if len(parts) == stop_after:
                break
    finally:
        await response.aclose()
    return b"".join(parts)


async def test_a_stream_read_to_its_end_leaves_its_connection_kept() -> None:
    async with raw_server([chunked([b"a", b"b", b"c"])]) as server, pool() as p:
        assert await read_stream(p, server.url) == b"abc"
        assert await read_stream(p, server.url) == b"abc"
    assert server.connections == 1


async def test_a_stream_closed_early_closes_its_connection() -> None:
    async def slow(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n")
        await asyncio.sleep(0.1)
        writer.write(b"1\r\nb\r\n0\r\n\r\n")

    async with raw_server([slow]) as server, pool() as p:
        assert await read_stream(p, server.url, stop_after=1) == b"a"
        assert await read_stream(p, server.url) == b"ab"
    assert server.connections == 2


async def test_a_slow_reader_gets_all_of_a_long_stream_and_no_read_timeout() -> None:
    """Reading pauses while the reader is behind (the unread part stays bounded); a pause
    longer than the read limit is the reader's, not the server's silence."""
    pieces = [b"%05d" % i for i in range(2000)]
    whole = chunked(pieces)
    head = whole.index(b"\r\n\r\n") + 4

    async def steadily(writer: asyncio.StreamWriter) -> None:  # 0.8 s in 40 writes
        step = -(-(len(whole) - head) // 40)
        writer.write(whole[:head])
        for start in range(head, len(whole), step):
            writer.write(whole[start : start + step])
            await writer.drain()
            await asyncio.sleep(0.02)

    async with raw_server([steadily]) as server, pool() as p:
        assert await read_stream(p, server.url, pause=0.5) == b"".join(pieces)


# --------------------------------------------------------------------------- closing


async def test_closing_fails_the_requests_in_flight_and_waiting() -> None:
    async with raw_server([delayed(1.0, ok())]) as server:
        p = H1Pool(max_connections=1)
        sent = asyncio.ensure_future(fetch(p, server.url))
        waiting = asyncio.ensure_future(fetch(p, server.url))
        await asyncio.sleep(0.1)
        await p.aclose()
        with pytest.raises(httpx.RemoteProtocolError):
            await sent
        with pytest.raises(httpx.ConnectError, match="pool was closed"):
            await waiting
    assert server.connections == 1


async def test_each_set_of_headers_is_sent_as_given() -> None:
    other = [*HEADERS, ("Accept", "text/event-stream")]
    async with raw_server([ok()]) as server, pool() as p:
        for headers in (HEADERS, other, HEADERS):
            await p.fetch(server.url, headers, b"{}", LIMITS)
    sent = [request.decode() for request in server.requests]
    assert ["Accept: text/event-stream" in request for request in sent] == [False, True, False]


async def test_a_stream_dropped_unclosed_gives_its_connection_back() -> None:
    async def unfinished(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n")
        await asyncio.sleep(0.5)
        writer.write(b"0\r\n\r\n")

    async with raw_server([unfinished, ok()]) as server, pool(max_connections=1) as p:
        response = await p.send(server.url, HEADERS, b"{}", LIMITS)
        del response  # never read to its end, never closed
        gc.collect()
        assert await fetch(p, server.url, {**LIMITS, "pool": 0.2}) == BODY
    assert server.connections == 2  # the unfinished one was closed, not handed on


async def test_a_url_that_is_not_http_says_which_forms_are() -> None:
    async with pool() as p:
        with pytest.raises(httpx.UnsupportedProtocol, match="give base_url as http://"):
            await p.fetch("ftp://example.org/v1/chat/completions", HEADERS, b"{}", LIMITS)
