"""Validation finds every problem at once, each located, before anything runs."""

from __future__ import annotations

from typing import Any

import pytest

from atdak_agents.exceptions import GraphValidationError, Problem, UsageError
from atdak_agents.graph.build import build_graph
from atdak_agents.graph.builder import GraphBuilder
from atdak_agents.graph.spec import GraphSpec


def problems_of(spec: dict[str, Any]) -> list[Problem]:
    with pytest.raises(GraphValidationError) as caught:
        build_graph(GraphSpec.model_validate(spec))
    return caught.value.problems


def located(problems: list[Problem]) -> dict[str, str]:
    return {p.location: f"{p.message} ({p.hint})" for p in problems}


def test_all_problems_are_reported_at_once() -> None:
    problems = problems_of(
        {
            "name": "broken",
            "inputs": {"question": {}},
            "state": {"category": {}, "answer": {}},
            "nodes": {
                "classify": {"function": {"function": "json:dumps", "writes": ["categroy"]}},
                "route": {"router": [{"when": "state.category == 'x'", "to": "answr"}]},
                "answer": {"human": {"ask": "{{ inputs.questoin }}", "writes": "answer"}},
                "orphan": {"function": {"function": "json:dumps"}},
            },
            "edges": ["classify -> route", "answer -> end"],
        }
    )
    where = located(problems)
    assert "categroy" in where["nodes.classify.function"]
    assert "did you mean 'category'" in where["nodes.classify.function"]
    assert "unknown node 'answr'" in where["nodes.route.router[0]"]
    assert "did you mean 'answer'" in where["nodes.route.router[0]"]
    assert "no `otherwise` route" in where["nodes.route.router"]
    assert "questoin" in where["nodes.answer.human.ask"]
    assert "did you mean 'inputs.question'" in where["nodes.answer.human.ask"]
    message = str(GraphValidationError(problems))
    assert message.startswith(f"graph has {len(problems)} problems:")


def test_unreachable_and_dead_end_nodes() -> None:
    where = located(
        problems_of(
            {
                "name": "g",
                "nodes": {
                    "a": {"function": {"function": "json:dumps"}},
                    "b": {"function": {"function": "json:dumps"}},
                    "island": {"function": {"function": "json:dumps"}, "next": "end"},
                },
                "edges": ["a -> b"],
            }
        )
    )
    assert "unreachable from the entry node 'a'" in where["nodes.island"]
    assert "dead end" in where["nodes.b"]
    assert "b -> end" in where["nodes.b"]


def test_cycle_without_exit_or_cap() -> None:
    problems = problems_of(
        {
            "name": "loop",
            "nodes": {
                "a": {"function": {"function": "json:dumps"}},
                "b": {"function": {"function": "json:dumps"}},
                "r": {"router": [{"otherwise": "a"}]},
            },
            "edges": ["a -> b -> r", "a -> end"],
        }
    )
    (cycle,) = [p for p in problems if "cycle" in p.message]
    assert "a → b → r" in cycle.message
    assert "max_iterations" in (cycle.hint or "")


def test_cycle_with_a_cap_or_an_exit_is_fine() -> None:
    g = GraphBuilder("ok")
    g.state("n", int, default=0)
    g.function("a", lambda state: {"n": state["n"] + 1}, writes=["n"])
    g.router("again", [], otherwise="a", max_iterations=3)
    g.chain("a", "again")
    assert g.build().run_sync().state["n"] == 4


def test_parallel_writes_need_a_reducer() -> None:
    spec = {
        "name": "par",
        "state": {"out": {}, "log": {"reducer": "append"}},
        "nodes": {
            "split": {"function": {"function": "json:dumps"}},
            "left": {"function": {"function": "json:dumps", "writes": ["out", "log"]}},
            "right": {"function": {"function": "json:dumps", "writes": ["out", "log"]}},
        },
        "edges": ["split -> left & right", "left & right -> end"],
    }
    where = located(problems_of(spec))
    assert list(where) == ["state.out"]
    assert "parallel nodes 'left' and 'right' both write 'out'" in where["state.out"]


