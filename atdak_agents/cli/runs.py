"""``atdak-agents runs list``, ``runs show RUN_ID`` and ``runs prune``: the runs stored in a
checkpoint file."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exceptions import AtdakError, StoreError
from ..graph.checkpoint import RUN_STATUSES
from ..tracing.redact import Redactor
from ._common import Runner, Subparsers, run_loop
from ._launch import (
    API_KEY_ENV,
    DEFAULT_DB,
    EXIT_FAILED,
    EXIT_USAGE,
    CommandError,
    find_run,
    out,
    resume_command,
    say,
    shown_path,
)
from ._prune import DEFAULT_DAYS, prune

if TYPE_CHECKING:
    from ..graph.build import Graph
    from ..graph.checkpoint import RunRecord, StepRecord
    from ._index import IndexEntry

__all__ = ["add_command", "run"]

_QUESTION = 60  # characters of a question shown in the list
_SHORT_ID = 12  # characters of a run id shown in the list (resume and show take a prefix)


def add_command(subparsers: Subparsers) -> Runner:
    runs = subparsers.add_parser(
        "runs",
        help="list the stored runs, show one, or prune old ones",
        description="The runs in a checkpoint file (default: .atdak/agents.db here).",
    )
    actions = runs.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="the runs, most recently updated first")
    listing.add_argument("--status", choices=RUN_STATUSES, help="only runs with this status")
    listing.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    _common(listing)
    show = actions.add_parser("show", help="one run: status, inputs, state, question, history")
    show.add_argument("run_id", metavar="RUN_ID", help="the run's id (or a unique prefix)")
    _common(show)
    pruning = actions.add_parser(
        "prune",
        help="delete old finished runs (their steps and journals too)",
        description="Delete the runs last updated more than --older-than days ago whose status "
        "is one of --status (default: done and failed).",
    )
    pruning.add_argument(
        "--older-than",
        type=float,
        default=DEFAULT_DAYS,
        metavar="DAYS",
        help=f"only runs last updated more than DAYS ago (default {DEFAULT_DAYS:g}; 0: any age)",
    )
    pruning.add_argument(
        "--status",
        action="append",
        choices=RUN_STATUSES,
        help="a status to prune (repeat for several; default: done and failed)",
    )
    pruning.add_argument("--dry-run", action="store_true", help="list them, delete nothing")
    _common(pruning)
    return run


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", metavar="FILE", help=f"the checkpoint file (default {DEFAULT_DB})")
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    db = Path(args.db) if args.db else DEFAULT_DB
    try:
        if not db.is_file():
            if args.action == "list" and not args.db:
                say(
                    f"no runs yet: there is no {DEFAULT_DB} here (runs are stored where "
                    "`atdak-agents run` was started)"
                )
                if args.json:
                    out("[]")
                return 0
            raise CommandError(f"no checkpoint file {db}", EXIT_USAGE)
        if args.action == "list":
            return run_loop(_list(db, args))
        if args.action == "prune":
            return run_loop(prune(db, args))
        return run_loop(_show(db, args))
    except CommandError as exc:
        say(f"atdak-agents runs {args.action}: {exc}")
        return exc.code
    except (StoreError, AtdakError) as exc:
        say(f"atdak-agents runs {args.action}: {exc}")
        return EXIT_FAILED


# --------------------------------------------------------------------------- list


async def _list(db: Path, args: argparse.Namespace) -> int:
    from ..graph.sqlite_checkpoint import SQLiteCheckpointer
    from ._index import RunIndex

    if args.limit < 1:
        raise CommandError("--limit must be 1 or more", EXIT_USAGE)
    index = RunIndex(str(db))
    try:
        async with SQLiteCheckpointer(db) as checkpointer:
            records = await checkpointer.list_runs(status=args.status, limit=args.limit)
        entries = await index.get_many([r.run_id for r in records])
    finally:
        await index.close()
    redactor = _redactor()
    rows = [_row(record, entries.get(record.run_id)) for record in records]
    if args.json:
        out(json.dumps(redactor.value(rows), ensure_ascii=False, indent=2))
        return 0
    if not rows:
        say(f"no runs in {db}" + (f" with status {args.status}" if args.status else ""))
        return 0
    out(redactor.text(_table(rows)))
    return 0


def _row(record: RunRecord, entry: IndexEntry | None) -> dict[str, Any]:
    return {
        "run_id": record.run_id,
        "workflow": shown_path(Path(entry.workflow)) if entry else None,
        "graph": record.graph,
        "status": record.status,
        "step": record.step,
        "updated_at": record.updated_at,
        "question": record.question,
    }


def _table(rows: list[dict[str, Any]]) -> str:
    header = ("RUN", "WORKFLOW", "STATUS", "STEP", "UPDATED", "QUESTION")
    lines = [header]
    for row in rows:
        question = " ".join((row["question"] or "").split())
        if len(question) > _QUESTION:
            question = question[: _QUESTION - 1] + "…"
        lines.append(
            (
                row["run_id"][:_SHORT_ID],
                row["workflow"] or f"({row['graph']})",
                row["status"],
                str(row["step"]),
                _when(row["updated_at"]),
                question,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False))
        + "  "
        + line[-1]
        for line in lines
    ).rstrip()


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


# --------------------------------------------------------------------------- show


async def _show(db: Path, args: argparse.Namespace) -> int:
    from ..graph.sqlite_checkpoint import SQLiteCheckpointer
    from ._index import RunIndex

    index = RunIndex(str(db))
    try:
        async with SQLiteCheckpointer(db) as checkpointer:
            record = await find_run(checkpointer, args.run_id, db)
            steps = await checkpointer.load_steps(record.run_id)
        entry = await index.get(record.run_id)
    finally:
        await index.close()
    graph, note, redactor = _graph_of(entry, record)
    state = graph.replay(steps)[0] if graph is not None else None
    details = _details(record, entry, steps, state, note)
    if args.json:
        out(json.dumps(redactor.value(_plain(details)), ensure_ascii=False, indent=2))
    else:
        out(redactor.text(_describe(details, db)))
    return 0


def _graph_of(
    entry: IndexEntry | None, record: RunRecord
) -> tuple[Graph | None, str | None, Redactor]:
    """The run's graph (to rebuild its state), or why there is none; and a redactor."""
    from ..exceptions import WorkflowError
    from ._launch import load

    if entry is None:
        return None, "not started by `atdak-agents run`: its state needs its graph", _redactor()
    try:
        workflow, graph = load(entry.workflow, model=entry.model)
    except (CommandError, WorkflowError) as exc:
        reason = f"{shown_path(Path(entry.workflow))} does not load ({str(exc).splitlines()[0]})"
        return None, reason, _redactor()
    redactor = _redactor(workflow.redactor)
    if graph.fingerprint != record.fingerprint:
        return (
            graph,
            "the workflow changed since this run started: state as the file reads now",
            redactor,
        )
    return graph, None, redactor


