"""Loading workflow files: the examples run, and every mistake points at its line and column."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from workflow_helpers import EXAMPLES, SUPPORT_ENV, Write, problems

from atdak_agents.exceptions import WorkflowError
from atdak_agents.graph.spec import GraphSpec
from atdak_agents.workflow import (
    Position,
    WorkflowProblem,
    load_spec,
    load_workflow,
    loads_workflow,
)

COUNTER = """
name: counter
state:
  n: {type: integer, default: 0}
  seen: {type: list, reducer: append}
nodes:
  add:
    function: {function: wf_counter_steps:increment, writes: [n, seen]}
  again:
    router:
      - when: state.n < 3
        to: add
      - otherwise: end
edges:
  - add -> again
"""


# --------------------------------------------------------------------------- the examples


def test_counter_example_loads_and_runs() -> None:
    workflow = load_workflow(EXAMPLES / "counter.yaml")
    assert workflow.name == "counter"
    assert workflow.example_inputs == {"limit": 5}
    assert workflow.base_dir == EXAMPLES
    result = workflow.run_sync(workflow.example_inputs)
    assert result.status == "done"
    assert result.output == {"total": 5}
    assert result.state["seen"] == [0, 1, 2, 3, 4]


def test_documents_example_runs_a_map_over_a_graph_file_and_a_subgraph_in_a_subfolder() -> None:
    workflow = load_workflow(EXAMPLES / "documents.yaml")
    measure = workflow.spec.nodes["measure"].map
    report = workflow.spec.nodes["report"].subgraph
    assert measure is not None and isinstance(measure.graph, GraphSpec)
    assert measure.graph.name == "measure-item"
    assert report is not None and isinstance(report.graph, GraphSpec)
    result = workflow.run_sync({"text": "One two.\n\nThree four five.\n\nSix."})
    assert result.output == {"report": "3 paragraphs, 6 words"}
    assert result.state["sizes"] == [{"words": 2}, {"words": 3}, {"words": 1}]


def test_support_example_validates_with_its_tools_prompt_file_and_models() -> None:
    workflow = load_workflow(EXAMPLES / "support.yaml", env=SUPPORT_ENV)
    spec = workflow.spec
    assert set(workflow.graph.tools) == {"lookup_order", "refund"}
    assert workflow.graph.tools["refund"]("10423", "late") == "refunded 10423: late"
    assert spec.provider is not None
    assert spec.provider.api_key == SUPPORT_ENV["SHOP_ATDAK_KEY"]
    assert spec.provider.base_url == "http://127.0.0.1:8000/v1"  # the default of ${...:-...}
    assert "shop-llama" in workflow.graph.registry
    assert spec.limits.steps == 40 and spec.memory is not None
    assert workflow.example_inputs == {
        "question": "我的订单 #10423 三天了还没发货，能退款吗？",
        "customer_id": "anon",
    }
    assert SUPPORT_ENV["SHOP_ATDAK_KEY"] not in repr(workflow) + repr(spec)


# --------------------------------------------------------------------------- located problems


def test_every_problem_at_once_pydantic_and_graph_validation_together() -> None:
    found = problems(
        """
        name: broken
        inputs:
          question: {type: string}
        state:
          answer: {}
          category: {reducer: apend}
        nodes:
          classify:
            llm:
              promt: "Classify {{ inputs.question }}"
              writes: category
          ask:
            human:
              ask: |
                Hello,
                {{ inputs.questoin }}
              writes: answer
          route:
            router:
              - when: state.category == 'x'
                to: answr
              - otherwise: end
        edges:
          - classify -> ask -> route
          - ask ->
          - {from: ask, too: end}
        """
    )
    assert found == [
        "wf.yaml:6:23 state.category.reducer: unknown reducer 'apend': use replace, append, "
        "extend, merge, add, or an import path 'module:function' (did you mean 'append'?)",
        "wf.yaml:10:7 nodes.classify.llm.promt: unknown key 'promt' (did you mean 'prompt'?)",
        "wf.yaml:16:9 nodes.ask.human.ask: undefined variable 'inputs.questoin' "
        "(did you mean 'inputs.question'?)",
        "wf.yaml:20:9 nodes.route.router[0]: unknown node 'answr'",
        "wf.yaml:25:5 edges[1]: an edge reads 'source -> target' (got 'ask ->')",
        "wf.yaml:26:5 edges[2].to: missing required key 'to'",
        "wf.yaml:26:17 edges[2].too: unknown key 'too' (did you mean 'to'?)",
    ]


def test_the_error_is_a_workflow_error_with_positions() -> None:
    with pytest.raises(WorkflowError) as caught:
        loads_workflow(
            "name: x\nmodel: atdak-gpt-4\n"
            "nodes:\n  a: {llm: {prompt: hi, writes: nope}, next: end}\n",
            name="x.yaml",
        )
    error = caught.value
    assert error.file == "x.yaml"
    (problem,) = error.problems
    assert isinstance(problem, WorkflowProblem)
    assert problem.position == Position("x.yaml", 4, 7)
    assert problem.location == "nodes.a.llm"
    assert str(error).splitlines() == [
        "x.yaml has 1 problem:",
        "  - x.yaml:4:7 nodes.a.llm: writes state key 'nope', which is not declared under "
        "`state:` (declare it with a type and reducer)",
    ]
    assert problem.to_json()["line"] == 4


def test_an_undefined_variable_in_a_block_prompt_points_at_its_own_line() -> None:
    found = problems(
        """
        name: lines
        model: atdak-gpt-4
        inputs:
          question: {}
        state:
          answer: {}
        nodes:
          ask:
            llm:
              writes: answer
              prompt: |
                You are helpful.

                  Question: {{ inputs.questoin }}
        edges: ["ask -> end"]
        """
    )
    assert found == [
        "wf.yaml:14:11 nodes.ask.llm.prompt: undefined variable 'inputs.questoin' "
        "(did you mean 'inputs.question'?)"
    ]


def test_a_problem_inside_a_quoted_multi_line_value_names_the_line_of_the_value() -> None:
    found = problems(
        """
        name: lines
        model: atdak-gpt-4
        state: {answer: {}}
        nodes:
          ask:
            llm: {writes: answer, prompt: "one\\ntwo {{ nope }}"}
        edges: ["ask -> end"]
        """
    )
    assert found == [
        "wf.yaml:6:35 nodes.ask.llm.prompt: undefined variable 'nope' (line 2 of the value) "
        "(available: inputs, state)"
    ]


def test_a_problem_inside_a_prompt_file_points_into_that_file(write: Write) -> None:
    write("prompts/ask.j2", "Be brief.\nThe question: {{ inputs.qestion }}\n")
    path = write(
        "flow.yaml",
        """
        name: files
        model: atdak-gpt-4
        inputs: {question: {}}
        state: {answer: {}}
        nodes:
          ask: {llm: {prompt_file: prompts/ask.j2, writes: answer}}
          other: {llm: {prompt_file: prompts/missing.j2, writes: answer}, next: end}
        edges: ["ask -> other"]
        """,
    )
    with pytest.raises(WorkflowError) as caught:
        load_workflow(path)
    shown = [str(p) for p in caught.value.problems]
    prompt = str(path.parent / "prompts" / "ask.j2")
    assert shown[1] == (
        f"{prompt}:2 nodes.ask.llm.prompt_file: undefined variable 'inputs.qestion' "
        "(did you mean 'inputs.question'?)"
    )
    assert shown[0].startswith(
        f"{path}:7:30 nodes.other.llm.prompt_file: prompt file 'prompts/missing.j2' not found"
    )
    assert len(shown) == 2


def test_pydantic_errors_use_the_words_of_the_file() -> None:
    found = problems(
        """
        name: kinds
        limits: {steps: -1}
        state:
          n: {type: integr}
        nodes:
          a:
            lm: {prompt: hi}
          b:
            function: {writes: [n]}
            timeout: soon
          c: {human: {ask: ok, writes: n}, next: end}
        edges: ["a -> b -> c"]
        """
    )
    assert found == [
        "wf.yaml:2:17 limits.steps: input should be greater than 0",
        "wf.yaml:4:13 state.n.type: input should be 'string', 'integer', 'number', 'boolean', "
        "'list', 'dict' or 'any'",
        "wf.yaml:7:5 nodes.a.lm: unknown key 'lm' (did you mean 'llm'?)",
        "wf.yaml:9:5 nodes.b.function.function: missing required key 'function'",
        "wf.yaml:10:14 nodes.b.timeout: input should be a valid number, unable to parse string "
        "as a number",
    ]


def test_a_node_with_two_kinds_or_none() -> None:
    found = problems(
        """
        name: kinds
        nodes:
          a: {function: {function: "json:dumps"}, end: {}}
          b: {description: nothing}
        edges: ["a -> b -> end"]
        """
    )
    assert found == [
        "wf.yaml:3:3 nodes.a: a node has exactly one kind (llm, agent, function, router, map, "
        "subgraph, human, memory_read, memory_write, end); found: function, end",
        "wf.yaml:4:3 nodes.b: a node has exactly one kind (llm, agent, function, router, map, "
        "subgraph, human, memory_read, memory_write, end); found: none",
    ]


def test_tool_is_another_name_for_function_and_errors_point_at_it() -> None:
    found = problems(
        """
        name: alias
        nodes:
          a: {tool: {function: "json:dumps", writez: []}}
        edges: ["a -> end"]
        """
    )
    assert found == [
        "wf.yaml:3:38 nodes.a.tool.writez: unknown key 'writez' (did you mean 'writes'?)"
    ]


def test_string_edges_point_at_the_string() -> None:
    found = problems(
        """
        name: edges
        nodes:
          a: {function: {function: "json:dumps"}}
          b: {function: {function: "json:dumps"}}
        edges:
          - a -> b
          - {from: [a], to: c}
          - b -> a -> nope
        """
    )
    assert found == [
        "wf.yaml:7:21 edges[1].to: unknown node 'c'",
        "wf.yaml:8:5 edges[2].to: unknown node 'nope'",
    ]


# --------------------------------------------------------------------------- safe YAML


def test_duplicate_keys_are_errors(write: Write) -> None:
    found = problems(
        """
        name: dup
        nodes:
          a: {function: {function: "json:dumps"}, next: end}
          a: {function: {function: "json:loads"}, next: end}
        name: again
        """
    )
    assert found == [
        "wf.yaml:4:3 nodes.a: duplicate key 'a' (first given on line 3) "
        "(YAML keeps only the last one; remove or rename one of them)",
        "wf.yaml:5:1 name: duplicate key 'name' (first given on line 1) "
        "(YAML keeps only the last one; remove or rename one of them)",
    ]


def test_python_tags_are_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = f"""
    name: !!python/object/apply:os.system ["touch {marker}"]
    nodes:
      a: !!python/name:os.system {{}}
      b: {{function: {{function: "json:dumps"}}, next: !custom end}}
    """
    found = problems(text)
    assert found[0] == (
        "wf.yaml:1:7 name: the tag !!python/object/apply:os.system is not allowed here "
        "(workflows are plain YAML: strings, numbers, booleans, null, lists and mappings "
        "(no tags that create Python objects))"
    )
    assert found[1].startswith("wf.yaml:3:6 nodes.a: the tag !!python/name:os.system")
    assert found[3].startswith("wf.yaml:4:49 nodes.b.next: the tag !custom is not allowed")
    assert not marker.exists()


def test_yaml_syntax_errors_and_non_mappings() -> None:
    (syntax,) = problems("name: x\nnodes: [a\n")
    assert syntax.startswith("wf.yaml:3:1 invalid YAML: while parsing a flow sequence")
    assert problems("- a\n- b\n") == [
        "wf.yaml:1:1 the file is a list, not a mapping (a workflow is a mapping with at least "
        "`name` and `nodes` (see docs/workflows.md))"
    ]
    assert problems("# nothing\n")[0].startswith("wf.yaml:1:1 the file is empty")
    assert problems("a: 1\n---\nb: 2\n")[0].startswith("wf.yaml:2:1 invalid YAML")
    (tabs,) = problems("name: x\nnodes:\n\ta: 1\n")
    assert tabs.startswith("wf.yaml:3:1 invalid YAML")
    assert tabs.endswith("(YAML indents with spaces, never tabs)")


def test_anchors_and_merge_keys_work() -> None:
    workflow = loads_workflow(
        """
