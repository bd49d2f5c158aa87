"""Token counting: the estimator against cl100k_base, exact vocabularies, message caching."""

from __future__ import annotations

import copy
import pickle

import pytest
from context_corpora import CORPORA
from hypothesis import given, settings
from hypothesis import strategies as st

from atdak_agents.context.tokens import (
    MESSAGE_OVERHEAD,
    REPLY_PRIMING,
    BPETokenizer,
    EstimateTokenizer,
    Tokenizer,
    count_message_tokens,
    count_tokens,
    get_tokenizer,
    register_tokenizer,
    tokenizer_for_model,
)
from atdak_agents.exceptions import InvalidParameterError
from atdak_agents.messages import Message
from atdak_agents.providers.profiles import ModelProfile, UnknownModelError

CL100K = get_tokenizer("cl100k_base")


class CountingTokenizer:
    """Counts words, and how often it was asked."""

    name = "counting"

    def __init__(self) -> None:
        self.calls = 0

    def count(self, text: str) -> int:
        self.calls += 1
        return len(text.split())


@pytest.mark.parametrize("corpus", sorted(CORPORA))
def test_estimator_is_within_15_percent_of_cl100k_and_rarely_low(corpus: str) -> None:
    text = CORPORA[corpus]()
    exact = CL100K.count(text)
    estimate = EstimateTokenizer().count(text)
    assert exact > 2_000, "corpora must be of meaningful size"
    error = estimate / exact - 1
    assert -0.05 <= error <= 0.15, f"{corpus}: estimate {estimate}, exact {exact} ({error:+.1%})"


@pytest.mark.parametrize("corpus", sorted(CORPORA))
def test_estimator_holds_on_other_draws_of_each_corpus(corpus: str) -> None:
    for seed in (101, 202):
        text = CORPORA[corpus](seed)
        error = EstimateTokenizer().count(text) / CL100K.count(text) - 1
        assert -0.05 <= error <= 0.15, f"{corpus} seed {seed}: {error:+.1%}"


def test_estimator_treats_chinese_unlike_a_chars_per_token_rule() -> None:
    chinese = CORPORA["chinese prose"]()
    # ~4 characters per token holds for English and is 4x too low for Chinese.
    assert EstimateTokenizer().count(chinese) > len(chinese) * 0.9
    english = CORPORA["english prose"]()
    assert EstimateTokenizer().count(english) < len(english) / 3.5


def test_long_runs_without_spaces_grow_linearly() -> None:
    estimator = EstimateTokenizer()
    short, long = estimator.count("ab" * 500), estimator.count("ab" * 5_000)
    assert 9 * short <= long <= 11 * short
    assert estimator.count("-" * 400) <= 3  # rules of dashes are a token or two


def test_empty_and_tiny_texts() -> None:
    estimator = EstimateTokenizer()
    assert estimator.count("") == 0
    assert estimator.count(" ") == 1
    assert estimator.count("好") >= 1


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200), st.text(max_size=200))
def test_estimate_is_nearly_additive(a: str, b: str) -> None:
    estimator = EstimateTokenizer()
    whole = estimator.count(a + b)
    assert whole >= 0
    assert whole <= estimator.count(a) + estimator.count(b) + 2


def test_exact_vocabularies_count_offline() -> None:
    assert CL100K.count("hello world") == 2
    o200k = get_tokenizer("o200k_base")
    assert isinstance(o200k, BPETokenizer)
    chinese = CORPORA["chinese prose"]()
    assert o200k.count(chinese) < CL100K.count(chinese)  # the bigger vocabulary knows more Han
    assert CL100K.count("<|endoftext|>") > 1  # special tokens count as plain text


def test_unknown_tokenizer_names_the_known_ones() -> None:
    with pytest.raises(InvalidParameterError, match="cl100k_base"):
        get_tokenizer("gpt2")


def test_count_tokens_takes_text_dicts_or_messages() -> None:
    as_dicts = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "你好"}]
    as_models = [Message.model_validate(m) for m in as_dicts]
    expected = (
        sum(MESSAGE_OVERHEAD + EstimateTokenizer().count(m["content"]) for m in as_dicts)
        + REPLY_PRIMING
    )
    assert count_tokens(as_dicts, model="atdak-llama-70b") == expected
    assert count_tokens(as_models, model="atdak-llama-70b") == expected
    assert count_tokens("你好", model="atdak-gpt-4") == EstimateTokenizer().count("你好")
    assert count_tokens([]) == REPLY_PRIMING  # so [m] - [] is what m adds to a request


def test_count_tokens_exact_for_chat_matches_openai_framing() -> None:
    messages = [{"role": "user", "content": "hello world"}]
    # OpenAI's documented framing for cl100k chat models: 3 per message + role + content + 3.
    assert count_tokens(messages, tokenizer="cl100k_base") == 3 + 1 + 2 + 3


def test_count_tokens_follows_the_model_profile() -> None:
    profile = ModelProfile(
        name="local-gpt", context_window=8_000, max_output_tokens=1_000, tokenizer="cl100k_base"
    )
    text = CORPORA["json"]()
    assert count_tokens(text, model=profile) == CL100K.count(text)
    assert tokenizer_for_model(profile) is CL100K
    assert tokenizer_for_model(None).name == "estimate"


def test_count_tokens_rejects_unknown_models_and_wrong_types() -> None:
    with pytest.raises(UnknownModelError, match="atdak-llama-70b"):
        count_tokens("hi", model="atdak-lama-70b")
    with pytest.raises(InvalidParameterError, match="text_or_messages"):
        count_tokens(42)  # type: ignore[arg-type]


def test_message_counts_are_cached_and_refreshed_when_the_message_changes() -> None:
    tokenizer = CountingTokenizer()
    message = Message(role="user", content="one two three")
    assert count_message_tokens(message, tokenizer) == MESSAGE_OVERHEAD + 3
    assert count_message_tokens(message, tokenizer) == MESSAGE_OVERHEAD + 3
    assert tokenizer.calls == 1
    message.content = "one two"
    assert count_message_tokens(message, tokenizer) == MESSAGE_OVERHEAD + 2
    assert tokenizer.calls == 2


def test_the_cache_never_changes_equality_or_serialisation() -> None:
    counted = Message(role="user", content="hi there")
    count_message_tokens(counted, EstimateTokenizer())
    fresh = Message(role="user", content="hi there")
    assert counted == fresh
    assert counted.model_dump() == fresh.model_dump()
    assert "token" not in repr(counted)
    for copied in (copy.deepcopy(counted), pickle.loads(pickle.dumps(counted))):
        assert copied == fresh
        assert count_message_tokens(copied, EstimateTokenizer()) == count_message_tokens(
            fresh, EstimateTokenizer()
        )


def test_tool_calls_and_names_are_counted() -> None:
    plain = Message(role="assistant", content="")
    calling = Message.model_validate(
        {
            "role": "assistant",
            "content": "",
            "name": "planner",
            "tool_calls": [
                {"id": "c1", "function": {"name": "lookup", "arguments": '{"q": "天气"}'}}
            ],
        }
    )
    estimator = EstimateTokenizer()
    assert count_message_tokens(calling, estimator) > count_message_tokens(plain, estimator) + 8


def test_custom_tokenizers_can_be_registered() -> None:
    register_tokenizer("words-test", CountingTokenizer)
    tokenizer = get_tokenizer("words-test")
    assert isinstance(tokenizer, Tokenizer)
    assert count_tokens("a b c", tokenizer="words-test") == 3
