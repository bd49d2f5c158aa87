"""The report subgraph's step (imported relative to graphs/report.yaml)."""

from typing import Any


def write_report(inputs: Any) -> dict[str, Any]:
    sizes = inputs["sizes"]
    words = [s["words"] for s in sizes]
    return {"text": f"{len(words)} paragraphs, {sum(words)} words"}