def _redactor(base: Redactor | None = None) -> Redactor:
    redactor = base or Redactor()
    key = os.environ.get(API_KEY_ENV)
    if key:
        redactor.add_secret(key)
    return redactor


def _details(
    record: RunRecord,
    entry: IndexEntry | None,
    steps: list[StepRecord],
    state: dict[str, Any] | None,
    note: str | None,
) -> dict[str, Any]:
    return {
        "run_id": record.run_id,
        "workflow": shown_path(Path(entry.workflow)) if entry else None,
        "graph": record.graph,
        "status": record.status,
        "step": record.step,
        "question": record.question,
        "session_id": record.session_id,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "inputs": record.inputs,
        "state": state,
        "state_note": note,
        "output": record.output,
        "error": record.error,
        "model": entry.model if entry else None,
        "offline": entry.offline if entry else None,
        "history": [
            {
                "step": step.step,
                "nodes": step.nodes,
                "updates": [{"node": n, "key": k, "value": v} for n, k, v in step.updates],
                "next": [task["path"] for task in step.frontier],
                "waiting": list(step.bookkeeping.get("waiting") or []),
                "at": step.created_at,
            }
            for step in steps
        ],
    }


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, ensure_ascii=False, default=str))


def _describe(details: dict[str, Any], db: Path) -> str:
    lines = [f"run       {details['run_id']}"]
    workflow = details["workflow"]
    graph = f"graph {details['graph']!r}"
    lines.append(f"workflow  {workflow} ({graph})" if workflow else f"workflow  ({graph})")
    lines.append(f"status    {details['status']} after step {details['step']}")
    if details["question"]:
        lines.append(f"question  {details['question']}")
    if details["error"] and details["status"] in ("failed", "interrupted"):
        label = "error   " if details["status"] == "failed" else "reason  "
        lines.append(f"{label}  {details['error']}")
    lines.append(f"session   {details['session_id']}")
    lines.append(f"created   {_when(details['created_at'])}")
    lines.append(f"updated   {_when(details['updated_at'])}")
    lines.append(f"inputs    {_json(details['inputs'])}")
    if details["state"] is not None:
        lines.append(f"state     {_json(details['state'])}")
    if details["state_note"]:
        lines.append(f"          ({details['state_note']})")
    if details["output"] is not None:
        lines.append(f"output    {_json(details['output'])}")
    lines.append("history")
    lines.extend(_step_line(step) for step in details["history"])
    if not details["history"]:
        lines.append("  (no step completed)")
    if details["status"] in ("waiting", "interrupted", "failed", "running"):
        answer = ' --answer "..."' if details["status"] == "waiting" else ""
        lines.append(f"resume    {resume_command(details['run_id'], db)}{answer}")
    return "\n".join(lines)


def _step_line(step: dict[str, Any]) -> str:
    nodes = ", ".join(step["nodes"]) or "-"
    keys: list[str] = []
    for update in step["updates"]:
        if update["key"] not in keys:
            keys.append(update["key"])
    wrote = f"  wrote {', '.join(keys)}" if keys else ""
    if step["waiting"]:
        wrote += f"  ({', '.join(step['waiting'])} asked; waiting for the answer)"
    following = f"  → {', '.join(step['next'])}" if step["next"] else ""
    clock = time.strftime("%H:%M:%S", time.localtime(step["at"]))
    return f"  {step['step']:>3}  {clock}  {nodes}{wrote}{following}"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
