"""`atdak-agents run` and `resume` in detail: inputs, fixtures, memory, limits and every
mistake's message and exit code, through ``main()`` in this process (test_run.py runs the real
command in a subprocess)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import InProcess


def test_inputs_from_options_and_a_file_over_the_examples(here: Path, atdak: InProcess) -> None:
    (here / "inputs.json").write_text('{"limit": 4, "label": "from the file"}', encoding="utf-8")
    result = atdak("run", "flows/counter.yaml", "--input-file", "inputs.json", "-i", "label=7")
    assert result.code == 0
    # `limit` is JSON (an integer); `label` is declared a string, so 7 stays text
    assert json.loads(result.stdout) == {"total": 4, "label": "7"}
    only_one = atdak("run", "flows/counter.yaml", "--input", "limit=2")
    assert json.loads(only_one.stdout) == {"total": 2, "label": "total"}  # label: its default


def test_a_failed_run_says_why_once_and_how_to_continue(atdak: InProcess) -> None:
    result = atdak("run", "flows/failing.yaml")
    assert result.code == 3
    assert result.stdout == ""
    assert "✗ failed after" in result.stderr and "the upstream model is overloaded" in (
        result.stderr
    )
    assert "failed at the provider (see above)" in result.stderr
    assert result.resume_command()[0] == "resume"


def test_a_request_the_fixture_does_not_expect_fails_loudly(here: Path, atdak: InProcess) -> None:
    (here / "flows" / "triage.fixture.yaml").write_text(
        'replies:\n  - when: "Classify the customer message"\n'
        '    reply: \'{"category": "billing"}\'\n',
        encoding="utf-8",
    )
    result = atdak("run", "flows/triage.yaml")
    assert result.code == 3
    assert (
        "no reply in flows/triage.fixture.yaml matches the request (model atdak-gpt-4-mini) "
        "that starts 'Write a short reply to: Where is my order #10423? (category: billing)'"
    ) in result.stderr


def test_offline_needs_a_fixture_and_says_where(
    here: Path, atdak: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    (here / "flows" / "triage.fixture.yaml").unlink()
    result = atdak("run", "flows/triage.yaml")
    assert result.code == 1
    assert "there is no fixture of replies for it: write flows/triage.fixture.yaml" in (
        result.stderr
    )
    monkeypatch.setenv("ATDAK_API_KEY", "sk-real-key-0000")
    forced = atdak("run", "flows/triage.yaml", "--offline")
    assert forced.code == 1 and "--offline was given" in forced.stderr


def test_offline_is_the_default_only_without_a_key(
    atdak: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATDAK_API_KEY", "sk-real-key-0000")
    forced = atdak("run", "flows/triage.yaml", "--offline", "--json")
    assert forced.code == 4  # answered by the fixture, without a notice
    assert "offline" not in forced.stderr
    assert json.loads(forced.stdout)["question"].startswith("Send this reply? Your order")


def test_a_broken_fixture_is_reported_at_its_lines(here: Path, atdak: InProcess) -> None:
    (here / "flows" / "triage.fixture.yaml").write_text(
        "replies:\n  - when: Classify\n    reply: {category: shipping}\n    tims: 2\n",
        encoding="utf-8",
    )
    result = atdak("run", "flows/triage.yaml")
    assert result.code == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith("flows/triage.fixture.yaml:3:5 replies[0].reply: a reply mapping")
    assert lines[1].startswith("flows/triage.fixture.yaml:4:5 replies[0].tims: unknown entry key")
    assert lines[2] == "atdak-agents run: flows/triage.fixture.yaml: 2 problems"


def test_memory_sessions_carry_over_between_runs(here: Path, atdak: InProcess) -> None:
    first = atdak("run", "flows/chat.yaml", "--session", "ada")
    assert (first.code, first.stdout) == (0, "Nice to meet you!\n")
    asked = ["run", "flows/chat.yaml", "-i", "message=What is my name?"]
    assert atdak(*asked, "--session", "ada").stdout == "You told me: Ada.\n"
    # a new session by default: the run's own id
    assert atdak(*asked).stdout == "I do not know your name yet.\n"
    assert (here / "flows" / ".atdak" / "chat-memory.db").is_file()  # relative to the file


def test_a_run_wide_limit_stops_the_run_resumably(here: Path, atdak: InProcess) -> None:
    path = here / "flows" / "counter.yaml"
    path.write_text(path.read_text(encoding="utf-8") + "limits: {steps: 2}\n", encoding="utf-8")
    result = atdak("run", "flows/counter.yaml", "-i", "limit=10")
    assert result.code == 5
    assert "stopped: limit reached: usage limit reached: steps 3 exceeds the limit of 2" in (
        result.stderr
    )
    command = result.resume_command()
    # a limit is a deployment setting: raise it, and the run continues where it stopped
    path.write_text(path.read_text(encoding="utf-8").replace("steps: 2", "steps: 20"))
    done = atdak(*command)
    assert (done.code, json.loads(done.stdout)) == (0, {"total": 10, "label": "total"})


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["run", "flows"], 2, "flows: a folder, not a workflow file"),
        (["run", "flows/counter.yaml", "-i", "limit"], 2, "--input 'limit': write it as KEY="),
        (["run", "flows/counter.yaml", "-i", "limt=3"], 1, "unknown input 'limt'"),
        (["run", "flows/counter.yaml", "-i", "limit=lots"], 1, "input 'limit' should be integer"),
        (["run", "flows/triage.yaml", "--model", "atdak-gtp-4"], 1, "did you mean 'atdak-gpt-4'"),
        (["run", "flows/counter.yaml", "--input-file", "no.json"], 2, "--input-file no.json"),
        (["resume", "0123abc"], 2, "no checkpoint file .atdak/agents.db here"),
        (["runs", "show", "0123abc"], 2, "no checkpoint file .atdak/agents.db"),
        (["run"], 2, "the following arguments are required: FILE"),
        (["run", "flows/counter.yaml", "--modle", "x"], 2, "unrecognized arguments"),
    ],
)
def test_mistakes_are_explained_with_the_right_exit_code(
    atdak: InProcess, args: list[str], code: int, message: str
) -> None:
    result = atdak(*args)
    assert (result.code, message in result.stderr) == (code, True), result.stderr


def test_bad_input_files_are_input_errors(here: Path, atdak: InProcess) -> None:
    (here / "list.json").write_text("[1, 2]", encoding="utf-8")
    (here / "bad.json").write_text("{oops", encoding="utf-8")
    listed = atdak("run", "flows/counter.yaml", "--input-file", "list.json")
    assert listed.code == 1 and "must hold a JSON object of inputs" in listed.stderr
    bad = atdak("run", "flows/counter.yaml", "--input-file", "bad.json")
    assert bad.code == 1 and "not valid JSON" in bad.stderr


def test_resume_finds_runs_by_prefix_and_refuses_what_it_cannot_do(atdak: InProcess) -> None:
    atdak("run", "flows/counter.yaml")
    unknown = atdak("resume", "0123abc")
    assert unknown.code == 2
    assert "no run '0123abc' in .atdak/agents.db; `atdak-agents runs list`" in unknown.stderr
    paused = atdak("run", "flows/triage.yaml")
    run_id = paused.resume_command()[1]
    stopped = atdak("run", "flows/counter.yaml", "--json")
    finished = atdak("resume", json.loads(stopped.stdout)["run_id"][:8])
    assert finished.code == 2 and "has finished (done)" in finished.stderr
    interrupted = atdak("run", "flows/failing.yaml")
    failed_id = interrupted.resume_command()[1]
    answer = atdak("resume", failed_id, "--answer", "yes")
    assert answer.code == 2 and "is not waiting for an answer (it is failed)" in answer.stderr
    assert atdak("resume", run_id, "--answer", "yes").code == 0


def test_resume_takes_a_run_another_program_started_with_its_workflow(
    here: Path, atdak: InProcess
) -> None:
    from atdak_agents.graph.sqlite_checkpoint import SQLiteCheckpointer
    from atdak_agents.workflow import load_workflow

    workflow = load_workflow(here / "flows" / "counter.yaml")

    async def start() -> str:
        async with SQLiteCheckpointer(here / ".atdak" / "agents.db") as checkpointer:
            run = workflow.graph.start({"limit": 4}, checkpointer=checkpointer)
            await run.step()
            await run.release()
            return run.id

    import asyncio

    run_id = asyncio.run(start())
    lost = atdak("resume", run_id)
    assert lost.code == 2 and "was not started by `atdak-agents run`" in lost.stderr
    listed = json.loads(atdak("runs", "list", "--json").stdout)
    assert [(r["workflow"], r["status"]) for r in listed] == [(None, "running")]
    shown = atdak("runs", "show", run_id)
    assert "not started by `atdak-agents run`: its state needs its graph" in shown.stdout
    done = atdak("resume", run_id, "--workflow", "flows/counter.yaml")
    assert (done.code, json.loads(done.stdout)["total"]) == (0, 4)
    # from now on the command knows its workflow
    listed = json.loads(atdak("runs", "list", "--json").stdout)
    assert [(r["workflow"], r["status"]) for r in listed] == [("flows/counter.yaml", "done")]


def test_a_changed_workflow_is_refused_unless_migrated(here: Path, atdak: InProcess) -> None:
    paused = atdak("run", "flows/triage.yaml")
    path = here / "flows" / "triage.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("short reply", "brief reply"))
    fixture = here / "flows" / "triage.fixture.yaml"
    fixture.write_text(fixture.read_text(encoding="utf-8").replace("short reply", "brief reply"))
    changed = atdak(*paused.resume_command())
    assert changed.code == 1
    assert "was started with a different version of graph 'triage'" in changed.stderr
    assert "resume with --migrate" in changed.stderr
    migrated = atdak(*paused.resume_command(), "--migrate")
    assert migrated.code == 0, migrated.stderr


def test_a_map_node_shows_its_progress_in_the_live_view(atdak: InProcess) -> None:
    result = atdak("run", "flows/batch.yaml")
    assert result.code == 0
    assert json.loads(result.stdout) == {"sizes": [6, 4, 7, 4, 3, 4, 5, 4]}
    # off a terminal the bar is printed at each quarter (on one, it is redrawn in place)
    lines = [line.strip() for line in result.stderr.splitlines()]
    assert lines[1:6] == ["● measure (map)", "8 items", "2/8", "4/8", "6/8"]


def test_another_checkpoint_file_is_named_in_the_resume_command(
    here: Path, atdak: InProcess
) -> None:
    paused = atdak("run", "flows/triage.yaml", "--db", "elsewhere/runs.db")
    command = paused.resume_command()
    assert command[2:] == ["--db", "elsewhere/runs.db", "--answer", "yes"]
    assert not (here / ".atdak").exists()
    assert atdak("runs", "list", "--db", "elsewhere/runs.db", "--json").stdout.count("triage") == 2
    assert atdak(*command).code == 0


def test_a_workflow_checkpointer_is_used_relative_to_its_file(here: Path, atdak: InProcess) -> None:
    path = here / "flows" / "triage.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text + "checkpointer: {store: sqlite, path: runs/triage.db}\n")
    paused = atdak("run", "flows/triage.yaml")
    assert paused.resume_command()[2:4] == ["--db", "flows/runs/triage.db"]
    path.write_text(text + "checkpointer: {store: memory}\n")
    in_memory = atdak("run", "flows/triage.yaml")
    assert in_memory.code == 4
    assert "Its checkpoints are kept in memory" in in_memory.stderr
    assert "atdak-agents resume" not in in_memory.stderr
