"""Run events for HTTP readers: numbered, kept, and replayed from any ``Last-Event-ID``.

Every event of a run gets a per-run ``seq`` (1, 2, 3, … across pauses, resumes and server
restarts: a resumed run continues after the last stored number). While a run is live its events
sit in a :class:`RunChannel` in memory — all those not yet stored, and the latest
``event_buffer`` ones — and are written to the :class:`EventStore` in batches (at every
checkpoint, and when the run stops). A reader :func:`follow` s a run from any ``seq``: from the
store for what memory no longer holds, then from memory, then live — so a reconnecting client
loses nothing and gets nothing twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import re
import sqlite3
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from .._sqlite import Migration, SQLiteWorker, migrate, write_transaction
from ..exceptions import StoreError
from ..tracing.events import EventBase, event_from_json, event_to_json

__all__ = [
    "EventRecorder",
    "EventStore",
    "InMemoryEventStore",
    "RunChannel",
    "RunMeta",
    "SQLiteEventStore",
    "StoredEvent",
    "follow",
]

log = logging.getLogger("atdak_agents.server")

_FLUSH_TYPES = frozenset({"checkpoint_saved", "run_finished", "run_failed", "run_interrupted"})
_FLUSH_BACKLOG = 256  # unstored events that trigger a write even between checkpoints
_USAGE_TYPES = ("run_finished", "run_failed", "run_interrupted")
_LOAD_BATCH = 500

# an event's JSON starts with its type, and its seq comes before any field of outside data
_HEAD = re.compile(rb'^\{"type":"([a-z_]+)".*?"seq":(\d+)', re.DOTALL)
_EventRow = tuple[str, int, str, bytes]
_MetaRow = tuple[str, str, str, int, str, float]


@dataclass(slots=True)
class StoredEvent:
    """One event as readers get it: its number, type and JSON (``event`` while in memory)."""

    seq: int
    type: str
    data: bytes
    event: EventBase | None = None

    def parsed(self) -> EventBase:
        """The event object (parsed from its JSON)."""
        if self.event is None:
            self.event = event_from_json(self.data)
        return self.event

    def fields(self) -> dict[str, Any]:
        """The event's fields as plain JSON data (cheaper than :meth:`parsed`)."""
        data: dict[str, Any] = orjson.loads(self.data)
        return data


@dataclass(slots=True)
class RunMeta:
    """What the server remembers about a run beyond its checkpoints."""

    run_id: str
    workflow: str
    key_id: str
    tokens: bool
    kind: str  # "chat" or "api"
    created_at: float = dataclasses.field(default_factory=time.time)


class EventStore(Protocol):
    """Where run events and run options are kept."""

    async def append(self, run_id: str, events: Sequence[StoredEvent]) -> None: ...

    async def load(self, run_id: str, after: int, limit: int = _LOAD_BATCH) -> list[StoredEvent]:
        """Events with ``seq`` greater than ``after``, in order."""
        ...

    async def last_seq(self, run_id: str) -> int: ...

    async def usage(self, run_id: str) -> dict[str, Any]:
        """The run's usage, added up over every time it ran."""
        ...

    async def save_meta(self, meta: RunMeta) -> None: ...

    async def get_meta(self, run_id: str) -> RunMeta | None: ...

    async def delete(self, run_id: str) -> int:
        """Forget the run's events and options; returns how many events went."""
        ...

    async def close(self) -> None: ...


def add_usage(total: dict[str, Any], part: dict[str, Any]) -> None:
    """Add one stretch of a run's usage (an event's ``usage``) into ``total``."""
    for name, value in part.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            total[name] = (total.get(name) or 0) + value
        elif name not in total:
            total[name] = value


# --------------------------------------------------------------------------- in memory


