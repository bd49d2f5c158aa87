"""History fitting: turns, exchanges kept whole, drop/keep/truncate/raise, incremental cost."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atdak_agents.context.budget import PromptCounter
from atdak_agents.context.calibration import TokenCalibration
from atdak_agents.context.history import HistoryFitter, HistoryIndex, starts_turn
from atdak_agents.context.strategies import (
    DropOldest,
    KeepLast,
    RaiseOnOverflow,
    TruncateMiddle,
)
from atdak_agents.exceptions import ContextBudgetError, UsageError
from atdak_agents.messages import EXCHANGE, KIND, Message
from atdak_agents.providers._wire import ChatCompletionRequest
from atdak_agents.providers.profiles import ModelProfile

SMALL = ModelProfile(name="small-test", context_window=2_000, max_output_tokens=200)


def fitter(*strategies: object, profile: ModelProfile = SMALL, **options: object) -> HistoryFitter:
    options.setdefault("safety_margin", 0)
    options.setdefault("calibration", TokenCalibration())
    return HistoryFitter(profile, list(strategies) or None, **options)  # type: ignore[arg-type]


def conversation(turns: int, words: int = 30, system: str = "You are terse.") -> list[Message]:
    history = [Message(role="system", content=system)]
    for i in range(turns):
        history.append(Message(role="user", content=f"question {i} " + "word " * words))
        history.append(Message(role="assistant", content=f"answer {i} " + "词语" * words))
    return history


def tool_exchange(key: str, size: int = 10) -> list[Message]:
    return [
        Message(
            role="assistant",
            content=f'{{"tool": "search", "q": "{key}"}}',
            metadata={EXCHANGE: key, KIND: "tool_call"},
        ),
        Message(
            role="user",
            content=f"result {key} " + "data " * size,
            metadata={EXCHANGE: key, KIND: "tool_result"},
        ),
    ]


def limit_of(f: HistoryFitter, max_tokens: int | None = None) -> int:
    return f.counter.raw_limit(f.budget_for(max_tokens).prompt_tokens)


async def test_a_history_that_fits_is_returned_as_is() -> None:
    history = conversation(2)
    fitted = await fitter().fit(history)
    assert fitted == history
    assert fitted is not history


async def test_drop_oldest_keeps_the_system_prompt_and_the_newest_turns() -> None:
    history = conversation(60)
    f = fitter(DropOldest())
    fitted = await f.fit(history)
    assert fitted[0] is history[0]
    assert fitted[-2:] == history[-2:]
    body = fitted[1:]
    assert body == history[len(history) - len(body) :]  # a suffix: whole turns, in order
    assert starts_turn(body[0])
    assert PromptCounter(SMALL, calibration=f.counter.calibration).raw(fitted) <= limit_of(f)
    longer = [*fitted[:1], *history[len(history) - len(body) - 2 :]]
    assert f.counter.raw(longer) > limit_of(f)  # it kept as many turns as fit


async def test_keep_last_is_a_window_regardless_of_budget() -> None:
    history = conversation(10, words=2)
    fitted = await fitter(KeepLast(turns=3)).fit(history)
    assert fitted == [history[0], *history[-6:]]


async def test_drop_oldest_never_separates_a_tool_call_from_its_result() -> None:
    history = [Message(role="system", content="Use tools.")]
    for turn in range(12):
        history.append(Message(role="user", content=f"task {turn} " + "please " * 20))
        for call in range(3):
            history += tool_exchange(f"t{turn}-c{call}", size=15)
        history.append(Message(role="assistant", content=f"done {turn}"))
    fitted = await fitter(DropOldest()).fit(history)
    assert_exchanges_whole(history, fitted)
    assert len(fitted) < len(history)


async def test_one_long_agent_turn_drops_its_oldest_exchanges_whole() -> None:
    history = [Message(role="system", content="Use tools."), Message(role="user", content="go")]
    for call in range(40):
        history += tool_exchange(f"c{call}", size=20)
    f = fitter(DropOldest())
    fitted = await f.fit(history)
    assert fitted[:2] == history[:2]
    assert fitted[-2:] == history[-2:]  # the latest exchange stays
    assert_exchanges_whole(history, fitted)
    assert f.counter.raw(fitted) <= limit_of(f)


async def test_native_tool_calls_stay_with_their_tool_messages() -> None:
    history = [Message(role="system", content="s")]
    for i in range(30):
        history.append(Message(role="user", content=f"ask {i} " + "more " * 20))
        history.append(
            Message.model_validate(
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {"id": f"call{i}", "function": {"name": "f", "arguments": "{}"}}
                    ],
                }
            )
        )
        history.append(Message(role="tool", tool_call_id=f"call{i}", content="ok " * 20))
    fitted = await fitter(DropOldest()).fit(history)
    calls = {c.id for m in fitted for c in (m.tool_calls or ())}
    answered = {m.tool_call_id for m in fitted if m.role == "tool"}
    assert calls == answered
    assert len(fitted) < len(history)


def assert_exchanges_whole(history: list[Message], fitted: list[Message]) -> None:
    def groups(messages: list[Message]) -> dict[str, int]:
        found: dict[str, int] = {}
        for m in messages:
            if EXCHANGE in m.metadata:
                found[m.metadata[EXCHANGE]] = found.get(m.metadata[EXCHANGE], 0) + 1
        return found

    before, after = groups(history), groups(fitted)
    for key, count in after.items():
        assert count == before[key], f"exchange {key} was split"
    where = {id(m): i for i, m in enumerate(history)}
    positions = [where[id(m)] for m in fitted]
    assert positions == sorted(positions), "order changed"


turn_shapes = st.lists(
    st.tuples(st.integers(1, 60), st.integers(0, 3), st.integers(0, 40)), min_size=1, max_size=25
)


@settings(max_examples=60, deadline=None)
@given(shapes=turn_shapes, max_tokens=st.integers(50, 1_500), keep_last=st.integers(0, 3))
async def test_property_fitted_histories_fit_and_keep_exchanges_whole(
    shapes: list[tuple[int, int, int]], max_tokens: int, keep_last: int
) -> None:
    history = [Message(role="system", content="rules " * 10)]
    for turn, (words, calls, result) in enumerate(shapes):
        history.append(Message(role="user", content="w " * words))
        for call in range(calls):
            history += tool_exchange(f"{turn}.{call}", size=result)
    f = fitter(DropOldest(keep_last=keep_last), max_tokens=max_tokens)
    failure: ContextBudgetError | None = None
    try:
        fitted = await f.fit(history)
    except ContextBudgetError as error:
        failure = error
    if failure is not None:
        assert failure.estimate > f.budget_for(max_tokens).prompt_tokens
        return
    assert fitted[0] is history[0]
    assert f.counter.raw(fitted) <= limit_of(f, max_tokens)
    assert_exchanges_whole(history, fitted)
    assert history[-1] in fitted or keep_last == 0


async def test_truncate_middle_cuts_one_oversized_message_with_a_marker() -> None:
    document = "Start of the report. " + "filler sentence here. " * 2_000 + "The end."
    history = [
        Message(role="system", content="Summarise documents."),
        Message(role="user", content=document),
    ]
    f = fitter(DropOldest(), TruncateMiddle())
    fitted = await f.fit(history)
    text = fitted[1].text
    assert text.startswith("Start of the report.")
    assert text.endswith("The end.")
    assert "tokens omitted to fit the context window" in text
    assert fitted[1].metadata["truncated"] is True
    assert "truncated" not in history[1].metadata
    assert f.counter.raw(fitted) <= limit_of(f)


async def test_without_a_last_resort_an_oversized_message_raises() -> None:
    history = [Message(role="user", content="x " * 5_000)]
    with pytest.raises(ContextBudgetError) as caught:
        await fitter(DropOldest()).fit(history)
    assert "latest message" in str(caught.value)
    assert caught.value.model == "small-test"


async def test_raise_strategy_refuses_instead_of_dropping() -> None:
    with pytest.raises(ContextBudgetError, match="strategy is 'raise'"):
        await fitter(RaiseOnOverflow(), DropOldest()).fit(conversation(60))
    assert await fitter(RaiseOnOverflow()).fit(conversation(1))


async def test_a_system_prompt_too_big_for_the_window_is_explained() -> None:
    history = conversation(1, system="rule " * 3_000)
    with pytest.raises(ContextBudgetError) as caught:
        await fitter(DropOldest()).fit(history)
    assert caught.value.breakdown["system"] > 2_000


async def test_plain_functions_are_processors() -> None:
    def only_user_messages(messages: list[Message]) -> list[Message]:
        return [m for m in messages if m.role != "assistant"]

    fitted = await fitter(only_user_messages).fit(conversation(3, words=2))
    assert [m.role for m in fitted] == ["system", "user", "user", "user"]


async def test_fit_request_reserves_the_requests_own_max_tokens() -> None:
    history = conversation(40)
    f = fitter(DropOldest())
    request = ChatCompletionRequest(model="small-test", messages=history, max_tokens=1_500)
    small = await f.fit_request(request)
    large = await f.fit_request(request.model_copy(update={"max_tokens": 100}))
    assert len(small.messages) < len(large.messages)
    assert small.max_tokens == 1_500


def test_fit_sync_runs_outside_an_event_loop() -> None:
    assert len(fitter(DropOldest()).fit_sync(conversation(50))) < 101


async def test_fit_sync_inside_an_event_loop_says_to_await() -> None:
    with pytest.raises(UsageError, match="await"):
        fitter().fit_sync(conversation(1))


class CountingTokenizer:
    name = "counting-history"

    def __init__(self) -> None:
        self.calls = 0

    def count(self, text: str) -> int:
        self.calls += 1
        return len(text.split()) + len(text) // 8


async def test_refitting_after_appending_counts_only_the_new_messages() -> None:
    tokenizer = CountingTokenizer()
    f = fitter(DropOldest(), TruncateMiddle(), tokenizer=tokenizer)
    history = conversation(500, words=5)
    await f.fit(history)
    assert tokenizer.calls == len(history)
    for round_ in range(3):
        tokenizer.calls = 0
        history = [*history, Message(role="user", content=f"new {round_}")]
        history.append(Message(role="assistant", content="reply"))
        await f.fit(history)
        assert tokenizer.calls == 2


async def test_the_index_rebuilds_when_the_history_is_not_an_extension() -> None:
    counter = PromptCounter(SMALL, calibration=TokenCalibration())
    index = HistoryIndex(counter)
    history = conversation(5)
    index.update(history)
    assert (index.pinned_end, index.turns) == (1, 5)
    edited = [history[0], *history[3:]]
    index.update(edited)
    assert index.turns == 4
    assert index.total == counter.raw(edited)
