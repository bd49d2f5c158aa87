"""``atdak-agents trace view``: a JSONL trace as a self-contained HTML page."""

from __future__ import annotations

import argparse
import sys
import webbrowser
from pathlib import Path

from ._common import Runner, Subparsers

__all__ = ["add_command", "run"]


def add_command(subparsers: Subparsers) -> Runner:
    trace = subparsers.add_parser(
        "trace",
        help="look at a run's trace (trace view: an HTML timeline of a JSONL trace)",
        description="Work with JSONL traces written by JsonlSink.",
    )
    actions = trace.add_subparsers(dest="action", metavar="ACTION", required=True)
    view = actions.add_parser(
        "view",
        help="write a self-contained HTML page for a JSONL trace (no network needed)",
        description="Render a JSONL trace as one HTML file: a timeline of nodes, model calls "
        "and tool calls, tokens and cost per node, the context budget of each model call, "
        "totals, and every message and tool call inspectable.",
    )
    view.add_argument("trace", metavar="TRACE", help="the JSONL trace file")
    view.add_argument(
        "-o", "--output", metavar="HTML", help="where to write the page (default: TRACE.html)"
    )
    view.add_argument("--open", action="store_true", help="open the page in a web browser")
    return run


def run(args: argparse.Namespace) -> int:
    from ..tracing.viewer import write_html

    source = Path(args.trace)
    if not source.is_file():
        print(f"atdak-agents trace view: no trace file {source}", file=sys.stderr)
        return 1
    try:
        page = write_html(source, args.output)
    except ValueError as exc:  # a line that is not an event: the message names file and line
        print(f"atdak-agents trace view: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"atdak-agents trace view: cannot write {args.output}: {exc}", file=sys.stderr)
        return 1
    print(page)
    if args.open:
        webbrowser.open(page.resolve().as_uri())
    return 0
