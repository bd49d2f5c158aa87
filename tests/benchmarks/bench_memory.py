"""Benchmark: the SQLite memory store against raw sqlite3 doing the same writes and reads.

Run on demand: ``.venv/bin/python tests/benchmarks/bench_memory.py``.

One run measures, on 10,000 mixed English/Chinese chat messages:

- **append**, one message per transaction and ten per transaction: raw ``sqlite3`` inserting
  the same rows into the same schema without the recall index (the floor), raw ``sqlite3``
  also filling the recall index, ``SQLiteStore.append`` (async) and its sync facade;
- **load**: raw ``SELECT`` of the session's rows as tuples (the floor), then
  ``SQLiteStore.load`` (all 10,000, and the newest 50) building ``StoredMessage`` objects;
- **recall**: ``SQLiteStore.search`` (FTS5, CJK bigrams) against a ``LIKE '%...%'`` scan, for
  a 2-character Chinese word, an English word and a mixed query;
- **running SQLite under asyncio**: 8 tasks appending at once, with the same write function run
  (a) on the store's single worker thread, (b) via ``asyncio.to_thread`` with a connection per
  thread, (c) directly on the event loop; throughput and the worst event-loop stall (lateness
  of a 2 ms ticker).

Every figure is printed with its ratio to the baseline measured in the same run.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from atdak_agents.context.history import HistoryFitter
from atdak_agents.memory import SQLiteStore, _search
from atdak_agents.memory._records import encode
from atdak_agents.memory._sqlite_schema import session_token
from atdak_agents.messages import Message

N = 10_000
SINGLE = 2_000  # messages appended one per transaction (the slow path; fewer of them)
EN = (
    "Could you check the delivery status of my order",
    "The refund should arrive within five working days",
    "Please update the shipping address to the new office",
    "I would like to change the plan to the annual subscription",
    "The tracking page shows no update since Monday",
)
ZH = (
    "我的订单三天了还没有发货，能帮我查一下物流吗",
    "退款会在三到五个工作日内原路返回到您的账户",
    "请把收货地址改成公司的新地址，谢谢",
    "发票抬头需要写公司全称和税号",
    "我忘记了登录密码，应该怎么重置",
)


def messages(count: int, seed: int = 7) -> list[Message]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        parts = [rng.choice(EN if rng.random() < 0.5 else ZH) for _ in range(rng.randint(1, 4))]
        role = "user" if i % 2 == 0 else "assistant"
        meta = {"exchange": f"ex{i // 4}"} if i % 10 == 0 else {}
        out.append(Message(role=role, content=f"#{i} " + " ".join(parts), metadata=meta))
    return out


def raw_connection(path: Path) -> sqlite3.Connection:
    """A connection with the store's settings, on a file whose schema the store created."""
    asyncio.run(_create(path))
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


async def _create(path: Path) -> None:
    async with SQLiteStore(path) as store:
        await store.list_sessions()


def raw_rows(batch: list[Message]) -> list[tuple[Any, ...]]:
    now = time.time()
    return [
        ("s", m.role, m.content, now, 0, json.dumps(m.metadata, ensure_ascii=False), None)
        for m in batch
    ]


def raw_append(conn: sqlite3.Connection, batch: list[Message], fts: bool, counts: bool) -> None:
    rows = raw_rows(batch)
    conn.execute("BEGIN IMMEDIATE")
    ids = [
        conn.execute(
            "INSERT INTO memory_messages (session_id, role, content, created_at, tokens,"
            " metadata, extra) VALUES (?, ?, ?, ?, ?, ?, ?)",
            row,
        ).lastrowid
        for row in rows
    ]
    if fts:
        token = session_token("s")
        conn.executemany(
            "INSERT INTO memory_fts (rowid, body, sess) VALUES (?, ?, ?)",
            [(i, _search.index_text(m.text), token) for i, m in zip(ids, batch, strict=True)],
        )
    if counts:
        conn.execute(
            "INSERT INTO memory_sessions VALUES (?, ?, ?, ?, 0) ON CONFLICT (session_id) DO UPDATE"
            " SET updated_at = excluded.updated_at, message_count = message_count + ?",
            ("s", rows[0][3], rows[0][3], len(rows), len(rows)),
        )
    conn.execute("COMMIT")


def _each(batches: list[list[Message]], conn: sqlite3.Connection, full: bool) -> None:
    for batch in batches:
        raw_append(conn, batch, fts=full, counts=full)


