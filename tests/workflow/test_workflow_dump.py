"""Round trips: a graph built in Python dumps to YAML that loads back to an equal GraphSpec."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import workflow_helpers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from workflow_helpers import EXAMPLES, SUPPORT_ENV, Steps, double, increment, longest, lookup

from atdak_agents.exceptions import DefinitionError
from atdak_agents.graph.build import fingerprint
from atdak_agents.graph.builder import GraphBuilder
from atdak_agents.graph.spec import (
    FunctionNode,
    GraphSpec,
    NodeSpec,
)
from atdak_agents.workflow import dump_workflow, load_workflow, loads_spec, loads_workflow

HERE = Path(workflow_helpers.__file__).parent


def as_import_paths(value: Any) -> Any:
    """A spec's data with every Python callable replaced by its ``module:qualname``."""
    if isinstance(value, dict):
        return {k: as_import_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_import_paths(v) for v in value]
    if callable(value):
        target = getattr(value, "function", value)
        return f"{target.__module__}:{target.__qualname__}"
    return value


def expected_spec(builder: GraphBuilder, tools: dict[str, str] | None = None) -> GraphSpec:
    data = as_import_paths(builder.spec().model_dump(by_alias=True))
    data["tools"] = {**data["tools"], **(tools or {})}
    return GraphSpec.model_validate(data)


def shop_builder() -> GraphBuilder:
    g = GraphBuilder("shop", model="atdak-gpt-4-mini", description="A shop assistant.")
    g.input("question", str, example="Where is order 7?")
    g.input("limit", int, default=3, description="how far to count")
    g.state("category", str)
    g.state("n", int, default=0)
    g.state("log", list, reducer="append")
    g.state("best", str, reducer=longest)
    g.state("sizes", list)
    g.state("answer", str)
    g.state("approved", bool, default=False)
    g.output("answer", "state.answer")
    g.limits(steps=50, tokens=20_000)
    g.llm(
        "classify",
        "Classify this message.\nMessage: {{ inputs.question }}\n",
        system="You sort messages: ${not_a_reference}",
        output={"category": {"enum": ["shipping", "other"]}},
        retry=2,
        timeout=30,
    )
    g.router("route", [("state.category == 'shipping'", "agent")], otherwise="count")
    g.agent("agent", "Help with {{ inputs.question }}", tools=[lookup], writes="answer")
    g.function("count", increment, writes=["n", "log"])
    g.function("twice", double, writes=["n", "log"])
    g.function("best_of", "json:dumps", writes=["best"], threaded=True)
    g.map(
        "sizes",
        "['a b', 'c']",
        NodeSpec(function=FunctionNode(function=Steps.word_count, writes=["size"])),
        writes="sizes",
        item="text",
        concurrency=2,
    )
    g.human("ask", "Send {{ state.answer }}?", writes="approved", choices=["yes", "no"])
    g.end("stop", status="failed")
    g.chain("classify", "route")
    g.edge("agent", "ask")
    g.edge("count", "twice")
    g.edge("count", "best_of")
    g.edge(["twice", "best_of"], "sizes")
    g.chain("sizes", "ask", "stop")
    return g


def test_a_python_graph_dumps_to_yaml_that_loads_back_equal() -> None:
    builder = shop_builder()
    graph = builder.build()
    text = dump_workflow(graph)
    assert "function: workflow_helpers:increment" in text
    assert "best: {type: string, reducer: 'workflow_helpers:longest'}" in text
    assert "tools: {lookup: 'workflow_helpers:lookup'}" in text  # Python tools land here
    assert "- twice & best_of -> sizes -> ask -> stop" in text
    assert "system: 'You sort messages: ${not_a_reference}'" in text  # a template: untouched
    loaded = loads_workflow(text, name="shop.yaml", base_dir=HERE)
    assert loaded.spec == expected_spec(builder, {"lookup": "workflow_helpers:lookup"})
    assert loaded.graph.tools["lookup"] is lookup
    assert dump_workflow(loaded.spec) == text


def test_a_round_tripped_graph_runs_the_same_and_keeps_its_fingerprint() -> None:
    g = GraphBuilder("counter")
    g.state("n", int, default=1)
    g.state("log", list, reducer="append")
    g.function("a", increment, writes=["n", "log"])
    g.function("b", double, writes=["n", "log"])
    g.router("loop", [("state.n < 50", "a")], otherwise="end")
    g.chain("a", "b", "loop")
    graph = g.build()
    loaded = loads_workflow(dump_workflow(graph), base_dir=HERE)
    assert fingerprint(loaded.spec) == graph.fingerprint
    assert loaded.run_sync().state == graph.run_sync().state


def test_loaded_examples_dump_and_load_back_equal(tmp_path: Path) -> None:
    for name in ("counter.yaml", "documents.yaml", "support.yaml"):
        workflow = load_workflow(EXAMPLES / name, env=SUPPORT_ENV)
        text = dump_workflow(workflow)
        copy = EXAMPLES / f"_roundtrip_{name}"
        copy.write_text(text, encoding="utf-8")
        try:
            again = load_workflow(copy, env=SUPPORT_ENV)
        finally:
            copy.unlink()
        assert again.spec == workflow.spec, name


