"""recipes/reflection.yaml: draft, critique, revise, with a cap on revisions."""

from __future__ import annotations

from pathlib import Path

from recipe_harness import run_recipe

from atdak_agents.testing.fixtures import loads_fixture


async def test_drafts_improve_until_the_critic_approves(recipes: Path) -> None:
    outcome = await run_recipe(recipes, "reflection")
    result = outcome.result
    assert result.status == "done"
    assert not outcome.responder.unused
    assert outcome.nodes_run() == ["draft", "critique", "revise", "critique", "revise", "critique"]
    drafts, critiques = result.state["drafts"], result.state["critiques"]
    assert len(drafts) == len(critiques) == 3
    assert [c["score"] for c in critiques] == [4, 7, 9]
    assert [c["approved"] for c in critiques] == [False, False, True]
    assert result.output == {
        "text": drafts[-1],
        "approved": True,
        "score": 9,
        "revisions": 2,
    }
    # each revision was asked to fix exactly the latest critique's issues, on the latest draft
    revisions = [t for t in outcome.texts if "Revise the text to fix every issue" in t]
    for index, asked in enumerate(revisions):
        assert drafts[index] in asked
        assert all(f"- {issue}" in asked for issue in critiques[index]["issues"])
        assert f"(score {critiques[index]['score']}/10)" in asked
    assert "App 就能定时" in drafts[-1] and "100%" not in drafts[-1]


async def test_a_critic_that_never_approves_stops_after_three_revisions(recipes: Path) -> None:
    never = loads_fixture(
        """
replies:
  - {when: Write the text this brief asks for, reply: "Draft."}
  - when: Critique the draft
    times: 0
    reply: '{"score": 5, "approved": false, "issues": ["Be more specific."]}'
  - {when: Revise the text, times: 0, reply: "A more specific draft."}
""",
        name="never.fixture.yaml",
    )
    outcome = await run_recipe(recipes, "reflection", responder=never)
    result = outcome.result
    assert result.status == "done"
    assert len(result.state["drafts"]) == 4  # the draft and three revisions
    assert len(result.state["critiques"]) == 4
    assert result.output["approved"] is False and result.output["revisions"] == 3
    assert len(outcome.requests) == 8
