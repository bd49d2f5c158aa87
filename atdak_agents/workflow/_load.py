"""Loading a workflow: YAML text → located problems, or a :class:`GraphSpec` and a :class:`Graph`.

One pass over a file (:meth:`_Loading.parse`): read the YAML safely with positions, interpolate
``${ENV}`` settings, expand string edges, check prompt files, load subgraph files (relative to the
file that names them, refusing cycles), validate with pydantic. Then the whole graph is validated
(:func:`~atdak_agents.graph.build.build_graph`) even when pydantic found problems, on a spec
whose broken parts are stand-ins, so every problem of the file is reported at once.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from difflib import get_close_matches
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..exceptions import AtdakError, GraphValidationError, Problem, WorkflowError
from ..graph.build import Graph, build_graph
from ..graph.compile import resolve_import
from ..graph.spec import GraphSpec, _parse_chain
from ..providers.profiles import ModelRegistry, default_registry
from ..tracing.redact import Redactor
from ._errors import pydantic_problems
from ._interpolate import Interpolator
from ._repair import Repair, repaired_spec, stand_in_node
from ._source import Source, WorkflowProblem, YamlPath
from ._yaml import read_yaml

__all__ = ["Loaded", "load_text"]

_REDUCERS = ("replace", "append", "extend", "merge", "add")
_PROMPT_FILES = ("prompt_file", "instructions_file")


@dataclass
class _Parsed:
    """One file after :meth:`_Loading.parse`."""

    source: Source
    data: Any = None
    spec: GraphSpec | None = None
    repair: Repair | None = None
    replaced: set[YamlPath] = field(default_factory=set)
    failed: set[YamlPath] = field(default_factory=set)


@dataclass
class Loaded:
    """What :func:`load_text` returns: a spec and graph, or nothing and the problems."""

    source: Source
    redactor: Redactor
    originals: dict[YamlPath, Any]
    spec: GraphSpec | None = None
    graph: Graph | None = None
    problems: list[WorkflowProblem] = field(default_factory=list)

    def error(self) -> WorkflowError:
        return WorkflowError(self.problems, file=self.source.file)


def load_text(
    text: str,
    *,
    file: str,
    base_dir: Path,
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    tools: Iterable[Any] | Mapping[str, Any] = (),
    registry: ModelRegistry | None = None,
    build: bool = True,
) -> Loaded:
    """Load ``text`` (shown as ``file`` in problems); ``build=False`` stops before the graph."""
    loading = _Loading(os.environ if env is None else env, base_dir.resolve())
    if path is not None:
        loading.stack.append(path.resolve())
    parsed = loading.parse(text, file, base_dir.resolve())
    loaded = Loaded(parsed.source, loading.interpolate.redactor, loading.originals)
    spec = parsed.spec or (parsed.repair.spec if parsed.repair else None)
    if build and spec is not None:
        registry = registry or default_registry
        loading.check_models(spec, parsed, registry)
        loaded.graph = loading.build(spec, parsed, tools, registry)
    loaded.spec = parsed.spec
    loaded.problems = _final(loading.problems, loaded.redactor, file)
    if loaded.problems:
        loaded.graph = None
    return loaded


def _final(
    problems: list[WorkflowProblem], redactor: Redactor, first: str
) -> list[WorkflowProblem]:
    """Problems without repeats, in file order (``first`` first), with secrets masked."""
    unique: dict[tuple[str, str, str | None], WorkflowProblem] = {}
    for problem in problems:
        masked = WorkflowProblem(
            problem.position,
            problem.location,
            redactor.text(problem.message),
            redactor.text(problem.hint) if problem.hint else None,
            line=problem.line,
        )
        unique.setdefault((str(problem.position), masked.message, masked.hint), masked)
    return sorted(
        unique.values(),
        key=lambda p: (
            p.position.file != first,
            p.position.file,
            p.position.line,
            p.position.column or 0,
        ),
    )


class _Loading:
    """The state of one load, shared by the file and the subgraph files it names."""

    def __init__(self, env: Mapping[str, str], root_dir: Path) -> None:
        self.interpolate = Interpolator(env, Redactor())
        self.root_dir = root_dir
        self.problems: list[WorkflowProblem] = []
        self.stack: list[Path] = []
        self.depth = 0  # 0 while reading the file itself, 1+ inside the graph files it names
        self.originals: dict[YamlPath, Any] = {}

    # ------------------------------------------------------------------ one file

    def parse(self, text: str, file: str, directory: Path) -> _Parsed:
        parsed = _Parsed(Source(file, text.splitlines()))
        document = read_yaml(text, parsed.source, self.interpolate)
        self.problems.extend(document.problems)
        parsed.failed = document.failed
        if not self._is_workflow(document.data, parsed.source, bool(document.problems)):
            return parsed
        if self.depth == 0:
            self.originals.update(document.interpolated)
        data = dict(document.data)
        parsed.data = data
        self._expand_edges(data, parsed)
        for path, config in _node_configs(data):
            self._prompt_files(path, config, parsed, directory)
            if directory != self.root_dir:
                self._localise_imports(path, config, parsed, directory)
        if directory != self.root_dir:
            self._localise_sections(data, parsed, directory)
        self._graph_files(data, parsed, directory)
        self._validate(data, parsed)
        return parsed

    def _is_workflow(self, data: Any, source: Source, broken: bool) -> bool:
        if isinstance(data, dict):
            return True
        if broken:
            return False
        what = "empty" if data is None else f"a {type(data).__name__}, not a mapping"
        self.problems.append(
            source.problem(
                (),
                f"the file is {what}",
                "a workflow is a mapping with at least `name` and `nodes` (see docs/workflows.md)",
            )
        )
        return False

    def _expand_edges(self, data: dict[str, Any], parsed: _Parsed) -> None:
        """``"a -> b -> c"`` items become edges here, so each edge knows its line."""
        edges = data.get("edges")
        if not isinstance(edges, list):
            return
        expanded: list[Any] = []
        for index, item in enumerate(edges):
            if not isinstance(item, str):
                expanded.append(item)
                parsed.source.edges.append(index)
                continue
            try:
                chain = _parse_chain(item)
            except ValueError as exc:
                where = ("edges", index)
                self.problems.append(parsed.source.problem(where, str(exc), as_written=True))
                continue
            expanded.extend(chain)
            parsed.source.edges.extend([index] * len(chain))
        data["edges"] = expanded

    def _prompt_files(
        self, path: YamlPath, config: dict[str, Any], parsed: _Parsed, directory: Path
    ) -> None:
        for key in _PROMPT_FILES:
            name = config.get(key)
            if not isinstance(name, str):
                continue
            where = (*path, key)
            target = directory / name
            if not target.is_file():
                parsed.replaced.add(where)
                self.problems.append(
                    parsed.source.problem(
                        where,
                        f"{key.replace('_', ' ')} {name!r} not found (looked for {target})",
                        "paths are relative to the folder of the workflow file",
                    )
                )
                continue
            parsed.source.files[where] = os.path.join(os.path.dirname(parsed.source.file), name)
            if directory != self.root_dir:
                config[key] = os.path.relpath(target, self.root_dir)

    def _localise_imports(
        self, path: YamlPath, config: dict[str, Any], parsed: _Parsed, directory: Path
    ) -> None:
        """In a subgraph file from another folder, import paths resolve from *its* folder."""
        if path[-1] == "function" and isinstance(config.get("function"), str):
            self._import((*path, "function"), config, "function", parsed, directory)

    def _localise_sections(self, data: dict[str, Any], parsed: _Parsed, directory: Path) -> None:
        for section, key in (("tools", None), ("state", "reducer")):
            entries = data.get(section)
            if not isinstance(entries, dict):
                continue
            entries = data[section] = dict(entries)
            for name, entry in entries.items():
                if key is None:
                    self._import((section, name), entries, name, parsed, directory)
                elif isinstance(entry, dict) and ":" in str(entry.get(key, "")):
                    entries[name] = dict(entry)
                    self._import((section, name, key), entries[name], key, parsed, directory)

    def _import(
        self, where: YamlPath, holder: dict[str, Any], key: str, parsed: _Parsed, directory: Path
    ) -> None:
        reference = holder[key]
        if not isinstance(reference, str):
            return
        try:
            holder[key] = resolve_import(reference, directory)
        except Exception as exc:  # ValueError, or the module itself failed (SyntaxError, ...)
            parsed.replaced.add(where)
            text = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
            self.problems.append(parsed.source.problem(where, text))

    # ------------------------------------------------------------------ subgraph files

    def _graph_files(self, data: dict[str, Any], parsed: _Parsed, directory: Path) -> None:
        nodes = data.get("nodes")
        if not isinstance(nodes, dict):
            return
        nodes = data["nodes"] = dict(nodes)
        for name, node in nodes.items():
            for kind in ("subgraph", "map"):
                config = node.get(kind) if isinstance(node, dict) else None
                if isinstance(config, dict) and isinstance(config.get("graph"), str):
                    where: YamlPath = ("nodes", name, kind, "graph")
                    child = self._graph_file(where, config["graph"], parsed, directory)
                    if child is None:
                        nodes[name] = stand_in_node(node)
                        parsed.replaced.add(("nodes", name))
                    else:
                        nodes[name] = {**node, kind: {**config, "graph": child}}

    def _graph_file(
        self, where: YamlPath, name: str, parsed: _Parsed, directory: Path
    ) -> GraphSpec | None:
        target = (directory / name).resolve()
        if target in self.stack:
            chain = " → ".join(p.name for p in [*self.stack[self.stack.index(target) :], target])
            self.problems.append(
                parsed.source.problem(where, f"graph files include each other: {chain}")
            )
            return None
        try:
            text = target.read_text(encoding="utf-8")
        except OSError as exc:
            self.problems.append(
                parsed.source.problem(
                    where,
                    f"cannot read graph file {name!r}: {exc.strerror or exc}",
                    "paths are relative to the folder of the file that names them",
                )
            )
            return None
        if self.depth == 0:
            self.originals[where] = name
        self.stack.append(target)
        self.depth += 1
        try:
            display = os.path.join(os.path.dirname(parsed.source.file), name)
            child = self.parse(text, display, target.parent)
        finally:
            self.stack.pop()
            self.depth -= 1
        parsed.source.children[where] = child.source
        parsed.replaced.update((*where, *path) for path in child.replaced)
        return child.spec

    # ------------------------------------------------------------------ validation

    def _validate(self, data: dict[str, Any], parsed: _Parsed) -> None:
        self._check_reducers(data, parsed)
        try:
            parsed.spec = GraphSpec.model_validate(data)
            return
        except ValidationError as exc:
            broken: list[YamlPath] = []
            for path, problem in pydantic_problems(exc, data, parsed.source):
                broken.append(path)
                if not any(_under(path, failed) for failed in parsed.failed):
                    self.problems.append(problem)
        parsed.repair = repaired_spec(data, broken)
        parsed.replaced |= parsed.repair.replaced

    def _check_reducers(self, data: dict[str, Any], parsed: _Parsed) -> None:
        """A reducer that is neither built in nor an import path (pydantic takes any text)."""
        state = data.get("state")
        if not isinstance(state, dict):
            return
        state = data["state"] = dict(state)
        for key, entry in state.items():
            reducer = entry.get("reducer") if isinstance(entry, dict) else None
            if not isinstance(reducer, str) or reducer in _REDUCERS or ":" in reducer:
                continue
            close = get_close_matches(reducer, _REDUCERS, n=1)
            message = (
                f"unknown reducer {reducer!r}: use {', '.join(_REDUCERS)}, "
                "or an import path 'module:function'"
            )
            hint = f"did you mean {close[0]!r}?" if close else None
            self.problems.append(parsed.source.problem(("state", key, "reducer"), message, hint))
            state[key] = {**entry, "reducer": "replace"}

    def check_models(self, spec: GraphSpec, parsed: _Parsed, registry: ModelRegistry) -> None:
        """Every model a node names is a built-in one or declared under ``models:``."""
        known = set(registry.names()) | set(_all_declared_models(spec))
        for path, name in _model_references(spec, ()):
            if name in known or any(_under(path, r) for r in parsed.replaced):
                continue
            close = get_close_matches(name, sorted(known), n=1)
            hint = f"did you mean {close[0]!r}?" if close else "declare it under `models:`"
            message = f"unknown model {name!r} (known: {', '.join(sorted(known))})"
            self.problems.append(parsed.source.problem(path, message, hint))

    def build(
        self,
        spec: GraphSpec,
        parsed: _Parsed,
        tools: Iterable[Any] | Mapping[str, Any],
        registry: ModelRegistry,
    ) -> Graph | None:
        try:
            return build_graph(spec, tools=tools, base_dir=self.root_dir, registry=registry)
        except GraphValidationError as exc:
            for problem in exc.problems:
                self._graph_problem(problem, parsed)
        except (AtdakError, ValueError) as exc:
            if not self.problems:  # else already reported, in the file's own words
                self.problems.append(parsed.source.problem((), str(exc)))
        except Exception as exc:  # the workflow's own Python code failed while being imported
            message = f"importing the workflow's Python code failed: {type(exc).__name__}: {exc}"
            self.problems.append(parsed.source.problem((), message))
        return None

    def _graph_problem(self, problem: Problem, parsed: _Parsed) -> None:
        path = parsed.source.parse(problem.location)
        repair = parsed.repair
        origin = repair.edge_origin if repair is not None else []
        if path[:1] == ("edges",) and len(path) >= 2 and isinstance(path[1], int) and origin:
            path = ("edges", origin[path[1]], *path[2:]) if path[1] < len(origin) else path
        if any(_under(path, replaced) for replaced in parsed.replaced):
            return
        self.problems.append(
            parsed.source.problem(path, problem.message, problem.hint, line=problem.line)
        )


# --------------------------------------------------------------------------- walking the data


def _under(path: YamlPath, prefix: YamlPath) -> bool:
    return path[: len(prefix)] == prefix


def _node_configs(data: dict[str, Any]) -> Iterator[tuple[YamlPath, dict[str, Any]]]:
    """(path, settings) of every node's kind settings, map bodies included (copied in place)."""
    nodes = data.get("nodes")
    if not isinstance(nodes, dict):
        return
    nodes = data["nodes"] = dict(nodes)
    for name, node in nodes.items():
        if not isinstance(node, dict):
            continue
        node = nodes[name] = dict(node)
        yield from _kind_configs(("nodes", name), node)


