"""Budgets: window - max_tokens - margin, checked before sending, with errors that explain."""

from __future__ import annotations

import pytest

from atdak_agents.context.budget import (
    ContextBudget,
    PromptCounter,
    check_request,
    estimate_request,
    record_usage,
)
from atdak_agents.context.calibration import TokenCalibration
from atdak_agents.exceptions import ContextBudgetError, InvalidParameterError
from atdak_agents.messages import Message
from atdak_agents.providers._wire import ChatCompletion, ChatCompletionRequest, Choice, Usage


def test_budget_is_window_minus_answer_minus_margin() -> None:
    budget = ContextBudget.for_model("atdak-llama-70b", max_tokens=1000)
    assert (budget.context_window, budget.max_tokens, budget.safety_margin) == (32_000, 1000, 640)
    assert budget.prompt_tokens == 32_000 - 1000 - 640
    default = ContextBudget.for_model("atdak-claude-3")
    assert default.max_tokens == 8_000
    assert default.prompt_tokens == 200_000 - 8_000 - 4_000
    assert ContextBudget.for_model("atdak-gpt-4", safety_margin=0).safety_margin == 0


def test_shrinking_keeps_a_fraction_of_the_prompt_space() -> None:
    budget = ContextBudget.for_model("atdak-llama-70b", max_tokens=1000)
    assert budget.shrunk(0.5).prompt_tokens == budget.prompt_tokens // 2


@pytest.mark.parametrize("max_tokens", [0, -5, 32_000, 50_000])
def test_impossible_max_tokens_are_refused(max_tokens: int) -> None:
    with pytest.raises(InvalidParameterError, match="max_tokens"):
        ContextBudget.for_model("atdak-llama-70b", max_tokens=max_tokens)


def _request(*texts: str, max_tokens: int | None = 2000, **extra: object) -> ChatCompletionRequest:
    messages = [Message(role="system", content="Answer in English.")]
    messages += [Message(role="user", content=t) for t in texts]
    return ChatCompletionRequest(
        model="atdak-llama-70b", messages=messages, max_tokens=max_tokens, **extra
    )


def test_a_request_that_fits_passes_the_check() -> None:
    estimate = check_request(_request("What is the capital of France?"))
    assert estimate.fits
    assert estimate.over == 0
    assert 10 < estimate.tokens < 40


def test_an_oversized_request_names_model_window_estimate_and_culprit() -> None:
    document = "这是一份很长的合同。" * 4_000  # ~40K tokens of Chinese
    request = _request("Earlier question", document, max_tokens=2000)
    with pytest.raises(ContextBudgetError) as caught:
        check_request(request)
    error = caught.value
    message = str(error)
    assert error.model == "atdak-llama-70b"
    assert error.context_window == 32_000
    assert error.estimate > 32_000
    assert error.max_tokens == 2000
    assert max(error.breakdown, key=error.breakdown.__getitem__) == "latest message"
    for needle in ("atdak-llama-70b", "32000", "max_tokens 2000", "latest message", "margin"):
        assert needle in message


def test_native_tools_take_prompt_space() -> None:
    tool = {
        "type": "function",
        "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
    }
    plain = estimate_request(_request("hi"))
    with_tools = estimate_request(_request("hi", tools=[tool] * 5))
    assert with_tools.tokens > plain.tokens + 20
    assert "tools" in with_tools.parts


def test_calibration_changes_the_estimate() -> None:
    calibration = TokenCalibration(min_samples=1)
    counter = PromptCounter("atdak-llama-70b", calibration=calibration)
    request = _request("Tell me about the harbour town and its library. " * 20)
    before = estimate_request(request, counter=counter).tokens
    calibration.observe("atdak-llama-70b", 1000, 1500)
    assert estimate_request(request, counter=counter).tokens == pytest.approx(before * 1.5, abs=1)


def test_record_usage_feeds_the_server_count_back() -> None:
    calibration = TokenCalibration(min_samples=1)
    counter = PromptCounter("atdak-llama-70b", calibration=calibration)
    request = _request("A question long enough to be a real sample for calibration. " * 5)
    raw = counter.raw(request.messages)
    answer = ChatCompletion(
        choices=[Choice(message=Message(role="assistant", content="ok"))],
        usage=Usage(prompt_tokens=raw * 2, completion_tokens=1, total_tokens=raw * 2 + 1),
    )
    assert record_usage(request, answer, counter=counter) == 2.0
    streamed = answer.model_copy(update={"usage": Usage(prompt_tokens=5, estimated=True)})
    assert record_usage(request, streamed, counter=counter) is None
    assert record_usage(request, answer.model_copy(update={"usage": None}), counter=counter) is None
    assert calibration.samples("atdak-llama-70b") == 1
