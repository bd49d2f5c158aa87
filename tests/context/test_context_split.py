"""Splitting long documents by token budget, on natural boundaries, with optional overlap."""

from __future__ import annotations

import itertools

import pytest
from context_corpora import chinese_prose, english_prose, json_documents, python_code
from hypothesis import given, settings
from hypothesis import strategies as st

from atdak_agents.context.split import split_text
from atdak_agents.context.tokens import get_tokenizer
from atdak_agents.exceptions import InvalidParameterError


@pytest.mark.parametrize("tokenizer", ["estimate", "cl100k_base"])
@pytest.mark.parametrize("make", [english_prose, chinese_prose, python_code, json_documents])
def test_chunks_fit_and_cover_the_document(make: object, tokenizer: str) -> None:
    text = make()  # type: ignore[operator]
    counter = get_tokenizer(tokenizer)
    chunks = split_text(text, 400, tokenizer=tokenizer)
    assert "".join(c.text for c in chunks) == text
    assert all(counter.count(c.text) == c.tokens <= 400 for c in chunks)
    assert all(text[c.start : c.end] == c.text for c in chunks)
    assert len(chunks) <= counter.count(text) / 400 * 1.6 + 1  # not needlessly small


def test_english_chunks_end_at_paragraphs_or_sentences() -> None:
    chunks = split_text(english_prose(), 300, model="atdak-llama-70b")
    for chunk in chunks[:-1]:
        assert chunk.text.rstrip()[-1] in '.!?"', repr(chunk.text[-40:])


def test_chinese_chunks_end_at_chinese_punctuation() -> None:
    text = chinese_prose().replace("\n", "")  # no line breaks: sentences must do
    chunks = split_text(text, 150)
    assert len(chunks) > 5
    for chunk in chunks[:-1]:
        assert chunk.text[-1] in "。！？；”", repr(chunk.text[-20:])


def test_a_word_longer_than_the_budget_is_cut_inside() -> None:
    text = "a" * 3_000
    chunks = split_text(text, 50, tokenizer="cl100k_base")
    assert "".join(c.text for c in chunks) == text
    assert all(c.tokens <= 50 for c in chunks)


def test_overlap_repeats_the_end_of_the_previous_chunk() -> None:
    text = english_prose()
    chunks = split_text(text, 300, overlap=60, tokenizer="cl100k_base")
    assert all(c.tokens <= 300 for c in chunks)
    for before, after in itertools.pairwise(chunks):
        assert after.start < before.end  # they overlap
        assert before.end - after.start < len(before.text)
        assert text[after.start : before.end] == before.text[after.start - before.start :]
        assert get_tokenizer("cl100k_base").count(text[after.start : before.end]) <= 60
    assert chunks[0].start == 0 and chunks[-1].end == len(text)


def test_bad_budgets_are_refused() -> None:
    with pytest.raises(InvalidParameterError, match="max_tokens"):
        split_text("text", 0)
    with pytest.raises(InvalidParameterError, match="overlap"):
        split_text("text", 100, overlap=60)
    assert split_text("", 10) == []


@settings(max_examples=60, deadline=None)
@given(
    text=st.text(
        alphabet=st.sampled_from(list("ab cd。，！\n.,?好的世界 \t")), min_size=0, max_size=800
    ),
    budget=st.integers(5, 120),
)
def test_property_chunks_always_fit_and_reassemble(text: str, budget: int) -> None:
    chunks = split_text(text, budget)
    assert "".join(c.text for c in chunks) == text
    estimator = get_tokenizer("estimate")
    assert all(estimator.count(c.text) <= budget for c in chunks)
