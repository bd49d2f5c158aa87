"""`atdak-agents validate | graph | schema`, run as a user runs them: the real command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from workflow_helpers import EXAMPLES, Write

ROOT = Path(__file__).resolve().parents[2]
COMMAND = shutil.which("atdak-agents", path=str(Path(sys.executable).parent))


def cli(
    *args: str, cwd: Path = EXAMPLES, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [COMMAND] if COMMAND else [sys.executable, "-m", "atdak_agents.cli"]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SHOP_")}
    result = subprocess.run(
        [*command, *args],
        cwd=cwd,
        env={**environment, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_validate_a_good_file_prints_one_line_and_exits_0() -> None:
    result = cli("validate", "counter.yaml")
    assert result.returncode == 0
    assert result.stdout == "OK counter.yaml: workflow 'counter', 2 nodes\n"


def test_validate_lists_every_problem_and_exits_1(write: Write) -> None:
    path = write(
        "broken.yaml",
        """
        name: broken
        inputs: {question: {}}
        state: {answer: {}}
        nodes:
          ask:
            human: {ask: "{{ inputs.questoin }}", writes: answr}
            nxt: end
          name: {function: {function: "json:dumps"}, next: end}
        """,
    )
    result = cli("validate", path.name, cwd=path.parent)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "broken.yaml:7:5 nodes.ask.nxt: unknown key 'nxt' (did you mean 'next'?)",
        "broken.yaml:8:3 nodes.name: is unreachable from the entry node 'ask' "
        "(connect it with an edge, or remove it)",
    ]
    assert result.stderr == "broken.yaml: 2 problems\n"


def test_validate_json_never_shows_an_interpolated_secret(write: Write) -> None:
    secret = "sk-live-0123456789abcdef"
    path = write(
        "leaky.yaml",
        """
        name: leaky
        provider: {api_key: "${SHOP_KEY}"}
        entry: ${SHOP_ENTRY}
        nodes:
          a: {function: {function: "json:dumps"}, next: end}
        """,
    )
    result = cli(
        "validate",
        "--json",
        path.name,
        cwd=path.parent,
        env={"SHOP_KEY": secret, "SHOP_ENTRY": secret},
    )
    assert result.returncode == 1
    assert secret not in result.stdout + result.stderr
    payload = json.loads(result.stdout)
    assert payload["ok"] is False
    assert payload["problems"] == [
        {
            "file": "leaky.yaml",
            "line": 3,
            "column": 8,
            "path": "entry",
            "message": "unknown node '***'",
            "hint": None,
        }
    ]
    ok = cli("validate", "--json", "counter.yaml")
    assert json.loads(ok.stdout) == {
        "file": "counter.yaml",
        "ok": True,
        "workflow": "counter",
        "problems": [],
    }


def test_usage_mistakes_exit_2_without_a_traceback(tmp_path: Path) -> None:
    missing = cli("validate", "nope.yaml", cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr == "atdak-agents validate: nope.yaml: no such file\n"
    bad_format = cli("graph", "counter.yaml", "--format", "png")
    assert bad_format.returncode == 2
    assert "invalid choice: 'png'" in bad_format.stderr
    assert cli("validate").returncode == 2


def test_graph_prints_mermaid_or_dot() -> None:
    mermaid = cli("graph", "counter.yaml")
    assert mermaid.returncode == 0
    lines = mermaid.stdout.splitlines()
    assert lines[0] == "flowchart TD"
    assert '    again -.->|"state.n < inputs.limit (≤100)"| add' in lines
    dot = cli("graph", "documents.yaml", "--format", "dot")
    assert dot.returncode == 0
    assert dot.stdout.startswith('digraph "documents" {')
    assert '"measure" -> "report"' in dot.stdout


def test_graph_of_a_broken_file_lists_its_problems(write: Write) -> None:
    path = write(
        "bad.yaml", "name: bad\nnodes:\n  a: {function: {function: 'json:dumps'}, next: b}\n"
    )
    result = cli("graph", path.name, cwd=path.parent)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("bad.yaml:3:49 nodes.a.next: unknown node 'b'")


def test_schema_prints_the_json_schema_and_the_reference_page() -> None:
    result = cli("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "GraphSpec" in schema["$defs"]
    page = cli("schema", "--format", "markdown")
    assert page.stdout == (ROOT / "docs" / "yaml-reference.md").read_text(encoding="utf-8")
