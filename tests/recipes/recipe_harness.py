"""Running a recipe offline in a test: a copy of ``recipes/`` in a temporary folder, the local
Atdak server answering from the recipe's fixture, and everything the run did kept for asserts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atdak_agents.graph.compile import resolve_import
from atdak_agents.graph.engine import RunResult
from atdak_agents.graph.sqlite_checkpoint import SQLiteCheckpointer
from atdak_agents.memory import SQLiteStore
from atdak_agents.testing import LocalAtdakServer, ReceivedRequest
from atdak_agents.testing.fixtures import FixtureResponder, load_fixture, request_text
from atdak_agents.tracing.events import EventBase
from atdak_agents.tracing.sinks import MemorySink
from atdak_agents.workflow import Workflow, load_workflow

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "recipes"
RECIPE_FILES = sorted(p for p in RECIPES.glob("*.yaml") if not p.name.endswith(".fixture.yaml"))


def copy_recipes(target: Path) -> Path:
    """A copy of ``recipes/`` (without run files) under ``target``: runs write their SQLite files
    next to the workflow, never into the source tree."""
    folder = target / "recipes"
    shutil.copytree(RECIPES, folder, ignore=shutil.ignore_patterns(".atdak", "__pycache__"))
    return folder


@dataclass
class Outcome:
    """What an offline recipe run did."""

    result: RunResult
    requests: list[ReceivedRequest]
    events: list[EventBase]
    responder: FixtureResponder
    workflow: Workflow

    @property
    def texts(self) -> list[str]:
        """Each request's message contents, joined (what a fixture's `when` is matched with)."""
        return [request_text(r) for r in self.requests]

    def of(self, event_type: str) -> list[Any]:
        return [e for e in self.events if e.type == event_type]

    def tools_called(self) -> list[str]:
        return [e.tool for e in self.of("tool_called")]

    def nodes_run(self) -> list[str]:
        """Node paths in the order they finished (map items included)."""
        return [e.node for e in self.of("node_finished")]


@dataclass
class Stores:
    """The stores a workflow file declares (``memory:``, ``checkpointer:``), opened."""

    memory: SQLiteStore | None = None
    checkpointer: SQLiteCheckpointer | None = None
    options: dict[str, Any] = field(default_factory=dict)


async def open_stores(workflow: Workflow, stack: AsyncExitStack) -> Stores:
    """Open the SQLite stores the file declares (``Workflow.run`` does not do it yet)."""
    stores = Stores()
    spec = workflow.spec
    if spec.memory is not None and spec.memory.store == "sqlite":
        stores.memory = await stack.enter_async_context(
            SQLiteStore(workflow.resolve_path(spec.memory.path))
        )
        stores.options["memory"] = stores.memory
    if spec.checkpointer is not None and spec.checkpointer.store == "sqlite":
        stores.checkpointer = await stack.enter_async_context(
            SQLiteCheckpointer(workflow.resolve_path(spec.checkpointer.path))
        )
        stores.options["checkpointer"] = stores.checkpointer
    return stores


async def run_recipe(
    folder: Path,
    name: str,
    inputs: Mapping[str, Any] | None = None,
    *,
    responder: FixtureResponder | None = None,
    **options: Any,
) -> Outcome:
    """Run ``folder/NAME.yaml`` offline with its fixture (or ``responder``) and its example
    inputs (or ``inputs``); ``options`` go to ``Workflow.run`` (``session_id=``, ...)."""
    return await _offline(folder, name, responder, options, inputs=inputs)


async def resume_recipe(
    folder: Path,
    name: str,
    run_id: str,
    answer: Any,
    *,
    responder: FixtureResponder | None = None,
    **options: Any,
) -> Outcome:
    """Resume run ``run_id`` of ``folder/NAME.yaml`` offline with ``answer``; ``options`` go to
    ``Graph.resume`` (``checkpointer=`` when the workflow declares none)."""
    return await _offline(folder, name, responder, options, resume=(run_id, answer))


async def _offline(
    folder: Path,
    name: str,
    responder: FixtureResponder | None,
    options: dict[str, Any],
    *,
    inputs: Mapping[str, Any] | None = None,
    resume: tuple[str, Any] | None = None,
) -> Outcome:
    workflow = load_workflow(folder / f"{name}.yaml")
    responder = responder or load_fixture(folder / f"{name}.fixture.yaml")
    sink = MemorySink()
    async with AsyncExitStack() as stack:
        stores = await open_stores(workflow, stack)
        server = await stack.enter_async_context(LocalAtdakServer(responder))
        client = await stack.enter_async_context(server.async_client(max_retries=0))
        options = {**stores.options, **options, "provider": client, "sinks": [sink]}
        if resume is not None:
            run_id, answer = resume
            result = await workflow.graph.resume(run_id, answer=answer, **options)
        else:
            chosen = workflow.example_inputs if inputs is None else inputs
            result = await workflow.run(chosen, **options)
    return Outcome(result, list(server.requests), list(sink.events), responder, workflow)


def cli(folder: Path, *arguments: str) -> subprocess.Popen[str]:
    """Start ``atdak-agents ARGUMENTS`` in the folder holding the recipes (``folder/..``), with
    no API key, so runs are offline; ``finish`` waits for it."""
    env = {k: v for k, v in os.environ.items() if k not in ("ATDAK_API_KEY", "ATDAK_BASE_URL")}
    command = Path(sys.executable).with_name("atdak-agents")
    return subprocess.Popen(
        [str(command), *arguments],
        cwd=folder.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, dict[str, Any], str]:
    """The exit code, the ``--json`` result and stderr of a command started with :func:`cli`."""
    stdout, stderr = process.communicate(timeout=120)
    try:
        result: dict[str, Any] = json.loads(stdout)
    except ValueError:
        raise AssertionError(f"not JSON on stdout:\n{stdout}\nstderr:\n{stderr}") from None
    return process.returncode, result, stderr


def run_cli(folder: Path, *arguments: str) -> tuple[int, dict[str, Any], str]:
    """``atdak-agents ARGUMENTS --json`` run to its end (see :func:`cli`)."""
    return finish(cli(folder, *arguments, "--json"))


def recipe_function(reference: str) -> Any:
    """A recipe's function or tool (``"module:name"``), imported as its workflow imports it."""
    return resolve_import(reference, RECIPES)
