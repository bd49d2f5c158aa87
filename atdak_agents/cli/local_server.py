"""``atdak-agents local-server``: the local Atdak-compatible server, until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import sys

from ._common import Runner, Subparsers, run_loop

__all__ = ["add_command", "run"]


# --------------------------------------------------------------------------- local-server


def add_command(subparsers: Subparsers) -> Runner:
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
    return run


def run(args: argparse.Namespace) -> int:
    from ..testing.server import DEFAULT_API_KEY, LocalAtdakServer

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
        run_loop(serve())
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(
            f"atdak-agents local-server: cannot listen on {args.host}:{args.port}: {exc}",
            file=sys.stderr,
        )
        return 1
    return 0
