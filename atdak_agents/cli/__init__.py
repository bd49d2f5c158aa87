"""The ``atdak-agents`` command line — the only part of atdak_agents that prints.

One module per command (or group of commands) in this package, each with
``add_command(subparsers) -> runner`` declaring its arguments and a runner
``(args) -> exit code``; :data:`COMMANDS` lists them in help order. Exit codes: 0 done, 1 workflow
or input error, 2 usage error, 3 the run failed (at the provider or elsewhere), 4 waiting for
human input, 5 stopped by a run-wide limit, 130 stopped by Ctrl-C (see ``docs/cli.md``).
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

from ._common import Runner

__all__ = ["COMMANDS", "build_parser", "main"]

# command modules, in the order `atdak-agents --help` lists them (imported only when needed)
COMMANDS: tuple[str, ...] = ("run", "runs", "serve", "workflow", "local_server", "trace")


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Runner]]:
    """The argument parser and each command's runner by name."""
    parser = argparse.ArgumentParser(
        prog="atdak-agents",
        description="Declarative LLM agent graphs on the Atdak Chat Completions API.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    runners: dict[str, Runner] = {}
    for name in COMMANDS:
        module = importlib.import_module(f".{name}", __name__)
        before = set(subparsers.choices)
        runner = module.add_command(subparsers)
        for added in set(subparsers.choices) - before:
            runners[added] = runner
    return parser, runners


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``atdak-agents``; returns the exit code."""
    parser, runners = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return runners[args.command](args)