def _kind_configs(path: YamlPath, node: dict[str, Any]) -> Iterator[tuple[YamlPath, Any]]:
    for kind, config in list(node.items()):
        if not isinstance(config, dict):
            continue
        config = node[kind] = dict(config)
        kind_name = "function" if kind == "tool" else kind
        yield (*path, kind_name), config
        body = config.get("node") if kind == "map" else None
        if isinstance(body, dict):
            body = config["node"] = dict(body)
            yield from _kind_configs((*path, "map", "node"), body)


def _model_references(spec: GraphSpec, prefix: YamlPath) -> Iterator[tuple[YamlPath, str]]:
    if spec.model is not None:
        yield (*prefix, "model"), spec.model
    for name, node in spec.nodes.items():
        where = (*prefix, "nodes", name)
        for kind_path, config in _configs_of(where, node):
            model = getattr(config, "model", None)
            if isinstance(model, str):
                yield (*kind_path, "model"), model
            graph = getattr(config, "graph", None)
            if isinstance(graph, GraphSpec):
                yield from _model_references(graph, (*kind_path, "graph"))


def _configs_of(where: YamlPath, node: Any) -> Iterator[tuple[YamlPath, Any]]:
    yield (*where, node.kind), node.config
    if node.map is not None and node.map.node is not None:
        yield from _configs_of((*where, "map", "node"), node.map.node)


def _all_declared_models(spec: GraphSpec) -> Iterator[str]:
    yield from spec.models
    for node in spec.nodes.values():
        for _, config in _configs_of((), node):
            graph = getattr(config, "graph", None)
            if isinstance(graph, GraphSpec):
                yield from _all_declared_models(graph)
