"""Graphs and traces the tracing tests share: a support-triage graph whose model calls go over
real HTTP to the local Atdak-compatible server, and graphs of function, map, subgraph and human
nodes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from atdak_agents import tool
from atdak_agents.graph.build import Graph
from atdak_agents.graph.builder import GraphBuilder
from atdak_agents.providers.profiles import default_registry
from atdak_agents.testing import LocalAtdakServer
from atdak_agents.tracing import JsonlSink, Sink

QUESTION = "我的订单 #10423 三天了还没发货，能退款吗？"
ANSWER = "您的订单 #10423 正在运输中（顺丰），预计 2 天送达；如届时未到，可以申请退款。"
ORDERS = {"10423": {"status": "in transit", "carrier": "SF Express", "eta": "2 days"}}


@tool
def lookup_order(order_id: str) -> dict[str, str]:
    """Look up an order.

    Args:
        order_id: The order number, digits only, e.g. "10423".
    """
    return ORDERS.get(order_id, {"status": "unknown order"})


def triage_graph() -> Graph:
    """classify (llm) → route → shipping_agent (agent with a tool) or reply (llm)."""
    g = GraphBuilder("support-triage", model="atdak-gpt-4-mini")
    g.input("question", str)
    g.state("category", str)
    g.state("answer", str)
    g.llm(
        "classify",
        "Classify the customer message.\nMessage: {{ inputs.question }}",
        output={"category": {"enum": ["shipping", "billing", "other"]}},
    )
    g.router("route", [("state.category == 'shipping'", "shipping_agent")], otherwise="reply")
    g.agent(
        "shipping_agent",
        "You resolve shipping questions. Look the order up before answering.",
        tools=[lookup_order],
        input="{{ inputs.question }}",
        writes="answer",
        max_steps=4,
    )
    g.llm("reply", "Answer politely and briefly: {{ inputs.question }}", writes="answer")
    g.chain("classify", "route")
    g.edge("shipping_agent", "end").edge("reply", "end")
    g.output("answer", "state.answer")
    return g.build(registry=priced_registry())


def priced_registry() -> Any:
    """The default models, with a price on atdak-gpt-4-mini so traces carry costs."""
    registry = default_registry.copy()
    mini = registry.get("atdak-gpt-4-mini")
    registry.register(
        mini.model_copy(update={"input_price_per_1k": 0.15, "output_price_per_1k": 0.6})
    )
    return registry


SCRIPT = [
    '{"category": "shipping"}',
    json.dumps({"tool_calls": [{"name": "lookup_order", "arguments": {"order_id": "10423"}}]}),
    ANSWER,
]


async def run_triage(
    sinks: Sequence[Sink],
    *,
    stream_to: list[Any] | None = None,
    question: str = QUESTION,
    **options: Any,
) -> Any:
    """Run the triage graph against the local server; ``stream_to`` collects run.events()."""
    async with LocalAtdakServer(list(SCRIPT)) as server, server.async_client() as client:
        inputs = {"question": question}
        run = triage_graph().start(inputs, provider=client, sinks=sinks, **options)
        if stream_to is not None:
            stream_to.extend([event async for event in run.events()])
            return run.result()
        return await run.until_done()


async def triage_trace(path: Path, *sinks: Sink) -> Path:
    """A JSONL trace of a triage run (streamed, so it holds token events too)."""
    await run_triage([JsonlSink(path), *sinks], stream_to=[])
    return path


def square(item: int) -> int:
    return item * item


def mapping_graph() -> GraphBuilder:
    g = GraphBuilder("squares")
    g.input("xs", list)
    g.state("squares", list)
    g.map("each", "inputs.xs", square, writes="squares", concurrency=3)
    g.chain("each", "end")
    return g


def nested_pausing_graph() -> GraphBuilder:
    """A map over a subgraph, a subgraph, then a human question."""
    inner = GraphBuilder("inner")
    inner.input("item", int)
    inner.state("double", int)
    inner.function("twice", lambda inputs: {"double": inputs["item"] * 2}, writes=["double"])
    inner.chain("twice", "end")
    g = GraphBuilder("outer")
    g.state("xs", list, default=[1, 2])
    g.state("ys", list)
    g.state("one", int)
    g.state("ok", str)
    g.map("each", "state.xs", inner.spec(), writes="ys")
    g.subgraph("sub", inner.spec(), inputs={"item": "state.xs[0]"}, outputs={"one": "double"})
    g.human("ask", "Send {{ state.one }}?", writes="ok")
    g.chain("each", "sub", "ask", "end")
    return g
