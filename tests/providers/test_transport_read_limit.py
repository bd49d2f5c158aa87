"""A whole answer's read limit (``providers._h1_connection``): a long one is kept on the coarse
clock, a short one by a timer of its own; both fire alike (the same error), and only
on silence (a body arriving in pieces is read to its end). Over real HTTP: the local server,
and a raw loopback server for bodies that arrive in pieces.

The coarse clock serves limits of 5 s and more; the tests lower that threshold (and the
clock's tick) so they take a fraction of a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import pytest

from atdak_agents import _timers
from atdak_agents.exceptions import APITimeoutError
from atdak_agents.providers import _h1_connection
from atdak_agents.providers._retry import Timeouts
from atdak_agents.providers.client import AsyncAtdakClient
from atdak_agents.testing import LocalAtdakServer, Reply

USER = [{"role": "user", "content": "hi"}]
ANSWER = (
    b'{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"pieces"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}'
)


@pytest.fixture
def coarse(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read limits of 0.2 s and more on the coarse clock, which looks every 20 ms."""
    monkeypatch.setattr(_h1_connection, "COARSE_FROM", 0.2)
    monkeypatch.setattr(_timers, "COARSE_FROM", 0.2)
    monkeypatch.setattr(_timers, "TICK", 0.02)


def exact(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every read limit on a timer of its own."""
    monkeypatch.setattr(_h1_connection, "COARSE_FROM", float("inf"))


async def ask(base_url: str, read: float, api_key: str = "sk-test") -> str:
    timeouts = Timeouts(connect=1.0, read=read, total=10.0)
    async with AsyncAtdakClient(
        api_key=api_key, base_url=base_url, timeout=timeouts, max_retries=0
    ) as client:
        answer = await client.chat.completions.create(model="m", messages=USER)
    return answer.text


async def timed_out(base_url: str, read: float, api_key: str) -> tuple[str, float]:
    started = time.monotonic()
    with pytest.raises(APITimeoutError) as caught:
        await ask(base_url, read, api_key)
    return str(caught.value), time.monotonic() - started


@pytest.mark.usefixtures("coarse")
async def test_a_silent_server_times_out_alike_on_either_clock(
    atdak_server: LocalAtdakServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    atdak_server.responder = [Reply(fault="hang"), Reply(fault="hang")]
    key = str(atdak_server.api_key)
    coarse_error, coarse_took = await timed_out(atdak_server.base_url, 0.3, key)
    exact(monkeypatch)
    exact_error, exact_took = await timed_out(atdak_server.base_url, 0.3, key)
    assert coarse_error == exact_error
    assert "Timeout on reading data from socket" in coarse_error
    assert 0.3 <= coarse_took < 1.5 and 0.3 <= exact_took < 1.5


@pytest.mark.usefixtures("coarse")
async def test_an_answer_within_the_limit_is_read(atdak_server: LocalAtdakServer) -> None:
    atdak_server.responder = [Reply(text="late but in time", delay=0.1), "again"]
    assert await ask(atdak_server.base_url, 0.3, str(atdak_server.api_key)) == "late but in time"
    assert await ask(atdak_server.base_url, 0.3, str(atdak_server.api_key)) == "again"


@asynccontextmanager
async def raw_server(pieces: Sequence[bytes], gap: float) -> AsyncIterator[str]:
    """A loopback HTTP server that sends its answer's headers, then ``pieces`` of the body
    ``gap`` seconds apart (an empty piece: it stops sending until the server is closed)."""
    closing = asyncio.Event()
    handlers: set[asyncio.Task[None]] = set()

    async def answer(writer: asyncio.StreamWriter) -> None:
        headers = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(ANSWER)}\r\n\r\n"
        )
        writer.write(headers.encode())
        for piece in pieces:
            await asyncio.sleep(gap)
            if not piece:
                await closing.wait()
                return
            writer.write(piece)
            await writer.drain()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await reader.readuntil(b"\r\n\r\n")
            await answer(writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client gave up
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        closing.set()
        server.close()
        await server.wait_closed()
        await asyncio.gather(*handlers, return_exceptions=True)


@pytest.mark.usefixtures("coarse")
async def test_a_body_arriving_in_pieces_is_read_to_its_end() -> None:
    third = len(ANSWER) // 3
    pieces = [ANSWER[:third], ANSWER[third : 2 * third], ANSWER[2 * third :]]
    async with raw_server(pieces, gap=0.15) as base_url:  # 0.45 s in all, no gap of 0.3 s
        assert await ask(base_url, 0.3) == "pieces"


@pytest.mark.usefixtures("coarse")
async def test_a_body_that_stalls_times_out_alike_on_either_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pieces = [ANSWER[:20], b""]
    async with raw_server(pieces, gap=0.05) as base_url:
        coarse_error, coarse_took = await timed_out(base_url, 0.3, "sk-test")
        exact(monkeypatch)
        exact_error, exact_took = await timed_out(base_url, 0.3, "sk-test")
    assert coarse_error == exact_error
    assert "Timeout on reading data from socket" in coarse_error
    assert 0.3 <= coarse_took < 1.5 and 0.3 <= exact_took < 1.5


def one_connection(server: LocalAtdakServer) -> AsyncAtdakClient:
    """A client with a pool of one connection and a 0.3 s read limit."""
    return AsyncAtdakClient(
        api_key=server.api_key,
        base_url=server.base_url,
        timeout=Timeouts(connect=1.0, read=0.3, total=10.0),
        max_retries=0,
        max_connections=1,
    )


@pytest.mark.usefixtures("coarse")
async def test_a_wait_for_a_pooled_connection_is_not_silence(
    atdak_server: LocalAtdakServer,
) -> None:
    """With every connection busy a request waits for one; that wait is not the server's
    silence (the read limit starts once the request is written), whatever its length."""
    atdak_server.responder = [Reply(text=f"answer {i}", delay=0.25) for i in range(3)]
    async with one_connection(atdak_server) as client:
        answers = await asyncio.gather(
            *(client.chat.completions.create(model="m", messages=USER) for _ in range(3))
        )
    assert sorted(a.text for a in answers) == ["answer 0", "answer 1", "answer 2"]


@pytest.mark.usefixtures("coarse")
async def test_a_wait_behind_an_open_stream_is_not_silence(atdak_server: LocalAtdakServer) -> None:
    # four chunks 0.2 s apart: the stream holds the only connection for 0.8 s
    atdak_server.responder = [Reply(text="streamed", chunk_size=2, chunk_delay=0.2), "whole"]
    async with one_connection(atdak_server) as client:
        stream = await client.chat.completions.create(model="m", messages=USER, stream=True)
        waiting = asyncio.ensure_future(client.chat.completions.create(model="m", messages=USER))
        await asyncio.sleep(0.45)  # longer than the read limit
        assert not waiting.done()
        streamed = await stream.collect()
        whole = await waiting
    assert (streamed.text, whole.text) == ("streamed", "whole")
