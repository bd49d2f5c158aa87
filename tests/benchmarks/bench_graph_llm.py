"""Benchmark: graphs of model-calling nodes with an in-process instant model, against LangGraph.

Run on demand: ``.venv/bin/python tests/benchmarks/bench_graph_llm.py`` (LangGraph comes with the
``bench`` extra). ``--quick`` measures less.

The companion of ``bench_graph.py`` (trivial nodes): here each node renders a prompt from state,
calls a chat model that answers at once, in process (no HTTP), and writes the answer to state —
the work of an ``llm`` node without the network. Both sides do the same per node:

- atdak_agents: ``llm`` nodes (jinja2 sandboxed template → history fitted to the model's
  budget → model call → usage accounting → state), model = an instant :class:`ChatModel`;
- LangGraph: a node that formats the same prompt, calls LangChain's ``FakeListChatModel``
  (``ainvoke``) and returns the text.

The **baseline** is bare Python doing the same formatting and instant-model call in a loop. A
graph's per-step overhead is (time per run - baseline per run) / nodes per run. Graphs: a 3-node
chain and a 100-node chain. Reported: per-step overhead of each side and their ratio.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import HumanMessage
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from atdak_agents import ChatCompletion, ChatCompletionRequest, GraphBuilder
from atdak_agents.providers.base import CallOptions, ChatStream

QUICK = "--quick" in sys.argv
REPEATS = 3 if QUICK else 5
TARGET_SECONDS = 0.1 if QUICK else 0.4
ANSWER = "ok"


class InstantModel:
    """A ChatModel answering every request at once, in process."""

    def __init__(self) -> None:
        self._completion = ChatCompletion.model_validate(
            {
                "id": "instant",
                "choices": [{"message": {"role": "assistant", "content": ANSWER}}],
                "usage": {"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13},
            }
        )

    async def complete(
        self, request: ChatCompletionRequest, *, options: CallOptions | None = None
    ) -> ChatCompletion:
        return self._completion

    async def stream(
        self, request: ChatCompletionRequest, *, options: CallOptions | None = None
    ) -> ChatStream:
        raise NotImplementedError("the benchmark never streams")


def atdak_chain(length: int) -> Callable[[], Awaitable[Any]]:
    g = GraphBuilder(f"chain{length}", model="atdak-gpt-4-mini")
    g.state("n", int, default=0)
    g.state("text", str)
    names = [f"n{i}" for i in range(length)]
    for name in names:
        g.llm(name, "Step {{ state.n }}: answer briefly.", writes="text")
    g.chain(*names, "end")
    graph = g.build()
    model = InstantModel()

    async def run() -> Any:
        return await graph.run(provider=model)

    return run


class LgState(TypedDict):
    n: int
    text: str


def langgraph_chain(length: int) -> Callable[[], Awaitable[Any]]:
    model = FakeListChatModel(responses=[ANSWER])
    builder = StateGraph(LgState)

    async def node(state: LgState) -> dict[str, Any]:
        prompt = f"Step {state['n']}: answer briefly."
        answer = await model.ainvoke([HumanMessage(content=prompt)])
        return {"text": answer.content}

    names = [f"n{i}" for i in range(length)]
    for name in names:
        builder.add_node(name, node)
    builder.add_edge(START, names[0])
    for left, right in itertools.pairwise(names):
        builder.add_edge(left, right)
    builder.add_edge(names[-1], END)
    graph = builder.compile()

    async def run() -> Any:
        return await graph.ainvoke({"n": 0, "text": ""}, {"recursion_limit": length + 10})

    return run


def bare_chain(length: int) -> Callable[[], Awaitable[Any]]:
    model = InstantModel()
    request = ChatCompletionRequest.model_validate(
        {"model": "atdak-gpt-4-mini", "messages": [{"role": "user", "content": "x"}]}
    )

    async def run() -> Any:
        state: dict[str, Any] = {"n": 0, "text": ""}
        for _ in range(length):
            prompt = f"Step {state['n']}: answer briefly."
            answer = await model.complete(request)
            state = {**state, "text": answer.text + prompt[:0]}
        return state

    return run


async def per_run(run: Callable[[], Awaitable[Any]]) -> float:
    await run()
    started = time.perf_counter()
    count = 0
    while time.perf_counter() - started < TARGET_SECONDS / 4:
        await run()
        count += 1
    count = max(3, int(count * 4))
    best = float("inf")
    for _ in range(REPEATS):
        started = time.perf_counter()
        for _ in range(count):
            await run()
        best = min(best, (time.perf_counter() - started) / count)
    return best


async def main() -> int:
    print("graph       nodes  bare/run   atdak/step  langgraph/step  langgraph/atdak")
    for length in (3, 100):
        bare = await per_run(bare_chain(length))
        atdak = (await per_run(atdak_chain(length)) - bare) / length
        lang = (await per_run(langgraph_chain(length)) - bare) / length
        print(
            f"chain{length:<6} {length:5}  {bare * 1e6:7.1f} µs  {atdak * 1e6:8.1f} µs  "
            f"{lang * 1e6:11.1f} µs  {lang / atdak:12.1f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