name: merges
state: {n: {type: integer, default: 0}}
nodes:
  a: &step
    function: {function: "json:dumps", writes: []}
    retry: {attempts: 2}
    next: b
  b:
    <<: *step
    next: end
""",
        name="wf.yaml",
    )
    nodes = workflow.spec.nodes
    assert nodes["b"].retry is not None and nodes["b"].retry.attempts == 2
    assert nodes["b"].next == "end" and nodes["a"].next == "b"


# --------------------------------------------------------------------------- ${ENV}


ENV_FLOW = """
name: env
model: ${MODEL:-atdak-gpt-4-mini}
parameters:
  temperature: ${TEMPERATURE:-0.7}
  stop: "${STOP:-0.5}"
limits:
  steps: ${MAX_STEPS:-40}
provider: {api_key: "${SHOP_KEY}", base_url: "$${NOT_A_REFERENCE}"}
state: {answer: {}}
nodes:
  ask:
    llm:
      prompt: "Show ${HOME} literally: {{ state.answer | default('') }}"
      writes: answer
edges: ["ask -> end"]
"""


def test_env_references_defaults_escapes_and_types() -> None:
    workflow = loads_workflow(ENV_FLOW, env={"SHOP_KEY": "sk-shop-secret-value", "MAX_STEPS": "7"})
    spec = workflow.spec
    assert spec.model == "atdak-gpt-4-mini"
    assert spec.limits.steps == 7
    assert spec.parameters == {"temperature": 0.7, "stop": "0.5"}  # plain: read as YAML reads
    assert spec.provider is not None and spec.provider.api_key == "sk-shop-secret-value"
    assert spec.provider.base_url == "${NOT_A_REFERENCE}"
    llm = spec.nodes["ask"].llm
    assert llm is not None and llm.prompt is not None and "${HOME}" in llm.prompt  # a template
    assert workflow.redactor.text("key=sk-shop-secret-value") == "key=***"
    assert workflow.redactor.text("atdak-gpt-4-mini and 7") == "atdak-gpt-4-mini and 7"


def test_a_missing_variable_is_an_error_at_its_place() -> None:
    found = problems(ENV_FLOW, env={})
    assert found == [
        "wf.yaml:8:21 provider.api_key: environment variable 'SHOP_KEY' is not set "
        "(export SHOP_KEY=... or write a default: ${SHOP_KEY:-value})"
    ]
    assert problems("name: ${}\nnodes: {}\n", env={})[0].startswith(
        "wf.yaml:1:7 name: `${}` is not a valid reference"
    )


def test_interpolated_secrets_never_appear_in_errors() -> None:
    secret = "node-from-a-secret-7f3a9"
    with pytest.raises(WorkflowError) as caught:
        loads_workflow(
            """name: leak
