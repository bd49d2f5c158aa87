"""``atdak-agents run FILE`` and ``atdak-agents resume RUN_ID``: running workflows.

``run`` starts a run of a workflow file with a live view on stderr and the final answer on
stdout; every step is checkpointed (SQLite, ``.atdak/agents.db`` by default), so a run that
pauses for a human, hits a limit, fails or is stopped with Ctrl-C continues with ``resume``.
See ``docs/cli.md``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exceptions import (
    AtdakError,
    GraphChangedError,
    RunLockedError,
    StoreError,
    UsageError,
    WorkflowError,
)
from ._common import Runner, Subparsers, run_loop
from ._launch import (
    DEFAULT_DB,
    EXIT_FAILED,
    EXIT_INPUT,
    EXIT_USAGE,
    CommandError,
    Launch,
    choose_endpoint,
    close_sinks,
    drive,
    find_run,
    load,
    parse_value,
    problems_text,
    report,
    say,
)

if TYPE_CHECKING:
    from ..graph.checkpoint import RunRecord
    from ..graph.engine import Run
    from ..workflow import Workflow
    from ._index import IndexEntry

__all__ = ["add_command", "run"]


# --------------------------------------------------------------------------- arguments


def add_command(subparsers: Subparsers) -> Runner:
    start = subparsers.add_parser(
        "run",
        help="run a workflow file (offline from its fixture when no ATDAK_API_KEY is set)",
        description="Run a workflow with a live view on stderr and the answer on stdout. "
        "Inputs not given take their `example` (else `default`) from the file.",
    )
    start.add_argument("file", metavar="FILE", help="the workflow YAML file")
    start.add_argument(
        "--input",
        "-i",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an input (repeatable); VALUE is read as JSON when it parses, else as text "
        "(always text for a string input)",
    )
    start.add_argument("--input-file", metavar="FILE", help="inputs as a JSON object")
    start.add_argument("--model", metavar="NAME", help="the default model of the workflow's nodes")
    start.add_argument("--session", metavar="ID", help="the memory session (default: the run id)")
    _common_options(start)
    again = subparsers.add_parser(
        "resume",
        help="continue a run that paused, failed, hit a limit or was stopped",
        description="Continue a run from its last checkpoint, answering the question it "
        "waits for with --answer.",
    )
    again.add_argument("run_id", metavar="RUN_ID", help="the run's id (or a unique prefix)")
    again.add_argument(
        "--answer",
        metavar="ANSWER",
        help="the answer to the question the run waits for (JSON when it parses, else text)",
    )
    again.add_argument(
        "--workflow",
        metavar="FILE",
        help="the workflow file, for a run not started by `atdak-agents run`",
    )
    again.add_argument(
        "--migrate",
        action="store_true",
        help="continue under a workflow changed since the run started",
    )
    _common_options(again)
    return run


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trace", metavar="FILE", help="write the trace as JSON lines (appends)")
    parser.add_argument(
        "--offline",
        action="store_true",
        help="answer model calls from the fixture next to the workflow (NAME.fixture.yaml)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print only the result as JSON on stdout (no live view)",
    )
    parser.add_argument(
        "--db",
        metavar="FILE",
        help=f"the checkpoint file (default: the workflow's checkpointer, else {DEFAULT_DB})",
    )


# --------------------------------------------------------------------------- the commands


def run(args: argparse.Namespace) -> int:
    try:
        if args.command == "run":
            return _start(args)
        return _resume(args)
    except CommandError as exc:
        say(f"atdak-agents {args.command}: {exc}")
        return exc.code
    except WorkflowError as exc:
        say(problems_text(exc))
        noun = "problem" if len(exc.problems) == 1 else "problems"
        say(
            f"atdak-agents {args.command}: {exc.file or 'the workflow'}: {len(exc.problems)} {noun}"
        )
        return EXIT_INPUT
    except StoreError as exc:
        say(f"atdak-agents {args.command}: {exc}")
        return EXIT_FAILED
    except AtdakError as exc:  # a mistake in the workflow's settings or code, say
        say(f"atdak-agents {args.command}: {exc}")
        return EXIT_INPUT
    except KeyboardInterrupt:  # before the run started (or after it ended)
        say(f"atdak-agents {args.command}: interrupted")
        return 130


def _start(args: argparse.Namespace) -> int:
    workflow, graph = load(args.file, model=args.model)
    inputs = _inputs(args, workflow)
    try:
        inputs = graph.check_inputs(inputs)
    except UsageError as exc:
        raise CommandError(f"{exc}; give inputs with --input KEY=VALUE", EXIT_INPUT) from None
    offline, fixture = choose_endpoint(workflow, graph, offline=args.offline)
    db = _db_of(args, workflow)
    trace = Path(args.trace) if args.trace else None
    launch = Launch(workflow, graph, db, offline, args.json, trace, fixture)
    return run_loop(_start_run(launch, inputs, args))


async def _start_run(launch: Launch, inputs: dict[str, Any], args: argparse.Namespace) -> int:
    from ..graph.engine import new_run_id
    from ._index import IndexEntry

    async with launch.stores() as (checkpointer, index, memory), launch.endpoint() as provider:
        run_id = new_run_id()
        assert launch.workflow.path is not None
        if index is not None:
            trace = str(launch.trace.resolve()) if launch.trace else None
            entry = IndexEntry(
                run_id, str(launch.workflow.path.resolve()), args.model, launch.offline, None, trace
            )
            await index.add(entry)
        sinks = launch.sinks()
        try:
            started = launch.graph.start(
                inputs,
                provider=provider,
                checkpointer=checkpointer,
                run_id=run_id,
                session_id=_session(args.session, launch.workflow, inputs, run_id),
                sinks=sinks,
                memory=memory,
                redactor=launch.redactor,
            )
            result, signum = await drive(started)
        finally:
            close_sinks(sinks)
            if index is not None and launch.fixture is not None:
                await index.save_fixture_uses(run_id, launch.fixture.uses)
    return report(launch, started, result, signum)


def _inputs(args: argparse.Namespace, workflow: Workflow) -> dict[str, Any]:
    """The workflow's examples, then the input file, then each --input."""
    declared = workflow.spec.inputs
    inputs = dict(workflow.example_inputs)
    if args.input_file:
        inputs.update(_input_file(args.input_file))
    for item in args.input:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise CommandError(f"--input {item!r}: write it as KEY=VALUE", EXIT_USAGE)
        key = key.strip()
        spec = declared.get(key)
        inputs[key] = parse_value(text, spec.type if spec is not None else None)
    return inputs


