"""Long time limits on one coarse clock per event loop (atdak_agents._timers).

The clock's tick and the length from which a limit goes on it are shrunk here (50 ms and 0.2 s)
so the tests run fast; the behaviour is that of 1 s and 5 s in real use.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time

import pytest

from atdak_agents import _timers
from atdak_agents.exceptions import APITimeoutError, StreamError
from atdak_agents.testing import LocalAtdakServer, Reply
from atdak_agents.tools import ToolCall, tool

pytestmark = pytest.mark.skipif(sys.version_info < (3, 11), reason="coarse limits need 3.11")


@pytest.fixture(autouse=True)
def fast_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_timers, "TICK", 0.05)
    monkeypatch.setattr(_timers, "COARSE_FROM", 0.2)


async def test_a_long_limit_fires_at_most_a_tick_late() -> None:
    scope = _timers.timeout(0.3)
    assert type(scope).__name__ == "_CoarseTimeout"
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        async with scope:
            await asyncio.sleep(5)
    assert 0.3 <= time.monotonic() - started < 0.3 + 0.05 + 0.1
    assert scope.expired()


async def test_a_block_that_ends_in_time_leaves_nothing_on_the_clock() -> None:
    clock = _timers.clock()
    scopes = [_timers.timeout(0.3) for _ in range(50)]
    for scope in scopes:
        async with scope:
            await asyncio.sleep(0)
    assert not any(s.expired() for s in scopes)
    assert not clock._due
    await asyncio.sleep(0.1)  # the clock's own timer stops once nothing is pending
    assert not clock._ticking


async def test_short_limits_keep_a_timer_of_their_own() -> None:
    scope = _timers.timeout(0.1)
    assert isinstance(scope, asyncio.Timeout)
    assert _timers.timeout(None).when() is None


async def test_a_cancel_from_outside_is_not_a_timeout() -> None:
    entered = asyncio.Event()

    async def body() -> None:
        async with _timers.timeout(10):
            entered.set()
            await asyncio.sleep(5)

    task = asyncio.ensure_future(body())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not _timers.clock()._due


async def test_many_limits_in_flight_each_fire_on_their_own_time() -> None:
    async def wait(limit: float) -> float:
        started = time.monotonic()
        try:
            async with _timers.timeout(limit):
                await asyncio.sleep(5)
        except TimeoutError:
            return time.monotonic() - started
        return -1.0

    limits = [0.2, 0.35, 0.5] * 20
    took = await asyncio.gather(*(wait(limit) for limit in limits))
    for limit, elapsed in zip(limits, took, strict=True):
        assert limit <= elapsed < limit + 0.05 + 0.15


async def test_a_hanging_tool_with_a_long_timeout_is_cancelled_on_the_coarse_clock() -> None:
    cancelled = asyncio.Event()

    @tool(timeout=0.3)
    async def hang() -> str:
        """Never answers."""
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    started = time.monotonic()
    result = await hang.run(ToolCall("call_1", "hang", {}))
    assert result.error_kind == "timeout" and "0.3 s" in result.content
    assert 0.3 <= time.monotonic() - started < 0.5
    await asyncio.wait_for(cancelled.wait(), 2)


async def test_a_model_call_past_its_long_total_limit_times_out(
    atdak_server: LocalAtdakServer,
) -> None:
    from atdak_agents.providers._retry import Timeouts

    atdak_server.responder = [Reply(fault="hang")]
    limits = Timeouts(read=5.0, total=0.3)
    async with atdak_server.async_client(timeout=limits, max_retries=0) as client:
        started = time.monotonic()
        with pytest.raises(APITimeoutError, match="total timeout of 0.3s"):
            await client.chat.completions.create(
                model="atdak-gpt-4", messages=[{"role": "user", "content": "hi"}]
            )
    assert 0.3 <= time.monotonic() - started < 0.5


def test_each_loop_keeps_its_own_clock_whichever_ran_last() -> None:
    # clock() remembers the clock it gave last: a loop that runs after another one must still
    # get its own clock, the one it had before.
    async def clocks() -> tuple[_timers.Clock, _timers.Clock]:
        return _timers.clock(), _timers.clock()

    first, second = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        a1, a2 = first.run_until_complete(clocks())
        b1, b2 = second.run_until_complete(clocks())
        a3, _ = first.run_until_complete(clocks())
    finally:
        first.close()
        second.close()
    assert a1 is a2 is a3 and b1 is b2
    assert a1 is not b1
    assert a1.loop() is first and b1.loop() is second


def test_a_finished_loop_leaves_no_clock_behind() -> None:
    async def use_a_clock() -> None:
        async with _timers.timeout(1.0):
            await asyncio.sleep(0)

    for _ in range(5):
        asyncio.run(use_a_clock())
    gc.collect()
    assert len(_timers._CLOCKS) == 0  # each loop was collected, and its entry with it


async def test_a_stream_past_its_long_total_limit_times_out_between_chunks(
    atdak_server: LocalAtdakServer,
) -> None:
    """A stream's wait for its next chunk is bounded by what is left of the total limit, on the
    coarse clock when that is long (no timer per chunk)."""
    from atdak_agents.providers._retry import Timeouts

    # chunks about 0.7 s apart: the limit runs out 0.3 s into the wait for the third
    atdak_server.responder = [Reply(text="abcd", chunk_size=1, chunk_delay=0.7)]
    limits = Timeouts(read=5.0, total=1.0)
    async with atdak_server.async_client(timeout=limits, max_retries=0) as client:
        started = time.monotonic()
        stream = await client.chat.completions.create(
            model="atdak-gpt-4", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        with pytest.raises(StreamError, match="did not finish within its total timeout") as caught:
            await stream.collect()
    assert 1.0 <= time.monotonic() - started < 1.25  # (the third chunk would come at 1.4 s)
    assert 1 <= caught.value.received_chunks <= 2
