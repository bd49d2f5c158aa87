"""The trace viewer: a JSONL trace as one self-contained HTML page.

    atdak-agents trace view trace.jsonl -o trace.html --open

or from Python::

    from atdak_agents.tracing.viewer import write_html
    write_html("trace.jsonl", "trace.html")

The page needs no network (its CSS and JavaScript are inline): a timeline of the run's nodes,
model calls and tool calls as bars nested by span, the tokens and cost of each node, the context
budget each model call used (estimated tokens against the budget and the model's window, and
how the history was fitted), the run's totals, and every message, answer, tool call and result
inspectable by clicking its row. The trace is shown as it was recorded: what the run's redactor
masked or ``trace_content=False`` dropped is not in it.

A default trace records each node once, by its ``node_finished`` (with ``started`` and the
``values`` it wrote); a trace with every event (``node_started``, ``state_updated``, tokens)
shows the same page, plus the state after each step and the time to each answer's first
token.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .events import (
    EventBase,
    MapStarted,
    ModelRequest,
    ModelResponse,
    ModelRetrying,
    NodeFinished,
    NodeStarted,
    RunFailed,
    RunFinished,
    RunInterrupted,
    RunStarted,
    StateUpdated,
    TokenDelta,
    ToolCalled,
    ToolReturned,
)
from .sinks import read_jsonl

__all__ = ["render_html", "trace_model", "write_html"]


@dataclass
class _Span:
    """One bar of the timeline."""

    id: str
    parent: str | None
    kind: str  # run | node | model | tool
    name: str
    start: float
    end: float | None = None
    status: str = "running"  # ok | error | interrupted | running
    detail: dict[str, Any] = field(default_factory=dict)
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float | None = None
    estimated: bool = False
    calls: int = 0

    def charge(self, tokens_in: int, tokens_out: int, cost: float | None, estimated: bool) -> None:
        self.tokens_in += tokens_in
        self.tokens_out += tokens_out
        self.estimated = self.estimated or estimated
        self.calls += 1
        if cost is not None:
            self.cost = (self.cost or 0.0) + cost

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "parent": self.parent,
            "kind": self.kind,
            "name": self.name,
            "start": self.start,
            "end": self.end,
            "status": self.status,
            "detail": self.detail,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cost": self.cost,
            "estimated": self.estimated,
            "calls": self.calls,
        }


class _Builder:
    """Folds events, in order, into spans and totals. A node's span is opened by its
    ``node_started`` or, in a trace without one, by its ``node_finished``; the tree (which
    span a call belongs to, what each node's calls cost) is settled once every span is known."""

    def __init__(self) -> None:
        self.spans: dict[str, _Span] = {}
        self.order: list[str] = []
        self.runs: list[dict[str, Any]] = []
        self.first: float | None = None
        self.last: float = 0.0
        self.owners: dict[str, tuple[str, str | None]] = {}  # call key -> (span, parent span)
        self.maps: dict[str, dict[str, int]] = {}  # map node span -> its items and concurrency

    def add(self, event: EventBase) -> None:
        self.first = event.ts if self.first is None else min(self.first, event.ts)
        self.last = max(self.last, event.ts)
        handler = getattr(self, f"_{event.type}", None)
        if handler is not None:
            handler(event)

    def _open(self, key: str, span: _Span) -> None:
        if key not in self.spans:
            self.order.append(key)
        self.spans[key] = span

    def _close(self, key: str, ts: float, status: str) -> _Span | None:
        span = self.spans.get(key)
        if span is not None:
            span.end = ts
            span.status = status
        return span

    # ------------------------------------------------------------------ runs

    def _run_started(self, event: RunStarted) -> None:
        detail: dict[str, Any] = {"run_id": event.run_id, "inputs": event.inputs}
        detail |= {"resumed": event.resumed, "states": []}
        span = _Span(event.span_id, event.parent_span_id, "run", event.graph, event.ts)
        span.detail = detail
        self._open(event.span_id, span)
        if event.parent_span_id is None:
            self.runs.append({"span": event.span_id, "graph": event.graph, "id": event.run_id})

    def _end_run(self, event: EventBase, status: str, extra: dict[str, Any]) -> None:
        span = self._close(event.span_id, event.ts, status)
        if span is not None:
            span.detail.update(extra)

    def _run_finished(self, event: RunFinished) -> None:
        extra = {"output": event.output, "usage": event.usage, "outcome": event.status}
        self._end_run(event, "ok", extra)

    def _run_failed(self, event: RunFailed) -> None:
        extra = {"error": event.error, "error_type": event.error_type, "usage": event.usage}
        self._end_run(event, "error", extra)

    def _run_interrupted(self, event: RunInterrupted) -> None:
        extra = {"reason": event.reason, "question": event.question, "usage": event.usage}
        self._end_run(event, "interrupted", extra)

    def _state_updated(self, event: StateUpdated) -> None:
        span = self.spans.get(event.span_id)
        if span is not None:
            step = {"step": event.step, "keys": event.keys, "values": event.values}
            span.detail["states"].append(step)

    # ------------------------------------------------------------------ nodes

    def _node_started(self, event: NodeStarted) -> None:
        span = _Span(event.span_id, event.parent_span_id, "node", event.node or "?", event.ts)
        span.detail = {"kind": event.kind, "step": event.step}
        self._open(event.span_id, span)

    def _map_started(self, event: MapStarted) -> None:
        self.maps[event.span_id] = {"items": event.items, "concurrency": event.concurrency}

    def _node_finished(self, event: NodeFinished) -> None:
        if event.span_id not in self.spans:  # recorded by its end alone
            start = event.started or event.ts - event.duration
            opened = _Span(event.span_id, event.parent_span_id, "node", event.node or "?", start)
            opened.detail = {"kind": event.kind, "step": event.step}
            self._open(event.span_id, opened)
            self.first = start if self.first is None else min(self.first, start)
        status = "error" if event.error is not None else "ok"
        span = self._close(event.span_id, event.ts, status)
        if span is not None:
            span.detail.update(
                {
                    "duration": event.duration,
                    "updated": event.updated,
                    "values": event.values,
                    "error": event.error,
                }
            )

    # ------------------------------------------------------------------ calls

    def _model_request(self, event: ModelRequest) -> None:
        key = f"model:{event.span_id}"
        span = _Span(key, event.span_id, "model", event.model, event.ts)
        self.owners[key] = (event.span_id, event.parent_span_id)
        span.detail = {
            "node": event.node,
            "parameters": event.parameters,
            "message_count": event.message_count,
            "estimated_tokens": event.estimated_tokens,
            "budget": event.budget,
            "context_window": event.context_window,
            "fit": event.fit,
            "messages": event.messages,
            "size": event.size,
            "retries": [],
            "streamed": "",
            "first_token": None,
        }
        self._open(key, span)

    def _token(self, event: TokenDelta) -> None:
        span = self.spans.get(f"model:{event.span_id}")
        if span is not None:
            if span.detail["first_token"] is None:
                span.detail["first_token"] = event.ts - span.start
            span.detail["streamed"] += event.text or ""

    def _model_retrying(self, event: ModelRetrying) -> None:
        span = self.spans.get(f"model:{event.span_id}")
        if span is not None:
            retry = {"attempt": event.attempt, "reason": event.reason, "wait": event.wait}
            span.detail["retries"].append(retry)

    def _model_response(self, event: ModelResponse) -> None:
        span = self._close(f"model:{event.span_id}", event.ts, "ok")
        if span is None:
            return
        span.detail.update(
            {
                "prompt_tokens": event.prompt_tokens,
                "completion_tokens": event.completion_tokens,
                "usage_estimated": event.usage_estimated,
                "estimated_prompt_tokens": event.estimated_prompt_tokens,
                "latency": event.latency,
                "finish_reason": event.finish_reason,
                "content": event.content,
                "response_size": event.size,
                "response_id": event.response_id,
                "cost": event.cost,
            }
        )
        cost, estimated = event.cost, event.usage_estimated
        span.charge(event.prompt_tokens, event.completion_tokens, cost, estimated)

    def _tool_called(self, event: ToolCalled) -> None:
        key = f"tool:{event.span_id}"
        span = _Span(key, event.span_id, "tool", event.tool, event.ts)
        self.owners[key] = (event.span_id, event.parent_span_id)
        span.detail = {"node": event.node, "call_id": event.call_id}
        span.detail |= {"arguments": event.arguments, "size": event.size}
        self._open(key, span)

    def _tool_returned(self, event: ToolReturned) -> None:
        status = "error" if event.is_error else "ok"
        span = self._close(f"tool:{event.span_id}", event.ts, status)
        if span is not None:
            span.detail.update(
                {
                    "result": event.content,
                    "result_size": event.size,
                    "is_error": event.is_error,
                    "duration": event.duration,
                }
            )

    def _ancestors(self, key: str | None) -> Iterable[_Span]:
        while key is not None and key in self.spans:
            span = self.spans[key]
            if span.kind in ("node", "run"):
                yield span
            key = span.parent

    # ------------------------------------------------------------------ result

    def _settle(self) -> None:
        """Hang each call under its node (the span it was made in, when that is a node or run
        span, else that span's parent) and charge its tokens and cost to the nodes and runs
        above it."""
        for key, facts in self.maps.items():
            if key in self.spans:
                self.spans[key].detail.update(facts)
        for key, (own, parent) in self.owners.items():
            call = self.spans[key]
            call.parent = own if own in self.spans else parent
            if call.kind == "model" and call.end is not None:
                tokens = (call.detail["prompt_tokens"], call.detail["completion_tokens"])
                for owner in self._ancestors(call.parent):
                    owner.charge(*tokens, call.detail["cost"], call.detail["usage_estimated"])

    def model(self) -> dict[str, Any]:
        self._settle()
        spans = sorted((self.spans[key] for key in self.order), key=lambda s: s.start)
        for span in spans:
            if span.end is None:  # a crash or a cut-off trace: the bar runs to the last event
                span.end = self.last
        return {
            "start": self.first or 0.0,
            "end": self.last,
            "runs": self.runs,
            "spans": [span.as_json() for span in spans],
            "totals": self._totals(spans),
        }

    def _totals(self, spans: list[_Span]) -> dict[str, Any]:
        models = [s for s in spans if s.kind == "model"]
        costs = [s.cost for s in models if s.cost is not None]
        return {
            "duration": (self.last - self.first) if self.first is not None else 0.0,
            "nodes": sum(1 for s in spans if s.kind == "node"),
            "model_calls": len(models),
            "tool_calls": sum(1 for s in spans if s.kind == "tool"),
            "input_tokens": sum(s.tokens_in for s in models),
            "output_tokens": sum(s.tokens_out for s in models),
            "estimated": any(s.estimated for s in models),
            "cost": sum(costs) if costs else None,
            "errors": sum(1 for s in spans if s.status == "error"),
            "steps": max((s.detail.get("step") or 0 for s in spans if s.kind == "node"), default=0),
        }


def trace_model(events: Iterable[EventBase]) -> dict[str, Any]:
    """What the viewer shows, as JSON-ready data: spans (run, node, model and tool bars with
    their details, tokens and cost), the time range and the totals."""
    builder = _Builder()
    for event in events:
        builder.add(event)
    return builder.model()


def _asset(name: str) -> str:
    return resources.files("atdak_agents.tracing").joinpath(f"_viewer/{name}").read_text("utf-8")


def render_html(events: Iterable[EventBase], *, title: str = "atdak_agents trace") -> str:
    """One self-contained HTML page (inline CSS and JavaScript, nothing fetched) for a trace."""
    data = json.dumps(trace_model(events), ensure_ascii=False, default=str)
    data = data.replace("<", "\\u003c")  # no "</script>" or "<!--" can end the data block
    page = _asset("viewer.html")
    return (
        page.replace("{{title}}", html.escape(title))
        .replace("{{css}}", _asset("viewer.css"))
        .replace("{{js}}", _asset("viewer.js"))
        .replace("{{data}}", data)
    )


def write_html(trace: str | os.PathLike[str], target: str | os.PathLike[str] | None = None) -> Path:
    """Render the JSONL trace ``trace`` to ``target`` (default: beside it, ``.html``)."""
    source = Path(trace)
    out = Path(target) if target is not None else source.with_suffix(".html")
    page = render_html(read_jsonl(source), title=f"{source.name} — atdak_agents trace")
    out.write_text(page, encoding="utf-8")
    return out
