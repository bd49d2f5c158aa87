"""Python steps of the workflows the CLI tests run."""

from __future__ import annotations

import os
from typing import Any


def increment(state: dict[str, Any]) -> dict[str, Any]:
    return {"n": state["n"] + 1}


def reveal(state: dict[str, Any]) -> dict[str, Any]:
    """Writes the shop key into the state: it must still never be printed."""
    return {"note": f"key in use: {os.environ['SHOP_KEY']}"}


def size(item: str) -> dict[str, Any]:
    return {"size": len(item)}
