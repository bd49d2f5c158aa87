"""Memory views over every backend: windowed, token-budgeted, summarising."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from atdak_agents.exceptions import InvalidParameterError, ModelOutputError
from atdak_agents.memory import (
    ConversationMemory,
    MemoryStore,
    StoredMessage,
    SummarisingMemory,
    TokenBudgetMemory,
    WindowedMemory,
    group_turns,
    message_tokens,
)
from atdak_agents.messages import Message
from atdak_agents.providers._wire import ChatCompletion, ChatCompletionRequest, Choice
from atdak_agents.providers.base import CallOptions, ChatStream


class SummaryModel:
    """A ChatModel that summarises by listing the first word of every turn it is shown."""

    def __init__(self, answer: Callable[[str], str] | None = None) -> None:
        self.requests: list[ChatCompletionRequest] = []
        self.answer = answer or self._first_words

    @staticmethod
    def _first_words(prompt: str) -> str:
        so_far, _, turns = prompt.rpartition("New turns:\n")
        previous = so_far.removeprefix("Summary so far:\n").strip()
        firsts = [line.split(": ", 1)[1].split()[0] for line in turns.splitlines() if line]
        return " ".join(filter(None, [previous, *firsts]))

    async def complete(
        self, request: ChatCompletionRequest, *, options: CallOptions | None = None
    ) -> ChatCompletion:
        self.requests.append(request)
        text = self.answer(request.messages[-1].text)
        reply = Message(role="assistant", content=text)
        return ChatCompletion(model=request.model, choices=[Choice(message=reply)])

    async def stream(
        self, request: ChatCompletionRequest, *, options: CallOptions | None = None
    ) -> ChatStream:
        raise AssertionError("summarising never streams")


def turn(n: int, words: int = 10) -> Message:
    return Message(role="user", content=f"turn{n} " + "word " * words)


def tool_exchange(n: int) -> list[Message]:
    exchange = {"exchange": f"ex{n}"}
    return [
        Message(role="assistant", content=f"call{n}", metadata={**exchange, "kind": "tool_call"}),
        Message(role="tool", content=f"result{n}a", tool_call_id=f"c{n}", metadata=exchange),
        Message(role="tool", content=f"result{n}b", tool_call_id=f"c{n}", metadata=exchange),
    ]


def texts(messages: list[StoredMessage]) -> list[str]:
    return [m.text.split()[0] if m.text else "" for m in messages]


def test_group_turns_keeps_exchanges_and_tool_results_together() -> None:
    history = [turn(0), *tool_exchange(1), turn(2), Message(role="tool", content="orphan")]
    groups = group_turns(history)
    assert [len(g) for g in groups] == [1, 3, 2]


# --------------------------------------------------------------------------- windowed


async def test_windowed_memory_returns_the_newest_messages(store: MemoryStore) -> None:
    view = WindowedMemory(store, last=3)
    assert isinstance(view, ConversationMemory) and isinstance(store, ConversationMemory)
    await view.append("s", [turn(n) for n in range(6)])
    assert texts(await view.load("s")) == ["turn3", "turn4", "turn5"]
    assert await view.load("empty") == []
    await view.append("short", [turn(0)])
    assert texts(await view.load("short")) == ["turn0"]


async def test_windowed_memory_never_splits_a_tool_exchange(store: MemoryStore) -> None:
    await store.append("s", [turn(0), *tool_exchange(1), turn(2)])
    assert texts(await WindowedMemory(store, last=4).load("s")) == [
        "call1",
        "result1a",
        "result1b",
        "turn2",
    ]
    assert texts(await WindowedMemory(store, last=3).load("s")) == ["turn2"]
    assert texts(await WindowedMemory(store, last=5).load("s")) == [
        "turn0",
        "call1",
        "result1a",
        "result1b",
        "turn2",
    ]


# --------------------------------------------------------------------------- token budget


async def test_token_budget_memory_fits_the_newest_turns(store: MemoryStore) -> None:
    stored = await store.append("s", [turn(n, words=n % 7 + 1) for n in range(300)])
    budget = 1000
    chosen = await TokenBudgetMemory(store, max_tokens=budget).load("s")
    assert chosen == stored[len(stored) - len(chosen) :]  # a suffix of the history
    used = sum(m.tokens for m in chosen)
    assert used <= budget
    assert used + stored[-len(chosen) - 1].tokens > budget  # and the longest one that fits
    assert len(chosen) > 64  # needed more than one page


async def test_token_budget_memory_keeps_exchanges_whole(store: MemoryStore) -> None:
    await store.append("s", [turn(0), *tool_exchange(1), turn(2, words=1)])
    records = await store.load("s")
    last_two = records[-1].tokens + records[-2].tokens
    chosen = await TokenBudgetMemory(store, max_tokens=last_two).load("s")
    assert texts(chosen) == ["turn2"]  # the exchange does not fit whole: it is left out
    exchange_and_last = sum(m.tokens for m in records[1:])
    chosen = await TokenBudgetMemory(store, max_tokens=exchange_and_last).load("s")
    assert texts(chosen) == ["call1", "result1a", "result1b", "turn2"]


async def test_token_budget_memory_whole_session_and_model(store: MemoryStore) -> None:
    stored = await store.append("s", [turn(n) for n in range(5)])
    assert await TokenBudgetMemory(store, max_tokens=10**6).load("s") == stored
    assert await TokenBudgetMemory(store, max_tokens=1).load("s") == []
    model = "atdak-llama-70b"
    counts = message_tokens(stored, model)
    chosen = await TokenBudgetMemory(store, max_tokens=sum(counts[-2:]), model=model).load("s")
    assert chosen == stored[-2:]


def test_views_check_their_settings(store: MemoryStore) -> None:
    with pytest.raises(InvalidParameterError, match="last"):
        WindowedMemory(store, last=0)
    with pytest.raises(InvalidParameterError, match="max_tokens"):
        TokenBudgetMemory(store, max_tokens=-5)
    with pytest.raises(InvalidParameterError, match="store"):
        WindowedMemory("memory.db", last=3)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="keep_tokens"):
        SummarisingMemory(store, SummaryModel(), model_name="m", max_tokens=100, keep_tokens=90)
    with pytest.raises(InvalidParameterError, match="model"):
        SummarisingMemory(store, object(), model_name="m", max_tokens=100)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- summarising


def _summarising(store: MemoryStore, model: SummaryModel, **kwargs: int) -> SummarisingMemory:
    settings = {"max_tokens": 300, "keep_tokens": 120, "summary_max_tokens": 60, **kwargs}
    return SummarisingMemory(store, model, model_name="atdak-gpt-4-mini", **settings)


async def test_short_history_is_returned_without_a_model_call(store: MemoryStore) -> None:
    model = SummaryModel()
    view = _summarising(store, model)
    stored = await view.append("s", [turn(n) for n in range(3)])
    assert await view.load("s") == stored
    assert model.requests == []


async def test_summarises_old_turns_once_and_keeps_the_newest(store: MemoryStore) -> None:
    model = SummaryModel()
    view = _summarising(store, model)
    await view.append("s", [turn(n) for n in range(30)])
    loaded = await view.load("s")
    summary, kept = loaded[0], loaded[1:]
    assert summary.role == "system" and summary.metadata["kind"] == "summary"
    assert sum(m.tokens for m in loaded) <= 300
    assert sum(m.tokens for m in kept) <= 120
    assert texts(kept) == [f"turn{n}" for n in range(30 - len(kept), 30)]
    covered = [f"turn{n}" for n in range(30 - len(kept))]
    assert summary.text.split("\n", 1)[1] == " ".join(covered)
    assert summary.metadata["summary_through"] == kept[0].id - 1
    request = model.requests[0]
    assert request.model == "atdak-gpt-4-mini" and request.max_tokens == 60
    assert request.messages[0].role == "system"
    assert len(model.requests) == 1

    assert await view.load("s") == loaded  # the summary is reused, not recomputed
    assert len(model.requests) == 1
    originals = await store.load("s")
    assert len(originals) == 31  # the store keeps every original message, plus the summary


async def test_later_summaries_build_on_the_previous_one(store: MemoryStore) -> None:
    model = SummaryModel()
    view = _summarising(store, model)
    await view.append("s", [turn(n) for n in range(30)])
    first = (await view.load("s"))[0]
    await view.append("s", [turn(n) for n in range(30, 60)])
    loaded = await view.load("s")
    assert len(model.requests) == 2
    assert "Summary so far:\n" + first.text.split("\n", 1)[1] in model.requests[1].messages[1].text
    kept = loaded[1:]
    covered = [f"turn{n}" for n in range(60 - len(kept))]
    assert loaded[0].text.split("\n", 1)[1] == " ".join(covered)  # nothing skipped or repeated
    assert sum(m.tokens for m in loaded) <= 300


async def test_a_new_view_reuses_the_stored_summary(store: MemoryStore) -> None:
    await _summarising(store, SummaryModel()).append("s", [turn(n) for n in range(30)])
    loaded = await _summarising(store, SummaryModel()).load("s")
    model = SummaryModel()
    assert await _summarising(store, model).load("s") == loaded
    assert model.requests == []


async def test_messages_appended_during_a_summary_are_not_lost(store: MemoryStore) -> None:
    view = _summarising(store, SummaryModel())
    await view.append("s", [turn(n) for n in range(30)])
    await view.load("s")
    through = (await store.load("s"))[-1].metadata["summary_through"]
    # a message stored after the covered ones but before the summary itself
    await store.append("s", turn(99))
    loaded = await view.load("s")
    assert "turn99" in texts(loaded)
    assert all(m.id > through for m in loaded[1:])


async def test_long_stretches_are_summarised_in_chunks(store: MemoryStore) -> None:
    model = SummaryModel()
    view = _summarising(store, model, max_tokens=2000, keep_tokens=100, chunk_tokens=400)
    await view.append("s", [turn(n, words=20) for n in range(200)])
    loaded = await view.load("s")
    assert len(model.requests) > 3
    kept = loaded[1:]
    assert loaded[0].text.split("\n", 1)[1].split() == [f"turn{n}" for n in range(200 - len(kept))]


async def test_an_empty_summary_is_an_error(store: MemoryStore) -> None:
    view = _summarising(store, SummaryModel(answer=lambda prompt: "  "))
    await view.append("s", [turn(n) for n in range(30)])
    with pytest.raises(ModelOutputError, match="atdak-gpt-4-mini returned an empty summary"):
        await view.load("s")
    assert len(await store.load("s")) == 30  # nothing was stored
