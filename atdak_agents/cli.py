"""The ``atdak-agents`` command line (the only module that prints).

Each command is two small functions: ``_add_<name>(subparsers)`` declares its arguments and
``_run_<name>(args) -> exit code`` runs it; :data:`_COMMANDS` lists them in help order. A new
command is one more pair and one more row.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

__all__ = ["main"]

Runner = Callable[[argparse.Namespace], int]


# --------------------------------------------------------------------------- local-server


def _add_local_server(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> Runner:
    parser = subparsers.add_parser(
        "local-server",
        help="run the local Atdak-compatible server (for offline use, tests and load tests)",
        description="Serve the Atdak chat-completions contract on this machine until Ctrl-C.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)"
    )
    parser.add_argument(
        "--api-key", default=None, help="bearer key clients must send (default: sk-local-atdak)"
    )
    parser.add_argument("--no-auth", action="store_true", help="accept any key, or none")
    parser.add_argument(
        "--reply",
        default=None,
        help="always answer with this text (default: echo the last user message)",
    )
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds to wait before each answer"
    )
    parser.add_argument(
        "--chunk-size", type=int, default=4, help="characters per streamed chunk (default 4)"
    )
    parser.add_argument(
        "--native-tools", action="store_true", help="accept OpenAI-style `tools` in requests"
    )
    parser.add_argument(
        "--no-record", action="store_true", help="do not keep received requests in memory"
    )
    return _run_local_server


def _run_local_server(args: argparse.Namespace) -> int:
    from .testing.server import DEFAULT_API_KEY, LocalAtdakServer

    api_key = None if args.no_auth else (args.api_key or DEFAULT_API_KEY)
    server = LocalAtdakServer(
        args.reply,
        api_key=api_key,
        host=args.host,
        port=args.port,
        latency=args.latency,
        chunk_size=args.chunk_size,
        native_tools=args.native_tools,
        record=not args.no_record,
    )

    async def serve() -> None:
        await server.start()
        print(f"Atdak-compatible server listening on {server.base_url}", flush=True)
        key = f"export ATDAK_API_KEY={api_key}" if api_key else "(any API key is accepted)"
        print(f"  export ATDAK_BASE_URL={server.base_url}\n  {key}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    try:
        _run_loop(serve())
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(
            f"atdak-agents local-server: cannot listen on {args.host}:{args.port}: {exc}",
            file=sys.stderr,
        )
        return 1
    return 0


def _run_loop(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run the command's coroutine, on uvloop when it is installed (faster, optional)."""
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        asyncio.run(coroutine)
        return
    uvloop.run(coroutine)


# --------------------------------------------------------------------------- main

_COMMANDS: tuple[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], Runner], ...] = (
    _add_local_server,
)


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Runner]]:
    """The argument parser and each command's runner by name."""
    parser = argparse.ArgumentParser(
        prog="atdak-agents",
        description="Declarative LLM agent graphs on the Atdak Chat Completions API.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    runners: dict[str, Runner] = {}
    for add in _COMMANDS:
        runner = add(subparsers)
        runners[next(reversed(subparsers.choices))] = runner
    return parser, runners


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``atdak-agents``; returns the exit code."""
    parser, runners = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return runners[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
