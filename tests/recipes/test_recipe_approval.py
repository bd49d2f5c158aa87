"""recipes/approval.yaml: pause for a manager, resume in another process (SQLite checkpoints)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from recipe_harness import cli, resume_recipe, run_cli, run_recipe

from atdak_agents.exceptions import UsageError
from atdak_agents.graph.sqlite_checkpoint import SQLiteCheckpointer
from atdak_agents.testing.fixtures import loads_fixture


def test_it_waits_for_a_manager_then_resumes_in_another_process(recipes: Path) -> None:
    code, paused, stderr = run_cli(recipes, "run", "recipes/approval.yaml")
    assert code == 4, stderr  # waiting for human input
    assert paused["status"] == "waiting" and paused["choices"] == ["approve", "reject"]
    question = paused["question"]
    assert question.startswith("Refund request of ¥578 from 客服 王芳:")
    assert "订单 #10423" in question and "medium risk, recommends to approve" in question
    assert question.rstrip().endswith("Approve or reject?")
    assert paused["usage"]["requests"] == 1  # the assessment; nothing more until someone answers
    run_id = paused["run_id"]
    database = recipes / ".atdak" / "approvals.db"  # the workflow's own checkpointer
    with sqlite3.connect(database) as connection:
        row = connection.execute("SELECT status FROM checkpoint_runs WHERE run_id = ?", (run_id,))
        assert row.fetchone() == ("waiting",)
    connection.close()
    db = "recipes/.atdak/approvals.db"
    assert paused["resume"] == f"atdak-agents resume {run_id} --db {db} --answer approve"

    refused = cli(recipes, "resume", run_id, "--db", db, "--answer", "maybe")
    _, stderr = refused.communicate(timeout=120)
    assert refused.returncode == 1 and "not one of: approve, reject" in stderr

    code, done, stderr = run_cli(recipes, "resume", run_id, "--db", db, "--answer", "approve")
    assert code == 0, stderr
    assert done["status"] == "done" and done["run_id"] == run_id
    assert done["usage"]["requests"] == 1  # the note; the assessment was not asked again
    output = done["output"]
    assert output["decision"] == "approve" and output["decided_by"] == "manager"
    assert output["receipt"]["amount"] == 578 and output["receipt"]["refund_id"].startswith("RF-")
    assert output["message"].startswith("王芳你好：订单 #10423 的退款 ¥578 已由主管批准")


async def test_a_rejection_issues_no_refund(recipes: Path) -> None:
    async with SQLiteCheckpointer(recipes / "runs.db") as store:
        paused = await run_recipe(recipes, "approval", checkpointer=store)
        run_id = paused.result.run_id
        resumed = await resume_recipe(recipes, "approval", run_id, "reject", checkpointer=store)
    result = resumed.result
    assert result.status == "done"
    assert resumed.nodes_run() == ["ask_manager", "record_manager", "notify"]
    assert result.output["decision"] == "reject" and result.output["receipt"] == {}
    assert "未获批准" in result.output["message"]


async def test_an_answer_that_is_not_a_choice_is_refused(recipes: Path) -> None:
    async with SQLiteCheckpointer(recipes / "runs.db") as store:
        paused = await run_recipe(recipes, "approval", checkpointer=store)
        run_id = paused.result.run_id
        with pytest.raises(UsageError, match="not one of: approve, reject"):
            await resume_recipe(recipes, "approval", run_id, "maybe", checkpointer=store)
        record = await store.get_run(run_id)
    assert record is not None and record.status == "waiting"


async def test_a_small_low_risk_request_is_approved_by_policy(recipes: Path) -> None:
    low = loads_fixture(
        """
replies:
  - when: Assess this refund request
    reply: '{"risk": "low", "recommendation": "approve", "reasons": ["routine"]}'
  - {when: The refund was approved by policy, reply: "Approved automatically; refund on its way."}
""",
        name="low.fixture.yaml",
    )
    inputs = {"request": "Mug arrived chipped, photo attached.", "amount": 59}
    outcome = await run_recipe(recipes, "approval", inputs, responder=low)
    result = outcome.result
    assert result.status == "done"
    assert "ask_manager" not in outcome.nodes_run()
    assert result.output["decided_by"] == "policy (small and low risk)"
    assert result.output["receipt"]["amount"] == 59
