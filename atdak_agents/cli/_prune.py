"""``atdak-agents runs prune``: delete the runs of a checkpoint file that are old and finished.

A run is pruned when its status is one of those asked for (by default ``done`` and ``failed``:
a waiting or interrupted run may still be resumed) and it was last updated more than
``--older-than`` days ago. Its steps, journaled calls and the command line's note of how it was
started go with it, in one transaction per run; a run another process is advancing is left
alone and reported. When the file is a server's (``atdak-agents serve --database``), the run's
events and settings in the server's events file beside it (``NAME.events.db``) go too.
``--dry-run`` only lists what would go.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..exceptions import RunLockedError
from ._launch import EXIT_USAGE, CommandError, out, say

if TYPE_CHECKING:
    from ..server._events import SQLiteEventStore

__all__ = ["DEFAULT_DAYS", "DEFAULT_STATUSES", "prune"]

DEFAULT_DAYS = 30.0
DEFAULT_STATUSES = ("done", "failed")
_ALL = 1_000_000_000  # list_runs' limit when every run is wanted


async def prune(db: Path, args: argparse.Namespace) -> int:
    """Delete (or with ``--dry-run`` list) the runs ``args`` select; exit code 0."""
    from ..graph.sqlite_checkpoint import SQLiteCheckpointer
    from ._index import RunIndex

    if args.older_than < 0:
        raise CommandError("--older-than must be 0 or more days", EXIT_USAGE)
    statuses = tuple(args.status or DEFAULT_STATUSES)
    cutoff = time.time() - args.older_than * 86_400
    deleted: list[str] = []
    busy: list[str] = []
    index = RunIndex(str(db))
    events = _server_events(db)
    try:
        async with SQLiteCheckpointer(db) as store:
            for status in statuses:
                for record in await store.list_runs(status=status, limit=_ALL):
                    if record.updated_at >= cutoff:
                        continue
                    if args.dry_run:
                        deleted.append(record.run_id)
                        continue
                    try:
                        gone = await store.delete_run(record.run_id)
                    except RunLockedError:
                        busy.append(record.run_id)
                        continue
                    if gone:
                        await index.delete(record.run_id)
                        if events is not None:
                            await events.delete(record.run_id)
                        deleted.append(record.run_id)
    finally:
        await index.close()
        if events is not None:
            await events.close()
    _report(args, statuses, deleted, busy)
    return 0


def _server_events(db: Path) -> SQLiteEventStore | None:
    """The events file of a server whose checkpoints are ``db``, when there is one."""
    path = db.with_name(f"{db.stem}.events{db.suffix}")
    if not path.exists():
        return None
    from ..server._events import SQLiteEventStore

    return SQLiteEventStore(str(path))


def _report(
    args: argparse.Namespace, statuses: tuple[str, ...], deleted: list[str], busy: list[str]
) -> None:
    if args.json:
        key = "would_delete" if args.dry_run else "deleted"
        out(json.dumps({key: deleted, "busy": busy}, indent=2))
        return
    which = " or ".join(statuses)
    age = f"last updated more than {args.older_than:g} days ago"
    verb = "would delete" if args.dry_run else "deleted"
    say(f"{verb} {len(deleted)} run{'s' * (len(deleted) != 1)} ({which}, {age})")
    for run_id in deleted if args.dry_run else ():
        out(run_id)
    if busy:
        say(f"left {len(busy)} run(s) another process is advancing: {', '.join(busy)}")
