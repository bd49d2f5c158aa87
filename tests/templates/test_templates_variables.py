"""What a template needs, found without rendering it, and checked against what will be given."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from atdak_agents.exceptions import Problem
from atdak_agents.templates import PromptTemplate, TemplateProblem, TemplateVariable


def uses(source: str, name: str = "t") -> list[tuple[str, int, bool]]:
    return [(v.path, v.line, v.optional) for v in PromptTemplate(source, name=name).variables()]


def test_variables_with_paths_and_lines() -> None:
    source = (
        "Q: {{ inputs.question }}\n"
        "{% for d in state.drafts %}{{ d.text }}{% endfor %}\n"
        "Last: {{ state.drafts[-1] }} {{ state['the key'] }} {{ rows[0].name }}"
    )
    assert uses(source) == [
        ("inputs.question", 1, False),
        ("state.drafts", 2, False),
        ("state.drafts[-1]", 3, False),
        ("state['the key']", 3, False),
        ("rows[0].name", 3, False),
    ]


def test_variable_record_fields() -> None:
    (variable,) = PromptTemplate("\n{{ inputs.question }}", name="n").variables()
    assert variable == TemplateVariable(
        path="inputs.question", segments=("inputs", "question"), template="n", line=2
    )
    assert variable.name == "inputs"


def test_names_the_template_binds_are_not_needs() -> None:
    source = """\
{% set greeting = "hi " ~ user %}
{% for item in items if item.ok %}{{ loop.index }} {{ item.name }}{% endfor %}
{% macro show(x, sep=joiner_text) %}{{ x }}{{ sep }}{{ caller() }}{% endmacro %}
{% call show(greeting) %}body{% endcall %}
{% with total = items | length %}{{ total }}{% endwith %}
{% set ns = namespace(n=0) %}{{ ns.n }}{{ range(3) | list }}
{{ greeting }}
"""
    assert {path for path, _, _ in uses(source)} == {"user", "items", "joiner_text"}


def test_dynamic_subscripts_and_method_calls() -> None:
    source = "{{ table[key].value }} {{ text.upper() }} {{ inputs.items() | list }}"
    assert [p for p, _, _ in uses(source)] == ["table", "key", "text", "inputs"]


def test_optional_uses() -> None:
    source = """\
{{ tone | default("neutral") }}
{% if extra is defined %}{{ extra.note }}{% endif %}
{{ hint.text if hint is defined else "" }}
{{ more is defined and more.x }}
{{ needed }}
"""
    assert uses(source) == [
        ("tone", 1, True),
        ("extra", 2, True),
        ("extra.note", 2, True),
        ("hint", 3, True),
        ("hint.text", 3, True),
        ("more", 4, True),
        ("more.x", 4, True),
        ("needed", 5, False),
    ]


def test_variables_are_found_through_includes_with_the_included_file_and_line(
    tmp_path: Path,
) -> None:
    (tmp_path / "main.j2").write_text(
        '{% for ex in examples %}{% include "example.j2" %}{% endfor %}\n'
        '{% include "footer.j2" %}\n'
        '{% include "optional.j2" ignore missing %}\n',
        encoding="utf-8",
    )
    (tmp_path / "example.j2").write_text(
        "{% user %}{{ ex.q }}{% enduser %}\n"
        "{% assistant %}{{ ex.a }} {{ style }}{% endassistant %}",
        encoding="utf-8",
    )
    (tmp_path / "footer.j2").write_text("\n\n{{ signature }}", encoding="utf-8")
    found = PromptTemplate.from_file(tmp_path / "main.j2").variables()
    assert [(Path(v.template).name, v.line, v.path) for v in found] == [
        ("main.j2", 1, "examples"),
        ("example.j2", 2, "style"),  # ``ex`` is the loop variable of the including template
        ("footer.j2", 3, "signature"),
    ]


def test_recursive_includes_terminate(tmp_path: Path) -> None:
    (tmp_path / "a.j2").write_text('{{ x }}{% if deeper %}{% include "a.j2" %}{% endif %}')
    assert [v.path for v in PromptTemplate.from_file(tmp_path / "a.j2").variables()] == [
        "x",
        "deeper",
    ]


def test_extends_collects_the_parent_variables(tmp_path: Path) -> None:
    (tmp_path / "base.j2").write_text("{{ header }}\n{% block body %}{% endblock %}")
    (tmp_path / "child.j2").write_text(
        '{% extends "base.j2" %}{% block body %}{{ content }}{% endblock %}'
    )
    template = PromptTemplate.from_file(tmp_path / "child.j2")
    assert {v.path for v in template.variables()} == {"header", "content"}
    assert template.render(header="H", content="C") == "H\nC"


# ---------------------------------------------------------------------- check


def test_check_reports_undefined_names_with_line_and_suggestion() -> None:
    template = PromptTemplate("Classify:\n{{ questoin }}\n{{ history | default([]) }}", name="c")
    (problem,) = template.check(["question", "category"])
    assert problem == TemplateProblem(
        template="c",
        line=2,
        message="undefined variable 'questoin'",
        variable="questoin",
        suggestion="question",
        known=("category", "question"),
    )
    assert str(problem) == "c:2: undefined variable 'questoin' (did you mean 'question'?)"


def test_check_as_a_workflow_problem_at_a_yaml_location() -> None:
    template = PromptTemplate("{{ questoin }}", name="nodes.classify.prompt")
    (problem,) = template.check({"question": None})
    located = problem.to_problem("flow.yaml:12:7 nodes.classify.prompt")
    assert located == Problem(
        "flow.yaml:12:7 nodes.classify.prompt",
        "undefined variable 'questoin'",
        "did you mean 'question'?",
    )
    assert str(located) == (
        "flow.yaml:12:7 nodes.classify.prompt: undefined variable 'questoin' "
        "(did you mean 'question'?)"
    )


def test_check_uses_known_sub_keys() -> None:
    template = PromptTemplate(
        "{{ inputs.questoin }}\n{{ state.drafts[-1] }}\n{{ state.meta.anything }}\n"
        "{{ inputs.question.strip() }}\n{{ state.catgory }}",
        name="n",
    )
    problems = template.check(
        {
            "inputs": ["question", "customer_id"],
            "state": {"drafts": None, "category": None, "meta": None},
        }
    )
    assert [(p.line, p.variable, p.suggestion) for p in problems] == [
        (1, "inputs.questoin", "inputs.question"),
        (5, "state.catgory", "state.category"),
    ]


def test_check_with_pydantic_models_as_the_known_shape() -> None:
    class Customer(BaseModel):
        name: str

    class Inputs(BaseModel):
        question: str
        customer: Customer

    template = PromptTemplate("{{ inputs.customer.nmae }} {{ inputs.question }}")
    (problem,) = template.check({"inputs": Inputs})
    assert (problem.variable, problem.suggestion) == (
        "inputs.customer.nmae",
        "inputs.customer.name",
    )
    assert problem.hint == "did you mean 'inputs.customer.name'?"


def test_check_hint_lists_what_is_available_when_nothing_is_close() -> None:
    (problem,) = PromptTemplate("{{ zebra }}").check(["question", "history"])
    assert problem.hint == "available: history, question"


def test_check_reports_each_place_once_and_skips_optional_uses() -> None:
    template = PromptTemplate("{{ a }}{{ a }}\n{{ a }}{{ b | default(1) }}")
    assert [(p.line, p.variable) for p in template.check([])] == [(1, "a"), (2, "a")]


def test_check_reports_missing_and_broken_includes(tmp_path: Path) -> None:
    (tmp_path / "broken.j2").write_text("{% if %}", encoding="utf-8")
    (tmp_path / "main.j2").write_text(
        'x\n{% include "nope.j2" %}\n{% include "broken.j2" %}\n{{ y }}', encoding="utf-8"
    )
    problems = PromptTemplate.from_file(tmp_path / "main.j2").check(["x"])
    assert [(p.line, p.message.split(":")[0], p.variable) for p in problems] == [
        (2, f"included template 'nope.j2' not found in the search path {tmp_path}", None),
        (3, "included template 'broken.j2' has a syntax error", None),
        (4, "undefined variable 'y'", "y"),
    ]


@pytest.mark.parametrize("available", [["question"], {"question": None}, ("question",)])
def test_check_passes_when_everything_is_provided(available: object) -> None:
    template = PromptTemplate("{% user %}{{ question }}{% enduser %}")
    assert template.check(available) == []  # type: ignore[arg-type]
