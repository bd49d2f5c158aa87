"""What ``run`` and ``resume`` share: loading, stores, the model endpoint, sinks, driving a run
(with Ctrl-C), and saying how it ended.

Exit codes (``docs/cli.md``): 0 done; 1 a workflow, fixture or input problem (nothing ran);
2 a usage error (the command line itself); 3 the run failed (at the provider, in a node, in a
store: the message says which; resumable once the cause is fixed); 4 waiting for human input;
5 stopped by a run-wide limit (resumable); 130 (143) stopped by Ctrl-C (SIGTERM), resumable.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exceptions import GraphValidationError, ProviderError, WorkflowError
from ..graph.spec import GraphSpec, NodeSpec
from ..tracing.redact import Redactor

if TYPE_CHECKING:
    from ..graph.build import Graph
    from ..graph.checkpoint import Checkpointer, RunRecord
    from ..graph.engine import Run, RunResult
    from ..providers.base import ChatModel
    from ..testing.fixtures import FixtureResponder
    from ..tracing.bus import Sink
    from ..tracing.events import EventBase
    from ..workflow import Workflow
    from ._index import RunIndex

__all__ = [
    "DEFAULT_DB",
    "CommandError",
    "Launch",
    "drive",
    "find_run",
    "load",
    "out",
    "parse_value",
    "report",
    "resume_command",
    "waiting_choices",
]

DEFAULT_DB = Path(".atdak") / "agents.db"
API_KEY_ENV = "ATDAK_API_KEY"

EXIT_DONE, EXIT_INPUT, EXIT_USAGE, EXIT_FAILED, EXIT_WAITING, EXIT_LIMIT = 0, 1, 2, 3, 4, 5
_SIGNAL_EXITS = {signal.SIGINT: 130, signal.SIGTERM: 143}


class CommandError(Exception):
    """Ends a command: ``message`` goes to stderr, ``code`` is the exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def say(message: str) -> None:
    """One message for the person at the terminal (stderr)."""
    print(message, file=sys.stderr, flush=True)


def out(text: str) -> None:
    """The command's result on stdout; a reader that left (``| head``) is not an error."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # nothing more reaches the closed pipe


# --------------------------------------------------------------------------- loading


def load(file: str, *, model: str | None = None) -> tuple[Workflow, Graph]:
    """The workflow file and its graph (with ``--model`` as the default model)."""
    from ..graph.build import build_graph
    from ..workflow import load_workflow

    path = Path(file)
    if not path.is_file():
        what = "a folder, not a workflow file" if path.is_dir() else "no such file"
        raise CommandError(f"{file}: {what}", EXIT_USAGE)
    workflow = load_workflow(path)  # WorkflowError: the caller lists its problems
    if model is None or model == workflow.spec.model:
        return workflow, workflow.graph
    spec = workflow.spec.model_copy(update={"model": model})
    graph = workflow.graph
    try:
        rebuilt = build_graph(
            spec, tools=graph.tools, base_dir=workflow.base_dir, registry=graph.registry
        )
    except GraphValidationError as exc:
        reasons = "; ".join(
            f"{p.message} ({p.hint})" if p.hint else p.message
            for p in exc.problems
            if p.location.startswith("model")
        )
        raise CommandError(f"--model {model}: {reasons or exc}", EXIT_INPUT) from None
    return workflow, rebuilt


def problems_text(error: WorkflowError) -> str:
    return "\n".join(str(problem) for problem in error.problems)


def parse_value(text: str, declared_type: str | None) -> Any:
    """A command-line value: JSON when it parses as JSON (``3``, ``true``, ``[1, 2]``,
    ``{"a": 1}``), else the text itself; always the text for a value declared a string."""
    if declared_type == "string":
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def uses_models(spec: GraphSpec) -> bool:
    """Whether running ``spec`` may call a model (an llm or agent node, here or nested)."""
    return any(_node_uses_models(node) for node in spec.nodes.values())


def _node_uses_models(node: NodeSpec) -> bool:
    if node.llm is not None or node.agent is not None:
        return True
    inner = node.subgraph.graph if node.subgraph is not None else None
    if node.map is not None:
        if node.map.node is not None:
            return _node_uses_models(node.map.node)
        inner = node.map.graph
    if isinstance(inner, GraphSpec):
        return uses_models(inner)
    return inner is not None  # a graph not loaded yet: assume it may


def shown_path(path: Path) -> str:
    """``path`` relative to the current folder when it is inside it, else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())


