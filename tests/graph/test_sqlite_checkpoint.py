"""SQLiteCheckpointer beyond the shared contract: the file, migrations, JSON, leases across
connections, and real processes — killed mid-step, racing, pausing for a human, sharing a session.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from atdak_agents.exceptions import NodeError, RunLockedError, StoreError, UsageError
from atdak_agents.graph.builder import GraphBuilder
from atdak_agents.graph.checkpoint import RunRecord, StepRecord
from atdak_agents.graph.sqlite_checkpoint import MIGRATIONS, SQLiteCheckpointer
from atdak_agents.memory import SQLiteStore

LATEST = MIGRATIONS[-1].version


def _tables(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE sql NOT NULL ORDER BY name")
        return [name for (name,) in rows]


def _pragma(path: Path, name: str) -> Any:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]


def _count_steps() -> GraphBuilder:
    g = GraphBuilder("count")
    g.state("n", int, default=0)
    g.function("add", lambda state: {"n": state["n"] + 1}, writes=["n"])
    g.router("loop", [("state.n < 3", "add")], otherwise="end")
    g.chain("add", "loop")
    return g


# --------------------------------------------------------------------------- the file


async def test_file_is_wal_with_prefixed_versioned_tables(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "runs.db"
    async with SQLiteCheckpointer(path) as store:
        result = await _count_steps().build().run(checkpointer=store)
        assert result.status == "done"
    assert _pragma(path, "journal_mode") == "wal"
    assert all(name.startswith(("checkpoint_", "sqlite_")) for name in _tables(path))
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM checkpoint_schema").fetchone() == (LATEST,)


async def test_shares_a_file_with_the_memory_store(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 7")  # the application's, left alone
    g = GraphBuilder("remember")
    g.state("seen", list)
    g.memory_write("note", [{"role": "user", "content": "记住：订单 #10423"}])
    g.memory_read("recall", writes="seen")
    g.chain("note", "recall", "end")
    async with SQLiteStore(path) as memory, SQLiteCheckpointer(path) as store:
        result = await g.build().run(checkpointer=store, memory=memory, session_id="alice")
        assert result.status == "done"
        assert [m["content"] for m in result.state["seen"]] == ["记住：订单 #10423"]
        assert len(await memory.load("alice")) == 1
        assert [r.run_id for r in await store.list_runs(session_id="alice")] == [result.run_id]
    names = _tables(path)
    assert any(n.startswith("memory_") for n in names)
    assert any(n.startswith("checkpoint_") for n in names)
    assert _pragma(path, "user_version") == 7


V1_FILE = """
CREATE TABLE checkpoint_schema (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
INSERT INTO checkpoint_schema VALUES (1, 1);
CREATE TABLE checkpoint_runs (
    id INTEGER PRIMARY KEY, run_id TEXT NOT NULL UNIQUE, graph TEXT NOT NULL,
    fingerprint TEXT NOT NULL, inputs TEXT NOT NULL, status TEXT NOT NULL, session_id TEXT,
    created_at REAL NOT NULL, updated_at REAL NOT NULL, step INTEGER NOT NULL DEFAULT 0,
    question TEXT, output TEXT, error TEXT, parent_run_id TEXT, parent_step INTEGER
);
CREATE INDEX checkpoint_runs_by_update ON checkpoint_runs (updated_at);
CREATE TABLE checkpoint_steps (
    run INTEGER NOT NULL, step INTEGER NOT NULL, updates TEXT NOT NULL, frontier TEXT NOT NULL,
    bookkeeping TEXT NOT NULL, nodes TEXT NOT NULL, created_at REAL NOT NULL,
    PRIMARY KEY (run, step)
);
CREATE TABLE checkpoint_calls (
    run INTEGER NOT NULL, step INTEGER NOT NULL, key TEXT NOT NULL, payload TEXT NOT NULL,
    created_at REAL NOT NULL, PRIMARY KEY (run, step, key)
);
INSERT INTO checkpoint_runs VALUES (1, 'old-run', 'count', '{fingerprint}', '{{}}', 'interrupted',
    '老客户', 1700000000.0, 1700000001.0, 1, NULL, NULL, 'limit reached: steps', NULL, NULL);
INSERT INTO checkpoint_steps VALUES (1, 1, '[["add","n",1]]', '[{{"node":"add","path":"add"}}]',
    '{{"joins":{{}},"routes":{{"loop:0":1}},"answers":{{}},"waiting":[],"ended":[]}}', '["add"]',
    1700000001.0);
INSERT INTO checkpoint_calls VALUES (1, 2, 'add#model:1', '{{"content":"旧的"}}', 1700000001.5);
"""


async def test_an_old_version_file_is_migrated_and_its_runs_resume(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    graph = _count_steps().build()
    with sqlite3.connect(path) as conn:
        conn.executescript(V1_FILE.format(fingerprint=graph.fingerprint))
    async with SQLiteCheckpointer(path) as store:
        run = await store.get_run("old-run")
        assert run is not None and (run.status, run.session_id, run.step) == (
            "interrupted",
            "老客户",
            1,
        )
        assert await store.load_calls("old-run", 2) == {"add#model:1": {"content": "旧的"}}
        assert await graph.state_at("old-run", 1, checkpointer=store) == {"n": 1}
        result = await graph.resume("old-run", checkpointer=store)  # leases: new in version 2
        assert (result.status, result.state["n"], result.steps) == ("done", 3, 3)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM checkpoint_schema").fetchone() == (LATEST,)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


async def test_migrated_schema_equals_a_fresh_one(tmp_path: Path) -> None:
    old, fresh = tmp_path / "old.db", tmp_path / "fresh.db"
    with sqlite3.connect(old) as conn:
        conn.executescript(V1_FILE.format(fingerprint="x"))
    for path in (old, fresh):
        async with SQLiteCheckpointer(path) as store:
            await store.list_runs()

    def schema(path: Path) -> list[tuple[str, str]]:
        with sqlite3.connect(path) as conn:
            rows = conn.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()
        return [(name, " ".join((sql or "").split())) for name, sql in rows]

    assert schema(old) == schema(fresh)
    assert [m.version for m in MIGRATIONS] == list(range(1, LATEST + 1))


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    async with SQLiteCheckpointer(path) as store:
        await store.list_runs()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE checkpoint_schema SET version = ?", (LATEST + 1,))
    async with SQLiteCheckpointer(path) as store:
        with pytest.raises(
            StoreError, match=rf"checkpoint tables .* version {LATEST + 1}.*upgrade"
        ):
            await store.list_runs()


async def test_closed_checkpointer_refuses_calls(tmp_path: Path) -> None:
    store = SQLiteCheckpointer(tmp_path / "c.db")
    await store.list_runs()
    await store.close()
    await store.close()  # twice is fine
    with pytest.raises(UsageError, match="closed"):
        await store.get_run("x")


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lease_ttl|ttl"):
        SQLiteCheckpointer(tmp_path / "c.db", lease_ttl=0)
    with pytest.raises(ValueError, match="synchronous"):
        SQLiteCheckpointer(tmp_path / "c.db", synchronous="OFF")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- values are JSON


class Ticket(BaseModel):
    id: int
    title: str


@dataclasses.dataclass
class Reply:
    text: str
    tags: tuple[str, ...]


async def test_state_is_persisted_as_json(tmp_path: Path) -> None:
    g = GraphBuilder("json")
    g.state("ticket")
    g.state("reply")
    g.function("open", lambda: {"ticket": Ticket(id=7, title="退款")}, writes=["ticket"])
    g.function("answer", lambda: {"reply": Reply("好的", ("zh", "refund"))}, writes=["reply"])
    g.chain("open", "answer", "end")
    graph = g.build()
    async with SQLiteCheckpointer(tmp_path / "c.db") as store:
        result = await graph.run(checkpointer=store)
        assert isinstance(result.state["ticket"], Ticket)  # the live run keeps the objects
        restored = await graph.state_at(result.run_id, 2, checkpointer=store)
    assert restored == {
        "ticket": {"id": 7, "title": "退款"},
        "reply": {"text": "好的", "tags": ["zh", "refund"]},
    }


async def test_a_value_json_cannot_hold_fails_the_run_naming_node_and_key(tmp_path: Path) -> None:
    g = GraphBuilder("opaque")
    g.state("handle")
    g.function("open_file", lambda: {"handle": object()}, writes=["handle"])
    g.chain("open_file", "end")
    async with SQLiteCheckpointer(tmp_path / "c.db") as store:
        run = g.build().start(checkpointer=store)
        with pytest.raises(NodeError, match=r"node 'open_file'.*'handle'.*cannot store as JSON"):
            await run.step()
        stored = await store.get_run(run.id)
        assert stored is not None and stored.status == "failed"
        assert "persisted values must be JSON data" in (stored.error or "")
        assert await store.load_steps(run.id) == []
        with pytest.raises(UsageError, match="inputs of run 'bad'.*JSON"):
            await store.create_run(
                RunRecord(run_id="bad", graph="g", fingerprint="f", inputs={"x": object()})
            )


# --------------------------------------------------------------------------- leases


async def test_leases_hold_across_connections(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    async with SQLiteCheckpointer(path) as first, SQLiteCheckpointer(path) as second:
        await first.create_run(RunRecord("r", "g", "f", {}), owner="one")
        with pytest.raises(RunLockedError, match=r"another runner \(one, lease expires in"):
            await second.acquire("r", "two")
        step = StepRecord("r", 1, [("a", "n", 1)], [], {}, ["a"])
        with pytest.raises(RunLockedError, match="runner two does not hold"):
            await second.save_step(step, owner="two", status="running")
        await first.save_step(step, owner="one", status="running", release=True)
        await second.acquire("r", "two")
        assert [s.step for s in await second.load_steps("r")] == [1]


async def test_a_long_step_keeps_its_lease(tmp_path: Path) -> None:
    """The runner renews its lease while a step outlasts lease_ttl; nobody can take the run."""
    path = tmp_path / "c.db"
    attempts: list[str] = []

    async def slow(context: Any) -> dict[str, Any]:
        for _ in range(3):
            await asyncio.sleep(0.25)  # 0.75 s in all: three times the lease's 0.25 s
            try:
                await other.acquire(context.env.run_id, "intruder")
                attempts.append("taken")
            except RunLockedError:
                attempts.append("refused")
        return {"done": True}

    g = GraphBuilder("slow")
    g.state("done", bool)
    g.function("slow", slow, writes=["done"])
    g.chain("slow", "end")
    async with SQLiteCheckpointer(path, lease_ttl=0.25) as store, SQLiteCheckpointer(path) as other:
        result = await g.build().run(checkpointer=store)
    assert attempts == ["refused"] * 3
    assert result.status == "done"


# --------------------------------------------------------------------------- checkpoints stay small


def _grow(steps: int) -> GraphBuilder:
    g = GraphBuilder("grow")
    g.state("count", int, default=0)
    g.state("log", list, reducer="append")
    g.function(
        "add",
        lambda state: {"count": state["count"] + 1, "log": f"{state['count']:06d} " + "x" * 93},
        writes=["count", "log"],
    )
    g.router("again", [(f"state.count < {steps}", "add")], otherwise="end")
    g.chain("add", "again")
    return g


async def _database_size(path: Path, steps: int) -> tuple[int, int]:
    graph = _grow(steps).build()
    async with SQLiteCheckpointer(path) as store:
        result = await graph.run(checkpointer=store)
        assert (result.status, result.steps, len(result.state["log"])) == ("done", steps, steps)
        assert await graph.state_at(result.run_id, steps, checkpointer=store) == result.state
    return _compacted_size(path), len(json.dumps(result.state))


def _compacted_size(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("VACUUM")
    return path.stat().st_size


async def test_a_1000_step_run_grows_with_its_state_not_quadratically(tmp_path: Path) -> None:
    """Each step appends ~100 bytes to the state: 100 KB after 1,000 steps. Storing the whole
    state at every step would take ~50 MB (100 B x (1 + 2 + ... + 1,000)); storing what each
    step changed takes a few hundred bytes per step."""
    small, small_state = await _database_size(tmp_path / "100.db", 100)
    large, large_state = await _database_size(tmp_path / "1000.db", 1000)
    quadratic = sum(100 * i for i in range(1, 1001))
    per_step = (large - small) / 900
    print(
        f"\n100 steps: {small:,} B (state {small_state:,} B); 1,000 steps: {large:,} B "
        f"(state {large_state:,} B), {per_step:.0f} B per step; the whole state at every "
        f"step would be {quadratic:,} B"
    )
    assert large < quadratic / 50  # nowhere near a copy of the state per step
    assert per_step < 5 * 110  # each step costs its own update (~110 B) and a little more
    assert large < 12 * small  # ten times the steps: about ten times the file
    assert large < 5 * large_state  # the file is a small multiple of the state


# --------------------------------------------------------------------------- real processes

CHILD = """
import asyncio, json, os, sys, time
from typing import Any
from atdak_agents.exceptions import RunLockedError
from atdak_agents.graph.builder import GraphBuilder
from atdak_agents.graph.journal import journaled
from atdak_agents.graph.spec import Limits
from atdak_agents.graph.sqlite_checkpoint import SQLiteCheckpointer
from atdak_agents.memory import SQLiteStore

command, db, run_id = sys.argv[1:4]
EFFECTS = os.environ.get("EFFECTS", os.devnull)
CRASH_AT, NODES = 4, 6


def effect(what: str) -> None:
    # a side effect the world sees: one line per call actually made
    fd = os.open(EFFECTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, (what + "\\n").encode())
    finally:
        os.close(fd)


async def model(node: str) -> dict:
    effect(f"model {node}")
    return {"content": f"{node} 的回答"}


async def tool(node: str) -> dict:
    effect(f"tool {node}")
    return {"result": f"{node} done"}


def worker(index: int) -> Any:
    async def work(state: Any, context: Any) -> dict:
        node = context.path
        reply = await journaled("model", lambda: model(node), dump=dict, load=dict)
        if command == "crash" and index == CRASH_AT:
            print("in-progress", flush=True)  # the parent kills us here, mid-step
            await asyncio.sleep(60)
        if command == "race":
            await asyncio.sleep(0.3)
        used = await journaled("tool", lambda: tool(node), dump=dict, load=dict, key="call_1")
        return {"log": f"{node}: {reply['content']} / {used['result']}"}
    return work


def pipeline() -> Any:
    g = GraphBuilder("pipeline")
    g.state("log", list, reducer="append")
    names = [f"w{i}" for i in range(1, NODES + 1)]
    for i, name in enumerate(names, 1):
        g.function(name, worker(i), writes=["log"])
    g.chain(*names, "end")
    return g.build()


def approval() -> Any:
    g = GraphBuilder("approval")
    g.input("amount", int)
    g.state("decision", str)
    g.state("sent", bool, default=False)
    g.human("review", "Refund {{ inputs.amount }} EUR?", writes="decision", choices=["yes", "no"])
    g.router("decide", [("state.decision == 'yes'", "send")], otherwise="end")
    g.function("send", lambda: {"sent": True}, writes=["sent"])
    g.chain("review", "decide")
    g.edge("send", "end")
    return g.build()


def chat() -> Any:
    g = GraphBuilder("chat")
    g.input("tag", str)
    g.state("log", list, reducer="append")
    names = []
    for i in range(8):
        async def note(inputs: Any, i: int = i) -> dict:
            await asyncio.sleep(0.01)
            return {"log": f"{inputs['tag']}-{i}"}
        g.function(f"note{i}", note, writes=["log"])
        g.memory_write(f"say{i}", [{"role": "user", "content": "{{ inputs.tag }} " + str(i)}])
        names += [f"note{i}", f"say{i}"]
    g.chain(*names, "end")
    return g.build()


async def resume_when_free(graph: Any, store: Any, **options: Any) -> Any:
    deadline = time.monotonic() + 15
    while True:
        try:
            return await graph.resume(run_id, checkpointer=store, **options)
        except RunLockedError as exc:
            print("locked", exc, flush=True)
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


def show(result: Any) -> None:
    fields = {"status": result.status, "steps": result.steps, "question": result.question}
    print("result", json.dumps({**fields, "state": result.state}, ensure_ascii=False), flush=True)


async def main() -> None:
    if command == "crash":
        async with SQLiteCheckpointer(db, lease_ttl=3.0) as store:
            run = pipeline().start(checkpointer=store, run_id=run_id)
            while True:
                report = await run.step()
                print("step", report.step, flush=True)
    elif command == "resume":
        async with SQLiteCheckpointer(db) as store:
            show(await resume_when_free(pipeline(), store))
    elif command == "prepare":
        async with SQLiteCheckpointer(db) as store:
            show(await pipeline().run(checkpointer=store, run_id=run_id, limits=Limits(steps=2)))
    elif command == "race":
        print("ready", flush=True)
        sys.stdin.readline()
        async with SQLiteCheckpointer(db) as store:
            try:
                show(await pipeline().resume(run_id, checkpointer=store))
            except RunLockedError as exc:
                print("locked", exc, flush=True)
    elif command == "ask":
        async with SQLiteCheckpointer(db) as store:
            show(await approval().run({"amount": 30}, checkpointer=store, run_id=run_id))
    elif command == "answer":
        async with SQLiteCheckpointer(db) as store:
            show(await approval().resume(run_id, answer=sys.argv[4], checkpointer=store))
    elif command == "chat":
        print("ready", flush=True)
        sys.stdin.readline()
        async with SQLiteStore(db) as memory, SQLiteCheckpointer(db) as store:
            result = await chat().run(
                {"tag": sys.argv[4]}, checkpointer=store, memory=memory, run_id=run_id,
                session_id="shared-session",
            )
            show(result)


asyncio.run(main())
"""


def _child(*args: str, effects: Path | None = None) -> subprocess.Popen[str]:
    env = dict(os.environ)
    if effects is not None:
        env["EFFECTS"] = str(effects)
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(CHILD), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _finish(child: subprocess.Popen[str]) -> list[str]:
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    return out.splitlines()


def _result(lines: list[str]) -> dict[str, Any]:
    (line,) = [line for line in lines if line.startswith("result ")]
    value: dict[str, Any] = json.loads(line.removeprefix("result "))
    return value


def _effects(path: Path) -> Counter[str]:
    return Counter(path.read_text().splitlines()) if path.exists() else Counter()


def _step_rows(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT step, updates, frontier, bookkeeping, created_at FROM checkpoint_steps"
            " ORDER BY step"
        ).fetchall()


@pytest.mark.slow
def test_sigkill_mid_step_then_resume_in_a_new_process(tmp_path: Path) -> None:
    """A run is killed while step 4 waits, after its model call was journaled. A new process
    resumes it: steps 1-3 are kept as they were, no model or tool call is made twice, and the
    run finishes."""
    db, effects = tmp_path / "runs.db", tmp_path / "effects.txt"
    child = _child("crash", str(db), "run-1", effects=effects)
    assert child.stdout is not None
    lines = [child.stdout.readline().strip() for _ in range(4)]
    assert lines == ["step 1", "step 2", "step 3", "in-progress"], child.communicate()[1]
    os.kill(child.pid, signal.SIGKILL)
    child.communicate()
    assert child.returncode == -signal.SIGKILL
    before = _step_rows(db)
    assert [row[0] for row in before] == [1, 2, 3]  # every completed step is there
    made = _effects(effects)
    assert made["model w4"] == 1 and made["tool w4"] == 0  # killed between the two calls

    resumed = _finish(_child("resume", str(db), "run-1", effects=effects))
    locked = [line for line in resumed if line.startswith("locked")]
    assert locked, "the dead runner's lease should have been in force at first"
    assert f":{child.pid}:" in locked[0] and "wait for it to finish" in locked[0]
    result = _result(resumed)
    assert (result["status"], result["steps"]) == ("done", 6)
    assert result["state"]["log"] == [f"w{i}: w{i} 的回答 / w{i} done" for i in range(1, 7)]
    assert _step_rows(db)[:3] == before  # the completed steps were not rewritten
    made = _effects(effects)
    assert made == Counter({f"{kind} w{i}": 1 for i in range(1, 7) for kind in ("model", "tool")})


@pytest.mark.slow
def test_two_processes_resuming_one_run_only_one_advances_it(tmp_path: Path) -> None:
    db, effects = tmp_path / "runs.db", tmp_path / "effects.txt"
    prepared = _result(_finish(_child("prepare", str(db), "run-2", effects=effects)))
    assert (prepared["status"], prepared["steps"]) == ("interrupted", 2)
    racers = [_child("race", str(db), "run-2", effects=effects) for _ in range(2)]
    for racer in racers:
        assert racer.stdout is not None and racer.stdout.readline() == "ready\n"
    for racer in racers:
        assert racer.stdin is not None
        racer.stdin.write("go\n")
        racer.stdin.flush()
    outcomes = [_finish(racer) for racer in racers]
    winners = [lines for lines in outcomes if any(x.startswith("result ") for x in lines)]
    losers = [line for lines in outcomes for line in lines if line.startswith("locked")]
    assert len(winners) == 1 and len(losers) == 1, outcomes
    assert "run 'run-2' is being advanced by another runner" in losers[0]
    assert "wait for it to finish or for its lease to expire" in losers[0]
    result = _result(winners[0])
    assert (result["status"], result["steps"], len(result["state"]["log"])) == ("done", 6, 6)
    assert set(_effects(effects).values()) == {1}  # nobody ran a node twice
    assert [row[0] for row in _step_rows(db)] == [1, 2, 3, 4, 5, 6]


@pytest.mark.slow
def test_a_human_pause_in_one_process_is_answered_in_another(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    paused = _result(_finish(_child("ask", str(db), "run-3")))
    assert (paused["status"], paused["question"]) == ("waiting", "Refund 30 EUR?")
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT status, question, lease_owner FROM checkpoint_runs WHERE run_id = 'run-3'"
        ).fetchone()
    assert row == ("waiting", "Refund 30 EUR?", None)  # persisted as waiting; nobody holds it
    answer = _child("answer", str(db), "run-3", "maybe")
    _, err = answer.communicate(timeout=60)
    assert answer.returncode != 0 and "answer 'maybe' for 'review' is not one of: yes, no" in err
    done = _result(_finish(_child("answer", str(db), "run-3", "yes")))
    assert done["status"] == "done"
    assert done["state"] == {"decision": "yes", "sent": True}


@pytest.mark.slow
def test_two_runs_on_one_session_in_parallel_do_not_interfere(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    children = [_child("chat", str(db), f"run-{tag}", tag) for tag in ("甲", "乙")]
    for child in children:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    results = [_result(_finish(child)) for child in children]
    for tag, result in zip(("甲", "乙"), results, strict=True):
        assert result["status"] == "done"
        assert result["state"]["log"] == [f"{tag}-{i}" for i in range(8)]

    async def check() -> None:
        async with SQLiteCheckpointer(db) as store, SQLiteStore(db) as memory:
            runs = await store.list_runs(session_id="shared-session")
            assert {r.run_id for r in runs} == {"run-甲", "run-乙"}
            assert all(r.status == "done" for r in runs)
            for tag in ("甲", "乙"):
                steps = await store.load_steps(f"run-{tag}")
                assert len(steps) == 16
                written = [u[2] for s in steps for u in s.updates]
                assert all(isinstance(w, str) and w.startswith(tag) for w in written)
            said = [m.text for m in await memory.load("shared-session")]
        for tag in ("甲", "乙"):  # both conversations are in the session, each in its order
            assert [t for t in said if t.startswith(tag)] == [f"{tag} {i}" for i in range(8)]
        assert len(said) == 16

    asyncio.run(check())
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
