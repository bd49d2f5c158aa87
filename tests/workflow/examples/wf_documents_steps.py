"""Steps of the documents example."""

from typing import Any


def split(inputs: Any) -> dict[str, Any]:
    return {"paragraphs": [p.strip() for p in inputs["text"].split("\n\n") if p.strip()]}


def count_words(inputs: Any) -> dict[str, Any]:
    return {"words": len(inputs["item"].split())}
