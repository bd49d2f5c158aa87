"""Over real HTTP against the local Atdak server: calibration converges on the server's exact
(cl100k) counts, and a context-length refusal is trimmed and retried once."""

from __future__ import annotations

import random
from typing import Any

from context_corpora import chinese_prose, english_prose

from atdak_agents.context.calibration import TokenCalibration
from atdak_agents.context.history import HistoryFitter
from atdak_agents.context.refit import complete_fitted
from atdak_agents.context.tokens import count_tokens
from atdak_agents.messages import Message
from atdak_agents.providers._wire import ChatCompletionRequest
from atdak_agents.testing import LocalAtdakServer

MODEL = "atdak-llama-70b"


def exact_counter(density: float = 1.0) -> Any:
    """The server's prompt counter: cl100k_base (times ``density``, for a denser tokenizer)."""

    def count(text_or_messages: Any, model: str) -> int:
        return round(count_tokens(text_or_messages, tokenizer="cl100k_base") * density)

    return count


def prompts(count: int, seed: int) -> list[list[Message]]:
    rng = random.Random(seed)
    paragraphs = [*chinese_prose(seed).split("\n\n"), *english_prose(seed).split("\n\n")]
    return [
        [Message(role="system", content="You answer questions about the text.")]
        + [Message(role="user", content=p) for p in rng.sample(paragraphs, rng.randint(1, 3))]
        for _ in range(count)
    ]


async def test_calibration_converges_on_the_servers_exact_counts() -> None:
    calibration = TokenCalibration()
    fitter = HistoryFitter(MODEL, max_tokens=500, calibration=calibration)
    held_out = prompts(15, seed=50)

    def mean_error() -> float:
        return sum(
            abs(fitter.estimate(p) / count_tokens(p, tokenizer="cl100k_base") - 1) for p in held_out
        ) / len(held_out)

    before = mean_error()
    errors = []
    server = LocalAtdakServer("ok", token_counter=exact_counter())
    async with server, server.async_client() as client:
        for prompt in prompts(25, seed=3):
            request = ChatCompletionRequest(model=MODEL, messages=prompt, max_tokens=500)
            answer = await complete_fitted(client, request, fitter)
            assert answer.usage is not None
            errors.append(abs(fitter.estimate(prompt) / answer.usage.prompt_tokens - 1))
    after = mean_error()
    assert calibration.samples(MODEL) == 25
    assert after < before / 1.5, (before, after)
    assert after < 0.05
    assert sum(errors[-10:]) / 10 < 0.05


async def test_a_context_length_refusal_over_http_is_trimmed_and_retried() -> None:
    history = [Message(role="system", content="You are a support assistant.")]
    text = chinese_prose()
    for i in range(400):
        history.append(Message(role="user", content=f"#{i} " + text[(i * 37) % 3000 :][:120]))
        history.append(Message(role="assistant", content=f"Answer {i}: noted, thank you."))
    fitter = HistoryFitter(MODEL, max_tokens=2_000, calibration=TokenCalibration())
    # The model's real tokenizer is 40% denser than cl100k: the first fitted prompt overflows.
    async with LocalAtdakServer("好的", token_counter=exact_counter(1.4)) as server:
        async with server.async_client(max_retries=0) as client:
            request = ChatCompletionRequest(model=MODEL, messages=history, max_tokens=2_000)
            answer = await complete_fitted(client, request, fitter)
        refused, accepted = server.requests
    assert answer.text == "好的"
    assert len(accepted.messages) < len(refused.messages) < len(history)
    assert accepted.messages[-1]["content"] == history[-1].content
    assert accepted.messages[0]["content"] == history[0].content
    assert fitter.counter.calibration.samples(MODEL) == 2  # the refusal's count and the usage
