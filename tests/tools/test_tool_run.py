"""Running tools: validation, errors the model can correct, timeouts, context, concurrency."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import pytest
from pydantic import BaseModel

from atdak_agents.exceptions import ModelRetry, ToolDefinitionError, ToolExecutionError
from atdak_agents.tools import RunContext, ToolCall, ToolRegistry, tool


def call(tool_name: str, /, **arguments: object) -> ToolCall:
    return ToolCall(id=f"call_{tool_name}", name=tool_name, arguments=dict(arguments))


class Forecast(BaseModel):
    city: str
    temperature: float


@tool
def forecast(city: str, days: int = 1) -> Forecast:
    """Forecast.

    Args:
        city: City name.
        days: Days ahead.
    """
    if city == "Atlantis":
        raise LookupError("no weather station in Atlantis")
    if city == "Paris?":
        raise ModelRetry("write the city without punctuation, e.g. 'Paris'")
    return Forecast(city=city, temperature=21.5 + days)


async def test_valid_call_returns_serialised_value() -> None:
    result = await forecast.run(call("forecast", city="Paris", days="2"))  # lax: "2" -> 2
    assert not result.is_error
    assert result.content == '{"city": "Paris", "temperature": 23.5}'
    assert result.value == Forecast(city="Paris", temperature=23.5)
    assert (result.call_id, result.name, result.error_kind) == ("call_forecast", "forecast", None)
    assert result.duration >= 0


async def test_invalid_arguments_become_a_correctable_error() -> None:
    result = await forecast.run(call("forecast", town="Paris", days="many"))
    assert result.is_error and result.error_kind == "invalid_arguments"
    assert result.content.splitlines() == [
        "Invalid arguments for tool 'forecast':",
        "- city: Field required",
        "- days: Input should be a valid integer, unable to parse string as an integer "
        "(got 'many')",
        "- town: unknown argument; the arguments are: city, days",
        "Fix the arguments and call the tool again.",
    ]


async def test_exception_in_tool_becomes_error_result() -> None:
    result = await forecast.run(call("forecast", city="Atlantis"))
    assert result.is_error and result.error_kind == "exception"
    assert result.content == "Tool 'forecast' failed: LookupError: no weather station in Atlantis"


async def test_model_retry_sends_its_message_back() -> None:
    result = await forecast.run(call("forecast", city="Paris?"))
    assert result.is_error and result.error_kind == "retry"
    assert result.content == "write the city without punctuation, e.g. 'Paris'"


async def test_tool_execution_error_ends_the_run() -> None:
    @tool
    async def fatal() -> None:
        raise ToolExecutionError("fatal", "the payment system is down")

    with pytest.raises(ToolExecutionError, match="payment system is down"):
        await fatal.run(call("fatal"))


async def test_sync_tool_that_hangs_times_out_without_blocking() -> None:
    release = threading.Event()

    @tool(timeout=0.2)
    def hang() -> str:
        release.wait(10)
        return "late"

    started = time.perf_counter()
    result = await hang.run(call("hang"))
    elapsed = time.perf_counter() - started
    release.set()
    assert result.is_error and result.error_kind == "timeout"
    assert "did not finish within its timeout of 0.2 s" in result.content
    assert 0.15 < elapsed < 2


async def test_async_tool_that_hangs_is_cancelled() -> None:
    cancelled = asyncio.Event()

    @tool(timeout=0.1)
    async def hang() -> str:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    result = await hang.run(call("hang"))
    assert result.error_kind == "timeout"
    await asyncio.wait_for(cancelled.wait(), 2)


async def test_a_tools_own_timeout_error_is_an_exception_not_a_timeout() -> None:
    @tool(timeout=30)
    async def upstream() -> str:
        raise TimeoutError("the weather service did not answer")

    result = await upstream.run(call("upstream"))
    assert result.error_kind == "exception"
    assert "TimeoutError: the weather service did not answer" in result.content


async def test_an_async_tool_runs_in_the_callers_task() -> None:
    """No task per call: a tool that does not wait finishes within the caller's turn."""
    seen: list[asyncio.Task[object] | None] = []

    @tool
    async def where() -> str:
        seen.append(asyncio.current_task())
        return "here"

    assert (await where.run(call("where"))).content == "here"
    assert seen == [asyncio.current_task()]


async def test_no_timeout_when_disabled() -> None:
    @tool(timeout=None)
    async def slow() -> str:
        await asyncio.sleep(0.05)
        return "done"

    assert (await slow.run(call("slow"))).content == "done"


REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


async def test_sync_tools_run_in_a_thread_and_see_context_vars() -> None:
    @tool
    def where() -> dict[str, object]:
        return {
            "main": threading.current_thread() is threading.main_thread(),
            "id": REQUEST_ID.get(),
        }

    REQUEST_ID.set("req-7")
    assert (await where.run(call("where"))).value == {"main": False, "id": "req-7"}


async def test_run_context_is_passed_with_the_call() -> None:
    @tool
    async def greet(ctx: RunContext[dict[str, str]], name: str) -> str:
        assert ctx.call is not None
        return f"{ctx.deps['greeting']}, {name} (step {ctx.step}, call {ctx.call.id})"

    context = RunContext(deps={"greeting": "Hello"}, run_id="r1", step=3)
    result = await greet.run(call("greet", name="Ada"), context)
    assert result.content == "Hello, Ada (step 3, call call_greet)"

    @tool
    def bare(ctx: RunContext[None]) -> str:
        return f"deps={ctx.deps}"

    assert (await bare.run(call("bare"))).content == "deps=None"  # works outside an agent


async def test_registry_runs_by_name_and_rejects_unknown_names() -> None:
    registry = ToolRegistry([forecast])
    assert registry.names() == ["forecast"] and "forecast" in registry and len(registry) == 1
    result = await registry.run(call("forcast", city="Paris"))
    assert result.is_error and result.error_kind == "unknown_tool"
    assert result.content == (
        "There is no tool named 'forcast'. Did you mean 'forecast'? "
        "The tools you can call are: forecast."
    )
    assert registry.suggest("zzz") is None
    ok = await registry.run(call("forecast", city="Oslo"))
    assert not ok.is_error


def test_registry_wraps_functions_and_refuses_duplicate_names() -> None:
    def lookup(order_id: int) -> str:
        return str(order_id)

    registry = ToolRegistry([lookup])
    tool_object = registry.get("lookup")
    assert tool_object is not None and tool_object.parameter_names == ["order_id"]
    registry.add(tool_object)  # the same tool again is fine
    with pytest.raises(ToolDefinitionError, match="two tools are named 'lookup'"):
        registry.add(tool(name="lookup")(forecast.function))
    assert [t.name for t in registry] == ["lookup"]


async def test_run_all_is_concurrent_and_keeps_order() -> None:
    @tool
    async def wait(seconds: float) -> float:
        await asyncio.sleep(seconds)
        return seconds

    @tool
    def block(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    registry = ToolRegistry([wait, block])
    calls = [
        call("wait", seconds=0.2),
        call("block", seconds=0.2),
        call("nope"),
        call("wait", seconds=0.01),
    ]
    started = time.perf_counter()
    results = await registry.run_all(calls)
    elapsed = time.perf_counter() - started
    assert [r.content for r in results[:2]] == ["0.2", "0.2"]
    assert results[2].error_kind == "unknown_tool" and results[3].content == "0.01"
    assert elapsed < 0.35  # the two 0.2 s calls overlapped