def _input_file(file: str) -> dict[str, Any]:
    try:
        text = Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CommandError(f"--input-file {file}: {reason}", EXIT_USAGE) from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise CommandError(f"--input-file {file}: not valid JSON: {exc}", EXIT_INPUT) from None
    if not isinstance(data, dict):
        raise CommandError(
            f'--input-file {file}: must hold a JSON object of inputs, like {{"question": "..."}}',
            EXIT_INPUT,
        )
    return data


def _db_of(args: argparse.Namespace, workflow: Workflow) -> Path | None:
    """The checkpoint file: --db, else the workflow's `checkpointer:` (relative to its folder;
    None when it keeps checkpoints in memory), else .atdak/agents.db here."""
    if args.db:
        return Path(args.db)
    section = workflow.spec.checkpointer
    if section is None:
        return DEFAULT_DB
    if section.store == "memory":
        return None
    return workflow.resolve_path(section.path)


def _session(option: str | None, workflow: Workflow, inputs: dict[str, Any], run_id: str) -> str:
    """--session, else the workflow's `memory.session` template, else the run id."""
    return option or workflow.session_for(inputs) or run_id


# --------------------------------------------------------------------------- resume


@dataclass
class _Stored:
    record: RunRecord
    entry: IndexEntry | None


def _resume(args: argparse.Namespace) -> int:
    db = Path(args.db) if args.db else DEFAULT_DB
    if not db.is_file():
        raise CommandError(
            f"no checkpoint file {db} here: run this where the run was started, or give "
            "its file with --db",
            EXIT_USAGE,
        )
    stored = run_loop(_find(db, args.run_id))
    file, model = args.workflow, None
    if stored.entry is not None:
        file, model = file or stored.entry.workflow, stored.entry.model
    if file is None:
        raise CommandError(
            f"run {stored.record.run_id} (graph {stored.record.graph!r}) was not started by "
            "`atdak-agents run`: give its workflow file with --workflow FILE",
            EXIT_USAGE,
        )
    workflow, graph = load(file, model=model)
    started_offline = stored.entry is not None and stored.entry.offline
    offline, fixture = choose_endpoint(
        workflow, graph, offline=args.offline, started_offline=started_offline
    )
    if fixture is not None and stored.entry is not None and stored.entry.fixture_uses:
        fixture.restore(stored.entry.fixture_uses)
    trace = args.trace or (stored.entry.trace if stored.entry else None)
    launch = Launch(
        workflow, graph, db, offline, args.json, Path(trace) if trace else None, fixture
    )
    return run_loop(_resume_run(launch, stored, args))


