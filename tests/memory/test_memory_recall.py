"""Properties of recall and of the store contract, checked on every backend with hypothesis."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atdak_agents.memory import MemoryStore
from atdak_agents.memory._search import Term, index_text, parse_query, tokens

CJK = "退款订单发货物流密码重置发票公司"
PROPERTY = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

cjk_runs = st.text(alphabet=CJK, min_size=1, max_size=12)
words = st.text(alphabet="abcdefgh", min_size=1, max_size=6)
texts = st.lists(st.one_of(cjk_runs, words), min_size=1, max_size=6).map(" ".join)


def test_index_text_splits_cjk_into_bigrams() -> None:
    assert index_text("申请退款") == " 申请 请退 退款 款 "
    assert tokens("我要退款，GPT-4 模型！") == [
        "我要",
        "要退",
        "退款",
        "款",
        "gpt",
        "4",
        "模型",
        "型",
    ]
    assert tokens("ＡＢＣ１２３") == ["abc123"]  # full-width forms are folded


def test_parse_query_terms() -> None:
    assert parse_query("退款") == [Term("退款")]
    assert parse_query("退") == [Term("退", prefix=True)]
    assert parse_query("退款政策 refund") == [
        Term("退款"),
        Term("款政"),
        Term("政策"),
        Term("refund"),
    ]
    assert parse_query("API 密钥 api") == [Term("api"), Term("密钥")]
    assert parse_query("!!! ，。") == []


@PROPERTY
@given(text=texts, data=st.data())
def test_any_cjk_substring_is_recalled(
    make_store: Callable[[], MemoryStore], text: str, data: st.DataObject
) -> None:
    runs = [w for w in text.split() if w[0] in CJK]
    with make_store().sync() as memory:
        (stored,) = memory.append("s", {"role": "user", "content": text})
        memory.append("noise", {"role": "user", "content": "无关 内容 unrelated"})
        for run in runs[:2]:
            start = data.draw(st.integers(0, len(run) - 1))
            end = data.draw(st.integers(start + 1, len(run)))
            hits = memory.search(run[start:end], session_id="s")
            assert [h.message for h in hits] == [stored], run[start:end]


@PROPERTY
@given(
    operations=st.lists(
        st.tuples(
            st.sampled_from(["append", "append", "append", "clear", "delete"]),
            st.sampled_from(["a", "b", "c"]),
            st.lists(st.one_of(cjk_runs, words), min_size=0, max_size=3),
        ),
        max_size=12,
    )
)
def test_store_matches_a_model_of_it(
    make_store: Callable[[], MemoryStore], operations: list[tuple[str, str, list[str]]]
) -> None:
    model: dict[str, list[str]] = {}
    with make_store().sync() as memory:
        for operation, session, contents in operations:
            if operation == "append":
                memory.append(session, [{"role": "user", "content": c} for c in contents])
                if contents:
                    model.setdefault(session, []).extend(contents)
            elif operation == "clear":
                assert memory.clear(session) == len(model.get(session, []))
                if session in model:
                    model[session] = []
            else:
                assert memory.delete_session(session) == (session in model)
                model.pop(session, None)
            for name in "abc":
                assert [m.text for m in memory.load(name)] == model.get(name, [])
                assert [m.text for m in memory.load(name, last=2)] == model.get(name, [])[-2:]
        listed = {s.session_id: s.message_count for s in memory.list_sessions()}
        assert listed == {name: len(contents) for name, contents in model.items()}
