"""The contract of MemoryStore: every backend of conftest.BACKENDS passes all of this."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from atdak_agents.context.tokens import EstimateTokenizer, count_message_tokens
from atdak_agents.exceptions import InvalidParameterError, UsageError
from atdak_agents.memory import MemoryStore, StoredMessage, message_tokens
from atdak_agents.messages import Message


def user(text: str, **metadata: object) -> Message:
    return Message(role="user", content=text, metadata=dict(metadata))


def texts(messages: list[StoredMessage]) -> list[str]:
    return [m.text for m in messages]


# --------------------------------------------------------------------------- append and load


async def test_append_returns_records_in_order(store: MemoryStore) -> None:
    before = time.time()
    first = await store.append("s1", user("one"))
    batch = await store.append("s1", [user("two"), {"role": "assistant", "content": "three"}])
    records = [*first, *batch]
    assert texts(records) == ["one", "two", "three"]
    assert [r.role for r in records] == ["user", "user", "assistant"]
    assert all(r.session_id == "s1" for r in records)
    assert records[0].id < records[1].id < records[2].id
    assert all(before <= r.created_at <= time.time() for r in records)
    assert [r.tokens for r in records] == message_tokens(records)
    assert all(r.tokens > 0 for r in records)
    assert await store.load("s1") == records


class SpyTokenizer:
    """The estimator under its own name, counting how often it is asked to count."""

    name = "estimate"

    def __init__(self) -> None:
        self.calls = 0
        self._inner = EstimateTokenizer()

    def count(self, text: str) -> int:
        self.calls += 1
        return self._inner.count(text)

    def upper_bound(self, text: str) -> int:
        return self._inner.upper_bound(text)


async def test_loaded_messages_carry_their_stored_token_counts(store: MemoryStore) -> None:
    """A history loaded from a store is not counted again when a budget is fitted."""
    await store.append("s1", [user("Where is order 10423?"), user("它什么时候到？")])
    loaded = await store.load("s1")
    spy = SpyTokenizer()
    assert [count_message_tokens(m, spy) for m in loaded] == [m.tokens for m in loaded]
    assert spy.calls == 0
    loaded[0].content = "Where is order 10424, and when does it arrive?"
    assert count_message_tokens(loaded[0], spy) == message_tokens([loaded[0]])[0]
    assert spy.calls == 1  # a changed message is counted again


async def test_round_trip_keeps_every_field_and_metadata(store: MemoryStore) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
    original = [
        Message(
            role="assistant",
            content=None,
            tool_calls=[call],  # type: ignore[list-item]
            metadata={"exchange": "ex-1", "kind": "tool_call", "nested": {"a": [1, 2.5, None]}},
        ),
        Message(
            role="tool",
            content='{"status": "shipped"}',
            tool_call_id="call_1",
            metadata={"exchange": "ex-1", "kind": "tool_result"},
        ),
        Message(role="user", content="你好 👋", name="alice", vendor_field=7),  # type: ignore[call-arg]
    ]
    await store.append("s", original)
    loaded = await store.load("s")
    for before, after in zip(original, loaded, strict=True):
        assert after.to_wire() == before.to_wire()
        assert after.metadata == {**before.metadata, "created_at": after.created_at}
    assert loaded[0].tool_calls is not None
    assert loaded[0].tool_calls[0].function.name == "lookup"
    assert loaded[2].model_extra == {"vendor_field": 7}
    assert "id" not in loaded[2].to_wire() and "session_id" not in loaded[2].to_wire()


async def test_created_at_given_in_metadata_is_kept(store: MemoryStore) -> None:
    (record,) = await store.append("s", user("imported", created_at=1_600_000_000.5))
    assert record.created_at == 1_600_000_000.5
    (loaded,) = await store.load("s")
    assert loaded.created_at == 1_600_000_000.5 == loaded.metadata["created_at"]


async def test_reappending_loaded_messages_copies_them(store: MemoryStore) -> None:
    await store.append("a", [user("x", kind="note"), user("y")])
    copies = await store.append("b", await store.load("a"))
    assert texts(copies) == ["x", "y"]
    assert all(c.session_id == "b" for c in copies)
    assert copies[0].metadata["kind"] == "note"
    assert len(await store.load("a")) == 2


async def test_load_last_since_and_after(store: MemoryStore) -> None:
    old = await store.append("s", [user(f"old{i}", created_at=1000.0 + i) for i in range(5)])
    new = await store.append("s", [user(f"new{i}") for i in range(5)])
    assert texts(await store.load("s", last=3)) == ["new2", "new3", "new4"]
    assert await store.load("s", last=0) == []
    assert len(await store.load("s", last=100)) == 10
    assert len(await store.load("s", last=11)) == 10
    assert len(await store.load("s", last=10)) == 10
    assert texts(await store.load("s", since=1003.0)) == ["old3", "old4", *texts(new)]
    assert texts(await store.load("s", after_id=old[-1].id)) == texts(new)
    assert texts(await store.load("s", after_id=new[1].id, last=2)) == ["new3", "new4"]
    assert texts(await store.load("s", since=1001.0, last=1)) == ["new4"]
    assert await store.load("unknown") == []


async def test_empty_append_stores_nothing(store: MemoryStore) -> None:
    assert await store.append("s", []) == []
    assert await store.list_sessions() == []


async def test_append_is_atomic_when_one_message_is_bad(store: MemoryStore) -> None:
    await store.append("s", user("kept"))
    bad = [user("a"), user("b"), user("c", not_json={1, 2})]
    with pytest.raises(InvalidParameterError, match=r"messages\[2\]\.metadata"):
        await store.append("s", bad)
    with pytest.raises(InvalidParameterError, match=r"messages\[1\]"):
        await store.append("s", [user("a"), {"role": "robot", "content": "?"}])
    assert texts(await store.load("s")) == ["kept"]


@pytest.mark.parametrize("session_id", ["", None, 42])
async def test_bad_session_id_is_refused(store: MemoryStore, session_id: object) -> None:
    with pytest.raises(InvalidParameterError, match="session_id"):
        await store.append(session_id, user("x"))  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="session_id"):
        await store.load(session_id)  # type: ignore[arg-type]


async def test_bad_counts_are_refused(store: MemoryStore) -> None:
    with pytest.raises(InvalidParameterError, match="last"):
        await store.load("s", last=-1)
    with pytest.raises(InvalidParameterError, match="limit"):
        await store.search("x", limit=0)
    with pytest.raises(InvalidParameterError, match="messages"):
        await store.append("s", "just a string")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- sessions


async def test_clear_keeps_the_session_and_empties_it(store: MemoryStore) -> None:
    await store.append("s", [user("a"), user("b")])
    await store.append("other", user("c"))
    assert await store.clear("s") == 2
    assert await store.load("s") == []
    assert await store.search("a", session_id="s") == []
    info = {i.session_id: i for i in await store.list_sessions()}
    assert info["s"].message_count == 0 and info["s"].token_count == 0
    assert texts(await store.load("other")) == ["c"]
    await store.append("s", user("again"))
    assert texts(await store.load("s")) == ["again"]
    assert await store.clear("never-seen") == 0


async def test_delete_session_removes_it_and_only_it(store: MemoryStore) -> None:
    await store.append("s", user("secret alpha"))
    kept = await store.append("t", user("alpha"))
    assert await store.delete_session("s") is True
    assert await store.delete_session("s") is False
    assert [i.session_id for i in await store.list_sessions()] == ["t"]
    assert await store.load("s") == []
    assert [h.message for h in await store.search("alpha")] == kept


async def test_ids_keep_growing_after_deletes(store: MemoryStore) -> None:
    first = await store.append("s", [user("a"), user("b")])
    await store.delete_session("s")
    (again,) = await store.append("s", user("c"))
    assert again.id > first[-1].id


async def test_list_sessions_counts_and_orders(store: MemoryStore) -> None:
    a = await store.append("a", [user("one"), user("two")])
    await asyncio.sleep(0.01)
    await store.append("b", user("three"))
    await asyncio.sleep(0.01)
    await store.append("a", user("four"))
    sessions = await store.list_sessions()
    assert [s.session_id for s in sessions] == ["a", "b"]
    assert sessions[0].message_count == 3
    assert sessions[0].token_count == sum(m.tokens for m in await store.load("a"))
    assert sessions[0].created_at <= a[0].created_at + 0.01 <= sessions[0].updated_at + 0.01
    assert [s.session_id for s in await store.list_sessions(limit=1)] == ["a"]


async def test_sessions_never_leak_under_concurrency(store: MemoryStore) -> None:
    sessions = [f"user-{n}" for n in range(12)]

    async def writer(session: str, worker: int) -> None:
        for i in range(15):
            batch = [user(f"{session}|w{worker}|{i}|{j}") for j in range(1 + i % 3)]
            await store.append(session, batch)
            if i % 5 == 0:
                assert all(m.session_id == session for m in await store.load(session))

    await asyncio.gather(*(writer(s, w) for s in sessions for w in range(2)))
    for session in sessions:
        loaded = await store.load(session)
        assert all(m.text.startswith(f"{session}|") for m in loaded)
        assert len(loaded) == 2 * sum(1 + i % 3 for i in range(15))
        for worker in range(2):
            mine = [m.text for m in loaded if f"|w{worker}|" in m.text]
            expected = [f"{session}|w{worker}|{i}|{j}" for i in range(15) for j in range(1 + i % 3)]
            assert mine == expected  # each writer's order is kept
        hits = await store.search(session.replace("-", " "), session_id=session, limit=50)
        assert hits and all(h.message.session_id == session for h in hits)
    all_ids = [m.id for s in sessions for m in await store.load(s)]
    assert len(all_ids) == len(set(all_ids))


# --------------------------------------------------------------------------- recall

CONVERSATIONS = {
    "zh": [
        ("user", "你好，我上周买的耳机还没有发货，订单号是 10423。"),
        ("assistant", "您好！我查一下物流信息，请稍等。"),
        ("user", "如果这周还不发货，我想申请退款。"),
        ("assistant", "可以的，退款会在三到五个工作日内原路返回。"),
        ("user", "另外，发票可以开公司抬头吗？"),
        ("assistant", "可以，开票时请提供公司名称和税号。"),
        ("user", "我忘记了账户密码，怎么重置？"),
        ("assistant", "请在登录页点击“忘记密码”，按提示重置。"),
    ],
    "en": [
        ("user", "My package has not arrived and the tracking page is empty."),
        ("assistant", "Sorry about that. Tracking updates can lag by a day."),
        ("user", "Can I get a refund if it does not arrive by Friday?"),
        ("assistant", "Yes, a refund goes back to the original payment method."),
        ("user", "Also, please change my delivery address to 221B Baker Street."),
    ],
    "mixed": [
        ("user", "我们在评估 GPT-4 和 Llama 70B 模型，哪个更适合中文客服？"),
        ("assistant", "For Chinese support, GPT-4 是更稳的选择，但 Llama 70B 成本更低。"),
        ("user", "API 密钥应该放在哪里？我不想写进 code 里。"),
        ("assistant", "把 API key 放在环境变量 ATDAK_API_KEY 里，不要提交到 git。"),
        ("user", "context window 是 32K 的话，长对话要怎么处理？"),
        ("assistant", "可以用 summarising memory 把旧对话总结成摘要。"),
    ],
}


async def _load_conversations(store: MemoryStore) -> None:
    for session, turns in CONVERSATIONS.items():
        await store.append(session, [{"role": r, "content": c} for r, c in turns])


def _found(hits: list[object]) -> list[str]:
    return [h.message.text for h in hits]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("query", "session", "expected_first"),
    [
        ("退款", "zh", "如果这周还不发货，我想申请退款。"),  # 2-character Chinese words
        ("发票", "zh", "另外，发票可以开公司抬头吗？"),
        ("密码", "zh", "我忘记了账户密码，怎么重置？"),
        ("物流", "zh", "您好！我查一下物流信息，请稍等。"),
        ("重置密码", "zh", "我忘记了账户密码，怎么重置？"),
        ("订单号", "zh", "你好，我上周买的耳机还没有发货，订单号是 10423。"),
        ("10423", "zh", "你好，我上周买的耳机还没有发货，订单号是 10423。"),
        ("tracking page", "en", "My package has not arrived and the tracking page is empty."),
        ("delivery address", "en", "Also, please change my delivery address to 221B Baker Street."),
        ("Baker", "en", "Also, please change my delivery address to 221B Baker Street."),
        ("ＧＰＴ－４ 客服", "mixed", "我们在评估 GPT-4 和 Llama 70B 模型，哪个更适合中文客服？"),
        ("API 密钥", "mixed", "API 密钥应该放在哪里？我不想写进 code 里。"),
        ("环境变量", "mixed", "把 API key 放在环境变量 ATDAK_API_KEY 里，不要提交到 git。"),
        ("摘要", "mixed", "可以用 summarising memory 把旧对话总结成摘要。"),
        ("32K", "mixed", "context window 是 32K 的话，长对话要怎么处理？"),
    ],
)
async def test_recall_chinese_english_and_mixed(
    store: MemoryStore, query: str, session: str, expected_first: str
) -> None:
    await _load_conversations(store)
    scoped = await store.search(query, session_id=session)
    assert scoped and scoped[0].message.text == expected_first
    assert all(h.message.session_id == session for h in scoped)
    assert expected_first in _found(await store.search(query, limit=20))


async def test_recall_two_character_query_matches_exactly(store: MemoryStore) -> None:
    await _load_conversations(store)
    hits = _found(await store.search("发货", session_id="zh"))
    assert sorted(hits) == sorted(c for r, c in CONVERSATIONS["zh"] if "发货" in c)
    assert await store.search("货发", session_id="zh") == []  # order matters inside a word
    assert await store.search("退款", session_id="en") == []


async def test_recall_single_character_query(store: MemoryStore) -> None:
    await _load_conversations(store)
    hits = _found(await store.search("票", session_id="zh"))
    assert sorted(hits) == sorted(c for r, c in CONVERSATIONS["zh"] if "票" in c)
    ends = _found(await store.search("款", session_id="zh"))  # 款 ends the sentence's word run
    assert sorted(ends) == sorted(c for r, c in CONVERSATIONS["zh"] if "款" in c)


async def test_recall_ranks_more_matching_terms_first(store: MemoryStore) -> None:
    await store.append(
        "s",
        [
            user("退款 的 规则"),
            user("物流 很慢"),
            user("退款 要等 物流 签收 以后"),
            user("天气 不错"),
        ],
    )
    hits = _found(await store.search("退款 物流", session_id="s"))
    assert hits[0] == "退款 要等 物流 签收 以后"
    assert set(hits[1:]) == {"退款 的 规则", "物流 很慢"}


async def test_recall_limit_and_no_terms(store: MemoryStore) -> None:
    await store.append("s", [user(f"refund number {i}") for i in range(8)])
    assert len(await store.search("refund", limit=3)) == 3
    assert await store.search("  !!! ，。") == []
    assert await store.search("") == []
    hits = await store.search("refund", session_id="s")
    assert all(h.score > 0 for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


# --------------------------------------------------------------------------- lifecycle


async def test_closed_store_refuses_calls(make_store: Callable[[], MemoryStore]) -> None:
    store = make_store()
    await store.append("s", user("x"))
    await store.close()
    await store.close()  # twice is fine
    with pytest.raises(UsageError, match="closed"):
        await store.load("s")
    with pytest.raises(UsageError, match="closed"):
        await store.append("s", user("y"))


async def test_async_context_manager_closes(make_store: Callable[[], MemoryStore]) -> None:
    async with make_store() as store:
        await store.append("s", user("x"))
    with pytest.raises(UsageError, match="closed"):
        await store.list_sessions()


def test_sync_facade(make_store: Callable[[], MemoryStore]) -> None:
    with make_store().sync() as memory:
        records = memory.append("s", [user("你好"), user("退款 please")])
        assert texts(memory.load("s")) == ["你好", "退款 please"]
        assert memory.load("s", last=1) == records[1:]
        assert [h.message for h in memory.search("退款")] == records[1:]
        assert [i.session_id for i in memory.list_sessions()] == ["s"]
        assert memory.clear("s") == 2
        assert memory.delete_session("s") is True
    memory.close()  # twice is fine
    with pytest.raises(UsageError, match="closed"):
        memory.load("s")


async def test_sync_facade_refuses_a_running_loop(make_store: Callable[[], MemoryStore]) -> None:
    memory = make_store().sync()
    try:
        with pytest.raises(UsageError, match=r"await store\.load"):
            memory.load("s")
    finally:
        await memory.store.close()
        memory._loop.close()
