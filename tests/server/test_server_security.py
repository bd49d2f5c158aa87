"""Server keys, loopback-only without keys, size and concurrency limits, and the upstream key
staying out of every answer, event, log line and stored byte."""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from server_helpers import GATES, UPSTREAM_KEY, Gate, read_events, serving, wait_for

from atdak_agents import AtdakClient
from atdak_agents.exceptions import UsageError
from atdak_agents.server import BackgroundServer, ServerConfig, create_app
from atdak_agents.testing import LocalAtdakServer, Reply

KEY_A = "server-key-aaaaaaaaaaaaaaaa"
KEY_B = "server-key-bbbbbbbbbbbbbbbb"
CHAT = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_keys_are_required_when_configured(upstream: LocalAtdakServer, tmp_path: Path) -> None:
    with serving(upstream, tmp_path, keys=[KEY_A, KEY_B]) as server:
        url = server.url
        missing = httpx.post(f"{url}/v1/chat/completions", json=CHAT)
        wrong = httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=_bearer("x" * 30))
        right = httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=_bearer(KEY_B))
        public = [httpx.get(f"{url}/healthz").status_code, httpx.get(f"{url}/openapi.json")]
        client = AtdakClient(base_url=f"{url}/v1", api_key=KEY_A)
        via_client = client.chat.completions.create(**CHAT)
        client.close()
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["error"]["type"] == "authentication_error"
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_key"
    assert right.status_code == 200 and via_client.choices[0].message.content == "hi"
    assert public[0] == 200 and public[1].status_code == 200


