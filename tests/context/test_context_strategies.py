"""Summarising dropped turns with a cheaper model, and strategies chosen by configuration."""

from __future__ import annotations

import re

import pytest
from context_doubles import FunctionModel

from atdak_agents.context.calibration import TokenCalibration
from atdak_agents.context.history import HistoryFitter
from atdak_agents.context.strategies import (
    DropOldest,
    KeepLast,
    RaiseOnOverflow,
    Summarize,
    TruncateMiddle,
    strategies_from_config,
    strategy_names,
    truncate_text_middle,
)
from atdak_agents.context.tokens import get_tokenizer
from atdak_agents.exceptions import (
    ContextBudgetError,
    InvalidParameterError,
    ModelOutputError,
    UsageError,
)
from atdak_agents.messages import KIND, Message
from atdak_agents.providers._wire import ChatCompletionRequest
from atdak_agents.providers.profiles import ModelProfile

SMALL = ModelProfile(name="small-summary-test", context_window=2_000, max_output_tokens=200)


def conversation(turns: int) -> list[Message]:
    history = [Message(role="system", content="You plan trips.")]
    for i in range(turns):
        history.append(
            Message(role="user", content=f"Day {i}: 我想去杭州看西湖，预算 {i}00 元。 " * 3)
        )
        history.append(Message(role="assistant", content=f"Plan {i}: take the train. " * 6))
    return history


def summariser() -> FunctionModel:
    def answer(request: ChatCompletionRequest) -> str:
        prompt = request.messages[-1].text
        days = set(re.findall(r"^user: Day (\d+)", prompt, re.MULTILINE))
        earlier = "earlier+" if prompt.startswith("Earlier summary:") else ""
        return f"{earlier}summary of {len(days)} user turns"

    return FunctionModel(answer)


def fitter(*strategies: object) -> HistoryFitter:
    return HistoryFitter(
        SMALL,
        list(strategies),
        safety_margin=0,
        calibration=TokenCalibration(),  # type: ignore[arg-type]
    )


async def test_summarize_replaces_the_oldest_turns_by_a_summary() -> None:
    model = summariser()
    f = fitter(Summarize(chat_model=model, model="atdak-gpt-4-mini"))
    history = conversation(30)
    fitted = await f.fit(history)
    assert fitted[0] is history[0]
    summary = fitted[1]
    assert summary.metadata[KIND] == "summary"
    assert summary.role == "system"
    assert summary.text.startswith("Summary of the earlier conversation:\nsummary of")
    kept = fitted[2:]
    assert kept == history[len(history) - len(kept) :]
    dropped_turns = (len(history) - 1 - len(kept)) // 2
    assert summary.metadata["summarized_messages"] == dropped_turns * 2
    assert f"summary of {dropped_turns} user turns" in summary.text
    (request,) = model.requests
    assert request.model == "atdak-gpt-4-mini"
    assert request.max_tokens == 500
    assert "Day 0" in request.messages[-1].text
    assert f.counter.raw(fitted) <= f.counter.raw_limit(f.budget.prompt_tokens)


async def test_summaries_are_reused_and_extended_not_rewritten() -> None:
    model = summariser()
    f = fitter(Summarize(chat_model=model, target=0.6))
    history = conversation(30)
    first = await f.fit(history)
    history.append(Message(role="user", content="one more short question"))
    second = await f.fit(history)
    assert len(model.requests) == 1  # kept turns still fit: the same summary serves
    assert second[1] is first[1]
    for i in range(30, 45):
        history += conversation(1)[1:]
        history[-2].content = f"Day {i}: more plans " * 5
        await f.fit(history)
    later = model.requests[-1].messages[-1].text
    assert later.startswith("Earlier summary:\nsummary of")  # the old summary is extended
    assert 1 < len(model.requests) <= 5  # hysteresis: not one summary call per new turn


