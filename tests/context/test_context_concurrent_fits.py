"""One fitter, several histories fitted at once (concurrent runs of one agent): each fit keeps its
own view of its history while another fits meanwhile, even across a summary's model call."""

from __future__ import annotations

import asyncio

from atdak_agents.context.calibration import TokenCalibration
from atdak_agents.context.history import HistoryFitter
from atdak_agents.context.strategies import DropOldest, Summarize
from atdak_agents.messages import Message
from atdak_agents.providers.profiles import ModelProfile
from atdak_agents.testing import Reply, ScriptedModel

SMALL = ModelProfile(name="small-test", context_window=2_000, max_output_tokens=200)


def conversation(tag: str, turns: int, head: int = 1) -> list[Message]:
    history = [Message(role="system", content=f"You are terse ({n}).") for n in range(head)]
    for i in range(turns):
        history.append(Message(role="user", content=f"{tag} question {i} " + "word " * 30))
        history.append(Message(role="assistant", content=f"{tag} answer {i} " + "word " * 30))
    return history


def summarizing_fitter(replies: int) -> HistoryFitter:
    model = ScriptedModel([Reply(text="A short summary.", delay=0.05)] * replies)
    strategies = [Summarize(chat_model=model), DropOldest()]
    return HistoryFitter(SMALL, strategies, calibration=TokenCalibration(), safety_margin=0)


async def test_a_fit_waiting_for_its_summary_is_not_disturbed_by_other_fits() -> None:
    long, short = conversation("A", 40), conversation("B", 3)
    alone = await summarizing_fitter(1).fit(long)
    shared = summarizing_fitter(1)
    waiting = asyncio.ensure_future(shared.fit(long))
    await asyncio.sleep(0.01)  # the long history is now waiting for its summary
    assert await shared.fit(short) == short  # fits as it is, while the other one waits
    assert await shared.fit([*short, Message(role="user", content="B again")])
    fitted = await waiting
    assert [m.content for m in fitted] == [m.content for m in alone]
    assert fitted[-1] is long[-1] and fitted[1].content is not None
    assert "A short summary." in fitted[1].content


async def test_many_concurrent_fits_each_get_their_own_history() -> None:
    fitter = summarizing_fitter(8)
    histories = [conversation(f"run{i}-", 30 + i if i % 2 else 2, 1 + i % 3) for i in range(16)]
    results = await asyncio.gather(*(fitter.fit(h) for h in histories))
    for history, fitted in zip(histories, results, strict=True):
        head = sum(m.role == "system" for m in history)
        kept = [m for m in fitted if any(m is h for h in history[head:])]
        assert kept == history[len(history) - len(kept) :]  # the latest turns, in order...
        assert kept[0].role == "user"  # ...whole ones
        assert len(kept) == len(history) - head or "A short summary." in fitted[head].text
