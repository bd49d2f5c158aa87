"""`atdak-agents run` and `resume`, as a user runs them: the real command in a subprocess,
offline against the local server answering from the workflows' fixtures (or online, against a
local server this test starts)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from cli_helpers import Running, cli

from atdak_agents.testing import DEFAULT_API_KEY, LocalAtdakServer, Reply
from atdak_agents.tracing.sinks import read_jsonl


def test_a_workflow_runs_with_its_example_inputs_and_no_arguments(here: Path) -> None:
    result = cli("run", "flows/counter.yaml", cwd=here)
    assert result.code == 0
    assert json.loads(result.stdout) == {"total": 3, "label": "total"}
    assert "▶ counter" in result.stderr and "■ done" in result.stderr  # the live view
    assert "offline" not in result.stderr  # no model calls: nothing to say about keys
    assert (here / ".atdak" / "agents.db").is_file()  # checkpointed by default


def test_json_prints_only_the_result_and_never_a_secret(here: Path) -> None:
    key = "sk-shop-4f9a2b7c1d00"
    env = {"SHOP_KEY": key}
    result = cli("run", "flows/secret.yaml", "--json", "--trace", "t.jsonl", cwd=here, env=env)
    assert result.code == 0
    payload = json.loads(result.stdout)  # stdout is exactly one JSON document
    assert payload["status"] == "done"
    assert payload["output"] == {"note": "key in use: ***"}
    assert payload["workflow"] == "flows/secret.yaml"
    assert payload["usage"]["requests"] == 0
    assert result.stderr == ""  # no live view with --json
    trace = (here / "t.jsonl").read_text(encoding="utf-8")
    assert key not in trace and "***" in trace


@pytest.mark.slow
def test_a_run_pauses_for_a_human_and_resumes_with_the_answer(here: Path) -> None:
    paused = cli(
        "run", "flows/triage.yaml", "--model", "atdak-gpt-4", "--trace", "t.jsonl", cwd=here
    )
    assert paused.code == 4
    assert paused.stdout == ""
    assert "ATDAK_API_KEY is not set, so this runs offline" in paused.stderr
    assert "flows/triage.fixture.yaml" in paused.stderr
    assert "Send this reply? Your order #10423 left our warehouse yesterday." in paused.stderr
    assert "(one of: yes, no)" in paused.stderr
    command = paused.resume_command()
    assert command[-2:] == ["--answer", "yes"]
    run_id = command[1]

    wrong = cli("resume", run_id, "--answer", "maybe", cwd=here)
    assert wrong.code == 1
    assert "--answer: answer 'maybe' for 'review' is not one of: yes, no" in wrong.stderr
    revised = cli("resume", run_id[:10], "--answer", "no", cwd=here)  # the fixture continues
    assert revised.code == 4
    assert "Send this reply? Sorry for the wait: order #10423 arrives tomorrow." in revised.stderr
    done = cli(*command, cwd=here)
    assert done.code == 0, done.stderr
    assert done.stdout == "Sorry for the wait: order #10423 arrives tomorrow.\n"
    assert "(resumed)" in done.stderr

    # --model stays with the run (it is part of the graph); resuming appends to its trace
    models = {e.model for e in read_jsonl(here / "t.jsonl") if e.type == "model_request"}
    assert models == {"atdak-gpt-4"}
    starts = [e.run_id for e in read_jsonl(here / "t.jsonl") if e.type == "run_started"]
    assert starts == [run_id] * 3


def test_a_failing_provider_exits_3(here: Path) -> None:
    result = cli("run", "flows/failing.yaml", "--json", cwd=here)
    assert result.code == 3
    payload = json.loads(result.stdout)
    assert payload["status"] == "failed"
    assert "HTTP 503: the upstream model is overloaded" in payload["error"]
    assert payload["resume"] == f"atdak-agents resume {payload['run_id']}"


def test_online_runs_use_the_api_key_and_base_url(here: Path) -> None:
    answers = ['{"category": "shipping"}', "On its way!"]
    with LocalAtdakServer(answers) as server:
        env = {"ATDAK_API_KEY": DEFAULT_API_KEY, "ATDAK_BASE_URL": server.base_url}
        paused = cli("run", "flows/triage.yaml", "--json", cwd=here, env=env)
        assert len(server.requests) == 2
    assert paused.code == 4
    payload = json.loads(paused.stdout)
    assert payload["question"] == "Send this reply? On its way!"
    assert payload["choices"] == ["yes", "no"]
    assert payload["resume"] == f"atdak-agents resume {payload['run_id']} --answer yes"
    assert DEFAULT_API_KEY not in paused.stdout


def test_online_provider_failure_exits_3_and_says_how_to_continue(here: Path) -> None:
    down = Reply(status=503, error="down for maintenance", retry_after=0)
    with LocalAtdakServer(down) as server:
        env = {"ATDAK_API_KEY": DEFAULT_API_KEY, "ATDAK_BASE_URL": server.base_url}
        failed = cli("run", "flows/failing.yaml", cwd=here, env=env)
    assert failed.code == 3
    assert "HTTP 503: down for maintenance" in failed.stderr
    assert "failed at the provider" in failed.stderr
    assert failed.resume_command()[0] == "resume"


def test_streamed_tokens_reach_the_live_view_and_the_answer_stdout(here: Path) -> None:
    (here / "hello.yaml").write_text(
        "name: hello\nmodel: atdak-gpt-4-mini\nstate: {answer: {type: string}}\n"
        "outputs: {answer: state.answer}\n"
        "nodes:\n  greet: {llm: {prompt: Say hello., writes: answer}, next: end}\n",
        encoding="utf-8",
    )
    with LocalAtdakServer([Reply(text="Hello there, friend.", chunk_size=2)]) as server:
        env = {"ATDAK_API_KEY": DEFAULT_API_KEY, "ATDAK_BASE_URL": server.base_url}
        result = cli("run", "hello.yaml", cwd=here, env=env)
        assert server.requests[0].stream  # the live view asked for a stream
    assert (result.code, result.stdout) == (0, "Hello there, friend.\n")
    assert "Hello there, friend." in result.stderr


@pytest.mark.slow
def test_ctrl_c_leaves_a_run_that_resumes_where_it_stopped(here: Path) -> None:
    # the second request waits a minute (see slow.fixture.yaml): interrupt it
    running = Running("run", "flows/slow.yaml", cwd=here)
    running.wait_for("● write")
    running.wait_for("→ atdak-gpt-4-mini")  # its request is on its way
    running.process.send_signal(signal.SIGINT)
    stopped = running.finish()
    assert stopped.code == 130
    assert "stopping at the last checkpoint" in stopped.stderr
    command = stopped.resume_command()
    assert command == ["resume", command[1]]
    listed = cli("runs", "list", "--json", cwd=here)
    (row,) = json.loads(listed.stdout)
    assert (row["run_id"], row["status"], row["step"]) == (command[1], "interrupted", 1)
    # the fixture goes on where it was: the slow reply was used, the next one answers; the
    # first step is not run again (its only reply is used up: it would fail)
    done = cli(*command, cwd=here)
    assert done.code == 0, done.stderr
    assert done.stdout == "Spring: blossoms, then rain.\n"
    assert "● outline" not in done.stderr


def test_mistakes_exit_1_or_2_without_a_traceback(here: Path) -> None:
    (here / "broken.yaml").write_text(
        "name: broken\nnodes:\n  a: {function: {function: cli_steps:nope}, nxt: end}\n",
        encoding="utf-8",
    )
    broken = cli("run", "broken.yaml", cwd=here)
    assert broken.code == 1
    assert "broken.yaml:3:45 nodes.a.nxt: unknown key 'nxt' (did you mean 'next'?)" in (
        broken.stderr
    )
    missing = cli("run", "flows/nothing.yaml", cwd=here)
    assert (missing.code, missing.stderr) == (
        2,
        "atdak-agents run: flows/nothing.yaml: no such file\n",
    )
