"""The schema and the checks of the ``extract_invoice`` recipe.

:class:`Invoice` is the target: its JSON Schema goes into the prompt, and every answer is
validated twice — by pydantic (types, formats, required fields) and by the arithmetic an
accountant would check (line amounts, subtotal, tax, total, dates). Every problem is listed,
each with where it is, so a repair request can fix them all at once.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from atdak_agents.output import extract_json

TOLERANCE = 0.01  # currency units


class Party(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=2, description="Legal name, as written on the invoice.")
    email: str | None = Field(None, description="Contact e-mail, when given.")


class LineItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = Field(min_length=1, description="What was sold, as written.")
    sku: str | None = Field(None, description="The product code, when given.")
    quantity: float = Field(gt=0)
    unit_price: float = Field(ge=0, description="Price of one unit, before tax.")
    amount: float = Field(ge=0, description="quantity × unit_price.")


class Invoice(BaseModel):
    """An invoice extracted from an e-mail or a document."""

    model_config = ConfigDict(extra="forbid")

    invoice_number: str = Field(min_length=3)
    issue_date: dt.date = Field(description="ISO date, YYYY-MM-DD.")
    due_date: dt.date = Field(description="ISO date, YYYY-MM-DD.")
    seller: Party
    buyer: Party
    currency: Literal["CNY", "USD", "EUR", "HKD", "JPY"] = Field(description="ISO 4217 code.")
    lines: list[LineItem] = Field(min_length=1)
    subtotal: float = Field(ge=0, description="Sum of the line amounts, before tax.")
    tax_rate: float = Field(ge=0, le=1, description="E.g. 0.13 for 13% VAT.")
    tax: float = Field(ge=0)
    total: float = Field(ge=0, description="subtotal + tax.")


def prepare(state: Mapping[str, Any]) -> dict[str, str]:
    """Function node: the JSON Schema the answer must match, for the prompt."""
    schema = Invoice.model_json_schema()
    return {"schema": json.dumps(schema, ensure_ascii=False, separators=(",", ":"))}


def validate(state: Mapping[str, Any]) -> dict[str, Any]:
    """Function node: the invoice when the answer is valid, else every problem found."""
    data, problem = extract_json(state["raw"])
    if problem is not None or not isinstance(data, dict):
        return _verdict(None, [f"the answer must be one JSON object ({problem or 'got a list'})"])
    problems = structural_problems(data) + arithmetic_problems(data)
    if problems:
        return _verdict(None, problems)
    return _verdict(Invoice.model_validate(data).model_dump(mode="json"), [])


def _verdict(invoice: dict[str, Any] | None, problems: list[str]) -> dict[str, Any]:
    return {"invoice": invoice, "problems": problems, "attempts": {"problems": problems}}


def structural_problems(data: Mapping[str, Any]) -> list[str]:
    """What pydantic refuses, one line per problem, with where it is."""
    try:
        Invoice.model_validate(data)
    except ValidationError as exc:
        return [_located(error) for error in exc.errors(include_url=False)]
    return []


def _located(error: Any) -> str:
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
    value = f" (got {error['input']!r})" if error["type"] != "missing" else ""
    return f"{where.lstrip('.') or 'the answer'}: {error['msg']}{value}"


def arithmetic_problems(data: Mapping[str, Any]) -> list[str]:
    """The sums an accountant checks, wherever the numbers are there to check."""
    raw_lines = data.get("lines")
    lines = (
        [line for line in raw_lines if isinstance(line, Mapping)]
        if isinstance(raw_lines, list)
        else []
    )
    problems = [p for i, line in enumerate(lines) if (p := _line_problem(i, line))]
    amounts = [_number(line, "amount") for line in lines]
    subtotal, rate, tax, total = (
        _number(data, k) for k in ("subtotal", "tax_rate", "tax", "total")
    )
    if subtotal is not None and amounts and None not in amounts:
        found = sum(a for a in amounts if a is not None)
        if _off(found, subtotal):
            problems.append(
                f"subtotal: {subtotal:g} is not the sum of the line amounts ({found:g})"
            )
    if subtotal is not None and rate is not None and tax is not None and _off(subtotal * rate, tax):
        problems.append(f"tax: {tax:g} is not subtotal × tax_rate ({subtotal * rate:g})")
    if (
        subtotal is not None
        and tax is not None
        and total is not None
        and _off(subtotal + tax, total)
    ):
        problems.append(f"total: {total:g} is not subtotal + tax ({subtotal + tax:g})")
    return problems + _date_problems(data)


def _line_problem(index: int, line: Mapping[str, Any]) -> str | None:
    quantity, price, amount = (_number(line, k) for k in ("quantity", "unit_price", "amount"))
    if quantity is None or price is None or amount is None or not _off(quantity * price, amount):
        return None
    return (
        f"lines[{index}].amount: {amount:g} is not quantity × unit_price = "
        f"{quantity:g} × {price:g} = {quantity * price:g}"
    )


def _date_problems(data: Mapping[str, Any]) -> list[str]:
    try:
        issued = dt.date.fromisoformat(str(data.get("issue_date")))
        due = dt.date.fromisoformat(str(data.get("due_date")))
    except ValueError:
        return []  # a format problem, reported by the structural check
    return [] if due >= issued else [f"due_date: {due} is before issue_date {issued}"]


def _number(holder: Any, key: str) -> float | None:
    value = holder.get(key) if isinstance(holder, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _off(expected: float, actual: float) -> bool:
    return abs(expected - actual) > TOLERANCE
