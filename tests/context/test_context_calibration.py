"""Self-calibration: estimates converge on a model's real prompt counts, robust to outliers."""

from __future__ import annotations

import random

import pytest
from context_corpora import chinese_prose, english_prose

from atdak_agents.context.budget import PromptCounter
from atdak_agents.context.calibration import TokenCalibration
from atdak_agents.context.tokens import count_tokens
from atdak_agents.exceptions import InvalidParameterError
from atdak_agents.messages import Message


def _prompts(count: int, seed: int = 1) -> list[list[Message]]:
    """Chat prompts of mixed Chinese and English, of varied sizes."""
    rng = random.Random(seed)
    texts = [*chinese_prose(seed).split("\n\n"), *english_prose(seed).split("\n\n")]
    prompts = []
    for _ in range(count):
        picked = rng.sample(texts, rng.randint(1, 4))
        prompts.append(
            [Message(role="system", content="You are a helpful assistant.")]
            + [Message(role="user", content=text) for text in picked]
        )
    return prompts


def test_a_new_model_is_uncorrected() -> None:
    calibration = TokenCalibration()
    assert calibration.factor("atdak-llama-70b") == 1.0
    assert calibration.adjust("atdak-llama-70b", 1000) == 1000
    assert calibration.samples("atdak-llama-70b") == 0


def test_estimates_converge_on_the_exact_tokenizer() -> None:
    calibration = TokenCalibration()
    counter = PromptCounter("atdak-llama-70b", calibration=calibration)
    held_out = _prompts(20, seed=99)

    def mean_error() -> float:
        errors = [
            abs(counter.estimate(p) / count_tokens(p, tokenizer="cl100k_base") - 1)
            for p in held_out
        ]
        return sum(errors) / len(errors)

    before = mean_error()
    for prompt in _prompts(30):
        calibration.observe(
            counter.model, counter.raw(prompt), count_tokens(prompt, tokenizer="cl100k_base")
        )
    after = mean_error()
    assert calibration.samples(counter.model) == 30
    assert after < before / 1.5, (before, after)
    assert after < 0.05


def test_a_model_with_a_denser_tokenizer_is_learnt() -> None:
    calibration = TokenCalibration()
    for estimated in range(100, 3000, 97):
        calibration.observe("dense", estimated, round(estimated * 0.62))
    assert calibration.factor("dense") == pytest.approx(0.62, abs=0.01)
    assert calibration.adjust("dense", 10_000) == pytest.approx(6_200, rel=0.01)


def test_outliers_do_not_move_the_correction() -> None:
    calibration = TokenCalibration()
    rng = random.Random(4)
    for i in range(60):
        estimated = rng.randint(200, 5000)
        if i % 10 == 3:
            actual = estimated * 40  # a server glitch
        elif i % 10 == 7:
            actual = 1
        else:
            actual = round(estimated * rng.uniform(1.08, 1.12))
        calibration.observe("m", estimated, actual)
    assert calibration.factor("m") == pytest.approx(1.10, abs=0.02)


def test_no_single_answer_decides_the_factor() -> None:
    calibration = TokenCalibration(min_samples=3)
    assert calibration.observe("m", 1000, 2000) == 1.0
    assert calibration.observe("m", 1000, 1100) == 1.0
    assert calibration.factor("m") == 1.0
    assert calibration.observe("m", 1000, 1120) == pytest.approx(1.12)


def test_tiny_and_empty_samples_are_ignored() -> None:
    calibration = TokenCalibration(min_tokens=16)
    calibration.observe("m", 5, 50)
    calibration.observe("m", 100, 0)
    assert calibration.samples("m") == 0


def test_the_window_forgets_old_behaviour() -> None:
    calibration = TokenCalibration(window=10)
    for _ in range(30):
        calibration.observe("m", 1000, 1500)
    for _ in range(10):
        calibration.observe("m", 1000, 900)
    assert calibration.factor("m") == pytest.approx(0.9)


def test_models_are_calibrated_separately_and_can_be_reset() -> None:
    calibration = TokenCalibration(min_samples=1)
    calibration.observe("a", 1000, 1200)
    calibration.observe("b", 1000, 800)
    assert calibration.factors() == {"a": 1.2, "b": 0.8}
    calibration.reset("a")
    assert calibration.factor("a") == 1.0
    calibration.reset()
    assert calibration.factors() == {}


def test_bad_settings_are_refused() -> None:
    with pytest.raises(InvalidParameterError, match="window"):
        TokenCalibration(window=0)
    with pytest.raises(InvalidParameterError, match="min_ratio"):
        TokenCalibration(min_ratio=1.5)
