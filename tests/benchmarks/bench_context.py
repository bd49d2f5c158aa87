"""Benchmark: fitting a long mixed English/Chinese history into atdak-llama-70b's budget.

Run on demand: ``.venv/bin/python tests/benchmarks/bench_context.py``.

One run measures, on a 10,000-message history (user/assistant turns in English, Chinese and
both, with some tool exchanges):

- **first fit**: a fresh ``HistoryFitter`` on messages never counted before (every message is
  estimated once), against two baselines measured in the same run: a *naive full recount*
  (estimate every message from scratch, then drop the oldest until it fits, as a simple
  implementation would on every call) and *cached counts, full rescan* (per-message counts
  cached on the messages, but every call walks the whole history);
- **incremental fits**: append k = 1, 10, 100, 1,000 new messages and fit again (the agent
  loop's case), with the time per new message, to show the cost grows with new messages and
  not with the history;
- **the estimator** against the exact ``cl100k_base`` vocabulary (bpe-openai, Rust): throughput
  and error on the same texts.

Floors (issue 3): an incremental fit of the 10,000-message history under 5 ms, and cost linear
in the number of new messages.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Callable

from atdak_agents.context.budget import ContextBudget
from atdak_agents.context.calibration import TokenCalibration
from atdak_agents.context.history import HistoryFitter
from atdak_agents.context.tokens import (
    REPLY_PRIMING,
    count_message_tokens,
    get_tokenizer,
)
from atdak_agents.messages import EXCHANGE, KIND, Message

MODEL = "atdak-llama-70b"
N = 10_000
EN = (
    "Could you check the delivery status of my order and tell me when it will arrive?",
    "The refund should arrive within five working days, depending on your bank.",
    "Please update the shipping address to the new office on Harbour Street.",
    "I would like to change the plan to the annual subscription starting next month.",
    "The tracking page shows no update since Monday; is the parcel lost?",
)
ZH = (
    "我的订单三天了还没有发货，能帮我查一下物流状态吗？",
    "退款一般会在五个工作日内到账，具体时间取决于您的银行。",
    "请把收货地址改成新的办公室地址，谢谢。",
    "我想把套餐改成年付，从下个月开始生效。",
    "物流页面从周一开始就没有更新了，包裹是不是丢了？",
)


def make_messages(count: int, seed: int) -> list[Message]:
    """``count`` messages: mixed-language turns, a tool exchange every 25 turns."""
    rng = random.Random(seed)
    messages: list[Message] = [Message(role="system", content="You are a support assistant.")]
    turn = 0
    while len(messages) < count:
        turn += 1
        text = " ".join(rng.choice(rng.choice((EN, ZH))) for _ in range(rng.randint(1, 3)))
        messages.append(Message(role="user", content=f"#{turn} {text}"))
        if turn % 25 == 0:
            key = f"x{turn}"
            meta = {EXCHANGE: key}
            messages.append(
                Message(
                    role="assistant",
                    content='{"tool": "lookup_order", "id": ' + str(10_000 + turn) + "}",
                    metadata={**meta, KIND: "tool_call"},
                )
            )
            result = '{"status": "shipped", "carrier": "SF Express", "eta": "2024-06-0' + '3"}'
            messages.append(
                Message(role="user", content=result, metadata={**meta, KIND: "tool_result"})
            )
        answer = " ".join(rng.choice(rng.choice((EN, ZH))) for _ in range(rng.randint(1, 4)))
        messages.append(Message(role="assistant", content=answer))
    return messages[:count]


def naive_fit(history: list[Message], budget: ContextBudget) -> list[Message]:
    """Recount everything, then keep the newest messages that fit (the simple way)."""
    tokenizer = get_tokenizer("estimate")
    counts = [4 + tokenizer.count(m.text) for m in history]
    used = counts[0] + REPLY_PRIMING
    start = len(history)
    while start > 1 and used + counts[start - 1] <= budget.prompt_tokens:
        start -= 1
        used += counts[start]
    return [history[0], *history[start:]]


def rescan_fit(history: list[Message], budget: ContextBudget) -> list[Message]:
    """Cached per-message counts, but the whole history walked on every call."""
    tokenizer = get_tokenizer("estimate")
    counts = [count_message_tokens(m, tokenizer) for m in history]
    used = counts[0] + REPLY_PRIMING
    start = len(history)
    while start > 1 and used + counts[start - 1] <= budget.prompt_tokens:
        start -= 1
        used += counts[start]
    return [history[0], *history[start:]]


def timed(function: Callable[[], object], repeat: int = 1) -> float:
    """The median wall time of ``function`` in seconds."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def fresh_copy(messages: list[Message]) -> list[Message]:
    """The same messages as new objects, with no cached counts."""
    return [m.model_copy(update={"metadata": dict(m.metadata)}, deep=False) for m in messages]


def uncached(messages: list[Message]) -> list[Message]:
    copies = [Message(**m.model_dump(), metadata=dict(m.metadata)) for m in messages]
    return copies


