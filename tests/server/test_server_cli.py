"""``atdak-agents serve`` as a user runs it: a real subprocess, real signals, real HTTP."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from atdak_agents import AtdakClient

WORKFLOW = """
name: greeter
model: atdak-gpt-4-mini
inputs: {name: {type: string, example: Ann}}
state: {reply: {type: string}}
outputs: {reply: state.reply}
nodes:
  greet: {llm: {prompt: "Greet {{ inputs.name }} warmly.", writes: reply}}
edges: ["greet -> end"]
"""
FIXTURE = """
replies:
  - when: Greet
    reply: {text: "Hello, dear friend!", chunk_size: 5}
"""
STEPPED = """
name: stepped
state: {log: {type: list, reducer: append}}
outputs: {log: state.log}
nodes:
  first: {function: {function: "stepped_steps:slow", writes: [log]}}
  second: {function: {function: "stepped_steps:quick", writes: [log]}}
edges: ["first -> second -> end"]
"""
STEPS = """
import asyncio
from pathlib import Path

async def slow(state):
    Path("slow-started").write_text("yes")
    await asyncio.sleep(1.0)
    return {"log": "slow"}

def quick(state):
    return {"log": "quick"}
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    flows = tmp_path / "flows"
    flows.mkdir()
    for name, text in {
        "greeter.yaml": WORKFLOW,
        "greeter.fixture.yaml": FIXTURE,
        "stepped.yaml": STEPPED,
        "stepped_steps.py": STEPS,
    }.items():
        (flows / name).write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return flows


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ATDAK_API", "ATDAK_BASE"))}
    env.pop("ATDAK_SERVER_KEYS", None)
    return env


@contextmanager
def serve(folder: Path, *extra: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    command = [sys.executable, "-m", "atdak_agents.cli", "serve", str(folder), "--port", "0"]
    process = subprocess.Popen(
        [*command, "--db", str(folder.parent / "server.db"), "--log-level", "warning", *extra],
        cwd=folder.parent,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
        assert found, f"no address in {line!r}: {process.stderr.read() if process.stderr else ''}"
        yield process, found.group(1)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def _stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    return process.returncode, err


def test_serve_offline_chats_from_the_fixtures_run_after_run(folder: Path) -> None:
    with serve(folder) as (process, url):
        client = AtdakClient(base_url=f"{url}/v1", api_key="loopback")
        answers = [
            client.chat.completions.create(
                model="greeter", messages=[{"role": "user", "content": "Bo"}]
            )
            for _ in range(2)
        ]
        streamed = client.chat.completions.create(
            model="greeter", messages=[{"role": "user", "content": "Cy"}], stream=True
        )
        pieces = [c.choices[0].delta.content for c in streamed if c.choices]
        client.close()
        code, err = _stop(process)
    assert [a.choices[0].message.content for a in answers] == ["Hello, dear friend!"] * 2
    assert "".join(p or "" for p in pieces) == "Hello, dear friend!"
    assert [p for p in pieces if p] == ["Hello", ", dea", "r fri", "end!"]
    assert code == 0, err
    assert "runs offline" in err


def test_sigterm_lets_the_step_finish_and_the_next_server_resumes_the_run(folder: Path) -> None:
    with serve(folder) as (process, url):
        run_id = httpx.post(f"{url}/v1/runs", json={"workflow": "stepped"}).json()["id"]
        deadline = time.monotonic() + 10
        while not (folder.parent / "slow-started").exists():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        code, err = _stop(process)  # during the 1 s step
    assert code == 0, err
    with serve(folder) as (process, url):
        deadline = time.monotonic() + 10
        while (info := httpx.get(f"{url}/v1/runs/{run_id}").json())["status"] != "done":
            assert time.monotonic() < deadline, info
            time.sleep(0.02)
        events = httpx.get(f"{url}/v1/runs/{run_id}/events").text
        _stop(process)
    assert info["output"] == {"log": ["slow", "quick"]} and info["step"] == 2
    assert events.count("event: node_started") == 2  # the slow step ran once, before the stop
    assert "the server stopped" in events


def test_serve_refuses_to_listen_beyond_loopback_without_keys(folder: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "atdak_agents.cli", "serve", str(folder), "--host", "0.0.0.0"],
        cwd=folder.parent,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0 without server keys" in result.stderr
    assert "ATDAK_SERVER_KEYS" in result.stderr


def test_serve_lists_every_problem_of_every_file(folder: Path) -> None:
    (folder / "broken.yaml").write_text("name: broken\nnodes:\n  a: {llm: {prompt: 3}}\n")
    (folder / "greeter.fixture.yaml").unlink()
    result = subprocess.run(
        [sys.executable, "-m", "atdak_agents.cli", "serve", str(folder), "--port", "0"],
        cwd=folder.parent,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "broken.yaml:3" in result.stderr