def test_secrets_stay_references_when_a_loaded_workflow_is_dumped() -> None:
    workflow = load_workflow(EXAMPLES / "support.yaml", env=SUPPORT_ENV)
    text = dump_workflow(workflow)
    assert "api_key: ${SHOP_ATDAK_KEY}" in text
    assert SUPPORT_ENV["SHOP_ATDAK_KEY"] not in text
    assert "graph: measure_item.yaml" in dump_workflow(load_workflow(EXAMPLES / "documents.yaml"))


def test_what_yaml_cannot_name_is_a_clear_error() -> None:
    def local_step(state: Any) -> dict[str, Any]:
        return {}

    g = GraphBuilder("bad")
    g.function("lam", lambda state: {}, next="end")
    with pytest.raises(DefinitionError, match=r"node 'lam' .*lambda or a local function"):
        dump_workflow(g.spec())
    g = GraphBuilder("bad")
    g.function("local", local_step, next="end")
    with pytest.raises(DefinitionError, match=r"node 'local' .*local_step"):
        dump_workflow(g.spec())

    class Answer(BaseModel):
        text: str

    g = GraphBuilder("bad", model="atdak-gpt-4")
    g.state("text", str)
    g.llm("ask", "hi", output=Answer, next="end")
    with pytest.raises(DefinitionError, match=r"nodes.ask.llm.output: the pydantic model Answer"):
        dump_workflow(g.spec())


def test_a_function_from_the_running_script_is_refused() -> None:
    def step(state: Any) -> dict[str, Any]:
        return {}

    step.__module__ = "__main__"
    step.__qualname__ = "step"
    g = GraphBuilder("main")
    g.function("a", step, next="end")
    with pytest.raises(DefinitionError, match=r"running script \(__main__\)"):
        dump_workflow(g.spec())


# --------------------------------------------------------------------------- generated specs

_NAMES = st.sampled_from(["a", "b", "c", "step-1", "Final_2"])
_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    _TEXT,
    st.sampled_from(["1.0", "yes", "no", "null", "~", "0x1f", "2024-01-01", "${HOME}", "a: b"]),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def node_specs(draw: st.DrawFn, names: list[str]) -> dict[str, Any]:
    kind = draw(st.sampled_from(["function", "router", "human", "end", "llm", "memory_write"]))
    node: dict[str, Any]
    if kind == "function":
        node = {
            "function": {"function": "json:dumps", "writes": draw(st.lists(_NAMES, max_size=2))}
        }
    elif kind == "router":
        routes = [{"when": draw(_TEXT), "to": draw(st.sampled_from(names))}]
        node = {"router": [*routes, {"otherwise": draw(st.sampled_from(names))}]}
    elif kind == "human":
        node = {
            "human": {
                "ask": draw(_TEXT),
                "writes": "x",
                "choices": draw(st.none() | st.lists(_TEXT, max_size=2)),
            }
        }
    elif kind == "end":
        node = {"end": {"status": draw(st.sampled_from(["done", "failed"]))}}
    elif kind == "llm":
        node = {
            "llm": {
                "prompt": draw(_TEXT),
                "parameters": draw(st.dictionaries(_TEXT, _SCALARS, max_size=2)),
            }
        }
    else:
        node = {"memory_write": {"messages": [{"role": "user", "content": draw(_TEXT)}]}}
    if draw(st.booleans()):
        node["timeout"] = draw(st.floats(0.1, 1e6))
    if draw(st.booleans()):
        node["description"] = draw(_TEXT)
    return node


@st.composite
def graph_specs(draw: st.DrawFn) -> GraphSpec:
    names = draw(st.lists(_NAMES, min_size=1, max_size=4, unique=True))
    edges = [
        {
            "from": draw(st.lists(st.sampled_from(names), min_size=1, max_size=2)),
            "to": draw(st.sampled_from([*names, "end"])),
        }
        for _ in range(draw(st.integers(0, 4)))
    ]
    data = {
        "name": draw(_TEXT.filter(bool)),
        "version": draw(st.integers(0, 99) | _TEXT),
        "description": draw(_TEXT),
        "model": draw(st.none() | _TEXT),
        "parameters": draw(st.dictionaries(_TEXT, _VALUES, max_size=3)),
        "inputs": {n: {"example": draw(_VALUES), "default": draw(_SCALARS)} for n in names[:2]},
        "state": {
            n: {"reducer": draw(st.sampled_from(["replace", "append", "json:loads"]))}
            for n in names
        },
        "outputs": {n: draw(_TEXT) for n in names[:1]},
        "nodes": {n: draw(node_specs(names)) for n in names},
        "edges": edges,
    }
    return GraphSpec.model_validate(data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph_specs())
def test_generated_specs_round_trip_through_yaml(spec: GraphSpec) -> None:
    assert loads_spec(dump_workflow(spec)) == spec
