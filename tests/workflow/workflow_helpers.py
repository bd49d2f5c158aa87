"""Shared helpers of the workflow tests (a uniquely named module: tests/ has no packages)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from atdak_agents.exceptions import WorkflowError
from atdak_agents.workflow import loads_workflow

EXAMPLES = Path(__file__).resolve().parent / "examples"
SUPPORT_ENV = {"SHOP_ATDAK_KEY": "sk-shop-0123456789abcdef"}

Write = Callable[..., Path]


def problems(text: str, **options: object) -> list[str]:
    """The problems of a workflow text, as printed (``wf.yaml:LINE:COL path: message``)."""
    with pytest.raises(WorkflowError) as caught:
        loads_workflow(textwrap.dedent(text).lstrip("\n"), name="wf.yaml", **options)  # type: ignore[arg-type]
    return [str(p) for p in caught.value.problems]
