"""The trace viewer: the data it shows, the page it writes, and that page in headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from tracing_graphs import nested_pausing_graph, triage_trace

from atdak_agents.tracing import EventBus, JsonlSink, read_jsonl
from atdak_agents.tracing.events import (
    ModelResponse,
    NodeFinished,
    NodeStarted,
    RunFinished,
    RunStarted,
    ToolCalled,
    ToolReturned,
)
from atdak_agents.tracing.viewer import render_html, trace_model, write_html

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "images" / "trace-viewer.png"


# --------------------------------------------------------------------------- the data


async def test_the_model_of_a_real_run_has_its_nodes_calls_budgets_and_totals(
    tmp_path: Path,
) -> None:
    trace = await triage_trace(tmp_path / "trace.jsonl")
    model = trace_model(read_jsonl(trace))
    spans = {s["id"]: s for s in model["spans"]}
    kinds = [s["kind"] for s in model["spans"]]
    assert kinds == ["run", "node", "model", "node", "model", "tool", "model"]
    responses = [e for e in read_jsonl(trace) if isinstance(e, ModelResponse)]
    totals = model["totals"]
    assert totals["model_calls"] == 3 and totals["tool_calls"] == 1 and totals["nodes"] == 2
    assert totals["input_tokens"] == sum(r.prompt_tokens for r in responses)
    assert totals["cost"] == pytest.approx(sum(r.cost or 0.0 for r in responses))
    agent = next(s for s in model["spans"] if s["name"] == "shipping_agent")
    assert agent["calls"] == 2 and agent["tokens_in"] == sum(r.prompt_tokens for r in responses[1:])
    calls = [s for s in model["spans"] if s["kind"] == "model"]
    for call in calls:
        assert spans[call["parent"]]["kind"] == "node"
        assert call["detail"]["budget"] == 109440 and call["detail"]["context_window"] == 128000
        assert call["detail"]["messages"]
    assert calls[-1]["detail"]["streamed"] == ""  # a default trace keeps no tokens
    tool = next(s for s in model["spans"] if s["kind"] == "tool")
    assert tool["detail"]["arguments"] == {"order_id": "10423"}
    assert spans[tool["parent"]]["name"] == "shipping_agent"
    classify = spans[calls[0]["parent"]]
    assert classify["detail"]["values"] == {"category": "shipping"}  # what the node wrote


async def test_a_trace_with_every_event_shows_the_same_and_more(tmp_path: Path) -> None:
    """Recorded with ``events="all"`` (node starts, state updates, tokens): the same spans and
    totals as from the default trace of the same run, plus streaming and the states."""
    everything = tmp_path / "all.jsonl"
    trace = await triage_trace(tmp_path / "trace.jsonl", JsonlSink(everything, events="all"))
    types = {e.type for e in read_jsonl(everything)}
    assert {"node_started", "state_updated", "token"} <= types
    assert (
        not types & {"node_started", "state_updated", "token"} & {e.type for e in read_jsonl(trace)}
    )
    full, default = trace_model(read_jsonl(everything)), trace_model(read_jsonl(trace))
    assert full["totals"] == default["totals"]

    def bars(model: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [
            (s["kind"], s["name"], s["parent"], s["tokens_in"], s["cost"]) for s in model["spans"]
        ]

    assert bars(full) == bars(default)
    calls = [s for s in full["spans"] if s["kind"] == "model"]
    assert calls[-1]["detail"]["streamed"] == calls[-1]["detail"]["content"]
    assert calls[-1]["detail"]["first_token"] > 0  # time to the first streamed token
    run = full["spans"][0]
    assert [state["keys"] for state in run["detail"]["states"]] == [["category"], ["answer"]]


def test_the_page_is_one_self_contained_file() -> None:
    page = render_html([RunStarted(run_id="r", span_id="a", graph="g")])
    assert "default-src 'none'" in page  # the browser may fetch nothing
    assert not re.search(r"""\b(src|href)\s*=""", page)
    assert "<link" not in page and "http://" not in page and "https://" not in page


# --------------------------------------------------------------------------- in Chromium


def chromium(tmp_path: Path, *arguments: str) -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, (
        "chromium is not installed; the trace viewer is tested in headless Chromium: "
        "apt-get install -y chromium (.ci/run installs it)"
    )
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--virtual-time-budget=5000",
        *arguments,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


class Page(HTMLParser):
    """The rendered DOM: text by element id, attributes of rows, cards and table rows."""

    def __init__(self, dom: str) -> None:
        super().__init__()
        self.stack: list[dict[str, str | None]] = []
        self.text: dict[str, str] = {}
        self.rows: list[dict[str, str | None]] = []
        self.cards: dict[str, str] = {}
        self.nodes: dict[str, list[str]] = {}
        self.body: dict[str, str | None] = {}
        self.feed(dom)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {**dict(attrs), "tag": tag}
        if tag == "body":
            self.body = attributes
        if attributes.get("class") == "row":
            self.rows.append(attributes)
        if tag in ("meta", "br", "img", "input"):
            return
        self.stack.append(attributes)

    def handle_endtag(self, tag: str) -> None:
        if self.stack:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        for element in self.stack:
            key = element.get("id") or element.get("data-total") or element.get("data-node")
            if key:
                self.text[key] = self.text.get(key, "") + data
        card = next((e.get("data-total") for e in self.stack if e.get("data-total")), None)
        if card and self.stack[-1].get("class") == "value":
            self.cards[card] = data
        node = next((e.get("data-node") for e in self.stack if e.get("data-node")), None)
        if node and self.stack[-1]["tag"] == "td":
            self.nodes.setdefault(node, []).append(data)


async def test_chromium_shows_the_runs_nodes_calls_and_totals(tmp_path: Path) -> None:
    trace = await triage_trace(tmp_path / "trace.jsonl")
    page = Page(chromium(tmp_path, "--dump-dom", write_html(trace).as_uri()))
    assert page.body.get("data-ready") == "yes", "the viewer's script did not run to its end"
    assert page.text["title"] == "support-triage"
    assert page.text["status"].startswith("done run ")
    responses = [e for e in read_jsonl(trace) if isinstance(e, ModelResponse)]
    prompt = sum(r.prompt_tokens for r in responses)
    cost = sum(r.cost or 0.0 for r in responses)
    assert page.cards["model calls"] == "3" and page.cards["tool calls"] == "1"
    assert page.cards["steps"] == "2" and page.cards["errors"] == "0"
    assert page.cards["input tokens"] == f"~{prompt:,}"
    assert page.cards["cost"] == f"${cost:.4f}"
    kinds = [row["data-kind"] for row in page.rows]
    assert kinds == ["run", "node", "model", "node", "model", "tool", "model"]
    assert "shipping_agent" in page.text["timeline"] and "lookup_order" in page.text["timeline"]
    assert page.nodes["classify"][:2] == ["classify", "llm"]
    agent = page.nodes["shipping_agent"]
    assert agent[1] == "agent" and agent[3] == "2"  # two model calls
    assert agent[4] == f"~{sum(r.prompt_tokens for r in responses[1:]):,}"


async def test_a_screenshot_of_an_inspected_model_call(tmp_path: Path) -> None:
    """Makes the picture in docs/tracing.md (ATDAK_UPDATE_SCREENSHOTS=1 writes it there)."""
    trace = await triage_trace(tmp_path / "trace.jsonl")
    shot = tmp_path / "viewer.png"
    url = write_html(trace).as_uri() + "#inspect=model"
    chromium(
        tmp_path,
        f"--screenshot={shot}",
        "--window-size=1200,1250",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        url,
    )
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20_000
    if os.environ.get("ATDAK_UPDATE_SCREENSHOTS"):
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)


async def test_a_paused_run_with_maps_and_subgraphs_in_chromium(tmp_path: Path) -> None:
    path = tmp_path / "nested.jsonl"
    await nested_pausing_graph().build().run(sinks=[JsonlSink(path)])
    page = Page(chromium(tmp_path, "--dump-dom", write_html(path).as_uri()))
    assert page.text["status"].startswith("interrupted run ")
    assert list(page.nodes) == ["each", "sub", "sub/twice", "ask"]  # map items summed up
    kinds = [row["data-kind"] for row in page.rows]
    assert kinds.count("run") == 4  # the run, the map's two subgraph runs, the subgraph's run
    assert page.cards["model calls"] == "0" and page.cards["cost"] == "—"


def test_contents_are_shown_as_text_never_run_as_markup(tmp_path: Path) -> None:
    path = tmp_path / "hostile.jsonl"
    hostile = "</script><script>document.title='pwned'</script><b>bold?</b>"
    bus = EventBus("r", [JsonlSink(path)])
    for event in [
        RunStarted(run_id="r", span_id="root", graph="g"),
        NodeStarted(run_id="r", span_id="n", parent_span_id="root", node="agent", kind="agent"),
        ToolCalled(run_id="r", span_id="t", parent_span_id="n", tool="fetch", arguments={}),
        ToolReturned(run_id="r", span_id="t", parent_span_id="n", tool="fetch", content=hostile),
        NodeFinished(run_id="r", span_id="n", parent_span_id="root", node="agent"),
        RunFinished(run_id="r", span_id="root"),
    ]:
        bus.publish(event)
    bus.close()
    page = write_html(path, tmp_path / "hostile.html")
    assert hostile not in page.read_text(encoding="utf-8")
    dom = chromium(tmp_path, "--dump-dom", page.as_uri() + "#inspect=tool")
    assert "pwned" not in re.findall(r"<title>(.*?)</title>", dom)[0]
    assert "&lt;/script&gt;&lt;script&gt;document.title='pwned'" in dom  # shown, as text
    assert "<b>bold?</b>" not in dom


# --------------------------------------------------------------------------- the command


def cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "atdak_agents.cli", *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


async def test_trace_view_writes_the_page_where_asked(tmp_path: Path) -> None:
    trace = await triage_trace(tmp_path / "trace.jsonl")
    done = cli("trace", "view", str(trace), "-o", str(tmp_path / "out.html"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path / "out.html")
    assert "support-triage" in (tmp_path / "out.html").read_text(encoding="utf-8")
    beside = cli("trace", "view", str(trace))
    assert beside.returncode == 0 and (tmp_path / "trace.html").is_file()


def test_trace_view_explains_a_missing_or_broken_trace(tmp_path: Path) -> None:
    missing = cli("trace", "view", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 1 and "no trace file" in missing.stderr
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"type": "run_started", "run_id": "r"}\n{"oops": 1}\n', encoding="utf-8")
    failed = cli("trace", "view", str(broken))
    assert failed.returncode == 1 and f"{broken}:2: not a trace event" in failed.stderr
    assert "Traceback" not in failed.stderr
