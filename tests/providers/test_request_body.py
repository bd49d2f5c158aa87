"""request_json (the body the clients send) writes exactly what pydantic writes: the same bytes
for plain requests (written with orjson), the pydantic path itself for anything else, with the
same bytes or the same error."""

from __future__ import annotations

import json
import math
import tracemalloc
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic_core import PydanticSerializationError

from atdak_agents.messages import Message, ToolCall
from atdak_agents.providers._body import _plain_body, request_json
from atdak_agents.providers._wire import ChatCompletionRequest
from atdak_agents.providers.client import AsyncAtdakClient
from atdak_agents.testing import LocalAtdakServer


def slow(request: ChatCompletionRequest) -> bytes:
    """What the clients sent before the fast path."""
    return request.model_dump_json(exclude_none=True).encode()


def outcome(write: Any, request: ChatCompletionRequest) -> tuple[str, Any]:
    try:
        return ("body", write(request))
    except Exception as exc:
        return (type(exc).__name__, str(exc))


texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
floats = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True))
messages = st.builds(
    Message,
    role=st.sampled_from(["system", "user", "assistant", "tool"]),
    content=st.one_of(st.none(), texts),
    name=st.one_of(st.none(), texts),
    tool_call_id=st.one_of(st.none(), texts),
)


@settings(max_examples=300, deadline=None)
@given(
    model=texts,
    listed=st.lists(messages, max_size=4),
    temperature=floats,
    top_p=floats,
    max_tokens=st.one_of(st.none(), st.integers(min_value=-(2**63), max_value=2**63 - 1)),
    stream=st.one_of(st.none(), st.booleans()),
)
def test_plain_requests_are_written_byte_for_byte_as_pydantic_writes_them(
    model: str,
    listed: list[Message],
    temperature: float | None,
    top_p: float | None,
    max_tokens: int | None,
    stream: bool | None,
) -> None:
    request = ChatCompletionRequest(
        model=model,
        messages=listed,
        temperature=temperature,
        top_p=top_p,
        max_tokens=max_tokens,
        stream=stream,
    )
    assert _plain_body(request) is not None  # the fast path is the one tested
    assert request_json(request) == slow(request)


def test_every_character_is_escaped_alike() -> None:
    text = "".join(chr(c) for c in range(0x800) if not 0xD800 <= c < 0xE000)
    text += "\u2028\u2029\ufeff\U0001f600\U0010ffff 春"
    request = ChatCompletionRequest(model="m", messages=[Message(role="user", content=text)])
    assert _plain_body(request) is not None
    assert request_json(request) == slow(request)
    assert json.loads(request_json(request))["messages"][0]["content"] == text


def unusual() -> list[ChatCompletionRequest]:
    user = Message(role="user", content="hi")
    call = ToolCall(id="c1", function={"name": "f", "arguments": "{}"})

    class Sub(ChatCompletionRequest):
        pass

    with_extra_message = Message(role="user", content="hi", refusal=None)
    return [
        ChatCompletionRequest(model="m", messages=[user], seed=7),  # an extra field
        ChatCompletionRequest(model="m", messages=[user], tools=[{"type": "function"}]),
        ChatCompletionRequest(model="m", messages=[user], tool_choice="auto"),
        ChatCompletionRequest(
            model="m", messages=[Message(role="assistant", content=None, tool_calls=[call])]
        ),
        ChatCompletionRequest(model="m", messages=[with_extra_message]),
        Sub(model="m", messages=[user]),
        ChatCompletionRequest.model_construct(model="m", messages=[user], temperature=1),
        ChatCompletionRequest.model_construct(model="m", messages=(user,)),
        ChatCompletionRequest.model_construct(model=3, messages=[user]),
        ChatCompletionRequest.model_construct(model="m", messages=[{"role": "user"}]),
        ChatCompletionRequest.model_construct(model="m", messages=[user], stream=1),
    ]


def refused_by_orjson() -> list[ChatCompletionRequest]:
    user = Message(role="user", content="hi")
    return [
        ChatCompletionRequest.model_construct(model="m", messages=[user], max_tokens=2**70),
        ChatCompletionRequest(model="m", messages=[Message(role="user", content="\ud800")]),
        ChatCompletionRequest(
            model="m", messages=[Message(role="user", content="a", name="\udfff")]
        ),
    ]


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydantic's, about the odd values
@pytest.mark.parametrize("request_", unusual(), ids=range(len(unusual())))
def test_anything_unusual_goes_through_pydantic_with_the_same_outcome(
    request_: ChatCompletionRequest,
) -> None:
    assert _plain_body(request_) is None
    assert outcome(request_json, request_) == outcome(slow, request_)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("request_", refused_by_orjson(), ids=range(len(refused_by_orjson())))
def test_what_orjson_refuses_goes_through_pydantic_with_the_same_outcome(
    request_: ChatCompletionRequest,
) -> None:
    plain = _plain_body(request_)
    assert plain is not None
    with pytest.raises(TypeError):
        orjson.dumps(plain)
    assert outcome(request_json, request_) == outcome(slow, request_)


def test_a_lone_surrogate_fails_as_before() -> None:
    request = ChatCompletionRequest(model="m", messages=[Message(role="user", content="\ud800")])
    with pytest.raises(PydanticSerializationError, match="surrogates not allowed"):
        request_json(request)


def test_non_finite_numbers_are_written_as_null_like_pydantic() -> None:
    request = ChatCompletionRequest(model="m", messages=[], temperature=math.inf, top_p=math.nan)
    written = b'{"model":"m","messages":[],"temperature":null,"top_p":null}'
    assert request_json(request) == slow(request) == written


async def test_the_server_receives_the_body_as_written(atdak_server: LocalAtdakServer) -> None:
    atdak_server.responder = ["ok"]
    request = ChatCompletionRequest(
        model="atdak-gpt-4",
        messages=[
            Message(role="system", content='Be brief.\n\t"quoted" \\ 春'),
            Message(role="user", content="hi", name="ann", metadata={"kind": "never sent"}),
        ],
        temperature=0.7,
        max_tokens=50,
    )
    async with AsyncAtdakClient(
        api_key=atdak_server.api_key, base_url=atdak_server.base_url
    ) as client:
        answer = await client.complete(request)
    assert answer.text == "ok"
    assert atdak_server.requests[0].body == json.loads(slow(request))


def test_a_body_holds_no_more_memory_than_its_bytes() -> None:
    """A body lives as long as its request (1,000 in flight hold 1,000 bodies): orjson's own
    bytes keep the buffer they were written in, about ten times a 2 KB body."""
    request = ChatCompletionRequest(
        model="atdak-gpt-4-mini",
        messages=[Message(role="system", content="x" * 1500), Message(role="user", content="hi")],
    )
    assert _plain_body(request) is not None  # the orjson path
    tracemalloc.start()
    try:
        bodies = [request_json(request) for _ in range(100)]
        held = tracemalloc.get_traced_memory()[0] / len(bodies)
    finally:
        tracemalloc.stop()
    size = len(bodies[0])
    assert held < 1.25 * size + 200, f"{held:.0f} bytes held by a {size} byte body"