class InMemoryEventStore:
    """Events in this process (bounded: the latest ``max_events`` of each of the latest
    ``max_runs`` runs); for tests and servers that need no history across restarts."""

    def __init__(self, *, max_events: int = 10_000, max_runs: int = 1_000) -> None:
        self.max_events = max_events
        self.max_runs = max_runs
        self._events: OrderedDict[str, deque[StoredEvent]] = OrderedDict()
        self._last: dict[str, int] = {}
        self._meta: dict[str, RunMeta] = {}

    async def append(self, run_id: str, events: Sequence[StoredEvent]) -> None:
        kept = self._events.get(run_id)
        if kept is None:
            kept = self._events[run_id] = deque(maxlen=self.max_events)
            while len(self._events) > self.max_runs:
                old, _ = self._events.popitem(last=False)
                self._last.pop(old, None)
                self._meta.pop(old, None)
        kept.extend(StoredEvent(e.seq, e.type, e.data) for e in events)
        if events:
            self._last[run_id] = events[-1].seq

    async def load(self, run_id: str, after: int, limit: int = _LOAD_BATCH) -> list[StoredEvent]:
        kept = self._events.get(run_id, ())
        return list(itertools.islice((e for e in kept if e.seq > after), limit))

    async def last_seq(self, run_id: str) -> int:
        return self._last.get(run_id, 0)

    async def usage(self, run_id: str) -> dict[str, Any]:
        total: dict[str, Any] = {}
        for event in self._events.get(run_id, ()):
            if event.type in _USAGE_TYPES:
                add_usage(total, orjson.loads(event.data).get("usage") or {})
        return total

    async def save_meta(self, meta: RunMeta) -> None:
        self._meta[meta.run_id] = meta

    async def get_meta(self, run_id: str) -> RunMeta | None:
        return self._meta.get(run_id)

    async def delete(self, run_id: str) -> int:
        self._last.pop(run_id, None)
        self._meta.pop(run_id, None)
        return len(self._events.pop(run_id, ()))

    async def close(self) -> None:
        return None


# --------------------------------------------------------------------------- SQLite


def _v1_events(conn: sqlite3.Connection) -> None:
    conn.execute(
        """CREATE TABLE server_events (
            run_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            type TEXT NOT NULL,
            data BLOB NOT NULL,
            PRIMARY KEY (run_id, seq)
        ) WITHOUT ROWID"""
    )
    conn.execute(
        """CREATE TABLE server_runs (
            run_id TEXT PRIMARY KEY,
            workflow TEXT NOT NULL,
            key_id TEXT NOT NULL,
            tokens INTEGER NOT NULL,
            kind TEXT NOT NULL,
            created_at REAL NOT NULL
        ) WITHOUT ROWID"""
    )


MIGRATIONS = (Migration(1, "run events and run options", _v1_events),)


class SQLiteEventStore:
    """Events in an SQLite file (tables ``server_*``).

    Writes are group-committed: whatever every live run has to store is written in one
    transaction by one writer task, so many concurrent runs cost few commits. Keep it in a file
    of its own, not the checkpoints' one: two connections writing one file wait for each other's
    locks, and SQLite waits by sleeping.
    """

    def __init__(self, path: str, *, busy_timeout: float = 10.0) -> None:
        self.path = path
        self._worker = SQLiteWorker(
            path,
            owner=f"SQLiteEventStore({path!r})",
            busy_timeout=busy_timeout,
            synchronous="NORMAL",
            setup=lambda conn: migrate(conn, path, "server_", MIGRATIONS),
            thread_name="atdak-server-events",
        )
        self._pending: list[_EventRow] = []
        self._pending_meta: list[_MetaRow] = []
        self._committed: asyncio.Future[None] | None = None
        self._writer: asyncio.Task[None] | None = None

    async def append(self, run_id: str, events: Sequence[StoredEvent]) -> None:
        """Store ``events``; returns once they are committed (with other runs' events)."""
        if events:
            await self._commit([(run_id, e.seq, e.type, e.data) for e in events], [])

    async def _commit(self, events: list[_EventRow], metas: list[_MetaRow]) -> None:
        self._pending.extend(events)
        self._pending_meta.extend(metas)
        if self._committed is None:
            self._committed = asyncio.get_running_loop().create_future()
        committed = self._committed
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write())
        await asyncio.shield(committed)

    async def _write(self) -> None:
        while self._pending or self._pending_meta:
            rows, self._pending = self._pending, []
            metas, self._pending_meta = self._pending_meta, []
            done, self._committed = self._committed, None
            assert done is not None
            try:
                await self._worker.call("append", _insert, rows, metas)
            except BaseException as exc:
                if not done.done():
                    done.set_exception(exc)
                    done.exception()  # retrieved here: every waiter sees it through shield
                if not isinstance(exc, Exception):
                    raise
            else:
                if not done.done():
                    done.set_result(None)

    async def load(self, run_id: str, after: int, limit: int = _LOAD_BATCH) -> list[StoredEvent]:
        rows = await self._worker.call("load", _select, run_id, after, limit)
        return [StoredEvent(seq, kind, bytes(data)) for seq, kind, data in rows]

    async def last_seq(self, run_id: str) -> int:
        return await self._worker.call("last_seq", _last_seq, run_id)

    async def usage(self, run_id: str) -> dict[str, Any]:
        total: dict[str, Any] = {}
        for data in await self._worker.call("usage", _usage_rows, run_id):
            add_usage(total, orjson.loads(data).get("usage") or {})
        return total

    async def save_meta(self, meta: RunMeta) -> None:
        row = (meta.run_id, meta.workflow, meta.key_id, int(meta.tokens), meta.kind)
        await self._commit([], [(*row, meta.created_at)])

    async def get_meta(self, run_id: str) -> RunMeta | None:
        row = await self._worker.call("get_meta", _get_meta, run_id)
        if row is None:
            return None
        return RunMeta(row[0], row[1], row[2], bool(row[3]), row[4], row[5])

    async def delete(self, run_id: str) -> int:
        """Delete the run's events and options in one transaction (after the commit of any
        of its rows still waiting here, so none of them lands afterwards)."""
        rows = [*self._pending, *self._pending_meta]
        if self._committed is not None and any(row[0] == run_id for row in rows):
            await asyncio.wait([self._committed])
        deleted: int = await self._worker.call("delete", _delete, run_id)
        return deleted

    async def close(self) -> None:
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        await self._worker.close()