async def bench_first_fit(history: list[Message]) -> float:
    fitter = HistoryFitter(MODEL, calibration=TokenCalibration())
    messages = uncached(history)
    start = time.perf_counter()
    fitted = await fitter.fit(messages)
    elapsed = time.perf_counter() - start
    budget = fitter.budget
    naive = timed(lambda: naive_fit(uncached(history), budget))
    naive_copy = timed(lambda: uncached(history))
    naive -= naive_copy  # do not charge the baseline for building the messages
    rescan = timed(lambda: rescan_fit(messages, budget), repeat=5)
    print(f"history: {len(history):,} messages; budget {budget.prompt_tokens:,} prompt tokens")
    print(f"kept after fitting: {len(fitted):,} messages, {fitter.estimate(fitted):,} tokens")
    print()
    print("first fit (nothing counted yet)")
    print(f"  HistoryFitter.fit              {elapsed * 1e3:9.1f} ms")
    print(f"  naive full recount (baseline)  {naive * 1e3:9.1f} ms   fit is {naive / elapsed:.2f}x")
    print(f"  cached counts, full rescan     {rescan * 1e3:9.1f} ms   (counts already cached)")
    return naive


async def bench_incremental(history: list[Message], naive_first: float) -> dict[int, float]:
    fitter = HistoryFitter(MODEL, calibration=TokenCalibration())
    messages = list(history)
    await fitter.fit(messages)  # warm: the first fit counted everything
    budget = fitter.budget
    spare = make_messages(40_000, seed=7)[1:]
    results: dict[int, float] = {}
    print()
    print(f"incremental fits: append k messages to a {N:,}-message history, fit again")
    print(f"  {'k':>6} {'fit (median)':>14} {'per new msg':>12} {'naive recount':>14} {'ratio':>8}")
    position = 0
    for k in (1, 10, 100, 1_000):
        samples = []
        for _ in range(7 if k < 1_000 else 3):
            new = fresh_copy(spare[position : position + k])
            position += k
            messages = messages + new
            start = time.perf_counter()
            await fitter.fit(messages)
            samples.append(time.perf_counter() - start)
        median = statistics.median(samples)
        results[k] = median
        naive = naive_first * len(messages) / N
        print(
            f"  {k:>6} {median * 1e3:>11.3f} ms {median / k * 1e6:>9.1f} us "
            f"{naive * 1e3:>11.1f} ms {naive / median:>7.0f}x"
        )
    rescan = timed(lambda: rescan_fit(messages, budget), repeat=5)
    print(
        f"  cached counts, full rescan of {len(messages):,} messages: {rescan * 1e3:.2f} ms "
        f"({rescan / results[1]:.1f}x the k=1 incremental fit)"
    )
    return results


def bench_estimator(history: list[Message]) -> None:
    texts = [m.text for m in history]
    estimator, exact = get_tokenizer("estimate"), get_tokenizer("cl100k_base")
    exact.count("warm up")
    chars = sum(map(len, texts))
    t_est = timed(lambda: [estimator.count(t) for t in texts], repeat=3)
    t_exact = timed(lambda: [exact.count(t) for t in texts], repeat=3)
    est_total = sum(estimator.count(t) for t in texts)
    exact_total = sum(exact.count(t) for t in texts)
    print()
    print(f"token counting of the {len(texts):,} message texts ({chars:,} characters)")
    print(f"  exact cl100k_base (Rust)   {t_exact * 1e3:8.1f} ms   {exact_total:>9,} tokens")
    print(
        f"  estimator (pure Python)    {t_est * 1e3:8.1f} ms   {est_total:>9,} tokens "
        f"({est_total / exact_total - 1:+.1%} vs exact; {t_est / t_exact:.1f}x the time)"
    )


async def main() -> None:
    history = make_messages(N, seed=1)
    naive_first = await bench_first_fit(history)
    results = await bench_incremental(history, naive_first)
    bench_estimator(history)
    print()
    ks = sorted(results)
    slope, intercept = _least_squares(ks, [results[k] for k in ks])
    worst = max(abs(intercept + slope * k - results[k]) / results[k] for k in ks)
    floor_ok = results[1] < 0.005 and results[10] < 0.005
    print(f"floor: incremental fit < 5 ms: {'PASS' if floor_ok else 'FAIL'} ", end="")
    print(f"(k=1 {results[1] * 1e3:.3f} ms, k=10 {results[10] * 1e3:.3f} ms)")
    print(
        f"floor: cost linear in new messages: time = {intercept * 1e3:.2f} ms + "
        f"{slope * 1e6:.1f} us x k (worst deviation from the line {worst:.0%}; "
        f"{'PASS' if worst < 0.35 else 'CHECK'})"
    )


def _least_squares(xs: list[int], ys: list[float]) -> tuple[float, float]:
    """Slope and intercept of the least-squares line through the points."""
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mean_x) ** 2 for x in xs
    )
    return slope, mean_y - slope * mean_x


if __name__ == "__main__":
    asyncio.run(main())
