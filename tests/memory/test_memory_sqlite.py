"""SQLiteStore beyond the shared contract: the file, WAL, processes, crashes, migrations."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from atdak_agents.exceptions import InvalidParameterError, StoreError
from atdak_agents.memory import SQLiteStore, message_tokens
from atdak_agents.memory._sqlite_schema import LATEST, MIGRATIONS, schema_version


def _pragma(path: Path, name: str) -> object:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]


def _check_integrity(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.execute("INSERT INTO memory_fts (memory_fts) VALUES ('integrity-check')")
    finally:
        conn.close()


def _run_child(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# --------------------------------------------------------------------------- the file


async def test_file_is_wal_versioned_and_creates_its_folder(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "memory.db"
    async with SQLiteStore(path) as store:
        await store.append("s", {"role": "user", "content": "hi"})
    assert _pragma(path, "journal_mode") == "wal"
    with sqlite3.connect(path) as conn:
        assert schema_version(conn) == LATEST
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE sql NOT NULL")]
    assert names and all(n.startswith(("memory_", "sqlite_")) for n in names), names


async def test_shares_the_file_with_other_tables(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE checkpoints (id INTEGER PRIMARY KEY, data TEXT)")
        conn.execute("INSERT INTO checkpoints (data) VALUES ('step 1')")
        conn.execute("PRAGMA user_version = 7")
    async with SQLiteStore(path) as store:
        await store.append("s", {"role": "user", "content": "hi"})
        await store.delete_session("s")
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT data FROM checkpoints").fetchall() == [("step 1",)]
    assert _pragma(path, "user_version") == 7


async def test_messages_persist_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "memory.db"
    async with SQLiteStore(path) as store:
        first = await store.append("s", [{"role": "user", "content": "退款 refund"}])
    async with SQLiteStore(path) as store:
        assert await store.load("s") == first
        assert [h.message for h in await store.search("退款")] == first
        (second,) = await store.append("s", {"role": "assistant", "content": "ok"})
        assert second.id > first[0].id


async def test_porter_stemming_in_english_recall(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "m.db") as store:
        await store.append("s", {"role": "user", "content": "Refunds are processed weekly"})
        assert len(await store.search("refund processing")) == 1


async def test_fts_index_stays_consistent_after_clear_and_delete(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    async with SQLiteStore(path) as store:
        for n in range(3):
            await store.append(f"s{n}", [{"role": "user", "content": f"订单 {n} 退款"}] * 5)
        await store.clear("s0")
        await store.delete_session("s1")
        assert {h.message.session_id for h in await store.search("退款", limit=50)} == {"s2"}
    _check_integrity(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM memory_fts").fetchone()[0] == 5


def test_bad_settings_are_refused() -> None:
    with pytest.raises(InvalidParameterError, match="synchronous"):
        SQLiteStore("x.db", synchronous="OFF")  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="busy_timeout"):
        SQLiteStore("x.db", busy_timeout=-1)


async def test_a_file_that_is_not_a_database_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database" * 200)
    async with SQLiteStore(path) as store:
        with pytest.raises(StoreError, match=r"notes\.db.*not an SQLite database"):
            await store.load("s")


async def test_lock_held_too_long_is_reported_with_advice(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    async with SQLiteStore(path, busy_timeout=0.2) as store:
        await store.append("s", {"role": "user", "content": "first"})
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            started = time.monotonic()
            with pytest.raises(StoreError, match=r"busy_timeout=0\.2"):
                await store.append("s", {"role": "user", "content": "blocked"})
            assert time.monotonic() - started >= 0.2
            assert [m.text for m in await store.load("s")] == ["first"]  # WAL: reads go on
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        await store.append("s", {"role": "user", "content": "after"})
        assert [m.text for m in await store.load("s")] == ["first", "after"]


async def test_event_loop_keeps_running_during_a_long_write(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "m.db") as store:
        batch = [{"role": "user", "content": f"消息 message {i} " * 20} for i in range(3000)]
        task = asyncio.create_task(store.append("big", batch))
        ticks, gaps, last = 0, [], time.perf_counter()
        while not task.done():
            await asyncio.sleep(0.002)
            now = time.perf_counter()
            ticks, gaps, last = ticks + 1, [*gaps, now - last], now
        assert len(await task) == 3000
    assert ticks >= 5, "the loop was blocked while the store wrote"
    assert max(gaps) < 0.25


# --------------------------------------------------------------------------- processes

WRITER = """
import asyncio, sys
from atdak_agents.memory import SQLiteStore, message_tokens