def _insert(conn: sqlite3.Connection, rows: list[_EventRow], metas: list[_MetaRow]) -> None:
    with write_transaction(conn):
        if metas:
            conn.executemany("INSERT OR REPLACE INTO server_runs VALUES (?, ?, ?, ?, ?, ?)", metas)
        if rows:
            conn.executemany(
                "INSERT OR REPLACE INTO server_events (run_id, seq, type, data) "
                "VALUES (?, ?, ?, ?)",
                rows,
            )


def _select(conn: sqlite3.Connection, run_id: str, after: int, limit: int) -> list[Any]:
    return conn.execute(
        "SELECT seq, type, data FROM server_events WHERE run_id = ? AND seq > ? "
        "ORDER BY seq LIMIT ?",
        (run_id, after, limit),
    ).fetchall()


def _last_seq(conn: sqlite3.Connection, run_id: str) -> int:
    row = conn.execute("SELECT MAX(seq) FROM server_events WHERE run_id = ?", (run_id,)).fetchone()
    return int(row[0] or 0)


def _usage_rows(conn: sqlite3.Connection, run_id: str) -> list[bytes]:
    marks = ", ".join("?" * len(_USAGE_TYPES))
    rows = conn.execute(
        f"SELECT data FROM server_events WHERE run_id = ? AND type IN ({marks}) ORDER BY seq",
        (run_id, *_USAGE_TYPES),
    ).fetchall()
    return [bytes(row[0]) for row in rows]


def _delete(conn: sqlite3.Connection, run_id: str) -> int:
    with write_transaction(conn):
        cursor = conn.execute("DELETE FROM server_events WHERE run_id = ?", (run_id,))
        conn.execute("DELETE FROM server_runs WHERE run_id = ?", (run_id,))
    return int(cursor.rowcount)


def _get_meta(conn: sqlite3.Connection, run_id: str) -> tuple[Any, ...] | None:
    row = conn.execute("SELECT * FROM server_runs WHERE run_id = ?", (run_id,)).fetchone()
    return tuple(row) if row is not None else None


# --------------------------------------------------------------------------- live runs


