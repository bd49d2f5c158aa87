"""Function node of the ``plan_execute`` recipe."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def note_skipped(state: Mapping[str, Any]) -> dict[str, list[str]]:
    """The steps of the plan that the step budget left undone."""
    return {"skipped": list(state["plan"][len(state["results"]) :])}