path, worker, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
print("ready", flush=True)
sys.stdin.readline()

async def main():
    async with SQLiteStore(path) as store:
        for i in range(count):
            size = 3 if i % 4 == 3 else 1
            batch = [{"role": "user", "content": f"{worker} {i} {j}"} for j in range(size)]
            await store.append("shared", batch)
            await store.append("own-" + worker, {"role": "user", "content": f"{worker} {i}"})

asyncio.run(main())
"""


@pytest.mark.slow
async def test_processes_appending_to_one_session_lose_nothing(tmp_path: Path) -> None:
    path, workers, count = tmp_path / "shared.db", ["w0", "w1", "w2", "w3"], 80
    children = [_run_child(WRITER, str(path), w, str(count)) for w in workers]
    for child in children:  # all imported: start together, on a file that does not exist yet
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    for child in children:
        _, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
    async with SQLiteStore(path) as store:
        shared = await store.load("shared")
        for worker in workers:
            mine = [m.text for m in shared if m.text.startswith(f"{worker} ")]
            assert mine == [f"{worker} {i} {j}" for i, j in _writes(count)]  # order kept
            own = [m.text for m in await store.load(f"own-{worker}")]
            assert own == [f"{worker} {i}" for i in range(count)]  # nothing leaked in
        assert len(shared) == len(workers) * len(_writes(count))
        assert len({m.id for m in shared}) == len(shared)
        sessions = {s.session_id: s.message_count for s in await store.list_sessions()}
        assert sessions == {"shared": len(shared), **{f"own-{w}": count for w in workers}}
    _check_integrity(path)


def _writes(count: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(count) for j in range(3 if i % 4 == 3 else 1)]


VICTIM = """
import asyncio, sys
from atdak_agents.memory import SQLiteStore, message_tokens

path, round_ = sys.argv[1], sys.argv[2]
padding = "填充文本 padding text " * 40

async def main():
    async with SQLiteStore(path) as store:
        i = 0
        while True:
            batch = [{"role": "user", "content": f"r{round_} {i} {j} {padding}"} for j in range(5)]
            records = await store.append("victim", batch)
            print(" ".join(str(r.id) for r in records), flush=True)
            i += 1

asyncio.run(main())
"""


@pytest.mark.slow
async def test_sigkill_mid_write_loses_no_committed_message(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    reported: dict[int, str] = {}
    for round_, batches_before_kill in enumerate([15, 40, 25]):
        child = _run_child(VICTIM, str(path), str(round_))
        assert child.stdout is not None
        for n in range(batches_before_kill):
            line = child.stdout.readline()
            assert line, child.communicate()[1]
            for j, message_id in enumerate(line.split()):
                reported[int(message_id)] = f"r{round_} {n} {j} "
        os.kill(child.pid, signal.SIGKILL)  # the child is appending: killed mid-write
        child.communicate()
        assert child.returncode == -signal.SIGKILL
        _check_integrity(path)
        async with SQLiteStore(path) as store:
            stored = {m.id: m.text for m in await store.load("victim")}
        for message_id, prefix in reported.items():
            assert stored[message_id].startswith(prefix)  # every committed message is there
        batches: dict[str, int] = {}
        for text in stored.values():
            key = " ".join(text.split()[:2])
            batches[key] = batches.get(key, 0) + 1
        assert set(batches.values()) == {5}  # no batch half-written
        ids = sorted(stored)
        assert ids == list(range(ids[0], ids[0] + len(ids)))


# --------------------------------------------------------------------------- migrations

V1_FILE = """
CREATE TABLE memory_schema (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
INSERT INTO memory_schema VALUES (1, 1);
CREATE TABLE memory_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL,
    role TEXT NOT NULL,
    content TEXT,
    created_at REAL NOT NULL,
    tokens INTEGER NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    extra TEXT
);
CREATE INDEX memory_messages_by_session ON memory_messages (session_id, id);
INSERT INTO memory_messages (session_id, role, content, created_at, tokens, metadata, extra) VALUES
    ('alice', 'user', '我想申请退款', 1700000000.0, 12, '{"exchange":"e1"}', NULL),
    ('alice', 'assistant', 'Refund approved.', 1700000005.0, 9, '{}', NULL),
    ('bob', 'user', 'Where is my parcel?', 1700000100.0, 10, '{}', '{"name":"bob"}');