def chunks(items: list[Message], size: int) -> list[list[Message]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def report(label: str, seconds: float, count: int, baseline: float | None) -> None:
    rate = count / seconds
    ratio = f"{seconds / baseline:6.2f}x the baseline's time" if baseline else "baseline"
    print(f"  {label:<48} {rate:>10,.0f} msg/s  {seconds * 1e3:9.1f} ms  {ratio}")


# --------------------------------------------------------------------------- append


def bench_append(folder: Path) -> None:
    """Each run gets fresh Message objects: token counts are cached on a message once counted."""
    print(f"\nappend ({SINGLE:,} messages one per transaction; {N:,} in transactions of 10)")
    for size, count in ((1, SINGLE), (10, N)):

        def batches() -> list[list[Message]]:
            return chunks(messages(count), size)  # noqa: B023

        print(f" batch size {size}:")
        conn, work = raw_connection(folder / f"raw{size}.db"), batches()
        base = timed(lambda: _each(work, conn, False))  # noqa: B023
        conn.close()
        report("raw sqlite3 insert (no recall index)", base, count, None)
        conn, work = raw_connection(folder / f"rawfts{size}.db"), batches()
        seconds = timed(lambda: _each(work, conn, True))  # noqa: B023
        conn.close()
        report("raw sqlite3, the store's writes (+ index, counts)", seconds, count, base)
        seconds = asyncio.run(_store_append(folder / f"store{size}.db", batches()))
        report("SQLiteStore.append (async)", seconds, count, base)
        with SQLiteStore(folder / f"sync{size}.db").sync() as memory:
            work = batches()
            seconds = timed(lambda: [memory.append("s", b) for b in work])  # noqa: B023
        report("SQLiteStore.sync().append", seconds, count, base)
    fresh = messages(N)
    encoding = timed(lambda: encode(fresh, None))
    print(
        f"  of the store's extra time: token counting (context.tokens) and JSON encoding "
        f"{encoding / N * 1e6:.1f} us/message"
    )


async def _store_append(path: Path, batches: list[list[Message]]) -> float:
    async with SQLiteStore(path) as store:
        await store.list_sessions()  # open and create the file outside the timing
        start = time.perf_counter()
        for batch in batches:
            await store.append("s", batch)
        return time.perf_counter() - start


# --------------------------------------------------------------------------- load and recall


def bench_load_and_search(folder: Path) -> None:
    path = folder / "store10.db"  # 10,000 messages in session "s", from bench_append
    conn = sqlite3.connect(path)
    sql = (
        "SELECT id, session_id, role, content, created_at, tokens, metadata, extra"
        " FROM memory_messages WHERE session_id = ? ORDER BY id"
    )
    base = best(lambda: conn.execute(sql, ("s",)).fetchall())
    base_last = best(lambda: conn.execute(f"{sql} DESC LIMIT 50", ("s",)).fetchall())
    print(f"\nload ({N:,}-message session)")
    report("raw sqlite3 SELECT, tuples", base, N, None)
    results = asyncio.run(_store_loads(path))
    report("SQLiteStore.load (StoredMessage objects)", results["all"], N, base)
    print(" newest 50:")
    report("raw sqlite3 SELECT ... LIMIT 50", base_last, 50, None)
    report("SQLiteStore.load(last=50)", results["last"], 50, base_last)
    print(" first fit of the loaded session into a 32K window (counting it is the baseline):")
    report("messages counted now", results["fit counted"], N, None)
    report("counts remembered from the store", results["fit remembered"], N, results["fit counted"])
    print("\nrecall over 10,000 messages (ms per query; LIKE scan is the baseline)")
    for query, like in (("退款", "%退款%"), ("tracking", "%tracking%"), ("物流 delivery", None)):
        like_sql = f"{sql.split(' WHERE')[0]} WHERE content LIKE ?"
        scan = best(lambda: conn.execute(like_sql, (like,)).fetchall())  # noqa: B023
        seconds = results[f"search {query}"]
        hits = results[f"hits {query}"]
        ratio = f"{seconds / scan:5.2f}x the LIKE scan" if like else "(no single LIKE equivalent)"
        print(f"  search {query!r:<16} {seconds * 1e3:7.2f} ms  top {hits:>2} hits  {ratio}")
        if like:
            print(f"  LIKE {like!r:<18} {scan * 1e3:7.2f} ms (unranked, every match)")
    conn.close()


def best(fn: Callable[[], object], repeat: int = 5) -> float:
    return min(timed(fn) for _ in range(repeat))


async def _store_loads(path: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    async with SQLiteStore(path) as store:
        out["all"] = await abest(lambda: store.load("s"))
        out["last"] = await abest(lambda: store.load("s", last=50))
        out["fit counted"], out["fit remembered"] = await _first_fits(store)
        for query in ("退款", "tracking", "物流 delivery"):
            out[f"search {query}"] = await abest(lambda: store.search(query, limit=20))  # noqa: B023
            out[f"hits {query}"] = len(await store.search(query, limit=20))
    return out


async def _first_fits(store: SQLiteStore) -> tuple[float, float]:
    """The first fit of the loaded session into atdak-llama-70b's 32K window (which drops most
    of it, so every message is counted): with copies whose counts are gone (the baseline) and
    with the loaded messages, which remember the counts the store kept."""
    counted, remembered = [], []
    for _ in range(5):
        loaded = await store.load("s")
        copies = [m.model_copy() for m in loaded]  # a copy carries no cached count
        for history, times in ((copies, counted), (loaded, remembered)):
            fitter = HistoryFitter("atdak-llama-70b")
            start = time.perf_counter()
            await fitter.fit(history)
            times.append(time.perf_counter() - start)
    return min(counted), min(remembered)


async def abest(fn: Callable[[], Awaitable[object]], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - start)
    return min(times)


# --------------------------------------------------------------------------- under asyncio


async def _with_ticker(work: Callable[[], Awaitable[None]]) -> tuple[float, float]:
    """Run ``work`` while a 2 ms ticker measures how late the event loop wakes it."""
    stop, worst = asyncio.Event(), [0.0]

    async def ticker() -> None:
        while not stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.002)
            worst[0] = max(worst[0], time.perf_counter() - before - 0.002)

    tick = asyncio.create_task(ticker())
    start = time.perf_counter()
    await work()
    elapsed = time.perf_counter() - start
    stop.set()
    await tick
    return elapsed, worst[0]


async def _concurrent(
    append: Callable[[list[Message]], Awaitable[object]], data: list[Message]
) -> tuple[float, float]:
    tasks = 8
    per_task = chunks(data[: tasks * 250], 250)

    async def writer(items: list[Message]) -> None:
        for message in items:
            await append([message])

    async def work() -> None:
        await asyncio.gather(*(writer(items) for items in per_task))

    return await _with_ticker(work)


async def bench_asyncio(folder: Path, data: list[Message]) -> None:
    print("\nrunning SQLite under asyncio: 8 tasks x 250 single-message appends")
    results = {}
    async with SQLiteStore(folder / "worker.db") as store:
        await store.list_sessions()
        results["single worker thread (SQLiteStore)"] = await _concurrent(
            lambda b: store.append("s", b), data
        )
        # the same write function, run two other ways, on connections of their own
        local = threading.local()
        path = folder / "worker.db"

        def per_thread(batch: list[Message]) -> None:
            if not hasattr(local, "conn"):
                local.conn = sqlite3.connect(path, timeout=10, isolation_level=None)
            store._append(local.conn, "s", batch)

        async def to_thread(batch: list[Message]) -> None:
            await asyncio.to_thread(per_thread, batch)

        results["asyncio.to_thread + connection per thread"] = await _concurrent(to_thread, data)
        loop_conn = sqlite3.connect(path, isolation_level=None)

        async def on_loop(batch: list[Message]) -> None:
            store._append(loop_conn, "s", batch)

        results["blocking calls on the event loop"] = await _concurrent(on_loop, data)
        loop_conn.close()
    base = results["single worker thread (SQLiteStore)"][0]
    for label, (seconds, stall) in results.items():
        ratio = "baseline" if seconds == base else f"{seconds / base:5.2f}x the worker's time"
        print(
            f"  {label:<44} {2000 / seconds:8,.0f} msg/s  worst loop stall "
            f"{stall * 1e3:7.1f} ms  {ratio}"
        )


def main() -> None:
    print(f"SQLite {sqlite3.sqlite_version}, Python sqlite3 module, WAL, synchronous=NORMAL")
    data = messages(N)
    chars = statistics.mean(len(m.text) for m in data)
    print(f"{N:,} messages, mean {chars:.0f} characters, about half Chinese")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        bench_append(folder)
        bench_load_and_search(folder)
        asyncio.run(bench_asyncio(folder, data))


if __name__ == "__main__":
    main()
