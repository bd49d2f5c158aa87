"""The public face of YAML workflows: :func:`load_workflow`, :class:`Workflow` and friends.

::

    workflow = load_workflow("support.yaml")      # every problem at once, as file:line:col
    result = workflow.run_sync({"question": "..."})
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exceptions import UsageError, WorkflowError
from ..graph.build import Graph
from ..graph.engine import RunResult
from ..graph.spec import GraphSpec
from ..providers.profiles import ModelRegistry
from ..tracing.redact import Redactor
from ._load import load_text
from ._source import Position, Source, WorkflowProblem, YamlPath

if TYPE_CHECKING:
    from ..providers.client import AsyncAtdakClient

__all__ = ["Workflow", "load_spec", "load_workflow", "loads_spec", "loads_workflow"]


@dataclass
class Workflow:
    """A loaded workflow file: its spec, the validated graph, and what running it needs.

    ``redactor`` masks the values that came from ``${ENV}`` references: give it to trace sinks
    (``JsonlSink(path, redactor=workflow.redactor)``). ``base_dir`` is the file's folder: prompt
    files, tools and subgraph files are found there.
    """

    spec: GraphSpec
    graph: Graph
    base_dir: Path
    redactor: Redactor
    path: Path | None = None
    source: Source | None = field(default=None, repr=False)
    originals: dict[YamlPath, Any] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def example_inputs(self) -> dict[str, Any]:
        """Inputs to try the workflow with: each input's ``example`` (else its ``default``)."""
        examples: dict[str, Any] = {}
        for name, spec in self.spec.inputs.items():
            value = spec.example if spec.example is not None else spec.default
            if value is not None:
                examples[name] = value
        return examples

    def resolve_path(self, path: str | os.PathLike[str]) -> Path:
        """A path written in the workflow, relative to its folder unless absolute."""
        return self.base_dir / Path(path)

    def provider(self) -> AsyncAtdakClient | None:
        """A client for the ``provider:`` section (None when the file has none); close it after
        use (``async with``). :meth:`run` makes and closes one by itself."""
        settings = self.spec.provider
        if settings is None:
            return None
        from ..providers.client import AsyncAtdakClient

        return AsyncAtdakClient(
            api_key=settings.api_key,
            base_url=settings.base_url,
            timeout=settings.timeout,
            max_retries=2 if settings.max_retries is None else settings.max_retries,
            default_headers=settings.headers or None,
        )

    async def run(self, inputs: Mapping[str, Any] | None = None, **options: Any) -> RunResult:
        """Run the graph (options as for :meth:`Graph.start`) with what the file declares:

        model calls go where ``provider:`` says (unless ``provider=`` is given), the ``memory:``
        store is opened (unless ``memory=`` is given) with the session from ``session_id=``,
        else ``memory.session`` rendered with the inputs; ``${ENV}`` values are masked in every
        sink (``redactor=`` overrides). Stores and clients opened here are closed after.
        """
        async with contextlib.AsyncExitStack() as stack:
            options.setdefault("redactor", self.redactor)
            if options.get("provider") is None:
                client = self.provider()
                if client is not None:
                    options["provider"] = await stack.enter_async_context(client)
            if options.get("memory") is None:
                store = self.memory_store()
                if store is not None:
                    stack.push_async_callback(store.close)
                    options["memory"] = store
            if options.get("session_id") is None:
                options["session_id"] = self.session_for(inputs or self.example_inputs)
            return await self.graph.run(inputs, **options)

    def memory_store(self) -> Any:
        """A store for the ``memory:`` section (None without one); the caller closes it."""
        from ..memory import InMemoryStore, SQLiteStore

        section = self.spec.memory
        if section is None:
            return None
        if section.store == "memory":
            return InMemoryStore()
        return SQLiteStore(self.resolve_path(section.path))

    def session_for(self, inputs: Mapping[str, Any]) -> str | None:
        """The memory session of a run: ``memory.session`` rendered with ``inputs`` (None when
        the file gives no session template)."""
        section = self.spec.memory
        if section is None or not section.session:
            return None
        from ..templates import PromptTemplate

        rendered = PromptTemplate(section.session, name="memory.session").render(inputs=inputs)
        return rendered.strip() or None

    def run_sync(self, inputs: Mapping[str, Any] | None = None, **options: Any) -> RunResult:
        """:meth:`run` for code that is not async (not from inside a running event loop)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.run(inputs, **options))
        raise UsageError("run_sync() was called inside a running event loop; use `await run()`")

    def __repr__(self) -> str:
        where = f", path={str(self.path)!r}" if self.path is not None else ""
        return f"Workflow({self.name!r}, nodes={len(self.spec.nodes)}{where})"


def load_workflow(
    path: str | os.PathLike[str],
    *,
    env: Mapping[str, str] | None = None,
    tools: Iterable[Any] | Mapping[str, Any] = (),
    registry: ModelRegistry | None = None,
) -> Workflow:
    """Load and validate a workflow file.

    ``env`` replaces ``os.environ`` for ``${NAME}`` references; ``tools`` adds Python tools to
    those listed under ``tools:``. Raises :class:`~atdak_agents.exceptions.WorkflowError` with
    every problem, each as ``file:line:col path: message (hint)``.
    """
    file = Path(path)
    text = _read(file)
    loaded = load_text(
        text,
        file=str(path),
        base_dir=file.parent,
        path=file,
        env=env,
        tools=tools,
        registry=registry,
    )
    if loaded.graph is None or loaded.spec is None:
        raise loaded.error()
    return Workflow(
        loaded.spec,
        loaded.graph,
        file.parent.resolve(),
        loaded.redactor,
        path=file,
        source=loaded.source,
        originals=loaded.originals,
    )


def loads_workflow(
    text: str,
    *,
    name: str = "<workflow>",
    base_dir: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    tools: Iterable[Any] | Mapping[str, Any] = (),
    registry: ModelRegistry | None = None,
) -> Workflow:
    """Like :func:`load_workflow`, from text; ``name`` is the file name shown in problems and
    ``base_dir`` (default: the current folder) the folder relative paths start from."""
    folder = Path(base_dir) if base_dir is not None else Path.cwd()
    loaded = load_text(text, file=name, base_dir=folder, env=env, tools=tools, registry=registry)
    if loaded.graph is None or loaded.spec is None:
        raise loaded.error()
    return Workflow(
        loaded.spec,
        loaded.graph,
        folder.resolve(),
        loaded.redactor,
        source=loaded.source,
        originals=loaded.originals,
    )


def load_spec(path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None) -> GraphSpec:
    """Only read a workflow file into its :class:`GraphSpec` (the format is checked, the graph
    is not validated: for tools that edit or convert workflows)."""
    file = Path(path)
    loaded = load_text(
        _read(file), file=str(path), base_dir=file.parent, path=file, env=env, build=False
    )
    if loaded.spec is None or loaded.problems:
        raise loaded.error()
    return loaded.spec


def loads_spec(
    text: str,
    *,
    name: str = "<workflow>",
    base_dir: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> GraphSpec:
    """:func:`load_spec` from text."""
    folder = Path(base_dir) if base_dir is not None else Path.cwd()
    loaded = load_text(text, file=name, base_dir=folder, env=env, build=False)
    if loaded.spec is None or loaded.problems:
        raise loaded.error()
    return loaded.spec


def _read(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        position = Position(str(file), 1, 1)
        raise WorkflowError(
            [WorkflowProblem(position, "", f"cannot read the workflow file: {reason}")],
            file=str(file),
        ) from None
