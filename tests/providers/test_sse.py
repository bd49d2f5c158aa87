"""The SSE decoder follows the WHATWG spec and does not care how the network cut the bytes."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atdak_agents.providers._sse import ServerSentEvent, SSEDecoder
from atdak_agents.providers.streaming import ChunkDecoder
from atdak_agents.testing import LocalAtdakServer, Reply


def decode(*pieces: bytes) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    return [event for piece in pieces for event in decoder.feed(piece)]


def datas(*pieces: bytes) -> list[str]:
    return [e.data for e in decode(*pieces)]


# --------------------------------------------------------------------------- the spec, case by case


def test_one_event_per_blank_line() -> None:
    assert datas(b"data: a\n\ndata: b\n\n") == ["a", "b"]


def test_multi_line_data_is_joined_with_newlines() -> None:
    assert datas(b"data: line one\ndata: line two\ndata:\n\n") == ["line one\nline two\n"]


def test_comments_are_keep_alives_and_ignored() -> None:
    assert datas(b": keep-alive\n\n:\ndata: x\n: between\n\n") == ["x"]


def test_event_id_and_retry_fields() -> None:
    events = decode(b"event: update\nid: 7\nretry: 1500\ndata: x\n\ndata: y\n\n")
    assert events[0] == ServerSentEvent("x", "update", "7", 1500)
    assert events[1] == ServerSentEvent("y", "message", "7", 1500)  # the last id is kept


def test_id_with_nul_and_non_digit_retry_are_ignored() -> None:
    events = decode(b"id: 1\n\nid: a\x00b\nretry: 12x\ndata: x\n\n")
    assert events == [ServerSentEvent("x", "message", "1", None)]


def test_only_one_space_after_the_colon_is_stripped() -> None:
    assert datas(b"data:  two spaces\n\ndata:none\n\n") == [" two spaces", "none"]


def test_a_line_without_colon_is_a_field_with_empty_value() -> None:
    assert datas(b"data\n\n") == [""]


def test_unknown_fields_are_ignored() -> None:
    assert datas(b"foo: bar\ndata: x\n\n") == ["x"]


def test_an_event_without_data_is_not_dispatched() -> None:
    assert decode(b"event: ping\n\nid: 3\n\n") == []


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_every_line_ending(newline: bytes) -> None:
    stream = b"data: a" + newline + b"data: b" + newline + newline + b"data: c" + newline * 2
    assert datas(stream) == ["a\nb", "c"]


def test_crlf_split_across_reads_is_one_line_end() -> None:
    assert datas(b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n") == ["a", "b"]


def test_a_leading_byte_order_mark_is_dropped() -> None:
    assert datas("\ufeffdata: x\n\n".encode()) == ["x"]


def test_multibyte_characters_split_across_reads() -> None:
    raw = "data: 你好，世界\n\n".encode()
    assert datas(raw[:7], raw[7:8], raw[8:13], raw[13:]) == ["你好，世界"]


def test_unicode_line_separators_inside_data_do_not_split_lines() -> None:
    assert datas("data: a\u2028b\u0085c\n\n".encode()) == ["a\u2028b\u0085c"]


def test_the_unfinished_event_is_pending_not_dispatched() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: [DONE]") == []
    pending = decoder.pending()
    assert pending is not None and pending.data == "[DONE]"


# ------------------------------------------------------------------- real streams, cut anywhere


def _capture(server: LocalAtdakServer, body: dict[str, object]) -> bytes:
    headers = {"Authorization": f"Bearer {server.api_key}"}
    with httpx.Client() as client:
        response = client.post(f"{server.base_url}/chat/completions", json=body, headers=headers)
        assert response.status_code == 200
        return response.content


@pytest.fixture(scope="module")
def real_streams() -> list[tuple[bytes, str]]:
    """Streams as the local server sends them, with the text each carries."""
    texts = ["你好！有什么可以帮助你的吗？", "spring 春天 🌸 — ok", "x"]
    replies = [Reply(text=t, chunk_size=2) for t in texts]
    calls = [{"name": "lookup_order", "arguments": {"order": "#10423", "备注": "退款"}}]
    replies.append(Reply(text="查一下", tool_calls=calls, stream_usage=True))
    with LocalAtdakServer(replies, native_tools=True) as server:
        body = {
            "model": "atdak-gpt-4",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
        }
        captured = [(_capture(server, body), text) for text in texts]
        captured.append((_capture(server, {**body, "tools": [{"type": "function"}]}), "查一下"))
    variants = []
    for raw, text in captured:
        variants.append((raw, text))
        variants.append((raw.replace(b"\n", b"\r\n"), text))
        variants.append((raw.replace(b"\n", b"\r"), text))
    return variants


def _pieces(data: bytes, cuts: list[int]) -> Iterator[bytes]:
    start = 0
    for cut in sorted(set(cuts)):
        yield data[start:cut]
        start = cut
    yield data[start:]


def test_every_single_byte_boundary_of_real_streams(real_streams: list[tuple[bytes, str]]) -> None:
    for raw, _text in real_streams:
        whole = decode(raw)
        assert whole and whole[-1].data == "[DONE]"
        for cut in range(len(raw) + 1):
            assert decode(raw[:cut], raw[cut:]) == whole, f"cut at byte {cut}"


def test_byte_by_byte(real_streams: list[tuple[bytes, str]]) -> None:
    for raw, _text in real_streams:
        assert decode(*(raw[i : i + 1] for i in range(len(raw)))) == decode(raw)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_cutting_of_real_streams_gives_the_same_chunks(
    real_streams: list[tuple[bytes, str]], data: st.DataObject
) -> None:
    raw, text = data.draw(st.sampled_from(real_streams))
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=40))
    decoder = ChunkDecoder()
    chunks = [chunk for piece in _pieces(raw, cuts) for chunk in decoder.feed(piece)]
    assert decoder.done
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == text