def test_keys_come_from_the_environment(
    upstream: LocalAtdakServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATDAK_SERVER_KEYS", f" {KEY_A} ,{KEY_B}")
    with serving(upstream, tmp_path) as server:
        assert httpx.get(f"{server.url}/v1/models").status_code == 401
        assert httpx.get(f"{server.url}/v1/models", headers=_bearer(KEY_A)).status_code == 200
    monkeypatch.setenv("ATDAK_SERVER_KEYS", "short")
    with pytest.raises(UsageError, match="shorter than 16 characters"):
        ServerConfig().server_keys()


def test_without_keys_it_refuses_to_listen_beyond_loopback(
    upstream: LocalAtdakServer, tmp_path: Path
) -> None:
    from server_helpers import echo_graph, provider_of

    app = create_app([echo_graph()], config=ServerConfig(database=None))
    with pytest.raises(UsageError, match="refusing to listen on 0.0.0.0 without server keys"):
        BackgroundServer(app, host="0.0.0.0").start()
    allowed = create_app(
        [echo_graph()],
        config=ServerConfig(database=None, allow_unauthenticated=True),
        provider=provider_of(upstream),
    )
    with BackgroundServer(allowed, host="0.0.0.0") as server:
        response = httpx.post(f"http://127.0.0.1:{server.port}/v1/chat/completions", json=CHAT)
    assert response.status_code == 200


async def test_without_keys_it_answers_only_requests_to_a_loopback_address(
    upstream: LocalAtdakServer, tmp_path: Path
) -> None:
    from server_helpers import echo_graph, provider_of

    app = create_app(
        [echo_graph()], config=ServerConfig(database=None), provider=provider_of(upstream)
    )
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://10.1.2.3") as http:
            outside = await http.post("/v1/chat/completions", json=CHAT)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            inside = await http.post("/v1/chat/completions", json=CHAT)  # starts on first use
    finally:
        await app.service.close()
    assert outside.status_code == 403 and outside.json()["error"]["code"] == "no_server_keys"
    assert inside.status_code == 200


def test_body_and_input_limits(upstream: LocalAtdakServer, tmp_path: Path) -> None:
    with serving(upstream, tmp_path, max_body_bytes=2000, max_input_chars=100) as server:
        url = f"{server.url}/v1/chat/completions"
        big = {**CHAT, "messages": [{"role": "user", "content": "x" * 3000}]}
        declared = httpx.post(url, json=big)

        def chunks() -> Iterator[bytes]:
            yield b'{"model": "echo", "messages": [{"role": "user", "content": "'
            yield b"y" * 3000
            yield b'"}]}'

        streamed = httpx.post(url, content=chunks(), headers={"content-type": "application/json"})
        long_input = httpx.post(
            url, json={**CHAT, "messages": [{"role": "user", "content": "z" * 150}]}
        )
        long_run = httpx.post(
            f"{server.url}/v1/runs", json={"workflow": "echo", "inputs": {"question": "z" * 150}}
        )
        fine = httpx.post(url, json=CHAT)
    assert declared.status_code == 413 and declared.json()["error"]["code"] == "body_too_large"
    assert streamed.status_code == 413 and streamed.json()["error"]["code"] == "body_too_large"
    assert long_input.status_code == 413 and long_input.json()["error"]["code"] == "input_too_large"
    assert long_run.status_code == 413
    assert fine.status_code == 200


def test_runs_in_progress_are_limited_per_key(upstream: LocalAtdakServer, tmp_path: Path) -> None:
    GATES["slow"] = gate = Gate()
    try:
        with (
            serving(upstream, tmp_path, keys=[KEY_A, KEY_B], max_runs_per_key=2) as server,
            httpx.Client(base_url=server.url) as http,
        ):

            def start(key: str) -> httpx.Response:
                body = {"workflow": "slow", "inputs": {}}
                return http.post("/v1/runs", json=body, headers=_bearer(key))

            first, second = start(KEY_A), start(KEY_A)
            third = start(KEY_A)
            other = start(KEY_B)
            gate.release.set()
            for response in (first, second, other):
                run_id = response.json()["id"]
                while http.get(f"/v1/runs/{run_id}", headers=_bearer(KEY_A)).json()["live"]:
                    pass
            again = start(KEY_A)
    finally:
        gate.release.set()
    assert [first.status_code, second.status_code, other.status_code] == [202, 202, 202]
    assert third.status_code == 429 and third.headers["retry-after"] == "1"
    assert third.json()["error"]["type"] == "rate_limit_error"
    assert again.status_code == 202


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def all_logs() -> Iterator[_Lines]:
    handler = _Lines()
    names = ["", "uvicorn", "uvicorn.error", "uvicorn.access", "atdak_agents", "httpx"]
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    yield handler
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_the_upstream_key_never_reaches_a_client_a_trace_a_log_or_the_database(
    upstream: LocalAtdakServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    all_logs: _Lines,
) -> None:
    monkeypatch.setenv("SHOP_KEY", UPSTREAM_KEY)
    workflow = tmp_path / "flows" / "leaky.yaml"
    workflow.parent.mkdir()
    workflow.write_text(
        textwrap.dedent(
            f"""
            name: leaky
            model: atdak-gpt-4-mini
            provider: {{base_url: "{upstream.base_url}", api_key: "${{SHOP_KEY}}", max_retries: 0}}
            inputs: {{question: {{type: string}}}}
            outputs: {{answer: state.answer}}
            state: {{answer: {{type: string}}}}
            nodes:
              reply: {{llm: {{prompt: "{{{{ inputs.question }}}}", writes: answer}}}}
            edges: ["reply -> end"]
            """
        ),
        encoding="utf-8",
    )
    upstream.responder = [
        Reply(text=f"the key is {UPSTREAM_KEY}"),  # a model that repeats the key
        Reply(text=f"again {UPSTREAM_KEY}", chunk_size=3),
        Reply(status=401, error=f"invalid api key {UPSTREAM_KEY}"),  # an endpoint that does
        Reply(text=f"run api {UPSTREAM_KEY}", chunk_size=5),
    ]
    app = create_app(workflow.parent, config=ServerConfig(database=tmp_path / "s.db"))
    seen: list[str] = []
    with (
        BackgroundServer(app, log_level="debug") as server,
        httpx.Client(base_url=server.url) as http,
    ):
        body = {"model": "leaky", "messages": [{"role": "user", "content": "key?"}]}
        seen.append(http.post("/v1/chat/completions", json=body).text)
        with http.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as stream:
            seen.append("".join(stream.iter_lines()))
        failed = http.post("/v1/chat/completions", json=body)
        seen.append(failed.text)
        run = http.post(
            "/v1/runs", json={"workflow": "leaky", "inputs": {"question": "q"}, "tokens": True}
        ).json()
        wait_for(http, run["id"], "done")
        for info in http.get("/v1/runs").json()["data"]:
            seen.append(str(info))
            seen.append(str(read_events(http, info["id"])))
        seen.append(http.get("/v1/workflows").text)
    assert failed.status_code == 502 and "***" in failed.json()["error"]["message"]
    assert len(upstream.requests) == 4
    assert all(r.authorized for r in upstream.requests)  # the key was used, upstream only
    everything = "\n".join([*seen, *all_logs.lines])
    assert "***" in everything
    assert UPSTREAM_KEY not in everything
    # the stored trace and the stored errors hold no key (the checkpointed state holds what the
    # model answered, which here repeats it: that is the run's data, not a trace)
    assert _rows_with(tmp_path / "s.events.db", UPSTREAM_KEY, "server_events", "*") == []
    assert _rows_with(tmp_path / "s.db", UPSTREAM_KEY, "checkpoint_runs", "error") == []
    assert all_logs.lines  # the logs were captured (so the check above means something)


def _rows_with(path: Path, text: str, table: str, columns: str) -> list[str]:
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(f"SELECT {columns} FROM {table}").fetchall()
    finally:
        conn.close()
    assert rows
    return [str(row)[:300] for row in rows if text in str(row)]
