"""A tool-using agent: a calculator and a clock, through the prompt tool protocol.

With ``ATDAK_API_KEY`` set it asks the real Atdak API; without it, the local Atdak-compatible
server answers with scripted replies (the same bytes a real model would send), so this runs
offline.

    python examples/agent_tools.py
"""

from __future__ import annotations

import ast
import asyncio
import json
import operator
import os
from datetime import datetime, timezone

from atdak_agents import Agent, AsyncAtdakClient, tool
from atdak_agents.testing import LocalAtdakServer

_OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
}


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.operand))
    raise ValueError("only numbers and + - * / ** are allowed")


@tool
def calculate(expression: str) -> float:
    """Evaluate an arithmetic expression.

    Args:
        expression: Numbers with + - * / ** and parentheses, e.g. "(3 + 4) * 12".
    """
    return _evaluate(ast.parse(expression, mode="eval").body)


@tool
def now(timezone_name: str = "UTC") -> str:
    """The current date and time (UTC only in this example)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def scripted_replies() -> list[str]:
    both = {
        "tool_calls": [
            {"name": "calculate", "arguments": {"expression": "1234 * 5678"}},
            {"name": "now", "arguments": {}},
        ]
    }
    return [json.dumps(both), "1234 × 5678 = 7,006,652. (Answered just now.)"]


async def main() -> None:
    agent = Agent(
        "atdak-gpt-4-mini",
        "You are a precise assistant. Use the calculator for arithmetic.",
        tools=[calculate, now],
    )
    question = "What is 1234 times 5678? And what time is it?"
    if os.environ.get("ATDAK_API_KEY"):
        async with AsyncAtdakClient() as client:
            stream = agent.stream(question, provider=client)
            await show(stream)
        return
    print("(no ATDAK_API_KEY: the local Atdak-compatible server answers)\n")
    async with LocalAtdakServer(scripted_replies()) as server, server.async_client() as client:
        await show(agent.stream(question, provider=client))


async def show(stream) -> None:  # type: ignore[no-untyped-def]
    async for event in stream:
        if event.type == "tool_called":
            print(f"→ {event.tool}({json.dumps(event.arguments, ensure_ascii=False)})")
        elif event.type == "tool_returned":
            print(f"← {event.tool}: {event.content}")
        elif event.type == "model_response":
            print(
                f"  [{event.model}: {event.prompt_tokens} prompt + "
                f"{event.completion_tokens} answer tokens]"
            )
    result = stream.result
    print(
        f"\n{result.output}\n({result.status}, {result.steps} model calls, "
        f"{result.usage.total_tokens} tokens)"
    )


if __name__ == "__main__":
    asyncio.run(main())
