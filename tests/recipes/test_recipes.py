"""Every recipe loads, validates, has a fixture and a README section, and runs from the command
line, offline, with no inputs given."""

from __future__ import annotations

from pathlib import Path

import pytest
from recipe_harness import RECIPE_FILES, RECIPES, cli, finish

from atdak_agents.testing.fixtures import load_fixture
from atdak_agents.workflow import load_workflow

NAMES = [p.stem for p in RECIPE_FILES]

# How a run with the example inputs ends: the approval recipe pauses for a manager.
ENDS = {"approval": "waiting"}
EXPECTED = {
    "approval",
    "assistant",
    "extract_invoice",
    "map_reduce_summary",
    "memory_chat",
    "plan_execute",
    "reflection",
    "support_triage",
    "translate_glossary",
}


def test_the_recipe_library_is_complete() -> None:
    assert set(NAMES) >= EXPECTED
    readme = (RECIPES / "README.md").read_text(encoding="utf-8")
    for name in NAMES:
        assert f"recipes/{name}.yaml" in readme, f"recipes/README.md has no section for {name}"


@pytest.mark.parametrize("name", NAMES)
def test_recipe_loads_and_validates(name: str) -> None:
    workflow = load_workflow(RECIPES / f"{name}.yaml")
    assert workflow.name == name
    assert workflow.spec.description, "say what the recipe does"
    assert workflow.spec.limits.steps, "every recipe sets a step limit"
    missing = [
        key
        for key, spec in workflow.spec.inputs.items()
        if spec.required and spec.default is None and key not in workflow.example_inputs
    ]
    assert not missing, f"inputs without an example or default: {missing}"
    workflow.graph.check_inputs(workflow.example_inputs)  # the examples have the declared types


@pytest.mark.parametrize("name", NAMES)
def test_recipe_has_a_fixture(name: str) -> None:
    fixture = load_fixture(RECIPES / f"{name}.fixture.yaml")
    assert fixture.entries
    assert all(entry.when for entry in fixture.entries), "every reply says which request it answers"


def test_every_recipe_runs_from_the_command_line_with_no_arguments(recipes: Path) -> None:
    """`atdak-agents run recipes/NAME.yaml` with no key and no inputs: offline, from the
    fixture, with the examples (the processes run side by side)."""
    started = {name: cli(recipes, "run", f"recipes/{name}.yaml", "--json") for name in NAMES}
    for name, process in started.items():
        code, result, stderr = finish(process)
        status = ENDS.get(name, "done")
        assert result["status"] == status, f"{name}: {result['error']}\n{stderr}"
        assert code == (4 if status == "waiting" else 0), stderr
        assert f"answers from recipes/{name}.fixture.yaml" in stderr  # the offline notice
        assert result["usage"]["requests"] >= 1