async def find_run(checkpointer: Checkpointer, run_id: str, db: Path) -> RunRecord:
    """A run by id or unique id prefix; a clear :class:`CommandError` otherwise."""
    record = await checkpointer.get_run(run_id)
    if record is not None:
        return record
    matches = [
        r for r in await checkpointer.list_runs(limit=100_000) if r.run_id.startswith(run_id)
    ]
    if len(matches) == 1:
        found: RunRecord = matches[0]
        return found
    if matches:
        ids = ", ".join(r.run_id for r in matches[:5])
        raise CommandError(
            f"{run_id!r} is the start of several run ids ({ids}); give more of it", EXIT_USAGE
        )
    raise CommandError(
        f"no run {run_id!r} in {db}; `atdak-agents runs list` shows the runs", EXIT_USAGE
    )


def resume_command(run_id: str, db: Path | None, *, answer: str | None = None) -> str:
    """The exact command that continues a run (``--db`` only when not the default file)."""
    words = ["atdak-agents", "resume", run_id]
    if db is not None and db.resolve() != DEFAULT_DB.resolve():
        words += ["--db", shown_path(db)]
    command = " ".join(shlex.quote(w) for w in words)
    return f"{command} --answer {answer}" if answer is not None else command


# --------------------------------------------------------------------------- one launch


@dataclass
class Launch:
    """One command's run: its workflow and graph, where it is stored, how it reaches a model,
    where its events go, and how to say how it ended."""

    workflow: Workflow
    graph: Graph
    db: Path | None
    offline: bool
    as_json: bool = False
    trace: Path | None = None
    fixture: FixtureResponder | None = None
    redactor: Redactor = field(init=False)
    failure: _FailureSink = field(init=False)

    def __post_init__(self) -> None:
        self.redactor = self.workflow.redactor
        self.failure = _FailureSink()
        key = os.environ.get(API_KEY_ENV)
        if key:
            self.redactor.add_secret(key)

    # ------------------------------------------------------------------ where to

    def sinks(self) -> list[Sink]:
        from ..tracing.console import ConsoleSink
        from ..tracing.sinks import JsonlSink

        sinks: list[Sink] = [self.failure]
        if not self.as_json:
            sinks.append(ConsoleSink(sys.stderr))
        if self.trace is not None:
            sinks.append(JsonlSink(self.trace))  # the run's redactor masks every sink
        return sinks

    @contextlib.asynccontextmanager
    async def stores(self) -> AsyncIterator[tuple[Checkpointer, RunIndex | None, Any]]:
        """The checkpointer, the run index (None for checkpoints in memory), the memory store."""
        from ..graph.checkpoint import InMemoryCheckpointer
        from ..graph.sqlite_checkpoint import SQLiteCheckpointer
        from ._index import RunIndex

        async with contextlib.AsyncExitStack() as stack:
            checkpointer: Checkpointer
            index: RunIndex | None = None
            if self.db is None:
                checkpointer = InMemoryCheckpointer()
            else:
                checkpointer = SQLiteCheckpointer(self.db)
                stack.push_async_callback(checkpointer.close)
                index = RunIndex(str(self.db))
                stack.push_async_callback(index.close)
            memory = self.memory_store()
            if memory is not None:
                stack.push_async_callback(memory.close)
            yield checkpointer, index, memory

    def memory_store(self) -> Any:
        return self.workflow.memory_store()

    @contextlib.asynccontextmanager
    async def endpoint(self) -> AsyncIterator[ChatModel | None]:
        """The model endpoint: the local server answering from the fixture (offline), the
        workflow's ``provider:`` section, or the Atdak API (``ATDAK_API_KEY``)."""
        if self.offline:
            if self.fixture is None:  # nothing in the workflow calls a model
                yield None
                return
            from ..testing.server import LocalAtdakServer

            natives = {p.name for p in self.graph.registry if p.native_tools}
            server = LocalAtdakServer(self.fixture, native_tools=natives)
            async with server, server.async_client() as client:
                yield client
            return
        from ..providers.client import AsyncAtdakClient

        async with self.workflow.provider() or AsyncAtdakClient() as online:
            yield online

    # ------------------------------------------------------------------ saying how it ended

    def resume_command(self, run_id: str, *, answer: str | None = None) -> str:
        return resume_command(run_id, self.db, answer=answer)