"""


async def test_old_version_file_is_migrated_with_its_data(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(V1_FILE)
    async with SQLiteStore(path) as store:
        alice = await store.load("alice")
        assert [m.text for m in alice] == ["我想申请退款", "Refund approved."]
        assert alice[0].metadata == {"exchange": "e1", "created_at": 1700000000.0}
        assert (await store.load("bob"))[0].name == "bob"
        sessions = {s.session_id: s for s in await store.list_sessions()}
        assert sessions["alice"].message_count == 2 and sessions["alice"].token_count == 21
        assert sessions["alice"].updated_at == 1700000005.0
        assert [h.message.text for h in await store.search("退款")] == ["我想申请退款"]
        (new,) = await store.append("alice", {"role": "user", "content": "谢谢"})
        assert new.id == 4
    with sqlite3.connect(path) as conn:
        assert schema_version(conn) == LATEST
    _check_integrity(path)


async def test_migrated_schema_equals_a_fresh_one(tmp_path: Path) -> None:
    old, fresh = tmp_path / "old.db", tmp_path / "fresh.db"
    with sqlite3.connect(old) as conn:
        conn.executescript(V1_FILE)
    for path in (old, fresh):
        async with SQLiteStore(path) as store:
            await store.list_sessions()

    def schema(path: Path) -> list[tuple[str, str]]:
        with sqlite3.connect(path) as conn:
            rows = conn.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()
        return [(name, " ".join((sql or "").split())) for name, sql in rows]

    assert schema(old) == schema(fresh)
    assert [m.version for m in MIGRATIONS] == list(range(1, LATEST + 1))


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    async with SQLiteStore(path) as store:
        await store.append("s", {"role": "user", "content": "hi"})
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE memory_schema SET version = ?", (LATEST + 1,))
    async with SQLiteStore(path) as store:
        with pytest.raises(StoreError, match=rf"version {LATEST + 1}, newer.*upgrade"):
            await store.load("s")


# --------------------------------------------------------------------------- asyncio edges


async def test_token_model_chooses_the_counting_model(tmp_path: Path) -> None:
    text = "def f(x):\n    return {'订单': x}  # 代码 and 中文"
    async with SQLiteStore(tmp_path / "m.db", token_model="atdak-llama-70b") as store:
        (record,) = await store.append("s", {"role": "user", "content": text})
    assert record.tokens == message_tokens([record], "atdak-llama-70b")[0]


async def test_close_finishes_appends_already_started(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    store = SQLiteStore(path)
    tasks = [
        asyncio.create_task(store.append("s", {"role": "user", "content": f"m{i}"}))
        for i in range(20)
    ]
    await asyncio.sleep(0)  # every task has handed its append to the worker
    await store.close()
    assert [len(await t) for t in tasks] == [1] * 20
    async with SQLiteStore(path) as reopened:
        assert len(await reopened.load("s")) == 20


async def test_a_cancelled_append_still_completes_whole(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "m.db") as store:
        batch = [{"role": "user", "content": f"批量 {i} " * 30} for i in range(2000)]
        task = asyncio.create_task(store.append("s", batch))
        await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        stored = await store.load("s")  # runs after the worker finished the append
        assert len(stored) == 2000  # handed to the worker: committed whole, as documented
        await store.append("s", {"role": "user", "content": "still works"})
        assert (await store.load("s", last=1))[0].text == "still works"