class RunChannel:
    """A live run's events in memory, in ``seq`` order, with readers waiting for more.

    Holds every event not yet stored plus the latest ``buffer`` stored ones; writes them to the
    store at checkpoints (and every :data:`_FLUSH_BACKLOG` events), and when the run stops.
    """

    def __init__(self, run_id: str, store: EventStore, *, base: int, buffer: int) -> None:
        self.run_id = run_id
        self.store = store
        self.base = base
        self.buffer = buffer
        self.last_seq = base
        self.last_type: str | None = None
        self.ended = False
        self._events: deque[StoredEvent] = deque()
        self._stored = base
        self._waiters: list[asyncio.Future[bool]] = []
        self._lock = asyncio.Lock()
        self._flushes: set[asyncio.Task[None]] = set()

    def add(self, event: StoredEvent) -> None:
        self._events.append(event)
        self.last_seq = event.seq
        self.last_type = event.type
        self._wake()
        if event.type in _FLUSH_TYPES or self.last_seq - self._stored >= _FLUSH_BACKLOG:
            task = asyncio.ensure_future(self.flush())
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)

    def since(self, after: int) -> list[StoredEvent] | None:
        """Events after ``after`` held in memory, or ``None`` when some of them are only in
        the store."""
        events = self._events
        first = events[0].seq if events else self.last_seq + 1
        if after + 1 < first:
            return None
        return list(itertools.islice(events, max(after + 1 - first, 0), None))

    async def changed(self, timeout: float) -> bool:
        """Wait until an event is added or the run ends; ``False`` after ``timeout`` seconds
        without either."""
        if self.ended:
            return True
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.call_later(timeout, _settle, waiter, False)  # cheaper than wait_for
        try:
            return await waiter
        finally:
            timer.cancel()
            if not waiter.done() and waiter in self._waiters:  # the reader was cancelled
                self._waiters.remove(waiter)

    @property
    def first_seq(self) -> int:
        """The ``seq`` of the oldest event held in memory (``last_seq + 1`` when none)."""
        return self._events[0].seq if self._events else self.last_seq + 1

    def wake(self) -> None:
        """Wake every reader waiting for this run (e.g. so it notices the server stopping)."""
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            _settle(waiter, True)

    async def flush(self) -> None:
        """Write what is not stored yet; keep only ``buffer`` stored events in memory."""
        async with self._lock:
            events = self._events
            first = events[0].seq if events else self.last_seq + 1
            pending = list(itertools.islice(events, max(self._stored + 1 - first, 0), None))
            if pending:
                try:
                    await self.store.append(self.run_id, pending)
                except (StoreError, OSError) as exc:
                    count = len(pending)
                    log.error("run %s: could not store %d events: %s", self.run_id, count, exc)
                    return  # kept in memory; the next flush tries again
                self._stored = pending[-1].seq
            while len(events) > self.buffer and events[0].seq <= self._stored:
                events.popleft()

    async def end(self) -> None:
        """The run stopped: store everything, then let readers finish."""
        if self._flushes:
            await asyncio.gather(*self._flushes, return_exceptions=True)
        await self.flush()
        self.ended = True
        self._wake()


def _settle(waiter: asyncio.Future[bool], value: bool) -> None:
    if not waiter.done():
        waiter.set_result(value)


class EventRecorder:
    """The sink a served run writes its events to: numbers them after ``channel.base``, masks
    secrets in their JSON (``redact``) and hands them to the channel.

    A *line* sink: the bus gives it each event already serialised, so a served run's events are
    never built as objects unless someone else wants them.
    """

    takes_lines = True

    def __init__(
        self, channel: RunChannel, redact: Callable[[bytes], bytes], *, wants_tokens: bool
    ) -> None:
        self.channel = channel
        self.redact = redact
        self.wants_tokens = wants_tokens

    def write_line(self, line: bytes) -> None:
        head = _HEAD.match(line)
        if head is None:  # pragma: no cover - the bus always writes type first, seq early
            log.error("run %s: an event line without type or seq: %.80r", self.channel.run_id, line)
            return
        kind, seq = head.group(1).decode(), int(head.group(2))
        base = self.channel.base
        if base:
            line = line.replace(b'"seq":%d' % seq, b'"seq":%d' % (seq + base), 1)
        self.channel.add(StoredEvent(seq + base, kind, self.redact(line.rstrip(b"\n"))))

    def write(self, event: EventBase) -> None:
        self.write_line(event_to_json(event))

    def close(self) -> None:
        return None  # the run manager ends the channel once the run has stopped


async def follow(
    run_id: str,
    after: int,
    store: EventStore,
    live: Callable[[], RunChannel | None],
    *,
    heartbeat: float,
    stop: Callable[[], bool] = lambda: False,
) -> AsyncIterator[StoredEvent | None]:
    """A run's events after ``after``: stored, then in memory, then live until the run stops.

    Yields ``None`` after ``heartbeat`` seconds without an event (so the caller can keep the
    connection alive); ``live()`` gives the run's channel while it is live. Once ``stop()`` is
    true it ends as soon as it would wait.
    """
    cursor = after
    while True:
        channel = live()
        batch = channel.since(cursor) if channel is not None else None
        if batch is None:
            batch = await store.load(run_id, cursor)
            if not batch and channel is not None:  # a failed store write: skip what is lost
                log.error("run %s: events %d-%d are lost", run_id, cursor + 1, channel.first_seq)
                cursor = channel.first_seq - 1
                continue
        for event in batch:
            if event.seq > cursor:
                cursor = event.seq
                yield event
        if batch:
            continue
        if channel is None or (channel.ended and cursor >= channel.last_seq) or stop():
            return
        if not await channel.changed(heartbeat):
            yield None
