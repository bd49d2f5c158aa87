"""recipes/support_triage.yaml: classify, route to a specialised agent, or escalate to a person."""

from __future__ import annotations

import json
from pathlib import Path

from recipe_harness import resume_recipe, run_recipe

from atdak_agents.graph.checkpoint import InMemoryCheckpointer

BILLING = "发票 INV-2024-0311 的运费好像扣了两次，能退吗？"
COMPLAINT = (
    "This is the third chair that arrived broken. If nobody calls me today I'm talking to "
    "my lawyer."
)


async def test_a_shipping_question_goes_to_the_shipping_agent(recipes: Path) -> None:
    outcome = await run_recipe(recipes, "support_triage")
    result = outcome.result
    assert result.status == "done"
    assert [n for n in outcome.nodes_run() if "/" not in n] == ["classify", "shipping_agent"]
    assert result.output["category"] == "shipping"
    assert outcome.tools_called() == ["track_order"]
    (called,) = outcome.of("tool_called")
    assert called.arguments == {"order_id": "10423"}
    assert "SF1420539981" in outcome.texts[-1]  # the tool's answer reached the model ...
    assert "SF1420539981" in result.output["reply"]  # ... and the customer


async def test_a_billing_question_looks_up_the_invoice_and_opens_a_refund(recipes: Path) -> None:
    outcome = await run_recipe(recipes, "support_triage", {"message": BILLING})
    result = outcome.result
    assert result.status == "done"
    assert result.output["category"] == "billing"
    assert [n for n in outcome.nodes_run() if "/" not in n] == ["classify", "billing_agent"]
    assert outcome.tools_called() == ["lookup_invoice", "request_refund"]
    refund = outcome.of("tool_called")[1]
    assert refund.arguments["amount"] == 120
    returned = json.loads(outcome.of("tool_returned")[1].content)
    assert returned["ticket"] == "RF-52A726"
    assert "RF-52A726" in result.output["reply"]
    # the classification came back in a ```json fence and was still read
    assert result.state["summary"].startswith("Customer says shipping was charged twice")


async def test_a_complaint_is_escalated_to_a_person_and_resumed(recipes: Path) -> None:
    store = InMemoryCheckpointer()
    outcome = await run_recipe(
        recipes, "support_triage", {"message": COMPLAINT}, checkpointer=store
    )
    paused = outcome.result
    assert paused.status == "waiting"
    assert len(outcome.requests) == 1  # classified, then no agent: a person answers
    assert "Escalated complaint message (urgency high)" in (paused.question or "")
    assert COMPLAINT in (paused.question or "")
    assert "threatens legal action" in (paused.question or "")
    (interrupted,) = outcome.of("run_interrupted")
    assert interrupted.question == paused.question
    reply = "We are very sorry. A manager will call you within the hour and send a new chair."
    resumed = await resume_recipe(
        recipes, "support_triage", paused.run_id, reply, checkpointer=store
    )
    assert resumed.requests == []  # the person's reply is sent as written
    done = resumed.result
    assert done.status == "done"
    assert done.output == {"category": "complaint", "urgency": "high", "reply": reply}
