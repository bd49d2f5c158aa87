"""recipes/map_reduce_summary.yaml: a document longer than atdak-llama-70b's window, split by
token budget, summarised chunk by chunk (map), then as a whole (reduce)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from recipe_harness import recipe_function, run_recipe

from atdak_agents.context.budget import ContextBudget
from atdak_agents.context.tokens import count_tokens
from atdak_agents.exceptions import ContextLengthExceededError
from atdak_agents.testing import LocalAtdakServer
from atdak_agents.testing.fixtures import request_text

MODEL = "atdak-llama-70b"
WINDOW = 32_000
CHUNK_TOKENS = 10_000  # the recipe's default
MAP_MAX_TOKENS = 600  # the map node's max_tokens

annual_report = recipe_function("summary_steps:annual_report")


def test_the_example_document_is_longer_than_the_window() -> None:
    document = annual_report()
    assert annual_report() == document  # generated the same way on every run
    assert count_tokens(document, model=MODEL) > WINDOW
    assert count_tokens(document, tokenizer="cl100k_base") > WINDOW  # an exact vocabulary agrees


async def test_the_server_refuses_the_whole_document() -> None:
    document = {"role": "user", "content": annual_report()}
    async with LocalAtdakServer("never sent") as server, server.async_client() as client:
        with pytest.raises(ContextLengthExceededError):
            await client.chat.completions.create(model=MODEL, messages=[document])
    assert len(server.requests) == 1  # refused by the server, not retried


async def test_each_chunk_request_fits_the_window_and_the_reduce_sees_them_all(
    recipes: Path,
) -> None:
    outcome = await run_recipe(recipes, "map_reduce_summary")
    result = outcome.result
    assert result.status == "done"
    document, chunks = result.state["document"], result.state["chunks"]
    assert "".join(chunks) == document  # nothing lost, nothing repeated
    tokens = count_tokens(document, model=MODEL)
    assert result.output["document_tokens"] == tokens > WINDOW
    assert len(chunks) >= math.ceil(tokens / CHUNK_TOKENS) >= 4
    assert all(count_tokens(c, model=MODEL) <= CHUNK_TOKENS for c in chunks)

    # one map request per chunk, each carrying exactly its chunk, each within the budget
    budget = ContextBudget.for_model(MODEL, max_tokens=MAP_MAX_TOKENS).prompt_tokens
    maps = [r for r in outcome.requests if "of a long report" in request_text(r)]
    assert len(maps) == len(chunks)
    sent = sorted(_part(request_text(r)) for r in maps)
    assert sent == sorted(chunk.strip() for chunk in chunks)
    for request in maps:
        assert request.model == MODEL and request.body["max_tokens"] == MAP_MAX_TOKENS
        assert count_tokens(request.messages, model=MODEL) <= budget < WINDOW
    (started,) = outcome.of("map_started")
    assert started.items == len(chunks) and started.concurrency == 4
    assert all(not e.fit.get("dropped_or_changed") for e in outcome.of("model_request"))

    combine = request_text(outcome.requests[-1])
    assert combine.count("<summary part=") == len(chunks) == len(result.state["partials"])
    assert result.output["summary"].startswith("2024 年公司经营总体稳健")


def _part(text: str) -> str:
    found = re.search(r"<part>\n(.*)\n</part>", text, re.S)
    assert found is not None
    return found.group(1).strip()
