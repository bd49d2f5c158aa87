"""recipes/assistant.yaml: a ReAct agent with a safe calculator, a clock and a SQLite lookup."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import sqlite3
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from recipe_harness import recipe_function, run_recipe

from atdak_agents.tools import RunContext, ToolCall, ToolResult

calculator = recipe_function("assistant_tools:calculator")
clock = recipe_function("assistant_tools:clock")
sql_query = recipe_function("assistant_tools:sql_query")
open_shop = recipe_function("assistant_tools:open_shop")


def call(tool: Any, context: Any = None, **arguments: Any) -> ToolResult:
    """What the model gets back when it calls ``tool`` with ``arguments``."""
    result: ToolResult = asyncio.run(tool.run(ToolCall("c1", tool.name, arguments), context))
    return result


async def test_the_agent_looks_up_computes_and_reads_the_clock(recipes: Path) -> None:
    outcome = await run_recipe(recipes, "assistant")
    assert outcome.result.status == "done"
    # three model calls: sql_query, then calculator and clock together in one turn, then the answer
    assert outcome.tools_called() == ["sql_query", "calculator", "clock"]
    assert len(outcome.requests) == 3
    assert not outcome.responder.unused
    looked_up, computed = outcome.texts[1], outcome.texts[2]
    # the rows came from the SQLite file the first node created
    rows = re.search(r'<result tool="sql_query"[^>]*>\n(.*?)\n</result>', looked_up, re.S)
    assert rows is not None
    assert json.loads(rows.group(1)) == [
        {"sku": "LAMP-HB-01", "name_zh": "Harbor 台灯", "price_cny": 289.0, "quantity": 37}
    ]
    assert re.search(r'<result tool="calculator"[^>]*>\n10693\n</result>', computed)
    now = re.search(r'"datetime": "([^"]+)"', computed)
    assert now is not None
    read = dt.datetime.fromisoformat(now.group(1))
    assert read.utcoffset() == dt.timedelta(hours=8)
    assert abs((dt.datetime.now(dt.timezone.utc) - read).total_seconds()) < 300
    assert "10,693" in outcome.result.output["answer"]
    database = Path(outcome.result.state["database"])
    assert database == recipes / ".atdak" / "shop.db"
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT count(*) FROM products").fetchone() == (5,)
    connection.close()


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("37 * 289", 10693),
        ("round(1200 * 1.13 ** 2, 2)", 1532.28),
        ("(4080 + 4560) / 12", 720),
        ("2 ** 10 - 1_000", 24),
        ("sqrt(2) * sqrt(2)", 2),
        ("max(3, 7, -1) % 4", 3),
        ("12 × 150 ÷ 4", 450),
        ("-(-3) + pi - pi", 3),
    ],
)
def test_calculator_computes(expression: str, value: float) -> None:
    assert calculator(expression) == pytest.approx(value)


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("__import__('os').system('echo hacked')", "not allowed"),
        ("open('/etc/passwd').read()", "not allowed"),
        ("(1).__class__.__bases__", "not allowed"),
        ("[x for x in range(10**9)]", "not allowed"),
        ("lambda: 1", "not allowed"),
        ("'a' * 10", "not allowed"),
        ("True + 1", "not allowed"),
        ("9 ** 9 ** 9", "exponents are limited"),
        ("10 ** 200", "larger than"),
        ("1 / 0", "division by zero"),
        ("sqrt(-1)", "math domain error"),
        ("1 +", "not an arithmetic expression"),
        ("1" * 400, "longer than"),
    ],
)
def test_calculator_refuses_anything_but_arithmetic(expression: str, says: str) -> None:
    result = call(calculator, expression=expression)
    assert result.is_error and result.error_kind == "retry"
    assert says in result.content


def test_clock_answers_in_a_time_zone_and_corrects_a_wrong_one() -> None:
    result = call(clock, timezone="Europe/Berlin")
    assert not result.is_error
    assert json.loads(result.content)["timezone"] == "Europe/Berlin"
    wrong = call(clock, timezone="Beijing")
    assert wrong.error_kind == "retry" and "Asia/Shanghai" in wrong.content


@pytest.fixture
def shop(tmp_path: Path) -> RunContext[Any]:
    """A run context whose state holds a freshly created shop database."""
    context = SimpleNamespace(env=SimpleNamespace(base_dir=tmp_path))
    state = open_shop({"database": "shop.db"}, context)
    return RunContext(deps=SimpleNamespace(state=state))


def test_sql_query_reads(shop: RunContext[Any]) -> None:
    sql = "SELECT warehouse, sum(quantity) AS units FROM stock GROUP BY warehouse ORDER BY 1"
    result = call(sql_query, shop, sql=sql)
    assert json.loads(result.content) == [
        {"warehouse": "Chengdu", "units": 110},
        {"warehouse": "Shanghai", "units": 290},
        {"warehouse": "Shenzhen", "units": 33},
    ]


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM stock",
        "UPDATE products SET price_cny = 0",
        "DROP TABLE products",
        "SELECT 1; DELETE FROM stock",
        "ATTACH DATABASE '/tmp/other.db' AS other",
        "PRAGMA writable_schema = 1",
        "SELECT * FROM no_such_table",
    ],
)
def test_sql_query_cannot_write_and_says_why(shop: RunContext[Any], sql: str) -> None:
    result = call(sql_query, shop, sql=sql)
    assert result.is_error and result.error_kind == "retry"
    assert "SELECT" in result.content or "one SQL statement" in result.content
    count = call(sql_query, shop, sql="SELECT count(*) AS n FROM stock")
    assert json.loads(count.content) == [{"n": 8}]
