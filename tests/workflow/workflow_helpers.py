"""Shared helpers of the workflow tests (a uniquely named module: tests/ has no packages)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from atdak_agents.exceptions import WorkflowError
from atdak_agents.tools import tool
from atdak_agents.workflow import loads_workflow

EXAMPLES = Path(__file__).resolve().parent / "examples"
SUPPORT_ENV = {"SHOP_ATDAK_KEY": "sk-shop-0123456789abcdef"}

Write = Callable[..., Path]


def problems(text: str, **options: object) -> list[str]:
    """The problems of a workflow text, as printed (``wf.yaml:LINE:COL path: message``)."""
    with pytest.raises(WorkflowError) as caught:
        loads_workflow(textwrap.dedent(text).lstrip("\n"), name="wf.yaml", **options)  # type: ignore[arg-type]
    return [str(p) for p in caught.value.problems]


# --------------------------------------------------------------------------- importable steps
# Module-level, so a graph built in Python with them dumps to YAML as `workflow_helpers:NAME`.


def increment(state: Any) -> dict[str, Any]:
    return {"n": state["n"] + 1, "log": f"n={state['n']}"}


def double(state: Any) -> dict[str, Any]:
    return {"n": state["n"] * 2, "log": "doubled"}


def longest(current: Any, update: Any) -> Any:
    """A custom reducer: keep the longer text."""
    return update if len(str(update)) > len(str(current or "")) else current


class Steps:
    @staticmethod
    def word_count(item: str) -> dict[str, Any]:
        return {"size": len(item.split())}


@tool
def lookup(order_id: str) -> str:
    """Look an order up."""
    return f"order {order_id}: shipped"