async def test_a_summary_handed_back_in_the_history_is_folded_into_the_next() -> None:
    model = summariser()
    f = fitter(Summarize(chat_model=model))
    fitted = await f.fit(conversation(30))
    carried = [*fitted, *conversation(30)[1:]]
    again = await fitter(Summarize(chat_model=model)).fit(carried)
    assert model.requests[-1].messages[-1].text.startswith("Earlier summary:")
    assert [m.metadata.get(KIND) for m in again].count("summary") == 1


async def test_summarize_without_a_chat_model_says_how_to_fix_it() -> None:
    with pytest.raises(UsageError, match="chat_model"):
        await fitter(Summarize()).fit(conversation(30))


async def test_an_empty_summary_is_an_error() -> None:
    with pytest.raises(ModelOutputError, match="empty summary"):
        await fitter(Summarize(chat_model=FunctionModel(lambda r: "  "))).fit(conversation(30))


async def test_huge_dropped_history_is_summarised_in_chunks() -> None:
    model = summariser()
    big = ModelProfile(name="big-summary-test", context_window=200_000, max_output_tokens=1000)
    history = [Message(role="system", content="s")]
    for i in range(600):
        history.append(Message(role="user", content=f"Day {i}: " + "旅行计划 " * 60))
    f = HistoryFitter(
        big,
        [Summarize(chat_model=model, model="atdak-llama-70b", target=0.1)],
        safety_margin=0,
        calibration=TokenCalibration(),
    )
    await f.fit(history)
    assert len(model.requests) > 1
    assert all(r.messages[-1].text.startswith("Earlier summary:") for r in model.requests[1:])


def test_truncate_text_middle_keeps_both_ends() -> None:
    tokenizer = get_tokenizer("cl100k_base")
    text = "第一章 开始。" + "中间的内容很长。" * 500 + "最后一章 结束。"
    cut = truncate_text_middle(text, 200, tokenizer)
    assert tokenizer.count(cut) <= 200
    assert cut.startswith("第一章")
    assert cut.endswith("结束。")
    assert "tokens omitted" in cut
    assert truncate_text_middle("short", 200, tokenizer) == "short"


def test_strategies_from_configuration() -> None:
    model = summariser()
    assert strategies_from_config({"strategy": "drop_oldest", "keep_last": 6}) == [
        DropOldest(keep_last=6)
    ]
    built = strategies_from_config(
        [{"strategy": "summarize", "model": "atdak-gpt-4-mini"}, "truncate_middle", "raise"],
        chat_model=model,
    )
    assert isinstance(built[0], Summarize)
    assert built[0].chat_model is model
    assert isinstance(built[1], TruncateMiddle)
    assert isinstance(built[2], RaiseOnOverflow)
    assert strategies_from_config("keep_last") == [KeepLast()]
    assert {"drop_oldest", "keep_last", "raise", "summarize", "truncate_middle"} <= set(
        strategy_names()
    )


def test_configuration_mistakes_name_the_fix() -> None:
    with pytest.raises(InvalidParameterError, match="known strategies: .*drop_oldest"):
        strategies_from_config({"strategy": "drop_newest"})
    with pytest.raises(
        InvalidParameterError, match="drop_oldest accepts: drop_exchanges, keep_last"
    ):
        strategies_from_config({"strategy": "drop_oldest", "keep": 3})
    with pytest.raises(InvalidParameterError, match="keep_last"):
        strategies_from_config({"strategy": "drop_oldest", "keep_last": -1})
    with pytest.raises(InvalidParameterError, match="strategy name or a mapping"):
        strategies_from_config([42])


async def test_fitter_from_configuration_runs_the_strategies() -> None:
    f = HistoryFitter.from_config(
        SMALL,
        {"strategy": "drop_oldest", "keep_last": 2},
        safety_margin=0,
        calibration=TokenCalibration(),
    )
    fitted = await f.fit(conversation(30))
    assert fitted[-4:] == conversation(30)[-4:]
    with pytest.raises(ContextBudgetError):
        await HistoryFitter.from_config(SMALL, "raise").fit(conversation(30))