def waiting_choices(graph: Graph, run: Run) -> list[str] | None:
    """The allowed answers of the human node a paused run waits for (None: any answer)."""
    if run.status != "waiting" or not run.frontier:
        return None
    node = graph.spec.nodes.get(run.frontier[0].node)  # tasks still waiting come first
    human = node.human if node is not None else None
    return list(human.choices) if human is not None and human.choices else None


def _answer_example(choices: list[str] | None) -> str:
    return shlex.quote(choices[0]) if choices else '"..."'


class _FailureSink:
    """Remembers the type of the error a run failed with (provider or not)."""

    def __init__(self) -> None:
        self.error_type: str | None = None

    def write(self, event: EventBase) -> None:
        if event.type == "run_failed" and event.parent_span_id is None:
            self.error_type = getattr(event, "error_type", None)

    def close(self) -> None:
        return None

    @property
    def at_provider(self) -> bool:
        return self.error_type in _class_names(ProviderError)


def _class_names(base: type[Exception]) -> set[str]:
    names = {base.__name__}
    for subclass in base.__subclasses__():
        names |= _class_names(subclass)
    return names


# --------------------------------------------------------------------------- driving


async def drive(run: Run) -> tuple[RunResult, int | None]:
    """Run to the end or a pause; Ctrl-C (or SIGTERM) cancels the current step, which leaves
    the run interrupted at its last checkpoint. Returns the result and the signal, if any."""
    loop = asyncio.get_running_loop()
    driver = asyncio.ensure_future(run.until_done())
    received: list[int] = []

    def stop(signum: int) -> None:
        if received:  # a second Ctrl-C: leave now (completed steps are committed)
            say("atdak-agents: stopped at once")
            os._exit(_SIGNAL_EXITS.get(signal.Signals(signum), 130))
        received.append(signum)
        say("\natdak-agents: stopping at the last checkpoint (Ctrl-C again to quit at once)")
        driver.cancel()

    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop, signum)
            installed.append(signum)
    try:
        result = await driver
    except asyncio.CancelledError:
        if not received:
            raise
        result = run.result()
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
    return result, (received[0] if received else None)


def close_sinks(sinks: list[Sink]) -> None:
    """A paused run keeps its sinks open (it may continue); the command is done with them."""
    for sink in sinks:
        sink.close()


# --------------------------------------------------------------------------- the end


def report(launch: Launch, run: Run, result: RunResult, signum: int | None) -> int:
    """Print how the run ended (stdout: the answer, or the JSON result) and return the code."""
    code = _exit_code(result, signum)
    choices = waiting_choices(launch.graph, run)
    if launch.as_json:
        out(json.dumps(_json_result(launch, result, choices), ensure_ascii=False, indent=2))
        return code
    if result.status == "done":
        out(launch.redactor.text(_answer_text(result.output)))
    elif result.status == "waiting":
        _say_waiting(launch, result, choices)
    elif signum is not None:
        say(f"Run {result.run_id} stopped; continue it with:")
        say(f"  {launch.resume_command(result.run_id)}")
    elif result.status == "interrupted":
        say(f"Run {result.run_id} stopped: {result.reason}.")
        say("Raise the limit under `limits:` in the workflow, then continue it with:")
        say(f"  {launch.resume_command(result.run_id)}")
    else:
        where = " at the provider" if launch.failure.at_provider else ""
        say(f"Run {result.run_id} failed{where} (see above). Fix the cause, then continue it")
        say("from its last checkpoint with:")
        say(f"  {launch.resume_command(result.run_id)}")
    return code


