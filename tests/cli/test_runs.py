"""`atdak-agents runs list`, `runs show` and `runs prune`: the runs stored in a checkpoint file."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path

import pytest
from cli_helpers import InProcess, cli

from atdak_agents.server._events import RunMeta, SQLiteEventStore, StoredEvent


def test_runs_are_listed_most_recent_first(here: Path, atdak: InProcess) -> None:
    empty = atdak("runs", "list")
    assert (empty.code, empty.stdout) == (0, "")
    assert "no runs yet: there is no .atdak/agents.db here" in empty.stderr
    done_id = json.loads(atdak("run", "flows/counter.yaml", "--json").stdout)["run_id"]
    waiting_id = atdak("run", "flows/triage.yaml").resume_command()[1]

    listed = cli("runs", "list", cwd=here)  # the real command, once
    assert listed.code == 0
    header, first, second = listed.stdout.splitlines()
    assert header.split() == ["RUN", "WORKFLOW", "STATUS", "STEP", "UPDATED", "QUESTION"]
    assert first.split()[:4] == [waiting_id[:12], "flows/triage.yaml", "waiting", "3"]
    assert first.endswith("Send this reply? Your order #10423 left our warehouse yeste…")
    assert second.split()[:4] == [done_id[:12], "flows/counter.yaml", "done", "3"]

    rows = json.loads(atdak("runs", "list", "--json", "--status", "waiting").stdout)
    assert [(r["run_id"], r["workflow"], r["graph"]) for r in rows] == [
        (waiting_id, "flows/triage.yaml", "triage")
    ]
    assert rows[0]["question"].startswith("Send this reply?")
    assert len(json.loads(atdak("runs", "list", "--json", "--limit", "1").stdout)) == 1
    none = atdak("runs", "list", "--status", "failed")
    assert none.stdout == "" and "no runs in .atdak/agents.db with status failed" in none.stderr


def test_a_run_is_shown_with_its_state_and_history(here: Path, atdak: InProcess) -> None:
    paused = atdak("run", "flows/triage.yaml", "-i", "question=Where is order #7?")
    run_id = paused.resume_command()[1]
    shown = atdak("runs", "show", run_id[:6])
    assert shown.code == 0
    lines = shown.stdout.splitlines()
    assert lines[0] == f"run       {run_id}"
    assert lines[1] == "workflow  flows/triage.yaml (graph 'triage')"
    assert lines[2] == "status    waiting after step 3"
    assert lines[3] == "question  Send this reply? Your order #10423 left our warehouse yesterday."
    assert 'inputs    {"question": "Where is order #7?"}' in lines
    assert any(
        line.startswith('state     {"category": "shipping", "reply": "Your') for line in lines
    )
    history = lines[lines.index("history") + 1 :]
    assert [line.split()[2:] for line in history[:2]] == [
        ["classify", "wrote", "category", "→", "answer"],
        ["answer", "wrote", "reply", "→", "review"],
    ]
    assert "(review asked; waiting for the answer)" in history[2]
    assert history[3] == f'resume    atdak-agents resume {run_id} --answer "..."'

    data = json.loads(atdak("runs", "show", run_id, "--json").stdout)
    assert data["status"] == "waiting" and data["state"]["category"] == "shipping"
    assert [step["nodes"] for step in data["history"]] == [["classify"], ["answer"], ["review"]]
    assert data["history"][0]["updates"] == [
        {"node": "classify", "key": "category", "value": "shipping"}
    ]
    assert data["history"][2]["waiting"] == ["review"]


def test_show_masks_secrets_and_says_when_the_workflow_is_gone(
    here: Path, atdak: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOP_KEY", "sk-shop-4f9a2b7c1d00")
    run_id = json.loads(atdak("run", "flows/secret.yaml", "--json").stdout)["run_id"]
    shown = atdak("runs", "show", run_id)
    assert "sk-shop-4f9a2b7c1d00" not in shown.stdout
    assert 'output    {"note": "key in use: ***"}' in shown.stdout
    (here / "flows" / "secret.yaml").unlink()
    monkeypatch.delenv("SHOP_KEY")
    gone = atdak("runs", "show", run_id)
    assert gone.code == 0
    assert "flows/secret.yaml does not load" in gone.stdout
    assert "sk-shop" not in gone.stdout  # the default patterns still mask key-like text


def test_old_finished_runs_are_pruned_with_their_steps(here: Path, atdak: InProcess) -> None:
    old_id = json.loads(atdak("run", "flows/counter.yaml", "--json").stdout)["run_id"]
    new_id = json.loads(atdak("run", "flows/counter.yaml", "--json").stdout)["run_id"]
    waiting_id = atdak("run", "flows/triage.yaml").resume_command()[1]
    db = here / ".atdak" / "agents.db"
    with sqlite3.connect(db) as conn:  # the first run was last touched 40 days ago
        conn.execute(
            "UPDATE checkpoint_runs SET updated_at = ? WHERE run_id = ?",
            (time.time() - 40 * 86_400, old_id),
        )

    dry = atdak("runs", "prune", "--dry-run")
    assert dry.code == 0 and dry.stdout.split() == [old_id]
    assert "would delete 1 run (done or failed, last updated more than 30 days ago)" in dry.stderr
    pruned = cli("runs", "prune", cwd=here)  # the real command, once
    assert pruned.code == 0 and "deleted 1 run (done or failed" in pruned.stderr
    listed = json.loads(atdak("runs", "list", "--json").stdout)
    assert {r["run_id"] for r in listed} == {new_id, waiting_id}
    with sqlite3.connect(db) as conn:
        left = conn.execute("SELECT COUNT(*) FROM cli_runs WHERE run_id = ?", (old_id,))
        assert left.fetchone() == (0,)
    gone = atdak("runs", "show", old_id)
    assert gone.code != 0 and old_id[:8] in gone.stderr

    waiting = json.loads(
        atdak("runs", "prune", "--older-than", "0", "--status", "waiting", "--json").stdout
    )
    assert waiting == {"deleted": [waiting_id], "busy": []}
    bad = atdak("runs", "prune", "--older-than", "-1")
    assert bad.code == 2 and "--older-than must be 0 or more days" in bad.stderr


async def _server_events(path: Path, run_ids: list[str]) -> None:
    """Events and settings of ``run_ids`` in a server's events file, as `serve` stores them."""
    store = SQLiteEventStore(str(path))
    try:
        for run_id in run_ids:
            await store.save_meta(RunMeta(run_id, "counter", "key-abc", False, "api"))
            await store.append(run_id, [StoredEvent(1, "run_started", b"{}")])
    finally:
        await store.close()


def test_pruning_a_servers_file_deletes_its_events_too(here: Path, atdak: InProcess) -> None:
    old_id = json.loads(atdak("run", "flows/counter.yaml", "--json").stdout)["run_id"]
    new_id = json.loads(atdak("run", "flows/counter.yaml", "--json").stdout)["run_id"]
    db = here / ".atdak" / "agents.db"
    events = here / ".atdak" / "agents.events.db"  # the file `serve --database agents.db` keeps
    asyncio.run(_server_events(events, [old_id, new_id]))

    pruned = json.loads(atdak("runs", "prune", "--older-than", "0", "--json").stdout)
    assert sorted(pruned["deleted"]) == sorted([old_id, new_id])
    with sqlite3.connect(events) as conn:
        for table in ("server_events", "server_runs"):
            left = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
            assert left == (0,), table
    assert db.exists()
