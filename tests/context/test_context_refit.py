"""Trim harder and retry once when the server still answers context-length-exceeded."""

from __future__ import annotations

import pytest
from context_doubles import FunctionModel

from atdak_agents.context.calibration import TokenCalibration
from atdak_agents.context.history import HistoryFitter
from atdak_agents.context.refit import complete_fitted, reported_prompt_tokens, stream_fitted
from atdak_agents.context.strategies import DropOldest, KeepLast
from atdak_agents.context.tokens import count_tokens
from atdak_agents.exceptions import ContextBudgetError, ContextLengthExceededError
from atdak_agents.messages import Message
from atdak_agents.providers._wire import ChatCompletionRequest
from atdak_agents.providers.profiles import ModelProfile

PROFILE = ModelProfile(name="refit-test", context_window=4_000, max_output_tokens=500)


def overflow(prompt: int, window: int = 4_000) -> ContextLengthExceededError:
    message = (
        f"This model's maximum context length is {window} tokens. However, you requested "
        f"{prompt + 500} tokens ({prompt} in the messages, 500 in the completion)."
    )
    return ContextLengthExceededError(message, status_code=400, code="context_length_exceeded")


def history(turns: int) -> list[Message]:
    messages = [Message(role="system", content="Be helpful.")]
    for i in range(turns):
        messages.append(Message(role="user", content=f"question {i}: " + "话题很长 " * 20))
        messages.append(Message(role="assistant", content=f"answer {i}: " + "fine " * 20))
    return messages


def strict_server(density: float = 1.0, window: int = 4_000) -> FunctionModel:
    """Counts prompts as cl100k x ``density`` and refuses those that overflow ``window``."""

    def prompt_tokens(request: ChatCompletionRequest) -> int:
        return round(count_tokens(request.messages, tokenizer="cl100k_base") * density)

    def answer(request: ChatCompletionRequest) -> str:
        prompt = prompt_tokens(request)
        if prompt + (request.max_tokens or 0) > window:
            raise overflow(prompt, window)
        return f"ok with {len(request.messages)} messages"

    return FunctionModel(answer, prompt_tokens=prompt_tokens)


def make_fitter(*strategies: object) -> HistoryFitter:
    return HistoryFitter(
        PROFILE,
        list(strategies) or None,  # type: ignore[arg-type]
        max_tokens=500,
        calibration=TokenCalibration(min_samples=1),
    )


def test_the_servers_count_is_read_from_its_message() -> None:
    assert reported_prompt_tokens(overflow(12_345)) == 12_345
    openai = ContextLengthExceededError(
        "This model's maximum context length is 8192 tokens. However, your messages resulted in "
        "9,001 tokens.",
        status_code=400,
    )
    assert reported_prompt_tokens(openai) == 9001
    assert reported_prompt_tokens(ContextLengthExceededError("too long", status_code=400)) is None


async def test_a_refusal_is_retried_once_with_a_shorter_history() -> None:
    model = strict_server(density=1.3)  # the model's tokenizer is denser than we think
    fitter = make_fitter()
    request = ChatCompletionRequest(model="refit-test", messages=history(40), max_tokens=500)
    answer = await complete_fitted(model, request, fitter)
    first, second = model.requests
    assert len(second.messages) < len(first.messages)
    assert second.messages[-1] is request.messages[-1]
    assert answer.text == f"ok with {len(second.messages)} messages"
    assert fitter.counter.calibration.samples("refit-test") == 2  # the refusal and the usage


async def test_the_successful_answer_calibrates_the_model() -> None:
    model = strict_server()
    fitter = make_fitter()
    request = ChatCompletionRequest(model="refit-test", messages=history(3), max_tokens=500)
    await complete_fitted(model, request, fitter)
    sent = model.requests[0]
    exact = count_tokens(sent.messages, tokenizer="cl100k_base")
    assert fitter.counter.calibration.factor("refit-test") == pytest.approx(
        exact / fitter.counter.raw(sent.messages)
    )


async def test_a_second_refusal_is_raised() -> None:
    def refuse(request: ChatCompletionRequest) -> str:
        raise ContextLengthExceededError("context too long", status_code=400)

    model = FunctionModel(refuse)
    request = ChatCompletionRequest(model="refit-test", messages=history(40), max_tokens=500)
    with pytest.raises(ContextLengthExceededError):
        await complete_fitted(model, request, make_fitter())
    assert len(model.requests) == 2


async def test_when_nothing_more_can_be_trimmed_the_budget_error_explains() -> None:
    model = strict_server(window=600)
    request = ChatCompletionRequest(model="refit-test", messages=history(2), max_tokens=500)
    with pytest.raises(ContextBudgetError, match="refused the prompt as too long") as caught:
        await complete_fitted(model, request, make_fitter(KeepLast(turns=5)))
    assert isinstance(caught.value.__cause__, ContextLengthExceededError)
    assert len(model.requests) == 1


async def test_a_server_window_smaller_than_the_profile_still_gets_a_shorter_prompt() -> None:
    model = strict_server(window=1_000)  # the profile says 4,000
    request = ChatCompletionRequest(model="refit-test", messages=history(6), max_tokens=500)
    answer = await complete_fitted(model, request, make_fitter(DropOldest(keep_last=1)))
    first, second = model.requests
    assert len(first.messages) == len(request.messages)
    assert len(second.messages) < len(first.messages)
    assert answer.text.startswith("ok")


async def test_streams_are_fitted_and_retried_the_same_way() -> None:
    calls = 0

    def answer(request: ChatCompletionRequest) -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise overflow(5_000)
        return "streamed"

    model = FunctionModel(answer)
    request = ChatCompletionRequest(model="refit-test", messages=history(40), max_tokens=500)
    stream = await stream_fitted(model, request, make_fitter())
    async with stream:
        chunks = [chunk.choices[0].delta.content async for chunk in stream]
    assert chunks == ["streamed"]
    assert len(model.requests[1].messages) < len(model.requests[0].messages)
