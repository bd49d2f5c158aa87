"""From a :class:`GraphSpec` to a runnable :class:`Graph`: validate everything, compile nodes.

``build_graph(spec)`` reports *all* problems at once (:class:`GraphValidationError`), then compiles
each node into a runner once. A :class:`Graph` is immutable and shared by all its runs::

    graph = build_graph(spec, tools=[lookup_order])
    result = await graph.run({"question": "..."}, provider=client)
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ..exceptions import GraphValidationError, Problem, UsageError
from ..providers.base import ChatModel
from ..providers.profiles import ModelProfile, ModelRegistry, default_registry
from ..tracing.bus import EventBus, Sink
from ..tracing.redact import Redactor
from ..usage import UsageLimits
from .checkpoint import Checkpointer, RunRecord, StepRecord
from .compile import CompiledRoute, compile_nodes, resolve_import
from .engine import NO_USAGE_LIMITS, Run, RunResult, new_run_id
from .expressions import Expression
from .journal import Journal
from .nodes import RunEnv, Task
from .spec import GraphSpec, Limits
from .state import StateSchema, check_type
from .validate import validate_spec

__all__ = ["Graph", "build_graph", "fingerprint", "tool_name"]

_NOTHING: Any = object()
_API_KEY_ENV = "ATDAK_API_KEY"


# Deployment settings: changing a key, a store path or a limit must not orphan running runs.
_NOT_BEHAVIOUR = frozenset({"provider", "memory", "checkpointer", "limits", "description"})


def fingerprint(spec: GraphSpec) -> str:
    """A hash of everything that defines the graph's behaviour (callables by qualified name);
    deployment settings (provider, stores, limits) and descriptions are left out."""
    data = _canonical(spec)
    for key in _NOT_BEHAVIOUR:
        data.pop(key, None)
    canonical = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _canonical(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return {name: _canonical(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, type) and issubclass(value, BaseModel):
        return value.model_json_schema()
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if callable(value):
        return f"{getattr(value, '__module__', '?')}:{getattr(value, '__qualname__', repr(value))}"
    return value


class Graph:
    """A validated graph, ready to run. Build it with :func:`build_graph` or the builder."""

    def __init__(
        self,
        spec: GraphSpec,
        *,
        tools: Mapping[str, Any],
        base_dir: Path | None,
        registry: ModelRegistry,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.base_dir = base_dir
        self.registry = registry
        self.tools = dict(tools)
        self.fingerprint = fingerprint(spec)
        self.schema = StateSchema(spec.state, lambda ref: resolve_import(ref, base_dir))
        compiled = compile_nodes(self)
        self.runners = compiled.runners
        self.routers: dict[str, list[CompiledRoute]] = compiled.routers
        self.ends = compiled.ends
        self.end_status = compiled.end_status
        self.successors = compiled.successors
        self.joins = compiled.joins
        #: Whether some end marks a run failed (else a finished run never asks which end).
        self.can_fail = "failed" in self.end_status.values()
        #: Each node's task in a top-level run (shared: a task is never changed).
        self.tasks = {name: Task(name, name) for name in self.runners}
        #: Where a node with one plain edge leads: the next node's task, or the end reached
        #: (the engine routes every other node through its edges, routers and joins).
        self.next_task: dict[str, Task] = {}
        self.next_end: dict[str, str] = {}
        for name, edges in self.successors.items():
            if len(edges) == 1 and edges[0][1] is None:
                target = edges[0][0]
                if target in self.tasks:
                    self.next_task[name] = self.tasks[target]
                elif target in self.ends:
                    self.next_end[name] = target
        self.entry = spec.entry_node
        self.outputs = [(name, Expression(src)) for name, src in spec.outputs.items()]
        self._usage_limits = _usage_limits(spec.limits)  # (frozen: shared by the runs)
        self._default_redactor: tuple[str | None, Redactor] | None = None
        self._input_types = {name: spec.type for name, spec in spec.inputs.items()}

    def __repr__(self) -> str:
        return f"Graph({self.name!r}, nodes={len(self.spec.nodes)})"

    # ------------------------------------------------------------------ running

    def start(
        self,
        inputs: Mapping[str, Any] | None = None,
        *,
        provider: ChatModel | None = None,
        checkpointer: Checkpointer | None = None,
        run_id: str | None = None,
        session_id: str | None = None,
        sinks: Sequence[Sink] = (),
        memory: Any = None,
        limits: Limits | None = None,
        redactor: Redactor | None = None,
        trace_content: bool = True,
    ) -> Run:
        """A new run, not started yet: ``await run.step()`` or ``await run.until_done()``.

        Tracing: ``sinks`` receive every event (``run.events()`` streams them live);
        ``redactor`` masks secrets in everything they receive (by default one with the usual
        key patterns; the ``ATDAK_API_KEY`` value is always added); ``trace_content=False``
        drops message contents, arguments and values from every event, keeping sizes and token
        counts.
        """
        run_id = run_id or new_run_id()
        env = self._env(
            run_id,
            self.check_inputs(inputs),
            self._bus(run_id, sinks, redactor, trace_content),
            session_id=session_id,
            provider=provider,
            memory=memory,
        )
        if limits is not None:
            env.usage_limits = _usage_limits(limits)
        return Run(
            self,
            env,
            run_id=run_id,
            state=self.schema.initial(),
            frontier=[],
            checkpointer=checkpointer,
            limits=limits,
        )

    def _env(
        self,
        run_id: str,
        inputs: Mapping[str, Any],
        bus: EventBus,
        *,
        session_id: str | None,
        provider: ChatModel | None,
        memory: Any,
    ) -> RunEnv:
        """A run's environment: what its nodes share (with the graph's tools, registry, usage
        limits and files)."""
        return RunEnv(
            run_id=run_id,
            inputs=inputs,
            bus=bus,
            usage_limits=self._usage_limits,
            session_id=session_id,
            provider=provider,
            registry=self.registry,
            tools=self.tools,
            memory=memory,
            base_dir=self.base_dir,
            provider_factory=_default_provider,
        )

    async def run(self, inputs: Mapping[str, Any] | None = None, **options: Any) -> RunResult:
        """Run to the end (or to a pause) and return the result. Options as for :meth:`start`."""
        run: Run = self.start(inputs, **options)
        return await run.until_done()

    def run_sync(self, inputs: Mapping[str, Any] | None = None, **options: Any) -> RunResult:
        """:meth:`run` for code that is not async (not from inside a running event loop)."""
        result: RunResult = _run_sync(self.run(inputs, **options))
        return result

    async def restore(
        self,
        run_id: str,
        *,
        checkpointer: Checkpointer,
        provider: ChatModel | None = None,
        sinks: Sequence[Sink] = (),
        memory: Any = None,
        migrate: bool = False,
        redactor: Redactor | None = None,
        trace_content: bool = True,
    ) -> Run:
        """The run ``run_id`` rebuilt from its checkpoints, ready to step (takes its lease).
        Tracing options as for :meth:`start`."""
        record = await checkpointer.get_run(run_id)
        if record is None:
            raise UsageError(f"no run {run_id!r} in the checkpointer; `runs list` shows the runs")
        env = self._env(
            run_id,
            record.inputs,
            self._bus(run_id, sinks, redactor, trace_content),
            session_id=record.session_id,
            provider=provider,
            memory=memory,
        )
        return await Run.restore(self, env, checkpointer, migrate=migrate)

    async def resume(self, run_id: str, *, answer: Any = _NOTHING, **options: Any) -> RunResult:
        """Continue a paused, interrupted or crashed run to its end (options as for
        :meth:`restore`); ``answer`` answers the human node it waits for."""
        run: Run = await self.restore(run_id, **options)
        if answer is not _NOTHING:
            try:
                run.answer(answer)
            except BaseException:
                await run.release()
                raise
        return await run.until_done()

    def resume_sync(self, run_id: str, **options: Any) -> RunResult:
        """:meth:`resume` for code that is not async."""
        result: RunResult = _run_sync(self.resume(run_id, **options))
        return result

    def start_nested(self, env: RunEnv, path: str, journal: Journal | None) -> Run:
        """A run of this graph inside a node of another (its events carry ``path/…``)."""
        return Run(
            self,
            env,
            run_id=env.run_id,
            state=self.schema.initial(),
            frontier=[],
            path_prefix=f"{path}/",
            journal=journal,
        )

    # ------------------------------------------------------------------ history

    def replay(
        self, steps: Sequence[StepRecord]
    ) -> tuple[dict[str, Any], list[Task], dict[str, Any]]:
        """State, frontier and bookkeeping after ``steps`` (rebuilt through the reducers)."""
        state = self.schema.initial()
        books: dict[str, Any] = {
            "joins": {},
            "routes": {},
            "answers": {},
            "waiting": [],
            "ended": [],
        }
        frontier: list[Task] = []
        for record in steps:
            snapshot = record.bookkeeping.get("snapshot")
            if snapshot is not None:
                state = dict(snapshot)
            for node, key, value in record.updates:
                self.schema.apply(state, node, {key: value})
            books = {k: v for k, v in record.bookkeeping.items() if k != "snapshot"}
            frontier = [Task(t["node"], t["path"]) for t in record.frontier]
        return state, frontier, books

    async def history(self, run_id: str, *, checkpointer: Checkpointer) -> list[StepRecord]:
        """The run's checkpoints, one per completed step."""
        return await checkpointer.load_steps(run_id)

    async def state_at(
        self, run_id: str, step: int, *, checkpointer: Checkpointer
    ) -> dict[str, Any]:
        """The state as it was right after ``step``."""
        state, _, _ = self.replay(await checkpointer.load_steps(run_id, upto=step))
        return state

    async def fork(
        self, run_id: str, step: int, *, checkpointer: Checkpointer, new_run_id: str | None = None
    ) -> str:
        """A new run that continues from ``run_id`` as it was after ``step``; returns its id."""
        parent = await checkpointer.get_run(run_id)
        if parent is None:
            raise UsageError(f"no run {run_id!r} in the checkpointer")
        state, frontier, books = self.replay(await checkpointer.load_steps(run_id, upto=step))
        child = RunRecord(
            run_id=new_run_id or _fresh_id(),
            graph=parent.graph,
            fingerprint=self.fingerprint,
            inputs=parent.inputs,
            session_id=parent.session_id,
            status="interrupted",
            parent_run_id=run_id,
            parent_step=step,
            step=step,
        )
        await checkpointer.create_run(child)
        owner = f"fork:{child.run_id}"
        await checkpointer.acquire(child.run_id, owner)
        base = StepRecord(
            run_id=child.run_id,
            step=step,
            updates=[],
            frontier=[{"node": t.node, "path": t.path} for t in frontier],
            bookkeeping={**books, "snapshot": state},
            nodes=[],
        )
        await checkpointer.save_step(base, owner=owner, status="interrupted")
        await checkpointer.release(child.run_id, owner)
        return child.run_id

    # ------------------------------------------------------------------ pictures

    def to_mermaid(self) -> str:
        from .render import to_mermaid

        text: str = to_mermaid(self.spec)
        return text

    def to_dot(self) -> str:
        from .render import to_dot

        text: str = to_dot(self.spec)
        return text

    # ------------------------------------------------------------------ inputs

    def check_inputs(self, inputs: Mapping[str, Any] | None) -> dict[str, Any]:
        """Inputs with defaults filled in; a missing, unknown or mistyped input is a clear error."""
        given = dict(inputs) if inputs else {}
        types = self._input_types
        if len(given) == len(types):  # the usual case: every input given, each of its type
            for name, value in given.items():
                declared = types.get(name)
                if declared is None or not check_type(declared, value):
                    break
            else:
                return given
        return self._complete_inputs(given)

    def _complete_inputs(self, given: dict[str, Any]) -> dict[str, Any]:
        declared = self.spec.inputs
        problems = [
            f"unknown input {name!r} (declared: {', '.join(declared) or 'none'})"
            for name in given
            if declared and name not in declared
        ]
        for name, spec in declared.items():
            if name not in given:
                if spec.required and spec.default is None:
                    problems.append(f"missing input {name!r} ({spec.type}{_about(spec)})")
                    continue
                given[name] = spec.default
            elif not check_type(spec.type, given[name]):
                problems.append(
                    f"input {name!r} should be {spec.type}, got {type(given[name]).__name__}"
                )
        if problems:
            raise UsageError(f"graph {self.name!r}: " + "; ".join(problems))
        return given

    def _bus(
        self,
        run_id: str,
        sinks: Sequence[Sink],
        redactor: Redactor | None,
        content: bool,
    ) -> EventBus:
        """A run's event bus: where its events go, and what they may carry. Its redactor is
        settled when someone first listens (no sink: maybe never)."""
        if sinks:
            return EventBus(run_id, sinks, content=content, redactor=self._redactor(redactor))
        redactor_for = (
            self._default_redactor_for if redactor is None else partial(self._redactor, redactor)
        )
        return EventBus(run_id, content=content, redactor_for=redactor_for)

    def _default_redactor_for(self) -> Redactor:
        return self._redactor(None)

    def _redactor(self, given: Redactor | None) -> Redactor:
        """``given`` or the default redactor, masking the ``ATDAK_API_KEY`` value (the key a
        default client sends) too. The default one is made once per key value and shared by
        the graph's runs (nothing changes it)."""
        key = os.environ.get(_API_KEY_ENV)
        if given is not None:
            return _redactor_with(given, key)
        made = self._default_redactor
        if made is None or made[0] != key:
            made = self._default_redactor = (key, _redactor_with(Redactor(), key))
        return made[1]


