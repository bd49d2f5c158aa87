"""The chat endpoint over real HTTP, driven by AtdakClient itself and by plain httpx."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from server_helpers import Gate, serving, sse_messages, wait_for

from atdak_agents import AsyncAtdakClient, AtdakClient
from atdak_agents.testing import LocalAtdakServer, Reply


def test_atdak_client_chats_with_a_workflow(upstream: LocalAtdakServer, tmp_path: Path) -> None:
    with serving(upstream, tmp_path) as server:
        client = AtdakClient(base_url=f"{server.url}/v1", api_key="unused-on-loopback")
        answer = client.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "春天来了"}]
        )
        client.close()
    assert answer.choices[0].message.content == "春天来了"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.model == "echo"
    sent = upstream.requests[-1]
    assert sent.body["messages"][-1]["content"] == "春天来了"
    assert answer.usage is not None and answer.usage.prompt_tokens > 0
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens


def test_streaming_chat_is_made_of_the_runs_tokens(
    upstream: LocalAtdakServer, tmp_path: Path
) -> None:
    upstream.responder = [
        Reply(text="classified"),
        Reply(text="drafted"),
        Reply(chunks=["好", "的，", "马上", "处理。"]),
    ]
    with serving(upstream, tmp_path) as server:
        client = AtdakClient(base_url=f"{server.url}/v1", api_key="k")
        stream = client.chat.completions.create(
            model="three", messages=[{"role": "user", "content": "退款"}], stream=True
        )
        pieces = [c.choices[0].delta.content for c in stream if c.choices]
        client.close()
    # the answer node's tokens one by one (never the classify/draft nodes' text)
    assert [p for p in pieces if p] == ["好", "的，", "马上", "处理。"]
    assert all(r.stream for r in upstream.requests[-3:])


async def test_async_client_streams_and_reports_usage(
    upstream: LocalAtdakServer, tmp_path: Path
) -> None:
    upstream.responder = [Reply(text="abcdefgh", chunk_size=2)]
    with serving(upstream, tmp_path) as server:
        async with AsyncAtdakClient(base_url=f"{server.url}/v1", api_key="k") as client:
            stream = await client.chat.completions.create(
                model="echo", messages=[{"role": "user", "content": "x"}], stream=True
            )
            async with stream:
                parts = [c.choices[0].delta.content async for c in stream if c.choices]
    assert "".join(p or "" for p in parts) == "abcdefgh"


async def test_async_client_alternates_whole_and_streamed_answers_from_uvicorn(
    upstream: LocalAtdakServer, tmp_path: Path
) -> None:
    """The client's own connection pool against another HTTP server than the local one's
    (uvicorn): whole answers and streams, one after another over kept connections."""
    upstream.responder = lambda request: request.body["messages"][-1]["content"]
    user = [{"role": "user", "content": ""}]
    with serving(upstream, tmp_path) as server:
        async with AsyncAtdakClient(base_url=f"{server.url}/v1", api_key="k") as client:
            heard = []
            for i in range(6):
                user[0]["content"] = f"第{i}次"
                if i % 2:
                    stream = await client.chat.completions.create(
                        model="echo", messages=user, stream=True
                    )
                    heard.append((await stream.collect()).text)
                else:
                    answer = await client.chat.completions.create(model="echo", messages=user)
                    heard.append(answer.text)
    assert heard == [f"第{i}次" for i in range(6)]


def test_raw_stream_follows_the_contract(upstream: LocalAtdakServer, tmp_path: Path) -> None:
    upstream.responder = [Reply(text="one two", chunk_size=3)]
    body = {
        "model": "echo",
        "messages": [{"role": "user", "content": "q"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with (
        serving(upstream, tmp_path) as server,
        httpx.Client(base_url=server.url) as http,
        http.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        run_id = response.headers["x-run-id"]
        messages = list(sse_messages(response.iter_lines()))
    datas = [m["data"] for m in messages]
    assert datas[-1] == "[DONE]"
    chunks = datas[:-1]
    assert all(c["id"] == f"chatcmpl-{run_id}" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "one two"
    finish = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finish) == 1 and finish[0]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0


def test_a_session_keeps_memory_across_requests(upstream: LocalAtdakServer, tmp_path: Path) -> None:
    with serving(upstream, tmp_path) as server:
        client = AtdakClient(base_url=f"{server.url}/v1", api_key="k")

        def say(text: str, session: str) -> str:
            reply = client.chat.completions.create(
                model="remember",
                messages=[{"role": "user", "content": text}],
                extra_headers={"X-Session-Id": session},
            )
            return reply.choices[0].message.content or ""

        say("我叫小明", "s-1")
        second = say("我叫什么？", "s-1")
        other = client.chat.completions.create(
            model="remember",
            messages=[{"role": "user", "content": "hello"}],
            extra_body={"session_id": "s-2"},
        )
        client.close()
    assert second == "[user: 我叫小明] [assistant: 我叫小明] 我叫什么？"
    assert other.choices[0].message.content == "hello"  # another session remembers nothing


def test_a_waiting_run_takes_the_next_message_of_its_session(
    upstream: LocalAtdakServer, tmp_path: Path
) -> None:
    upstream.responder = ["Dear customer, refunded."]
    with serving(upstream, tmp_path) as server, httpx.Client(base_url=server.url) as http:
        ask = {"model": "approve", "messages": [{"role": "user", "content": "refund #7"}]}
        first = http.post("/v1/chat/completions", json=ask, headers={"X-Session-Id": "t"}).json()
        bad = http.post(
            "/v1/chat/completions",
            json={**ask, "messages": [{"role": "user", "content": "maybe"}]},
            headers={"X-Session-Id": "t"},
        )
        yes = {**ask, "messages": [{"role": "user", "content": "yes"}]}
        second = http.post("/v1/chat/completions", json=yes, headers={"X-Session-Id": "t"})
    assert first["choices"][0]["message"]["content"] == "Send Dear customer, refunded.?"
    assert first["run"]["status"] == "waiting"
    assert bad.status_code == 400 and "not one of: yes, no" in bad.json()["error"]["message"]
    assert second.json()["choices"][0]["message"]["content"] == "sent: Dear customer, refunded."
    assert second.json()["run"] == {"id": first["run"]["id"], "status": "done", "question": None}


def test_history_and_json_inputs(upstream: LocalAtdakServer, tmp_path: Path) -> None:
    from atdak_agents.graph.builder import GraphBuilder

    g = GraphBuilder("translate", model="atdak-gpt-4-mini")
    g.input("text", str)
    g.input("target", str)
    g.input("history", list, default=[])
    g.state("out", str)
    g.llm(
        "go", "{{ inputs.history | length }} {{ inputs.target }}: {{ inputs.text }}", writes="out"
    )
    g.chain("go", "end")
    g.output("translation", "state.out")
    graph = g.build()
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": json.dumps({"text": "你好", "target": "en"})},
    ]
    with (
        serving(upstream, tmp_path, graphs=[graph]) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        ok = http.post("/v1/chat/completions", json={"model": "translate", "messages": messages})
        plain = http.post(
            "/v1/chat/completions",
            json={"model": "translate", "messages": [{"role": "user", "content": "hi"}]},
        )
        info = http.get("/v1/workflows").json()["data"][0]
    assert ok.json()["choices"][0]["message"]["content"] == "1 en: 你好"
    assert plain.status_code == 400 and plain.json()["error"]["code"] == "inputs_not_json"
    assert info["chat"] == {
        "input": None,
        "history": "history",
        "output": "translation",
        "streams_from": ["go"],
    }


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"model": "nope", "messages": [{"role": "user", "content": "x"}]}, 404, "model_not_found"),
        ({"model": "echo", "messages": []}, 400, "invalid_body"),
        (
            {"model": "echo", "messages": [{"role": "assistant", "content": "x"}]},
            400,
            "last_message_not_user",
        ),
        ({"model": "echo"}, 400, "invalid_body"),
    ],
)
def test_bad_chat_requests_are_4xx_with_an_error_body(
    upstream: LocalAtdakServer, tmp_path: Path, body: dict, status: int, code: str
) -> None:
    with serving(upstream, tmp_path) as server:
        response = httpx.post(f"{server.url}/v1/chat/completions", json=body)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_an_upstream_failure_is_a_502_and_a_failed_run(
    upstream: LocalAtdakServer, tmp_path: Path
) -> None:
    upstream.responder = [Reply(status=400, error="bad things")]
    with serving(upstream, tmp_path) as server, httpx.Client(base_url=server.url) as http:
        response = http.post(
            "/v1/chat/completions",
            json={"model": "echo", "messages": [{"role": "user", "content": "x"}]},
        )
        run = http.get(f"/v1/runs/{response.headers['x-run-id']}").json()
    assert response.status_code == 502
    assert "bad things" in response.json()["error"]["message"]
    assert run["status"] == "failed" and "bad things" in run["error"]


def test_models_lists_the_workflows(upstream: LocalAtdakServer, tmp_path: Path) -> None:
    with serving(upstream, tmp_path) as server:
        models = httpx.get(f"{server.url}/v1/models").json()
    assert [m["id"] for m in models["data"]] == ["echo", "three", "remember", "approve", "slow"]


@pytest.mark.parametrize("cancel", [False, True])
def test_a_streamed_chat_whose_client_leaves(
    upstream: LocalAtdakServer, tmp_path: Path, gate: Gate, cancel: bool
) -> None:
    body = {
        "model": "slow",
        "messages": [{"role": "user", "content": "{}"}],
        "stream": True,
        "cancel_on_disconnect": cancel,
    }
    with serving(upstream, tmp_path) as server, httpx.Client(base_url=server.url) as http:
        with http.stream("POST", "/v1/chat/completions", json=body) as response:
            run_id = response.headers["x-run-id"]
            assert gate.entered.wait(5)
        gate.release.set()  # the client has gone
        info = wait_for(http, run_id, "interrupted" if cancel else "done")
    if cancel:
        assert info["reason"] == "cancelled" and info["step"] == 0
    else:
        assert info["output"] == {"answer": ["slow", "quick", "quick"]}


def test_every_run_shares_one_pooled_upstream_client(
    upstream: LocalAtdakServer, tmp_path: Path
) -> None:
    from atdak_agents.providers.client import AsyncAtdakClient

    with serving(upstream, tmp_path) as server, httpx.Client(base_url=server.url) as http:
        for model in ("echo", "three", "echo"):
            body = {"model": model, "messages": [{"role": "user", "content": "x"}]}
            assert http.post("/v1/chat/completions", json=body).status_code == 200
        clients = {id(w.provider) for w in server.app.service.workflows.values()}
        client = server.app.service.workflows["echo"].provider
    assert len(clients) == 1 and isinstance(client, AsyncAtdakClient)
    assert client.max_connections == 1000  # a pool, not a connection per run