entry: ${ENTRY}
nodes:
  a: {function: {function: "json:dumps"}, next: end}
""",
            name="wf.yaml",
            env={"ENTRY": secret},
        )
    text = str(caught.value) + json.dumps([p.to_json() for p in caught.value.problems])  # type: ignore[attr-defined]
    assert secret not in text
    assert "wf.yaml:2:8 entry: unknown node '***'" in text


# --------------------------------------------------------------------------- files


def test_subgraph_files_report_problems_in_their_own_file(write: Write) -> None:
    write(
        "parts/child.yaml",
        """
        name: child
        inputs: {topic: {}}
        state: {text: {}}
        outputs: {text: state.text}
        nodes:
          work:
            function: {function: "json:dumps", writes: [txt]}
            next: nowhere
        """,
    )
    main = write(
        "main.yaml",
        """
        name: main
        state: {summary: {}}
        nodes:
          sub:
            subgraph:
              graph: parts/child.yaml
              inputs: {topic: "'x'", tpic: "'y'"}
              outputs: {summary: text}
        edges: ["sub -> end"]
        """,
    )
    with pytest.raises(WorkflowError) as caught:
        load_workflow(main)
    child = str(main.parent / "parts" / "child.yaml")
    assert [str(p) for p in caught.value.problems] == [
        f"{main}:7:36 nodes.sub.subgraph.inputs.tpic: subgraph has no input 'tpic' "
        "(did you mean 'topic'?)",
        f"{child}:4:17 outputs.text: reads state key 'text', which no node writes and which "
        "has no default (write it from a node or give it a default)",
        f"{child}:7:5 nodes.work.function: writes state key 'txt', which is not declared under "
        "`state:` (did you mean 'text'?)",
        f"{child}:8:11 nodes.work.next: unknown node 'nowhere'",
    ]


def test_graph_files_that_include_each_other_are_refused(write: Write) -> None:
    write(
        "b.yaml",
        """
        name: b
        nodes:
          again: {subgraph: {graph: a.yaml}, next: end}
        """,
    )
    a = write(
        "a.yaml",
        """
        name: a
        nodes:
          inner: {subgraph: {graph: b.yaml}, next: end}
          missing: {map: {over: "[1]", graph: nowhere.yaml, writes: out}, next: end}
        """,
    )
    with pytest.raises(WorkflowError) as caught:
        load_workflow(a)
    shown = [str(p) for p in caught.value.problems]
    assert shown[0].startswith(f"{a}:4:39 nodes.missing.map.graph: cannot read graph file")
    assert shown[1] == (
        f"{a.parent / 'b.yaml'}:3:29 nodes.again.subgraph.graph: graph files include each other: "
        "a.yaml → b.yaml → a.yaml"
    )


def test_only_listed_tools_are_importable_and_paths_start_at_the_workflow(write: Write) -> None:
    write("wf_listed_tools.py", "def weather(city: str) -> str:\n    return city + ': sunny'\n")
    path = write(
        "agent.yaml",
        """
        name: agent
        model: atdak-gpt4
        state: {answer: {}}
        tools:
          weather: wf_listed_tools:weather
          broken: wf_listed_tools:nothing_here
        nodes:
          helper:
            agent: {instructions: Help., tools: [weather, clock], writes: answer}
        edges: ["helper -> end"]
        """,
    )
    with pytest.raises(WorkflowError) as caught:
        load_workflow(path)
    shown = [str(p) for p in caught.value.problems]
    assert shown == [
        f"{path}:2:8 model: unknown model 'atdak-gpt4' (known: atdak-claude-3, atdak-gpt-4, "
        "atdak-gpt-4-mini, atdak-llama-70b) (did you mean 'atdak-gpt-4'?)",
        f"{path}:6:11 tools.broken: module 'wf_listed_tools' has no attribute 'nothing_here' "
        "(check the module path)",
        f"{path}:9:51 nodes.helper.agent.tools[1]: tool 'clock' is not registered "
        "(available: weather) (list it under `tools:` with its import path)",
    ]


def test_python_tools_can_be_added_when_loading(write: Write) -> None:
    def clock() -> str:
        return "12:00"

    path = write(
        "agent.yaml",
        """
        name: agent
        model: atdak-gpt-4-mini
        state: {answer: {}}
        nodes:
          helper: {agent: {instructions: Help., tools: [clock], writes: answer}}
        edges: ["helper -> end"]
        """,
    )
    workflow = load_workflow(path, tools=[clock])
    assert workflow.graph.tools["clock"] is clock


def test_a_tool_module_that_fails_to_import_is_a_problem_not_a_crash(write: Write) -> None:
    write("wf_bad_syntax.py", "def broken(:\n")
    path = write(
        "bad.yaml",
        """
        name: bad
        nodes:
          a: {function: {function: "wf_bad_syntax:broken"}, next: end}
        """,
    )
    with pytest.raises(WorkflowError) as caught:
        load_workflow(path)
    (problem,) = caught.value.problems
    assert "SyntaxError" in str(problem)


def test_load_spec_reads_the_format_without_validating_the_graph(write: Write) -> None:
    path = write(
        "spec.yaml",
        """
        name: only-format
        nodes:
          a: {function: {function: "json:dumps"}, next: nowhere}
        """,
    )
    spec = load_spec(path)
    assert spec.nodes["a"].next == "nowhere"
    with pytest.raises(WorkflowError):
        load_workflow(path)


def test_an_unreadable_file_is_a_workflow_error(tmp_path: Path) -> None:
    with pytest.raises(WorkflowError) as caught:
        load_workflow(tmp_path / "nope.yaml")
    assert "cannot read the workflow file" in str(caught.value)


def test_loads_workflow_resolves_relative_to_base_dir(write: Write) -> None:
    write("wf_based_steps.py", "def step(state):\n    return {'n': 1}\n")
    text = (
        "name: based\nstate: {n: {}}\n"
        "nodes:\n  a: {function: {function: wf_based_steps:step, writes: [n]}, next: end}\n"
    )
    workflow = loads_workflow(text, base_dir=write("x.txt", "").parent)
    assert workflow.run_sync().state == {"n": 1}


def test_counter_text_runs_with_steps_next_to_base_dir() -> None:
    workflow = loads_workflow(COUNTER, base_dir=EXAMPLES)
    assert workflow.run_sync().state["n"] == 3


# --------------------------------------------------------------------------- running with a model


async def test_the_provider_section_and_the_redactor_in_a_real_run(write: Write) -> None:
    from atdak_agents.testing.server import LocalAtdakServer
    from atdak_agents.tracing.sinks import JsonlSink

    key = "sk-shop-live-5e6f7a8b9c"
    path = write(
        "ask.yaml",
        """
        name: ask
        model: atdak-gpt-4-mini
        provider: {base_url: "${SHOP_URL}", api_key: "${SHOP_KEY}", max_retries: 0}
        inputs: {question: {type: string}}
        state: {reply: {type: string}}
        outputs: {reply: state.reply}
        nodes:
          answer: {llm: {prompt: "{{ inputs.question }}", writes: reply}, next: end}
        """,
    )
    async with LocalAtdakServer(api_key=key) as server:
        workflow = load_workflow(path, env={"SHOP_URL": server.base_url, "SHOP_KEY": key})
        trace = path.parent / "trace.jsonl"
        question = f"I pasted my key {key} by mistake"
        result = await workflow.run(
            {"question": question}, sinks=[JsonlSink(trace, redactor=workflow.redactor)]
        )
    assert result.status == "done"
    assert result.output == {"reply": question}  # the echo server answered with the prompt
    text = trace.read_text(encoding="utf-8")
    assert key not in text
    assert "I pasted my key *** by mistake" in text
