from __future__ import annotations

from typing import Any

import pytest

from atdak_agents.graph.builder import GraphBuilder
from atdak_agents.graph.checkpoint import InMemoryCheckpointer


def increment(state: Any) -> dict[str, Any]:
    return {"n": state["n"] + 1}


def double(state: Any) -> dict[str, Any]:
    return {"n": state["n"] * 2}


@pytest.fixture
def counter() -> GraphBuilder:
    """a (n+1) -> b (n*2) -> router: back to a while n < 50, else end."""
    g = GraphBuilder("counter")
    g.state("n", int, default=1)
    g.function("a", increment, writes=["n"])
    g.function("b", double, writes=["n"])
    g.router("loop", [("state.n < 50", "a")], otherwise="end")
    g.chain("a", "b", "loop")
    return g


@pytest.fixture
def checkpointer() -> InMemoryCheckpointer:
    return InMemoryCheckpointer()
