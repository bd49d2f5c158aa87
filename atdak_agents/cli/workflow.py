"""``atdak-agents validate | graph | schema``: checking, drawing and describing workflow files."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from ..exceptions import AtdakError, WorkflowError
from ._common import Runner, Subparsers

__all__ = ["add_command", "run"]


def add_command(subparsers: Subparsers) -> Runner:
    validate = subparsers.add_parser(
        "validate",
        help="check a workflow file and list every problem (exit 1 if any)",
        description="Load a workflow file and report every problem at once, each as "
        "FILE:LINE:COL PATH: MESSAGE (HINT). Exit 0 when valid, 1 when not.",
    )
    validate.add_argument("file", metavar="FILE", help="the workflow YAML file")
    validate.add_argument("--json", action="store_true", help="print the result as JSON")
    graph = subparsers.add_parser(
        "graph",
        help="draw a workflow as a Mermaid or Graphviz DOT diagram",
        description="Print a picture of a workflow's graph (it is validated first).",
    )
    graph.add_argument("file", metavar="FILE", help="the workflow YAML file")
    graph.add_argument(
        "--format", choices=("mermaid", "dot"), default="mermaid", help="default: mermaid"
    )
    schema = subparsers.add_parser(
        "schema",
        help="print the JSON Schema of workflow files (for editor completion)",
        description="Print the JSON Schema of the workflow format, or its Markdown reference.",
    )
    schema.add_argument(
        "--format",
        choices=("json", "markdown"),
        default="json",
        help="json (default): the JSON Schema; markdown: the reference page",
    )
    return run


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except BrokenPipeError:  # `atdak-agents schema | head`: the reader left, nothing to report
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _run(args: argparse.Namespace) -> int:
    if args.command == "schema":
        return _schema(args)
    file = Path(args.file)
    if not file.is_file():
        what = "a folder, not a file" if file.is_dir() else "no such file"
        print(f"atdak-agents {args.command}: {args.file}: {what}", file=sys.stderr)
        return 2
    try:
        return _validate(args) if args.command == "validate" else _graph(args)
    except AtdakError as exc:  # a mistake in the workflow's own Python code, say
        print(f"atdak-agents {args.command}: {exc}", file=sys.stderr)
        return 1


def _load(file: str) -> Any:
    from ..workflow import load_workflow

    return load_workflow(file)


def _validate(args: argparse.Namespace) -> int:
    try:
        workflow = _load(args.file)
    except WorkflowError as exc:
        problems = exc.problems
        if args.json:
            payload = {"file": args.file, "ok": False, "problems": [_json(p) for p in problems]}
            print(json.dumps(payload, ensure_ascii=False, indent=2))
        else:
            for problem in problems:
                print(problem)
            noun = "problem" if len(problems) == 1 else "problems"
            print(f"{args.file}: {len(problems)} {noun}", file=sys.stderr)
        return 1
    spec = workflow.spec
    if args.json:
        payload = {"file": args.file, "ok": True, "workflow": spec.name, "problems": []}
        print(json.dumps(payload, ensure_ascii=False, indent=2))
    else:
        nodes = len(spec.nodes)
        print(f"OK {args.file}: workflow {spec.name!r}, {nodes} node{'s' * (nodes != 1)}")
    return 0


def _json(problem: Any) -> dict[str, Any]:
    to_json = getattr(problem, "to_json", None)
    if to_json is not None:
        data: dict[str, Any] = to_json()
        return data
    return {"path": problem.location, "message": problem.message, "hint": problem.hint}


def _graph(args: argparse.Namespace) -> int:
    try:
        workflow = _load(args.file)
    except WorkflowError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    picture = workflow.graph.to_mermaid() if args.format == "mermaid" else workflow.graph.to_dot()
    print(workflow.redactor.text(picture))
    return 0


def _schema(args: argparse.Namespace) -> int:
    from ..workflow import reference_markdown, workflow_schema

    if args.format == "markdown":
        sys.stdout.write(reference_markdown())
    else:
        print(json.dumps(workflow_schema(), ensure_ascii=False, indent=2))
    return 0
