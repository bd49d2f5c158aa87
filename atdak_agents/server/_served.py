"""The workflows a server serves: collected from graphs, specs, files and folders, with the
model endpoint and memory store each one runs with."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import yaml

from ..exceptions import Problem, UsageError, WorkflowError
from ..graph.build import Graph, build_graph
from ..graph.spec import GraphSpec, ProviderSpec, StoreSpec
from ..providers.base import ChatModel
from ..tracing.redact import Redactor
from ..workflow import Workflow, load_workflow
from ._chatmap import ChatMapping
from ._errors import HTTPError

__all__ = ["ServedWorkflow", "WorkflowSource", "collect_workflows", "workflow_files"]

WorkflowSource: TypeAlias = "Graph | GraphSpec | Workflow | str | os.PathLike[str]"
_YAML = (".yaml", ".yml")


@dataclass
class ServedWorkflow:
    """One workflow behind the server: its graph, its chat mapping, and what its runs use.

    ``provider`` and ``memory`` are set when the server starts (one pooled client and one
    store shared by all runs).
    """

    graph: Graph
    chat: ChatMapping
    redactor: Redactor | None = None
    base_dir: Path | None = None
    path: Path | None = None
    provider: ChatModel | None = field(default=None, repr=False)
    memory: Any = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.graph.name

    @property
    def spec(self) -> GraphSpec:
        return self.graph.spec

    @property
    def provider_spec(self) -> ProviderSpec | None:
        return self.graph.spec.provider

    @property
    def memory_spec(self) -> StoreSpec | None:
        return self.graph.spec.memory

    @property
    def needs_session(self) -> bool:
        """Whether runs keep a conversation in memory under the run's session id."""
        for node in self.graph.spec.nodes.values():
            if node.kind in ("memory_read", "memory_write") and node.config.session is None:
                return True
            if node.kind == "agent" and node.config.memory:
                return True
        return False

    def check_session(self, session_id: str | None) -> None:
        """Refuse a request without a session for a workflow that needs one."""
        if session_id is None and self.needs_session:
            raise HTTPError(
                400,
                f"workflow {self.name!r} keeps a conversation in memory: give a session id "
                "(the X-Session-Id header or `session_id`)",
                param="session_id",
                code="session_required",
            )

    def redact(self, data: bytes) -> bytes:
        return self.redactor.bytes(data) if self.redactor is not None else data


def workflow_files(folder: Path) -> list[Path]:
    """The workflow files of a folder: ``*.yaml``/``*.yml`` files whose top level has
    ``nodes:`` (other YAML files, such as fixtures, are left alone). Unreadable YAML is
    included, so its problems are reported."""
    found = []
    for path in sorted(p for p in folder.iterdir() if p.suffix in _YAML and p.is_file()):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError):
            found.append(path)
            continue
        if isinstance(data, dict) and "nodes" in data:
            found.append(path)
    return found


def collect_workflows(
    sources: WorkflowSource | Iterable[WorkflowSource],
    *,
    chat: Mapping[str, ChatMapping | Mapping[str, Any]] | None = None,
    env: Mapping[str, str] | None = None,
) -> dict[str, ServedWorkflow]:
    """Every workflow of ``sources`` by name; all problems of all files at once."""
    items = _flatten(sources)
    served: dict[str, ServedWorkflow] = {}
    problems: list[Problem] = []
    for item in items:
        try:
            one = _serve_one(item, env)
        except WorkflowError as exc:
            problems.extend(exc.problems)
            continue
        if one.name in served:
            raise UsageError(
                f"two workflows are named {one.name!r} ({_where(served[one.name])} and "
                f"{_where(one)}); a served workflow's name is its `model` in chat requests, so "
                "names must be unique"
            )
        served[one.name] = one
    if problems:
        raise WorkflowError(problems)
    if not served:
        raise UsageError("no workflows to serve: give graphs, workflow files or folders of them")
    _apply_chat(served, chat or {})
    return served


def _flatten(sources: WorkflowSource | Iterable[WorkflowSource]) -> list[Any]:
    if isinstance(sources, str | os.PathLike | Graph | GraphSpec | Workflow):
        sources = [sources]
    items: list[Any] = []
    for item in sources:
        if isinstance(item, str | os.PathLike):
            path = Path(item)
            if path.is_dir():
                files = workflow_files(path)
                if not files:
                    raise UsageError(f"{path}: no workflow files (*.yaml with `nodes:`) in it")
                items.extend(files)
            elif path.is_file():
                items.append(path)
            else:
                raise UsageError(f"{path}: no such file or folder")
        else:
            items.append(item)
    return items


def _serve_one(item: Any, env: Mapping[str, str] | None) -> ServedWorkflow:
    if isinstance(item, Path):
        item = load_workflow(item, env=env)
    if isinstance(item, Workflow):
        return ServedWorkflow(item.graph, ChatMapping(), item.redactor, item.base_dir, item.path)
    if isinstance(item, GraphSpec):
        item = build_graph(item)
    if isinstance(item, Graph):
        return ServedWorkflow(item, ChatMapping(), None, item.base_dir)
    raise UsageError(
        f"cannot serve {type(item).__name__}: give a Graph, a GraphSpec, a Workflow, or the "
        "path of a workflow file or folder"
    )


def _apply_chat(
    served: dict[str, ServedWorkflow], chat: Mapping[str, ChatMapping | Mapping[str, Any]]
) -> None:
    unknown = [name for name in chat if name not in served]
    if unknown:
        raise UsageError(
            f"chat= names {', '.join(map(repr, unknown))}, which is not a served workflow "
            f"({', '.join(served)})"
        )
    for name, one in served.items():
        given = chat.get(name, ChatMapping())
        mapping = given if isinstance(given, ChatMapping) else ChatMapping(**given)
        one.chat = mapping.resolve(one.graph)


def _where(one: ServedWorkflow) -> str:
    return str(one.path) if one.path is not None else "a Python graph"
