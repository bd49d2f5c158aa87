"""How a connection of the client's pool (``providers._h1_connection``) reads answers that
arrive in any number of pieces, split anywhere: the same status, headers and body whatever the
split. The transport under the connection is a recorder (the pool's socket behaviour is tested
over loopback in ``test_h1_pool.py``); what is exercised is the parsing, whole and streamed.
"""

from __future__ import annotations

import asyncio
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from atdak_agents.providers._h1_connection import Connection, Origin, WholeResponse

BODY = '{"choices": [{"message": {"content": "春天 spring"}}]}'.encode()


class Recorder(asyncio.Transport):
    """What the connection wrote, and whether it closed."""

    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False

    def writelines(self, data: object) -> None:
        self.written += b"".join(data)  # type: ignore[arg-type]

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def chunked(body: bytes, sizes: list[int]) -> bytes:
    pieces, at = [], 0
    for size in [*sizes, len(body)]:
        if at >= len(body):
            break
        piece = body[at : at + max(size, 1)]
        pieces.append(b"%x\r\n%s\r\n" % (len(piece), piece))
        at += len(piece)
    return b"".join(pieces) + b"0\r\n\r\n"


ANSWERS = {
    "length": b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Request-Id: r1\r\n\r\n%s"
    % (len(BODY), BODY),
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Request-Id: r1\r\n\r\n"
    + chunked(BODY, [3, 7, 1, 20]),
    "interim first": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
    b"X-Request-Id: r1\r\n\r\n%s" % (len(BODY), BODY),
}


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


async def exchange(answer: bytes, cuts: list[int], *, stream: bool) -> tuple[WholeResponse, bytes]:
    loop = asyncio.get_running_loop()
    connection = Connection(Origin("http", "localhost", 80), loop)
    connection.connection_made(Recorder())
    future = connection.exchange(b"POST / HTTP/1.1\r\nContent-Length: ", b"{}", None, stream=stream)
    for piece in split(answer, cuts):
        connection.data_received(piece)
    head = await future
    body = b""
    if stream:
        while part := await connection.next_chunk():
            body += part
    assert not connection.busy and not connection.dead  # kept for the next request
    return head, head.content if not stream else body


@settings(max_examples=150, deadline=None)
@given(
    kind=st.sampled_from(sorted(ANSWERS)),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12),
    stream=st.booleans(),
)
def test_an_answer_split_anywhere_reads_the_same(kind: str, cuts: list[int], stream: bool) -> None:
    head, body = asyncio.run(exchange(ANSWERS[kind], cuts, stream=stream))
    assert head.status_code == 200
    assert (b"X-Request-Id", b"r1") in head.raw_headers
    assert body == BODY


def test_the_request_is_written_as_given() -> None:
    async def written() -> bytes:
        connection = Connection(Origin("http", "localhost", 80), asyncio.get_running_loop())
        transport = Recorder()
        connection.connection_made(transport)
        connection.exchange(b"POST /v1 HTTP/1.1\r\nHost: h\r\nContent-Length: ", b'{"a":1}', None)
        return transport.written

    assert (
        asyncio.run(written())
        == b'POST /v1 HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\n\r\n{"a":1}'
    )