def test_templates_state_keys_and_tools_are_checked() -> None:
    spec = {
        "name": "t",
        "inputs": {"question": {}},
        "state": {"answer": {}, "notes": {}},
        "nodes": {
            "ask": {
                "agent": {
                    "instructions": "Use {{ state.notes }} to answer {{ question }}",
                    "tools": ["lookup_ordr"],
                    "writes": "answer",
                },
                "next": "end",
            }
        },
    }
    problems = [str(p) for p in problems_of(spec)]
    assert "nodes.ask.agent.instructions: undefined variable 'question'" in problems[0]
    assert "reads state key 'notes', which no node writes" in problems[1]
    assert "tool 'lookup_ordr' is not registered" in problems[2]


def test_bad_function_import_path() -> None:
    where = located(
        problems_of(
            {
                "name": "imp",
                "nodes": {"f": {"function": {"function": "no_such_module_xyz:run"}, "next": "end"}},
            }
        )
    )
    assert "cannot import module 'no_such_module_xyz'" in where["nodes.f.function.function"]


def test_duplicate_node_names_in_the_builder() -> None:
    g = GraphBuilder("dup")
    g.function("a", lambda: None)
    with pytest.raises(UsageError, match="already has a node named 'a'"):
        g.function("a", lambda: None)


def test_undefined_template_variable_reports_its_line() -> None:
    problems = problems_of(
        {
            "name": "lines",
            "inputs": {"question": {}},
            "state": {"answer": {}},
            "nodes": {
                "ask": {
                    "human": {
                        "ask": "Hello\nPlease answer:\n{{ inputs.questoin }}",
                        "writes": "answer",
                    },
                    "next": "end",
                }
            },
        }
    )
    (problem,) = problems
    assert problem.line == 3
    assert "(line 3)" in str(problem)


def test_edge_strings_parse_chains_fan_out_and_joins() -> None:
    spec = GraphSpec.model_validate(
        {"name": "e", "nodes": {}, "edges": ["a -> b & c", "b & c -> d -> end"]}
    )
    pairs = [(tuple(e.source), e.target) for e in spec.edges]
    assert pairs == [(("a",), "b"), (("a",), "c"), (("b", "c"), "d"), (("d",), "end")]


def test_unknown_reducer_names_are_problems() -> None:
    g = GraphBuilder("reducers")
    g.state("log", list, reducer="apend")
    g.function("a", lambda: {"log": 1}, writes=["log"])
    g.chain("a", "end")
    with pytest.raises(GraphValidationError, match="unknown reducer 'apend'") as caught:
        g.build()
    assert caught.value.problems[0].hint == "did you mean 'append'?"


def test_a_subgraph_may_declare_its_own_tools() -> None:
    child = GraphBuilder("child", model="atdak-gpt-4-mini")
    child.state("answer", str)
    child.agent("helper", "Help.", tools=[_tool_for_child], writes="answer")
    child.chain("helper", "end")
    parent = GraphBuilder("parent")
    parent.state("answer", str)
    parent.subgraph("sub", child, outputs={"answer": "answer"})
    parent.chain("sub", "end")
    assert parent.build().name == "parent"


def _tool_for_child(x: int) -> int:
    """A tool only the subgraph knows."""
    return x


def test_map_llm_body_needs_writes() -> None:
    from atdak_agents.graph.spec import LlmNode, NodeSpec

    g = GraphBuilder("m", model="atdak-gpt-4-mini")
    g.state("xs", list, default=["a"])
    g.state("out", list)
    g.map("each", "state.xs", NodeSpec(llm=LlmNode(prompt="{{ item }}")), writes="out")
    g.chain("each", "end")
    with pytest.raises(GraphValidationError, match="writes its answer nowhere"):
        g.build()


def test_a_router_whose_name_starts_with_next_keeps_its_routes() -> None:
    # regression: routes of a node named `next_...` were taken for `next:` edges and dropped,
    # so the router looked like a dead end and its targets unreachable
    spec = GraphSpec.model_validate(
        {
            "name": "loop",
            "state": {"n": {"type": "integer", "default": 0}},
            "nodes": {
                "work": {"function": {"function": "json:dumps"}},
                "next_step": {
                    "router": [
                        {"when": "state.n < 3", "to": "work", "max_iterations": 3},
                        {"otherwise": "finish"},
                    ]
                },
                "finish": {"function": {"function": "json:dumps"}, "next": "end"},
            },
            "edges": ["work -> next_step"],
        }
    )
    assert build_graph(spec).name == "loop"