def _exit_code(result: RunResult, signum: int | None) -> int:
    if signum is not None:
        return _SIGNAL_EXITS.get(signal.Signals(signum), 130)
    return {
        "done": EXIT_DONE,
        "waiting": EXIT_WAITING,
        "interrupted": EXIT_LIMIT,
    }.get(result.status, EXIT_FAILED)


def _say_waiting(launch: Launch, result: RunResult, choices: list[str] | None) -> None:
    answer = _answer_example(choices)
    say(f"Run {result.run_id} is waiting for an answer:")
    say(f"  {launch.redactor.text(result.question or '')}")
    if launch.db is None:
        say("Its checkpoints are kept in memory (checkpointer: {store: memory}): it cannot be")
        say("resumed from the command line; give the workflow a sqlite checkpointer.")
        return
    which = f" (one of: {', '.join(choices)})" if choices else ""
    say(f"Answer it{which} with:\n  {launch.resume_command(result.run_id, answer=answer)}")


def _answer_text(output: Mapping[str, Any]) -> str:
    """The final answer: a lone text output as it is, anything else as JSON."""
    if len(output) == 1:
        (value,) = output.values()
        if isinstance(value, str):
            return value
    return json.dumps(output, ensure_ascii=False, indent=2, default=str)


def _json_result(launch: Launch, result: RunResult, choices: list[str] | None) -> dict[str, Any]:
    usage = result.usage
    resumable = result.status in ("waiting", "interrupted", "failed") and launch.db is not None
    answer = _answer_example(choices) if result.status == "waiting" else None
    payload = {
        "run_id": result.run_id,
        "workflow": shown_path(launch.workflow.path) if launch.workflow.path else None,
        "status": result.status,
        "output": result.output,
        "question": result.question,
        "choices": choices,
        "reason": result.reason,
        "error": result.error,
        "steps": result.steps,
        "usage": {
            "requests": usage.requests,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "tool_calls": usage.tool_calls,
            "cost": usage.cost,
        },
        "resume": launch.resume_command(result.run_id, answer=answer) if resumable else None,
    }
    masked: dict[str, Any] = launch.redactor.value(json.loads(json.dumps(payload, default=str)))
    return masked


# --------------------------------------------------------------------------- offline or online


def choose_endpoint(
    workflow: Workflow, graph: Graph, *, offline: bool, started_offline: bool = False
) -> tuple[bool, FixtureResponder | None]:
    """Whether to run offline, and the fixture that answers then (None when nothing in the
    workflow calls a model). Offline is the default when no API key is set (with a notice)."""
    from ..testing.fixtures import fixture_path, load_fixture

    settings = workflow.spec.provider
    key = (settings.api_key if settings is not None else None) or os.environ.get(API_KEY_ENV)
    chosen = offline or started_offline or not key
    if not chosen or not uses_models(graph.spec):
        return chosen, None
    assert workflow.path is not None
    path = fixture_path(workflow.path)
    if not path.is_file():
        why = "--offline was given" if offline else f"{API_KEY_ENV} is not set"
        raise CommandError(
            f"{shown_path(workflow.path)}: {why}, so the local Atdak server would answer, but "
            f"there is no fixture of replies for it: write {shown_path(path)} (see docs/cli.md, "
            f"'Offline runs and fixtures'), or set {API_KEY_ENV} to use the Atdak API",
            EXIT_INPUT,
        )
    fixture = load_fixture(shown_path(path))
    if started_offline and not offline:
        say(
            f"atdak-agents: this run started offline; the local Atdak server answers from "
            f"{shown_path(path)} again"
        )
    elif not offline:
        say(
            f"atdak-agents: {API_KEY_ENV} is not set, so this runs offline: the local Atdak "
            f"server answers from {shown_path(path)} (set {API_KEY_ENV} to use the Atdak API)"
        )
    return True, fixture
