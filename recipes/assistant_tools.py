"""Tools of the ``assistant`` recipe (and the calculator of ``plan_execute``).

- :func:`calculator`: arithmetic by walking the expression's syntax tree — never ``eval`` — with
  limits on size, so a model cannot run code or ask for a number with a billion digits.
- :func:`clock`: the current date and time in a time zone.
- :func:`sql_query`: one read-only ``SELECT`` on a small shop database that the recipe creates
  itself (:func:`open_shop`, a function node), opened read-only and guarded by an authoriser.

A tool that is used wrongly raises :class:`~atdak_agents.exceptions.ModelRetry` with a message
the model can act on; the agent sends it back as the tool's result.
"""

from __future__ import annotations

import ast
import datetime as dt
import math
import operator
import sqlite3
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from atdak_agents.exceptions import ModelRetry
from atdak_agents.tools import RunContext, tool

# --------------------------------------------------------------------------- calculator

MAX_EXPRESSION = 300  # characters
MAX_EXPONENT = 512
MAX_MAGNITUDE = 1e100

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "sqrt": math.sqrt,
    "floor": math.floor,
    "ceil": math.ceil,
    "log": math.log,
    "log10": math.log10,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}


@tool(timeout=2)
def calculator(expression: str) -> int | float:
    """Evaluate an arithmetic expression exactly as written.

    Supports + - * / // % ** and parentheses, numbers like 1_000 or 2.5e3, the constants pi and
    e, and abs, round, min, max, sqrt, floor, ceil, log, log10.

    Args:
        expression: The expression, e.g. "37 * 289" or "round(1200 * 1.13 ** 2, 2)".
    """
    if len(expression) > MAX_EXPRESSION:
        raise ModelRetry(f"the expression is longer than {MAX_EXPRESSION} characters; split it")
    try:
        tree = ast.parse(expression.replace("×", "*").replace("÷", "/"), mode="eval")
    except SyntaxError:
        raise ModelRetry(f"{expression!r} is not an arithmetic expression") from None
    try:
        value: int | float = _evaluate(tree.body)
    except (ZeroDivisionError, OverflowError, ValueError, TypeError) as exc:
        raise ModelRetry(f"cannot evaluate {expression!r}: {exc}") from None
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _evaluate(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _binary(node)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        function = _FUNCTIONS.get(node.func.id)
        if function is not None:
            return _checked(function(*(_evaluate(a) for a in node.args)))
    raise ValueError(f"{ast.unparse(node)!r} is not allowed (only numbers, operators and math)")


def _binary(node: ast.BinOp) -> Any:
    left, right = _evaluate(node.left), _evaluate(node.right)
    if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
        raise ValueError(f"exponents are limited to {MAX_EXPONENT}")
    return _checked(_BINARY[type(node.op)](left, right))


def _checked(value: Any) -> Any:
    if isinstance(value, complex):
        raise ValueError("the result is not a real number")
    if abs(value) > MAX_MAGNITUDE:
        raise ValueError(f"the result is larger than {MAX_MAGNITUDE:g}")
    return value


# --------------------------------------------------------------------------- clock


@tool(timeout=2)
def clock(timezone: str = "Asia/Shanghai") -> dict[str, str]:
    """The current date and time.

    Args:
        timezone: An IANA time zone such as "Asia/Shanghai", "Europe/Berlin" or "UTC".
    """
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ModelRetry(
            f"unknown time zone {timezone!r}; use an IANA name such as 'Asia/Shanghai', "
            "'America/New_York' or 'UTC'"
        ) from None
    now = dt.datetime.now(zone)
    return {
        "timezone": timezone,
        "datetime": now.isoformat(timespec="seconds"),
        "weekday": now.strftime("%A"),
    }


# --------------------------------------------------------------------------- the shop database

SCHEMA = """
CREATE TABLE IF NOT EXISTS products (
    sku TEXT PRIMARY KEY, name TEXT NOT NULL, name_zh TEXT NOT NULL,
    category TEXT NOT NULL, price_cny REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS stock (
    sku TEXT NOT NULL REFERENCES products(sku), warehouse TEXT NOT NULL,
    quantity INTEGER NOT NULL, PRIMARY KEY (sku, warehouse)
);
"""
PRODUCTS = [
    ("LAMP-HB-01", "Harbor desk lamp", "Harbor 台灯", "lighting", 289.0),
    ("LAMP-MR-02", "Meridian floor lamp", "Meridian 落地灯", "lighting", 649.0),
    ("DESK-OK-10", "Oak standing desk", "橡木升降桌", "furniture", 2399.0),
    ("CHAIR-ER-3", "Ergo mesh chair", "人体工学网椅", "furniture", 1299.0),
    ("MUG-CL-07", "Celadon mug", "青瓷马克杯", "kitchen", 59.0),
]
STOCK = [
    ("LAMP-HB-01", "Shanghai", 37),
    ("LAMP-HB-01", "Shenzhen", 12),
    ("LAMP-MR-02", "Shanghai", 8),
    ("DESK-OK-10", "Shanghai", 5),
    ("DESK-OK-10", "Chengdu", 14),
    ("CHAIR-ER-3", "Shenzhen", 21),
    ("MUG-CL-07", "Shanghai", 240),
    ("MUG-CL-07", "Chengdu", 96),
]
MAX_ROWS = 50


def open_shop(inputs: Mapping[str, Any], context: Any) -> dict[str, str]:
    """Function node: create the shop database with its sample data if it is missing (the
    path is relative to the workflow's folder) and put its path into the state."""
    base = context.env.base_dir or Path.cwd()
    path = Path(base) / inputs["database"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as connection:
        connection.executescript(SCHEMA)
        connection.executemany("INSERT OR REPLACE INTO products VALUES (?, ?, ?, ?, ?)", PRODUCTS)
        connection.executemany("INSERT OR REPLACE INTO stock VALUES (?, ?, ?)", STOCK)
    connection.close()
    return {"database": str(path)}


@tool(timeout=5)
def sql_query(ctx: RunContext[Any], sql: str) -> list[dict[str, Any]]:
    """Run one read-only SQL SELECT on the shop database (SQLite) and return the rows.

    Tables:
    - products(sku TEXT, name TEXT, name_zh TEXT, category TEXT, price_cny REAL)
    - stock(sku TEXT, warehouse TEXT, quantity INTEGER); warehouses: Shanghai, Shenzhen, Chengdu

    Args:
        sql: A single SELECT statement, e.g. "SELECT name, price_cny FROM products".
    """
    path = ctx.deps.state["database"]
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    connection.set_authorizer(_read_only)
    connection.row_factory = sqlite3.Row
    try:
        rows = connection.execute(sql).fetchmany(MAX_ROWS + 1)
    except sqlite3.Warning:
        raise ModelRetry("send exactly one SQL statement") from None
    except sqlite3.DatabaseError as exc:
        raise ModelRetry(
            f"the query failed: {exc}; only SELECT on the tables above works"
        ) from None
    finally:
        connection.close()
    if len(rows) > MAX_ROWS:
        raise ModelRetry(f"more than {MAX_ROWS} rows; narrow the query or aggregate")
    return [dict(row) for row in rows]


_ALLOWED = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION}


def _read_only(action: int, *_: Any) -> int:
    return sqlite3.SQLITE_OK if action in _ALLOWED else sqlite3.SQLITE_DENY
