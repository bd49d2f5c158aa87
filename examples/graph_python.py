"""A support-triage graph built in Python: classify → route → a tool-using agent or a reply.

With ``ATDAK_API_KEY`` set it runs against the real Atdak API; without it, the local
Atdak-compatible server answers with scripted replies, so this runs offline.

    python examples/graph_python.py
"""

from __future__ import annotations

import asyncio
import json
import os

from atdak_agents import AsyncAtdakClient, GraphBuilder, tool
from atdak_agents.testing import LocalAtdakServer

ORDERS = {"10423": {"status": "in transit", "carrier": "SF Express", "eta": "2 days"}}


@tool
def lookup_order(order_id: str) -> dict[str, str]:
    """Look up an order.

    Args:
        order_id: The order number, digits only, e.g. "10423".
    """
    return ORDERS.get(order_id, {"status": "unknown order"})


def build_graph():  # type: ignore[no-untyped-def]
    g = GraphBuilder("support-triage", model="atdak-gpt-4-mini")
    g.input("question", str, example="我的订单 #10423 三天了还没发货，能退款吗？")
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
        "You resolve shipping questions. Look the order up before answering. Answer in the "
        "customer's language.",
        tools=[lookup_order],
        input="{{ inputs.question }}",
        writes="answer",
        max_steps=4,
    )
    g.llm("reply", "Answer politely and briefly: {{ inputs.question }}", writes="answer")
    g.chain("classify", "route")
    g.edge("shipping_agent", "end").edge("reply", "end")
    g.output("answer", "state.answer")
    return g.build()


SCRIPT = [
    '{"category": "shipping"}',
    json.dumps({"tool_calls": [{"name": "lookup_order", "arguments": {"order_id": "10423"}}]}),
    "您的订单 #10423 正在运输中（顺丰），预计 2 天送达；如届时未到，可以申请退款。",
]


async def run(graph, client) -> None:  # type: ignore[no-untyped-def]
    question = graph.spec.inputs["question"].example
    run = graph.start({"question": question}, provider=client)
    async for event in run.events(include={"node_finished", "tool_called"}):
        if event.type == "tool_called":
            print(f"    tool {event.tool}({event.arguments})")
        else:
            print(f"  {event.node:<15} {event.duration * 1000:6.1f} ms  wrote {event.updated}")
    result = run.result()
    print(f"\n{result.output['answer']}\n")
    print(
        f"status {result.status}, {result.steps} steps, {result.usage.requests} model calls, "
        f"{result.usage.total_tokens} tokens"
    )


async def main() -> None:
    graph = build_graph()
    print(graph.to_mermaid())
    if os.environ.get("ATDAK_API_KEY"):
        async with AsyncAtdakClient() as client:
            await run(graph, client)
        return
    print("(no ATDAK_API_KEY: the local Atdak-compatible server answers)\n")
    async with LocalAtdakServer(SCRIPT) as server, server.async_client() as client:
        await run(graph, client)


if __name__ == "__main__":
    asyncio.run(main())
