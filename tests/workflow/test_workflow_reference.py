"""The format's JSON Schema and reference page come from the models and cannot drift."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from workflow_helpers import EXAMPLES

from atdak_agents.workflow import reference_markdown, workflow_schema
from atdak_agents.workflow._fields import FIELD_DOCS
from atdak_agents.workflow._reference import field_description, format_models

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_FILES = sorted(EXAMPLES.rglob("*.yaml"))


def test_the_committed_reference_page_is_the_generated_one() -> None:
    committed = (ROOT / "docs" / "yaml-reference.md").read_text(encoding="utf-8")
    assert committed == reference_markdown(), (
        "docs/yaml-reference.md is out of date: run "
        "`atdak-agents schema --format markdown > docs/yaml-reference.md`"
    )


def test_every_field_of_the_format_is_described_exactly_once() -> None:
    fields = {
        f"{model.__name__}.{name}": info
        for model in format_models()
        for name, info in model.model_fields.items()
    }
    undescribed = [k for k, info in fields.items() if not (info.description or k in FIELD_DOCS)]
    twice = [k for k, info in fields.items() if info.description and k in FIELD_DOCS]
    stale = sorted(set(FIELD_DOCS) - set(fields))
    assert undescribed == [], "describe these fields in atdak_agents/workflow/_fields.py"
    assert twice == [], "the model describes these now: remove them from _fields.py"
    assert stale == [], "these fields are gone from the models: remove them from _fields.py"


def test_the_reference_lists_every_key_with_type_default_and_meaning() -> None:
    page = reference_markdown()
    sections = {part.split("\n", 1)[0]: part for part in page.split("\n## ")[1:]}
    for model in format_models():
        rows = sections[model.__name__].splitlines()
        for name, info in model.model_fields.items():
            (row,) = [line for line in rows if line.startswith(f"| `{info.alias or name}` |")]
            assert field_description(model, name, info) in row.replace("\\|", "|")
    assert "| `max_steps` | integer | `10` |" in page
    assert "| `nodes` | mapping of name → [NodeSpec](#nodespec) | **required** |" in page
    assert "| `function` | `module:function` import path | **required** |" in page


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=[p.name for p in EXAMPLE_FILES])
def test_the_schema_accepts_every_example_workflow(path: Path) -> None:
    jsonschema.Draft202012Validator(workflow_schema()).validate(load_yaml(path))


def test_the_schema_rejects_mistakes_and_describes_keys() -> None:
    schema = workflow_schema()
    validator = jsonschema.Draft202012Validator(schema)
    validator.check_schema(schema)
    bad = {"name": "x", "nodes": {"a": {"llm": {"promt": "hi"}}}, "edges": ["a -> end", 3]}
    errors = sorted(validator.iter_errors(bad), key=lambda e: list(e.path))
    assert [list(e.path) for e in errors] == [["edges", 1], ["nodes", "a", "llm"]]
    llm = schema["$defs"]["LlmNode"]["properties"]
    assert llm["prompt_file"]["description"] == FIELD_DOCS["LlmNode.prompt_file"]
    assert "tool" in schema["$defs"]["NodeSpec"]["properties"]