async def _find(db: Path, run_id: str) -> _Stored:
    """The stored run with this id (or the one run whose id starts with it)."""
    from ..graph.sqlite_checkpoint import SQLiteCheckpointer
    from ._index import RunIndex

    index = RunIndex(str(db))
    async with SQLiteCheckpointer(db) as checkpointer:
        try:
            record = await find_run(checkpointer, run_id, db)
            return _Stored(record, await index.get(record.run_id))
        finally:
            await index.close()


async def _resume_run(launch: Launch, stored: _Stored, args: argparse.Namespace) -> int:
    from ._index import IndexEntry

    record = stored.record
    _check_resumable(record, args)
    async with launch.stores() as (checkpointer, index, memory), launch.endpoint() as provider:
        if index is not None and stored.entry is None and launch.workflow.path is not None:
            # started elsewhere, resumed here with --workflow: remember it from now on
            trace = str(launch.trace.resolve()) if launch.trace else None
            workflow = str(launch.workflow.path.resolve())
            await index.add(IndexEntry(record.run_id, workflow, None, launch.offline, None, trace))
        sinks = launch.sinks()
        try:
            restored = await _restore(launch, record, args, checkpointer, provider, sinks, memory)
            if restored.status == "waiting" and args.answer is None:
                await restored.release()
                return report(launch, restored, restored.result(), None)
            if args.answer is not None:
                try:
                    _answer(restored, launch, args.answer)
                except CommandError:
                    await restored.release()
                    raise
            result, signum = await drive(restored)
        finally:
            close_sinks(sinks)
            if index is not None and launch.fixture is not None:
                await index.save_fixture_uses(record.run_id, launch.fixture.uses)
    return report(launch, restored, result, signum)


def _check_resumable(record: RunRecord, args: argparse.Namespace) -> None:
    if record.status == "done":
        raise CommandError(
            f"run {record.run_id} has finished (done): `atdak-agents runs show {record.run_id}` "
            "shows its output; start a new run with `atdak-agents run FILE`",
            EXIT_USAGE,
        )
    if args.answer is not None and record.status != "waiting":
        raise CommandError(
            f"run {record.run_id} is not waiting for an answer (it is {record.status}); "
            "resume it without --answer",
            EXIT_USAGE,
        )


async def _restore(
    launch: Launch,
    record: RunRecord,
    args: argparse.Namespace,
    checkpointer: Any,
    provider: Any,
    sinks: list[Any],
    memory: Any,
) -> Run:
    try:
        return await launch.graph.restore(
            record.run_id,
            checkpointer=checkpointer,
            provider=provider,
            sinks=sinks,
            memory=memory,
            migrate=args.migrate,
            redactor=launch.redactor,
        )
    except GraphChangedError as exc:
        text = str(exc).replace("resume with migrate=True", "resume with --migrate")
        raise CommandError(text, EXIT_INPUT) from None
    except RunLockedError as exc:
        raise CommandError(str(exc), EXIT_FAILED) from None


def _answer(restored: Run, launch: Launch, text: str) -> None:
    """Give the waiting human node its answer, read as that node's state key declares."""
    spec = launch.graph.spec
    declared: str | None = None
    node = spec.nodes.get(restored.frontier[0].node) if restored.frontier else None
    if node is not None and node.human is not None:
        key = spec.state.get(node.human.writes)
        declared = "string" if node.human.choices else (key.type if key else None)
    try:
        restored.answer(parse_value(text, declared))
    except UsageError as exc:
        raise CommandError(f"--answer: {exc}", EXIT_INPUT) from None
