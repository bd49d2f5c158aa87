"""Size bounds: a prompt that surely fits its budget is not counted, and nothing else changes.

Every tokenizer here gives at most ``upper_bound(text)`` tokens for a text (a byte-level BPE
token stands for at least one byte; the estimator charges at most one token per byte before its
safety factor), so a prompt whose bound is within the budget fits it. Checked against the exact
vocabularies and the estimator on random text and on the corpora; then fitting, the calibration
and tool output are shown to give the same results as counting everything.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from context_corpora import CORPORA
from hypothesis import given, settings
from hypothesis import strategies as st

from atdak_agents.context.budget import PromptCounter, record_usage, record_usage_later
from atdak_agents.context.calibration import TokenCalibration
from atdak_agents.context.history import HistoryFitter
from atdak_agents.context.strategies import DropOldest, KeepLast
from atdak_agents.context.tokens import (
    EstimateTokenizer,
    count_message_tokens,
    get_tokenizer,
    message_token_bound,
    utf8_size,
)
from atdak_agents.exceptions import ContextBudgetError
from atdak_agents.messages import Message
from atdak_agents.providers._wire import ChatCompletion, ChatCompletionRequest
from atdak_agents.providers.profiles import ModelProfile
from atdak_agents.tools._output import cap_output

TOKENIZERS = {
    "estimate": EstimateTokenizer(),
    "cl100k_base": get_tokenizer("cl100k_base"),
    "o200k_base": get_tokenizer("o200k_base"),
}
# Text the tokenizers treat differently: ASCII words, digits, punctuation and whitespace runs,
# accented Latin, Cyrillic, Greek, Han (frequent and rare), kana, Hangul, emoji, combining marks.
ALPHABET = st.sampled_from(
    list("aAbZz09 \t\n\r!-.,;:()[]{}\"'`~_/\\=#$%^&*+<>?|@")
    + list("éüñçÀøßĳЖжяαβΩ中的人们龘齉あアカ한글€—😀\u0301\u00a0\u2028\U00020000٣ﬁ")
)
TEXT = st.one_of(st.text(ALPHABET, max_size=60), st.text(max_size=60))


@settings(max_examples=400, deadline=None)
@given(text=TEXT)
def test_no_tokenizer_counts_more_than_its_upper_bound(text: str) -> None:
    for name, tokenizer in TOKENIZERS.items():
        if name != "estimate" and any(0xD800 <= ord(c) <= 0xDFFF for c in text):
            continue  # a lone surrogate is not text a BPE vocabulary can encode
        assert tokenizer.count(text) <= tokenizer.upper_bound(text), (name, text)


@pytest.mark.parametrize("corpus", sorted(CORPORA))
def test_upper_bounds_hold_on_pieces_of_every_corpus(corpus: str) -> None:
    text = CORPORA[corpus]()
    rng = random.Random(7)
    for _ in range(400):
        start = rng.randrange(len(text))
        piece = text[start : start + rng.choice([1, 2, 3, 5, 8, 40, 300, 3000])]
        for name, tokenizer in TOKENIZERS.items():
            assert tokenizer.count(piece) <= tokenizer.upper_bound(piece), (name, piece)
    for tokenizer in TOKENIZERS.values():  # and the whole corpus, far below its bound
        assert tokenizer.count(text) <= tokenizer.upper_bound(text)


def test_utf8_size_counts_bytes_without_failing_on_surrogates() -> None:
    assert utf8_size("abc") == 3
    assert utf8_size("你好") == 6
    assert utf8_size("😀") == 4
    assert utf8_size("\ud800") == 3


messages_strategy = st.builds(
    Message,
    role=st.sampled_from(["system", "user", "assistant", "tool"]),
    content=st.one_of(st.none(), TEXT),
    name=st.one_of(st.none(), st.text(ALPHABET, min_size=1, max_size=8)),
    tool_call_id=st.one_of(st.none(), st.text(ALPHABET, min_size=1, max_size=8)),
    tool_calls=st.one_of(
        st.none(),
        st.lists(
            st.builds(
                lambda i, n, a: {"id": i, "function": {"name": n, "arguments": a}},
                st.text(ALPHABET, min_size=1, max_size=8),
                st.text(ALPHABET, min_size=1, max_size=8),
                TEXT,
            ),
            max_size=2,
        ),
    ),
)


@settings(max_examples=150, deadline=None)
@given(message=messages_strategy)
def test_a_message_never_costs_more_than_its_bound(message: Message) -> None:
    tokenizer = TOKENIZERS["estimate"]
    assert count_message_tokens(message, tokenizer) <= message_token_bound(
        message, tokenizer.upper_bound
    )


@settings(max_examples=150, deadline=None)
@given(
    messages=st.lists(messages_strategy, max_size=6),
    prompt_tokens=st.integers(1, 400),
    factor=st.sampled_from([None, 0.6, 1.0, 1.7]),
    tools=st.sampled_from([None, [{"type": "function", "function": {"name": "f"}}]]),
)
def test_certainly_fits_means_the_estimate_fits(
    messages: list[Message], prompt_tokens: int, factor: float | None, tools: list[object] | None
) -> None:
    calibration = TokenCalibration(min_samples=1, min_tokens=1)
    if factor is not None:
        calibration.observe("m", 100, round(100 * factor))
    counter = PromptCounter(_profile(), calibration=calibration)
    if counter.certainly_fits(messages, prompt_tokens, tools):
        assert counter.estimate(messages, tools) <= prompt_tokens


def test_a_tokenizer_without_a_bound_is_always_counted() -> None:
    class Words:
        name = "words"

        def count(self, text: str) -> int:
            return len(text.split())

    counter = PromptCounter(_profile(), tokenizer=Words())
    assert counter.bound([Message(role="user", content="hi")]) is None
    assert not counter.certainly_fits([Message(role="user", content="hi")], 10_000)


# --------------------------------------------------------------------------- fitting


class CountingEstimator(EstimateTokenizer):
    """The estimator, counting how often it is asked to count."""

    name = "counting-estimate"

    def __init__(self) -> None:
        self.calls = 0

    def count(self, text: str) -> int:
        self.calls += 1
        return super().count(text)


def _profile(window: int = 4_000) -> ModelProfile:
    return ModelProfile(name="bound-test", context_window=window, max_output_tokens=500)


def _history(turns: int) -> list[Message]:
    history = [Message(role="system", content="You answer questions about orders.")]
    for i in range(turns):
        history.append(Message(role="user", content=f"Where is order {i}? " * 3))
        history.append(Message(role="assistant", content=f"Order {i} ships tomorrow. " * 3))
    return history


async def test_a_history_far_within_its_budget_is_not_counted() -> None:
    tokenizer = CountingEstimator()
    fitter = HistoryFitter(_profile(128_000), tokenizer=tokenizer)
    history = _history(5)
    fitted = await fitter.fit(history)
    assert fitted == history and fitted is not history
    assert tokenizer.calls == 0


async def test_near_the_budget_the_history_is_counted_and_fitted_as_before() -> None:
    tokenizer = CountingEstimator()
    fitter = HistoryFitter(_profile(2_000), [DropOldest()], tokenizer=tokenizer)
    history = _history(40)  # about 2,500 tokens: over the 1,460 the prompt may use
    fitted = await fitter.fit(history)
    assert tokenizer.calls > 0 and len(fitted) < len(history)
    assert fitter.counter.raw(fitted) <= fitter.counter.raw_limit(fitter.budget.prompt_tokens)
    with pytest.raises(ContextBudgetError):  # and what cannot fit still fails
        await fitter.fit([Message(role="user", content="word " * 3_000)])


async def test_strategies_that_act_within_the_budget_still_run() -> None:
    fitter = HistoryFitter(_profile(128_000), [KeepLast(turns=2)])
    fitted = await fitter.fit(_history(5))
    assert len(fitted) == 5  # the system prompt and two turns of two messages


@settings(max_examples=40, deadline=None)
@given(turns=st.integers(0, 60), window=st.sampled_from([1_500, 2_500, 8_000]))
async def test_fitting_gives_what_counting_everything_gives(turns: int, window: int) -> None:
    history = _history(turns)
    fast = HistoryFitter(_profile(window), [DropOldest()])

    class NoBound(EstimateTokenizer):  # the same counts, but no bound: always counted
        name = "estimate-no-bound"
        upper_bound = None  # type: ignore[assignment]

    slow = HistoryFitter(_profile(window), [DropOldest()], tokenizer=NoBound())
    outcomes = []
    for fitter in (fast, slow):
        try:
            outcomes.append([id(m) for m in await fitter.fit(history)])
        except ContextBudgetError as error:
            outcomes.append([error.estimate])
    assert outcomes[0] == outcomes[1]


# --------------------------------------------------------------------------- calibration


def _completion(prompt_tokens: int) -> ChatCompletion:
    return ChatCompletion.model_validate(
        {
            "choices": [{"message": {"role": "assistant", "content": "ok"}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 1},
        }
    )


requests_strategy = st.lists(
    st.tuples(st.integers(0, 12), st.integers(1, 40), st.floats(0.3, 3.0)), max_size=70
)


@settings(max_examples=60, deadline=None)
@given(requests=requests_strategy, window=st.integers(1, 8), reads=st.integers(1, 10))
def test_deferred_samples_give_the_factor_counting_at_once_gives(
    requests: list[tuple[int, int, float]], window: int, reads: int
) -> None:
    """Small requests (no system prompt, a few words) are recorded at once, larger ones later;
    whenever the factor is read, it is the one recording everything at once gives."""
    now = TokenCalibration(window=window, min_samples=2)
    later = TokenCalibration(window=window, min_samples=2)
    counters = [PromptCounter("atdak-llama-70b", calibration=c) for c in (now, later)]
    for i, (system_words, words, ratio) in enumerate(requests):
        messages = [Message(role="user", content="word " * words)]
        if system_words:
            messages.insert(0, Message(role="system", content="rule " * system_words * 4))
        request = ChatCompletionRequest(model="atdak-llama-70b", messages=messages)
        actual = max(1, round(counters[0].raw(messages) * ratio))
        record_usage(request, _completion(actual), counter=counters[0])
        record_usage_later(request, _completion(actual), counter=counters[1])
        if i % reads == 0:
            assert later.factor("atdak-llama-70b") == now.factor("atdak-llama-70b")
    assert later.samples("atdak-llama-70b") == now.samples("atdak-llama-70b")
    assert later.factors() == now.factors()
    assert later.adjust("atdak-llama-70b", 1_000) == now.adjust("atdak-llama-70b", 1_000)


def test_factor_bound_needs_no_pending_estimate() -> None:
    calibration = TokenCalibration(min_samples=1, max_ratio=1.8)
    asked: list[int] = []

    def estimate() -> int:
        asked.append(1)
        return 100

    calibration.observe_later("m", estimate, 150)
    assert calibration.factor_bound("m") == 1.8 and not asked  # nothing estimated yet
    assert calibration.factor("m") == 1.5 and asked == [1]
    assert calibration.factor_bound("m") == 1.5
    calibration.observe_later("m", estimate, 150)
    calibration.reset("m")
    assert calibration.factor("m") == 1.0 and asked == [1]


# --------------------------------------------------------------------------- tool output


@pytest.mark.parametrize(
    ("text", "counted"), [("42", False), ("word " * 90, False), ("word " * 3_000, True)]
)
def test_tool_output_is_counted_only_when_it_may_be_over_its_cap(
    text: str, counted: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    original: Callable[[EstimateTokenizer, str], int] = EstimateTokenizer.count

    def spy(self: EstimateTokenizer, value: str) -> int:
        calls.append(value)
        return original(self, value)

    monkeypatch.setattr(EstimateTokenizer, "count", spy)
    capped, truncated = cap_output(text, 500)
    assert bool(calls) is counted
    assert truncated is counted and (capped == text) is not counted


def test_a_counted_message_stays_equal_to_an_uncounted_one() -> None:
    """The token cache is made on the first count and never makes messages unequal."""
    counted, fresh = (Message(role="user", content="Where is order 10423?") for _ in range(2))
    tokenizer = TOKENIZERS["estimate"]
    first = count_message_tokens(counted, tokenizer)
    assert counted == fresh and fresh == counted and counted.model_copy() == fresh
    assert (
        count_message_tokens(counted, tokenizer) == first == count_message_tokens(fresh, tokenizer)
    )
