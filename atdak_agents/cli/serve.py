"""``atdak-agents serve DIR|FILE``: serve workflows over HTTP until Ctrl-C or SIGTERM.

Every workflow file of the folder (or the one file) is served: chat with one through the
Atdak/OpenAI chat-completions endpoint (``model`` = the workflow's name), or start runs and
follow their events through the run API. Without ``ATDAK_API_KEY`` (or with ``--offline``) the
workflows' fixtures answer, from a local Atdak server per workflow. See ``docs/services.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exceptions import AtdakError, UsageError, WorkflowError
from ._common import Runner, Subparsers, run_loop
from ._launch import (
    EXIT_INPUT,
    EXIT_USAGE,
    CommandError,
    choose_endpoint,
    out,
    problems_text,
    say,
)

if TYPE_CHECKING:
    from ..testing.fixtures import FixtureResponder
    from ..testing.responders import ReceivedRequest, Reply
    from ..workflow import Workflow

__all__ = ["add_command", "run"]

DEFAULT_SERVER_DB = ".atdak/server.db"


def add_command(subparsers: Subparsers) -> Runner:
    parser = subparsers.add_parser(
        "serve",
        help="serve workflows over HTTP: an Atdak/OpenAI-compatible chat endpoint and a run API",
        description="Serve every workflow of a folder (or one file) over HTTP until Ctrl-C. "
        "Server keys come from ATDAK_SERVER_KEYS (comma-separated); without keys it listens "
        "on loopback only. Offline (no ATDAK_API_KEY, or --offline) the workflows' fixtures "
        "answer.",
    )
    parser.add_argument("path", metavar="DIR|FILE", help="a workflow file or a folder of them")
    parser.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)"
    )
    parser.add_argument(
        "--offline",
        action="store_true",
        help="answer model calls from each workflow's fixture (NAME.fixture.yaml)",
    )
    parser.add_argument(
        "--db",
        default=DEFAULT_SERVER_DB,
        metavar="PATH",
        help=f"the SQLite file of checkpoints (default {DEFAULT_SERVER_DB}); run events go to "
        "NAME.events.db beside it",
    )
    parser.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        help="listen beyond loopback even without server keys (anyone who can reach it may "
        "run the workflows)",
    )
    parser.add_argument(
        "--max-runs-per-key",
        type=int,
        default=32,
        metavar="N",
        help="runs one key may have in progress at once (default 32)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=("critical", "error", "warning", "info", "debug"),
        help="uvicorn's log level (default info)",
    )
    return run


def run(args: argparse.Namespace) -> int:
    try:
        return run_loop(_serve(args))
    except CommandError as exc:
        say(f"atdak-agents serve: {exc}")
        return exc.code
    except KeyboardInterrupt:  # a second Ctrl-C during the graceful stop
        return 130


async def _serve(args: argparse.Namespace) -> int:
    from ..server import ServerConfig, create_app, serve

    workflows = _load(Path(args.path))
    async with _offline_endpoints(workflows, args.offline) as providers:
        try:
            config = ServerConfig(
                database=args.db,
                allow_unauthenticated=args.allow_unauthenticated,
                max_runs_per_key=args.max_runs_per_key,
            )
            app = create_app(workflows, config=config, provider=providers)
            names = ", ".join(app.service.workflows)
            _quiet_after_stop()
            await serve(
                app,
                host=args.host,
                port=args.port,
                log_level=args.log_level,
                on_ready=lambda url: out(
                    f"serving {len(workflows)} workflow{'s' * (len(workflows) != 1)} "
                    f"({names}) on {url}  (chat: {url}/v1/chat/completions, runs: "
                    f"{url}/v1/runs, API: {url}/openapi.json)"
                ),
            )
        except (UsageError, ValueError) as exc:
            raise CommandError(str(exc), EXIT_USAGE) from None
    return 0


def _quiet_after_stop() -> None:
    """uvicorn stops gracefully on SIGINT/SIGTERM, then re-raises the signal to the handler it
    found: make that one do nothing, so a stopped server exits with 0, not killed."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda number, frame: None)


def _load(path: Path) -> list[Workflow]:
    from ..server._served import workflow_files
    from ..workflow import load_workflow

    if path.is_dir():
        files = workflow_files(path)
        if not files:
            raise CommandError(f"{path}: no workflow files (*.yaml with `nodes:`)", EXIT_USAGE)
    elif path.is_file():
        files = [path]
    else:
        raise CommandError(f"{path}: no such file or folder", EXIT_USAGE)
    loaded, problems = [], []
    for file in files:
        try:
            loaded.append(load_workflow(file))
        except WorkflowError as exc:
            problems.append(problems_text(exc))
        except AtdakError as exc:  # a mistake in the workflow's own Python code, say
            problems.append(f"{file}: {exc}")
    if problems:
        raise CommandError("\n".join(problems), EXIT_INPUT)
    return loaded


@contextlib.asynccontextmanager
async def _offline_endpoints(
    workflows: Sequence[Workflow], offline: bool
) -> AsyncIterator[dict[str, Any]]:
    """A local Atdak server per workflow that runs offline, answering from its fixture."""
    from ..graph.spec import ProviderSpec
    from ..testing.server import LocalAtdakServer

    async with contextlib.AsyncExitStack() as stack:
        providers: dict[str, Any] = {}
        for workflow in workflows:
            chosen, fixture = choose_endpoint(workflow, workflow.graph, offline=offline)
            if not chosen or fixture is None:
                continue
            natives = {p.name for p in workflow.graph.registry if p.native_tools}
            server = LocalAtdakServer(_EveryRun(fixture), native_tools=natives, record=False)
            await stack.enter_async_context(server)
            providers[workflow.name] = ProviderSpec(
                base_url=server.base_url, api_key=server.api_key, max_retries=0
            )
        yield providers


class _EveryRun:
    """A fixture answering run after run: when a request matches only entries already used
    up (by an earlier run), the fixture starts over."""

    def __init__(self, fixture: FixtureResponder) -> None:
        self.fixture = fixture

    def __call__(self, request: ReceivedRequest) -> Reply:
        from ..testing.fixtures import request_text

        fixture, text = self.fixture, request_text(request)
        answerable = [e for e in fixture.entries if e.matches(text)]
        left = [e for e in answerable if e.times == 0 or e in fixture.unused]
        if answerable and not left:
            fixture.restore([0] * len(fixture.entries))
        return fixture(request)