def _redactor_with(redactor: Redactor, key: str | None) -> Redactor:
    if key:
        redactor.add_secret(key)  # the key a default client sends never reaches a trace
    return redactor


def build_graph(
    spec: GraphSpec,
    *,
    tools: Iterable[Any] | Mapping[str, Any] = (),
    base_dir: str | Path | None = None,
    registry: ModelRegistry | None = None,
) -> Graph:
    """Validate ``spec`` (every problem at once) and compile it into a :class:`Graph`."""
    base = Path(base_dir) if base_dir is not None else None
    models = _registry_with(spec, registry or default_registry)
    tool_map, problems = _collect_tools(spec, tools, base)
    problems.extend(validate_spec(spec, tool_names=set(tool_map), base_dir=base))
    problems.extend(_check_models(spec, models))
    if problems:
        raise GraphValidationError(problems, subject=f"graph {spec.name!r}")
    return Graph(spec, tools=tool_map, base_dir=base, registry=models)


def _collect_tools(
    spec: GraphSpec, given: Iterable[Any] | Mapping[str, Any], base_dir: Path | None
) -> tuple[dict[str, Any], list[Problem]]:
    tools: dict[str, Any] = {}
    problems: list[Problem] = []
    items = given.items() if isinstance(given, Mapping) else ((None, t) for t in given)
    for name, value in items:
        tools[name or tool_name(value)] = value
    for name, ref in spec.tools.items():
        if callable(ref):
            tools[name] = ref
            continue
        try:
            tools[name] = resolve_import(ref, base_dir)
        except ValueError as exc:
            problems.append(Problem(f"tools.{name}", str(exc), "check the module path"))
    return tools, problems


