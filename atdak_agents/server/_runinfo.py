"""What the run API says about a run: its status, result and usage, live, stored or deleted."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..graph.checkpoint import RunRecord
from ._errors import HTTPError

if TYPE_CHECKING:
    from ._runs import LiveRun

__all__ = ["cancel_first", "deleted_info", "live_info", "stored_info", "unknown_run"]


def unknown_run(run_id: str) -> HTTPError:
    return HTTPError(
        404, f"no run {run_id!r} here (GET /v1/runs lists the runs)", code="run_not_found"
    )


def cancel_first(run_id: str, doing: str) -> HTTPError:
    """The 409 for deleting a run that is not stopped (``doing``: what it is doing)."""
    return HTTPError(
        409,
        f"run {run_id} {doing}, so it cannot be deleted; cancel it first "
        f"(POST /v1/runs/{run_id}/cancel, on the server that runs it), then delete it",
        code="run_running",
    )


def _usage_info(usage: dict[str, Any]) -> dict[str, Any]:
    keys = ("requests", "input_tokens", "output_tokens", "tool_calls", "estimated_requests")
    info: dict[str, Any] = {key: int(usage.get(key) or 0) for key in keys}
    info["cost"] = usage.get("cost")
    return info


def live_info(live: LiveRun, record: RunRecord | None, usage: dict[str, Any]) -> dict[str, Any]:
    run = live.run
    status = run.status if run.status != "pending" else "running"
    now = time.time()
    return {
        "id": run.id,
        "workflow": live.served.name,
        "status": status,
        "live": True,
        "step": run.steps,
        "session_id": run.env.session_id,
        "question": run.question if status == "waiting" else None,
        "output": run.result().output if status == "done" else None,
        "error": run.error if status == "failed" else None,
        "reason": run.reason if status == "interrupted" else None,
        "usage": _usage_info(usage),
        "created_at": record.created_at if record is not None else live.meta.created_at,
        "updated_at": record.updated_at if record is not None else now,
        "last_event_id": live.channel.last_seq,
    }


def stored_info(record: RunRecord, usage: dict[str, Any], last: int) -> dict[str, Any]:
    status = record.status
    return {
        "id": record.run_id,
        "workflow": record.graph,
        "status": status,
        "live": False,
        "step": record.step,
        "session_id": record.session_id,
        "question": record.question if status == "waiting" else None,
        "output": record.output if status == "done" else None,
        "error": record.error if status == "failed" else None,
        "reason": record.error if status == "interrupted" else None,
        "usage": _usage_info(usage),
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "last_event_id": last,
    }


def deleted_info(record: RunRecord, events: int) -> dict[str, Any]:
    """What ``DELETE /v1/runs/{id}`` answers: the run that went, and how many events."""
    return {
        "id": record.run_id,
        "object": "run.deleted",
        "deleted": True,
        "workflow": record.graph,
        "status": record.status,
        "step": record.step,
        "events": events,
    }
