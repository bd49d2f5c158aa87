"""A readable live view of a run, as a sink writing to a text stream.

    run = graph.start(inputs, sinks=[ConsoleSink(sys.stderr)])

It shows each node as it starts and finishes (with its time, the state keys it wrote, and its
tokens and cost), what goes to the model (message count and how much of the context budget it
takes) and what comes back (the answer, streamed as it arrives, usage, latency), tool calls and
their results, a progress bar for map nodes, and totals at the end. An answer that was not
streamed (a resumed run's call answered from the journal, a replayed trace) is printed when it
comes, unless the turn was a tool call (the tool calls that follow show it: their markup is
never printed, as streaming never shows it).

On a terminal it uses colour and redraws map progress bars in place; on anything else (a file,
a pipe, CI logs) it writes plain lines, with progress at each quarter of a map. ``NO_COLOR`` in
the environment switches colour off.

Everything it prints comes from the events alone. Replaying a trace
(:func:`~atdak_agents.tracing.sinks.replay`) prints what the live run printed, exactly when the
trace kept the tokens (``JsonlSink(path, events="all")``). A default trace keeps no tokens:
each answer the live run streamed is then printed at once, from its ``model_response`` — the
same text, unless a turn mixed prose with a tool call (streaming showed the prose; the replay
shows neither, as for any tool-calling turn).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TextIO

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
    TokenDelta,
    ToolCalled,
    ToolReturned,
)

__all__ = ["ConsoleSink", "format_duration", "format_tokens"]

_PREVIEW = 100  # characters of an answer or tool result shown when tokens were not streamed
_ARGUMENTS = 80  # characters of tool arguments shown
_BAR = 24  # width of a progress bar


def format_duration(seconds: float) -> str:
    """``0.0004`` → ``"0.4 ms"``, ``0.0123`` → ``"12 ms"``, ``4.5`` → ``"4.50 s"``,
    ``95`` → ``"1m 35s"``."""
    if seconds < 0.01:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m {rest:02d}s"


def format_tokens(count: int) -> str:
    """``12345`` → ``"12,345"``."""
    return f"{count:,}"


def _cost(cost: float | None) -> str:
    return f"${cost:.4f}" if cost is not None else ""


def _one_line(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Style:
    """ANSI colours, or nothing."""

    _CODES: ClassVar[dict[str, str]] = {
        "bold": "1",
        "dim": "2",
        "red": "31",
        "green": "32",
        "yellow": "33",
        "blue": "34",
        "magenta": "35",
        "cyan": "36",
    }

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, *styles: str) -> str:
        if not self.enabled or not text:
            return text
        codes = ";".join(self._CODES[s] for s in styles)
        return f"\x1b[{codes}m{text}\x1b[0m"


@dataclass
class _Node:
    """A running node and what its model calls used so far (its children's included)."""

    name: str
    depth: int
    kind: str
    input_tokens: int = 0
    output_tokens: int = 0
    estimated: bool = False
    cost: float | None = None
    requests: int = 0

    def add(self, other: _Node) -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.estimated = self.estimated or other.estimated
        self.requests += other.requests
        if other.cost is not None:
            self.cost = (self.cost or 0.0) + other.cost


@dataclass
class _Map:
    name: str
    depth: int
    total: int
    done: int = 0
    failed: int = 0
    shown: int = 0  # quarters printed (plain output)


class ConsoleSink:
    """Writes a live, human-readable view of a run to ``stream`` (the CLI gives it stderr).

    ``color``: ``None`` (default) colours a terminal unless ``NO_COLOR`` is set; ``True`` or
    ``False`` force it. ``tokens``: show answers in full, streamed as they arrive (the run then
    streams its model calls); with ``False`` a one-line preview of each answer instead.
    """

    def __init__(self, stream: TextIO, *, color: bool | None = None, tokens: bool = True) -> None:
        self._out = stream
        tty = _isatty(stream)
        if color is None:
            color = tty and "NO_COLOR" not in os.environ
        self._style = _Style(color)
        self._live = tty  # redraw progress bars in place
        self.wants_tokens = tokens  # answers in full, streamed; else a preview
        self._streamed: set[str] = set()  # model call spans whose tokens were printed
        # an answer that was not streamed, held until the next event says whether the turn was
        # a tool call: (the node span it belongs to, its lines)
        self._held: tuple[str | None, list[tuple[int, str]]] | None = None
        self._parents: dict[str, str | None] = {}
        self._nodes: dict[str, _Node] = {}
        self._maps: dict[str, _Map] = {}
        self._quiet: set[str] = set()  # spans inside a map item: shown as progress only
        self._streaming: str | None = None  # span whose tokens are being printed
        self._bar: str | None = None  # map span whose bar is on screen (terminal only)
        self._root: str | None = None
        self._steps = 0
        self._handlers: dict[str, Callable[[Any], None]] = {
            "run_started": self._run_started,
            "run_finished": self._run_finished,
            "run_failed": self._run_failed,
            "run_interrupted": self._run_interrupted,
            "node_started": self._node_started,
            "node_finished": self._node_finished,
            "map_started": self._map_started,
            "model_request": self._model_request,
            "model_response": self._model_response,
            "model_retrying": self._model_retrying,
            "token": self._token,
            "tool_called": self._tool_called,
            "tool_returned": self._tool_returned,
        }
        #: The event types it takes (tokens only when it streams them).
        self.event_types = frozenset(self._handlers) - (
            frozenset() if self.wants_tokens else {"token"}
        )

    # ------------------------------------------------------------------ sink

    def write(self, event: EventBase) -> None:
        if self._held is not None:
            self._release(tool_call=event.type == "tool_called", owner=event.parent_span_id)
        self._track(event)
        handler = self._handlers.get(event.type)
        if handler is not None:
            handler(event)
            self._out.flush()

    def close(self) -> None:
        if self._held is not None:
            self._release(tool_call=False, owner=None)
        self._end_tokens()
        self._clear_bar()
        self._out.flush()

    def _track(self, event: EventBase) -> None:
        span = event.span_id
        if span not in self._parents:
            parent = event.parent_span_id
            self._parents[span] = parent
            if parent is not None and (parent in self._maps or parent in self._quiet):
                self._quiet.add(span)
        if event.span_id == self._root and event.step is not None:
            self._steps = max(self._steps, event.step)

    # ------------------------------------------------------------------ printing

    def _line(self, depth: int, text: str) -> None:
        self._end_tokens()
        self._clear_bar()
        self._out.write("  " * depth + text + "\n")
        self._draw_bar()

    def _end_tokens(self) -> None:
        if self._streaming is not None:
            self._out.write("\n")
            self._streaming = None

    def _clear_bar(self) -> None:
        if self._bar is not None and self._live:
            self._out.write("\r\x1b[K")

    def _draw_bar(self) -> None:
        if self._bar is not None and self._live and self._bar in self._maps:
            self._out.write(self._bar_text(self._maps[self._bar]))

    def _bar_text(self, progress: _Map) -> str:
        filled = _BAR * progress.done // max(progress.total, 1)
        bar = self._style("█" * filled, "green") + self._style("░" * (_BAR - filled), "dim")
        count = f"{progress.done}/{progress.total}"
        return "  " * progress.depth + f"  {bar} {count} {self._style(progress.name, 'dim')}"

    def _depth(self, span: str | None) -> int:
        """Indentation: one more than the nearest enclosing node."""
        while span is not None:
            node = self._nodes.get(span)
            if node is not None:
                return node.depth + 1
            span = self._parents.get(span)
        return 1

    def _owner(self, span: str | None) -> _Node | None:
        while span is not None:
            node = self._nodes.get(span)
            if node is not None:
                return node
            span = self._parents.get(span)
        return None

    # ------------------------------------------------------------------ runs

    def _run_started(self, event: RunStarted) -> None:
        if event.parent_span_id is not None:
            return  # a subgraph's run: its node is on screen already
        self._root = event.span_id
        resumed = self._style(" (resumed)", "yellow") if event.resumed else ""
        run = self._style(f"run {event.run_id}", "dim")
        self._line(
            0, f"{self._style('▶', 'cyan')} {self._style(event.graph, 'bold')}{resumed}  {run}"
        )

    def _run_finished(self, event: RunFinished) -> None:
        if event.parent_span_id is not None:
            return
        head = self._style("■ done", "green", "bold")
        self._line(0, f"{head} in {format_duration(event.duration)}{self._totals(event.usage)}")

    def _run_failed(self, event: RunFailed) -> None:
        if event.parent_span_id is not None:
            return
        head = self._style("✗ failed", "red", "bold")
        text = f"{head} after {format_duration(event.duration)}: {event.error}"
        self._line(0, text + self._totals(event.usage))

    def _run_interrupted(self, event: RunInterrupted) -> None:
        if event.parent_span_id is not None:
            return
        if event.question is not None:
            text = f"{self._style('⏸ waiting for input', 'yellow', 'bold')}: {event.question}"
        else:
            text = f"{self._style('⏸ interrupted', 'yellow', 'bold')}: {event.reason}"
        self._line(0, text + self._totals(event.usage))

    def _totals(self, usage: dict[str, Any]) -> str:
        parts = [f"{self._steps} step" + ("s" if self._steps != 1 else "")]
        requests = usage.get("requests", 0)
        if requests:
            parts.append(f"{requests} model call" + ("s" if requests != 1 else ""))
            estimated = "~" if usage.get("estimated_requests") else ""
            tokens = f"{format_tokens(usage.get('input_tokens', 0))} in / "
            parts.append(f"{estimated}{tokens}{format_tokens(usage.get('output_tokens', 0))} out")
        calls = usage.get("tool_calls", 0)
        if calls:
            parts.append(f"{calls} tool call" + ("s" if calls != 1 else ""))
        if usage.get("cost") is not None:
            parts.append(_cost(usage["cost"]))
        return self._style(" · " + " · ".join(parts), "dim")

    # ------------------------------------------------------------------ nodes

    def _node_started(self, event: NodeStarted) -> None:
        depth = self._depth(event.parent_span_id)
        path = event.node or "?"
        quiet = event.span_id in self._quiet
        name = path if quiet else path.rsplit("/", 1)[-1]  # indentation shows the nesting
        self._nodes[event.span_id] = _Node(name, depth, event.kind)
        if quiet:
            return
        kind = self._style(f"({event.kind})", "dim")
        self._line(depth, f"{self._style('●', 'blue')} {self._style(name, 'bold')} {kind}")

    def _node_finished(self, event: NodeFinished) -> None:
        node = self._nodes.pop(event.span_id, None) or _Node(event.node or "?", 1, event.kind)
        owner = self._owner(event.parent_span_id)
        if owner is not None:
            owner.add(node)  # a subgraph's or map's totals include its children's
        progress = self._maps.get(event.parent_span_id or "")
        if progress is not None:
            self._advance(progress, failed=event.error is not None)
        if event.span_id in self._quiet and event.error is None:
            return
        self._maps.pop(event.span_id, None)
        if self._bar == event.span_id:
            self._clear_bar()
            self._bar = None
        self._line(node.depth, self._finished_text(node, event))

    def _finished_text(self, node: _Node, event: NodeFinished) -> str:
        took = format_duration(event.duration)
        if event.error is not None:
            return f"{self._style('✗', 'red')} {self._style(node.name, 'bold')}  {took}  " + (
                self._style(event.error, "red")
            )
        parts = [f"{self._style('✓', 'green')} {self._style(node.name, 'bold')}  {took}"]
        if event.updated:
            parts.append(self._style("wrote " + ", ".join(event.updated), "dim"))
        if node.requests:
            estimated = "~" if node.estimated else ""
            tokens = f"{estimated}{format_tokens(node.input_tokens)} in / "
            parts.append(self._style(f"{tokens}{format_tokens(node.output_tokens)} out", "dim"))
        if node.cost is not None:
            parts.append(self._style(_cost(node.cost), "dim"))
        return "  ".join(parts)

    def _map_started(self, event: MapStarted) -> None:
        node = self._nodes.get(event.span_id)
        depth = node.depth if node is not None else 1
        progress = _Map(event.node or "map", depth + 1, event.items)
        self._maps[event.span_id] = progress
        if event.span_id in self._quiet:
            return
        if self._live:
            self._clear_bar()
            self._bar = event.span_id
            self._draw_bar()
        else:
            self._line(progress.depth, self._style(f"{event.items} items", "dim"))

    def _advance(self, progress: _Map, *, failed: bool) -> None:
        progress.done += 1
        progress.failed += failed
        if self._live:
            if self._bar is not None and self._maps.get(self._bar) is progress:
                self._clear_bar()
                self._draw_bar()
            return
        quarter = 4 * progress.done // max(progress.total, 1)
        if quarter > progress.shown and progress.done < progress.total:
            progress.shown = quarter
            self._line(progress.depth, self._style(f"{progress.done}/{progress.total}", "dim"))

    # ------------------------------------------------------------------ model calls

    def _model_request(self, event: ModelRequest) -> None:
        if event.span_id in self._quiet:
            return
        share = f" ({event.estimated_tokens / event.budget:.1%})" if event.budget else ""
        budget = f" of {format_tokens(event.budget)}{share}" if event.budget else ""
        fitted = ""
        dropped = event.fit.get("dropped_or_changed")
        if dropped:
            fitted = self._style(f" · fitted: {dropped} dropped or shortened", "yellow")
        text = (
            f"{self._style('→', 'cyan')} {event.model}  {event.message_count} messages · "
            f"~{format_tokens(event.estimated_tokens)} tokens{budget}{fitted}"
        )
        self._line(self._depth(event.parent_span_id), text)

    def _token(self, event: TokenDelta) -> None:
        if event.span_id in self._quiet or not event.text:
            return
        depth = self._depth(event.parent_span_id)
        if self._streaming != event.span_id:
            self._end_tokens()
            self._clear_bar()
            self._out.write("  " * depth)
            self._streaming = event.span_id
            self._streamed.add(event.span_id)
        self._out.write(event.text.replace("\n", "\n" + "  " * depth))

    def _model_response(self, event: ModelResponse) -> None:
        owner = self._owner(event.parent_span_id)
        if owner is not None:
            owner.requests += 1
            owner.input_tokens += event.prompt_tokens
            owner.output_tokens += event.completion_tokens
            owner.estimated = owner.estimated or event.usage_estimated
            if event.cost is not None:
                owner.cost = (owner.cost or 0.0) + event.cost
        if event.span_id in self._quiet:
            return
        depth = self._depth(event.parent_span_id)
        streamed = event.span_id in self._streamed
        self._streamed.discard(event.span_id)
        if event.content and not streamed:  # held: shown unless a tool call follows
            if self.wants_tokens:
                answer = event.content.replace("\n", "\n" + "  " * depth)
            else:
                answer = self._style(_one_line(event.content, _PREVIEW), "dim")
            lines = [(depth, answer), (depth, self._response_text(event))]
            self._held = (event.parent_span_id, lines)
            return
        self._line(depth, self._response_text(event))

    def _release(self, *, tool_call: bool, owner: str | None) -> None:
        """Print the held answer and its response line, or only the response line when the
        turn was a tool call of the same node."""
        assert self._held is not None
        node, lines = self._held
        self._held = None
        if tool_call and owner == node:
            lines = lines[1:]
        for depth, text in lines:
            self._line(depth, text)
        self._out.flush()

    def _response_text(self, event: ModelResponse) -> str:
        estimated = "~" if event.usage_estimated else ""
        parts = [
            f"{estimated}{format_tokens(event.prompt_tokens)} in / "
            f"{format_tokens(event.completion_tokens)} out",
            format_duration(event.latency),
        ]
        if event.finish_reason and event.finish_reason != "stop":
            parts.append(self._style(event.finish_reason, "yellow"))
        if event.cost is not None:
            parts.append(_cost(event.cost))
        return f"{self._style('←', 'cyan')} " + self._style(" · ".join(parts), "dim")

    def _model_retrying(self, event: ModelRetrying) -> None:
        if event.span_id in self._quiet:
            return
        text = f"↻ retry {event.attempt} in {format_duration(event.wait)}: {event.reason}"
        self._line(self._depth(event.parent_span_id), self._style(text, "yellow"))

    # ------------------------------------------------------------------ tools

    def _tool_called(self, event: ToolCalled) -> None:
        if event.span_id in self._quiet:
            return
        if event.arguments is not None:
            shown = json.dumps(event.arguments, ensure_ascii=False, default=str)
            arguments = _one_line(shown, _ARGUMENTS)
        else:
            arguments = self._style(f"({event.size} chars)", "dim")
        name = self._style(event.tool, "magenta")
        self._line(
            self._depth(event.parent_span_id), f"{self._style('⚙', 'magenta')} {name} {arguments}"
        )

    def _tool_returned(self, event: ToolReturned) -> None:
        if event.span_id in self._quiet and not event.is_error:
            return
        depth = self._depth(event.parent_span_id)
        took = format_duration(event.duration)
        if event.is_error:
            detail = _one_line(event.content, _PREVIEW) if event.content else ""
            text = f"{self._style('✗', 'red')} {event.tool} failed after {took}: {detail}"
            self._line(depth, text)
            return
        result = self._style(f"{event.size} chars", "dim")
        if event.content:
            result = self._style(_one_line(event.content, _PREVIEW), "dim")
        self._line(depth, f"{self._style('↩', 'magenta')} {event.tool} {took}  {result}")


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