def tool_name(value: Any) -> str:
    """The name a tool is registered under: its ``name`` or its function's ``__name__``."""
    name = getattr(value, "name", None) or getattr(value, "__name__", None)
    if not isinstance(name, str):
        raise UsageError(f"cannot tell the name of tool {value!r}; register it as name=tool")
    return name


def _check_models(spec: GraphSpec, registry: ModelRegistry) -> list[Problem]:
    problems = []
    if spec.model is not None and spec.model not in registry:
        problems.append(_unknown_model("model", spec.model, registry))
    for name, node in spec.nodes.items():
        config = node.llm or node.agent
        if config is None:
            continue
        where = f"nodes.{name}.{node.kind}"
        if config.model is None and spec.model is None:
            problems.append(
                Problem(where, "has no model", "set `model:` at the top of the graph or here")
            )
        elif config.model is not None and config.model not in registry:
            problems.append(_unknown_model(f"{where}.model", config.model, registry))
    return problems


def _unknown_model(where: str, model: str, registry: ModelRegistry) -> Problem:
    import difflib

    close = difflib.get_close_matches(model, registry.names(), n=1)
    hint = f"did you mean {close[0]!r}?" if close else "describe it under `models:`"
    known = ", ".join(registry.names())
    return Problem(where, f"unknown model {model!r} (known: {known})", hint)


def _registry_with(spec: GraphSpec, registry: ModelRegistry) -> ModelRegistry:
    if not spec.models:
        return registry
    extended = registry.copy()
    for name, model in spec.models.items():
        extended.register(ModelProfile(name=name, **model.model_dump()))
    return extended


def _usage_limits(limits: Limits) -> UsageLimits:
    if limits.requests is None and limits.tokens is None and limits.cost is None:
        return NO_USAGE_LIMITS
    return UsageLimits(
        max_requests=limits.requests, max_total_tokens=limits.tokens, max_cost=limits.cost
    )


def _default_provider() -> ChatModel:
    from ..providers.client import AsyncAtdakClient

    return AsyncAtdakClient()


def _about(spec: Any) -> str:
    return f": {spec.description}" if spec.description else ""


def _fresh_id() -> str:
    return new_run_id()


def _run_sync(coroutine: Any) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    coroutine.close()
    raise UsageError("run_sync() was called inside a running event loop; use `await ...run()`")
