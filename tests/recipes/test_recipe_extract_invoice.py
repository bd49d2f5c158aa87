"""recipes/extract_invoice.yaml: JSON extraction validated by a schema and by arithmetic, with
repair when the answer is wrong."""

from __future__ import annotations

import json
from pathlib import Path

from recipe_harness import recipe_function, run_recipe

from atdak_agents.testing.fixtures import loads_fixture

validate = recipe_function("extract_steps:validate")
Invoice = recipe_function("extract_steps:Invoice")


async def test_an_invalid_first_answer_is_repaired(recipes: Path) -> None:
    outcome = await run_recipe(recipes, "extract_invoice")
    result = outcome.result
    assert result.status == "done"
    assert not outcome.responder.unused
    assert outcome.nodes_run() == ["prepare", "extract", "validate", "repair", "validate"]
    first, second = (a["problems"] for a in result.state["attempts"])
    where = [problem.split(":")[0] for problem in first]
    assert where == ["issue_date", "currency", "lines[1].amount", "subtotal"]
    assert "(got '2024年5月18日')" in first[0] and "(got 'RMB')" in first[1]
    assert "20 × 780 = 15600" in first[2]
    assert second == []
    # the schema went into the prompt; the repair request lists every problem and the answer
    schema = json.loads(result.state["schema"])
    assert schema["properties"]["currency"]["enum"] == ["CNY", "USD", "EUR", "HKD", "JPY"]
    assert f"Schema: {result.state['schema']}" in outcome.texts[0]
    repair = outcome.texts[1]
    assert all(f"- {problem}" in repair for problem in first)
    assert '"issue_date": "2024年5月18日"' in repair
    invoice = result.output["invoice"]
    assert result.output["valid"] is True and result.output["attempts"] == 2
    assert Invoice.model_validate(invoice).total == 36951
    assert invoice["issue_date"] == "2024-05-18" and invoice["currency"] == "CNY"
    assert [line["amount"] for line in invoice["lines"]] == [16500, 15600, 600]


async def test_answers_that_stay_wrong_end_the_run_marked_invalid(recipes: Path) -> None:
    wrong = loads_fixture(
        """
replies:
  - {when: Extract the invoice, reply: "发票号 MY-2024-0518，金额 36951 元。"}
  - when: Your JSON answer has these problems
    times: 0
    reply: '{"invoice_number": "MY-2024-0518"}'
""",
        name="wrong.fixture.yaml",
    )
    outcome = await run_recipe(recipes, "extract_invoice", responder=wrong)
    result = outcome.result
    assert result.status == "done"
    assert result.output["valid"] is False and result.output["attempts"] == 3
    assert result.output["invoice"] is None
    first, *rest = (a["problems"] for a in result.state["attempts"])
    assert first == ["the answer must be one JSON object (it contains no JSON object)"]
    assert "issue_date: Field required" in rest[-1]


def test_the_arithmetic_is_checked_even_when_the_types_are_right() -> None:
    invoice = {
        "invoice_number": "A-1",
        "issue_date": "2024-05-18",
        "due_date": "2024-05-01",
        "seller": {"name": "Seller Ltd"},
        "buyer": {"name": "Buyer Ltd"},
        "currency": "EUR",
        "lines": [{"description": "Desk", "quantity": 2, "unit_price": 100, "amount": 200}],
        "subtotal": 200,
        "tax_rate": 0.2,
        "tax": 30,
        "total": 230,
    }
    verdict = validate({"raw": json.dumps(invoice)})
    assert verdict["invoice"] is None
    assert verdict["problems"] == [
        "tax: 30 is not subtotal × tax_rate (40)",
        "due_date: 2024-05-01 is before issue_date 2024-05-18",
    ]
