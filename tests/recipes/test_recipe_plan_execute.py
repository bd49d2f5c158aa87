"""recipes/plan_execute.yaml: a plan in state, executed step by step within a step budget."""

from __future__ import annotations

import json
from pathlib import Path

from recipe_harness import run_recipe

from atdak_agents.testing.fixtures import loads_fixture


async def test_the_budget_stops_the_fifth_step_and_the_answer_says_so(recipes: Path) -> None:
    outcome = await run_recipe(recipes, "plan_execute")
    result = outcome.result
    assert result.status == "done"
    assert not outcome.responder.unused
    plan = result.state["plan"]
    assert len(plan) == 5
    nodes = [n for n in outcome.nodes_run() if "/" not in n]
    assert nodes == ["planner", *["executor"] * 4, "over_budget", "synthesize"]
    assert result.output["steps_done"] == 4
    assert result.output["skipped"] == [plan[4]]
    for step in range(1, 5):  # each execution was asked for its own step, with the results so far
        asked = [t for t in outcome.texts if f"Now do step {step} of 5: {plan[step - 1]}" in t]
        assert asked, f"step {step} was never asked for"
        assert all(f"{step - 1}. {plan[step - 2]}" in t for t in asked if step > 1)
    assert outcome.tools_called() == ["calculator"] * 4
    assert [e.content for e in outcome.of("tool_returned")] == ["4080", "4560", "2400", "13440"]
    final = outcome.texts[-1]
    assert f"The step budget ran out before these steps: {plan[4]}" in final
    assert "13440" in result.output["answer"]


async def test_a_short_plan_is_finished_without_touching_the_budget(recipes: Path) -> None:
    plan = ["List three venues", "Pick the cheapest"]
    responder = loads_fixture(
        "replies:\n"
        f"  - {{when: Break the goal, reply: '{json.dumps({'plan': plan})}'}}\n"
        "  - {when: Now do step 1 of 2, reply: 'A: 900, B: 700, C: 1100'}\n"
        "  - {when: Now do step 2 of 2, reply: 'B, at 700'}\n"
        "  - {when: Write the final answer, reply: 'Book venue B (700).'}\n",
        name="short.fixture.yaml",
    )
    outcome = await run_recipe(
        recipes, "plan_execute", {"goal": "Book a venue"}, responder=responder
    )
    assert outcome.result.status == "done"
    assert [n for n in outcome.nodes_run() if "/" not in n] == [
        "planner",
        "executor",
        "executor",
        "synthesize",
    ]
    expected = {"answer": "Book venue B (700).", "steps_done": 2, "skipped": []}
    assert outcome.result.output == expected
    assert "step budget" not in outcome.texts[-1]
