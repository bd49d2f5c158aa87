"""Steps of the counter example."""

from typing import Any


def increment(state: Any) -> dict[str, Any]:
    return {"n": state["n"] + 1, "seen": state["n"]}
