"""recipes/memory_chat.yaml: a conversation kept in SQLite, recent turns sent, old turns recalled
by search — across runs and across processes."""

from __future__ import annotations

from pathlib import Path

from recipe_harness import run_cli, run_recipe

from atdak_agents.memory import SQLiteStore
from atdak_agents.tracing.sinks import read_jsonl

HOTEL = "我下周三去杭州出差，酒店订在湖滨路的西湖边。帮我记住，到时候提醒我带上充电器。"
LATER = [
    "帮我想想这周的周报怎么写",
    'Can you translate "settlement" into Chinese?',
    "推荐一本适合通勤时看的书",
]
QUESTION = "我住哪个酒店来着？"


async def test_an_old_turn_comes_back_by_recall_not_by_recency(recipes: Path) -> None:
    for message in [HOTEL, *LATER]:
        turn = await run_recipe(recipes, "memory_chat", {"message": message}, session_id="li-lei")
        assert turn.result.status == "done"
    outcome = await run_recipe(recipes, "memory_chat", {"message": QUESTION}, session_id="li-lei")
    assert outcome.result.status == "done"
    (request,) = outcome.requests
    system, *conversation = request.messages
    # the agent sends only its last turns (keep_last: 3 turns, this one included) ...
    assert [m["content"] for m in conversation if m["role"] == "user"] == [*LATER[1:], QUESTION]
    assert all(HOTEL not in m["content"] for m in conversation)
    # ... and the hotel turn, four turns back, came back through the search on 酒店
    assert system["role"] == "system" and f"- user: {HOTEL}" in system["content"]
    assert [m["content"] for m in outcome.result.state["recalled"]][-1] == HOTEL
    assert "湖滨路" in outcome.result.output["reply"]

    async with SQLiteStore(recipes / ".atdak" / "chat-memory.db") as store:
        kept = await store.load("li-lei")
    assert [m.content for m in kept if m.role == "user"] == [HOTEL, *LATER, QUESTION]
    assert len(kept) == 10  # each turn stored once: the message and the reply


async def test_another_session_remembers_nothing(recipes: Path) -> None:
    await run_recipe(recipes, "memory_chat", {"message": HOTEL}, session_id="li-lei")
    outcome = await run_recipe(recipes, "memory_chat", {"message": QUESTION}, session_id="han-mei")
    (request,) = outcome.requests
    assert outcome.result.state["recalled"] == []
    assert all("湖滨路" not in m["content"] for m in request.messages)


def test_a_second_process_with_the_same_session_remembers(recipes: Path) -> None:
    code, first, _ = run_cli(recipes, "run", "recipes/memory_chat.yaml", "--session", "li-lei")
    assert code == 0 and first["status"] == "done"  # the example: the hotel
    trace = recipes / "second.jsonl"
    code, second, stderr = run_cli(
        recipes,
        "run",
        "recipes/memory_chat.yaml",
        "--session",
        "li-lei",
        "--input",
        f"message={QUESTION}",
        "--trace",
        str(trace),
    )
    assert code == 0, stderr
    assert "湖滨路" in second["output"]["reply"]
    (request,) = [e for e in read_jsonl(trace) if e.type == "model_request"]
    sent = [m["content"] for m in request.messages or []]
    assert HOTEL in sent[0]  # recalled into the instructions ...
    assert sent[1:] == [HOTEL, first["output"]["reply"], QUESTION]  # ... and the last turns
