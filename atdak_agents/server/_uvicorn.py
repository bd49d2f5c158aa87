"""Running a workflow app under uvicorn: in the foreground (``atdak-agents serve``) or in a
background thread (:class:`BackgroundServer`, for tests, notebooks and docs).

Both stop gracefully: on SIGINT/SIGTERM (or ``stop()``) the server stops accepting, ends event
streams (clients reconnect later with ``Last-Event-ID``), gives chat requests in progress
``shutdown_grace`` seconds, stops every run at the end of its current step — checkpointed — and
closes its stores.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import uvicorn

from ..exceptions import UsageError
from ._config import ServerConfig, check_listen

__all__ = ["BackgroundServer", "bind", "serve"]


class _GracefulServer(uvicorn.Server):
    """uvicorn's server, telling the app it is stopping *before* waiting for open connections
    (so live event streams end instead of holding the shutdown)."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        service = getattr(self.config.app, "service", None)
        if service is not None:
            service.begin_shutdown()
        await super().shutdown(sockets=sockets)


def bind(host: str, port: int, app: Any) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one), refusing a non-loopback host
    when the app has no server keys and was not told to allow it."""
    service = getattr(app, "service", None)
    config: ServerConfig | None = getattr(service, "config", None)
    if config is not None:
        check_listen(host, config)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    return sock


def _config(app: Any, log_level: str, access_log: bool) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        log_level=log_level,
        access_log=access_log,
        lifespan="on",
        timeout_keep_alive=30,
        timeout_graceful_shutdown=None,
        backlog=2048,
    )


async def serve(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
    access_log: bool = True,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve ``app`` until SIGINT/SIGTERM, then stop gracefully. ``on_ready(url)`` is called
    once it listens."""
    sock = bind(host, port, app)
    server = _GracefulServer(_config(app, log_level, access_log))
    if on_ready is not None:
        url = _url(host, sock.getsockname()[1])
        original = server.startup

        async def startup(sockets: list[socket.socket] | None = None) -> None:
            await original(sockets=sockets)
            if server.started:
                on_ready(url)

        server.startup = startup  # type: ignore[method-assign]
    await server.serve(sockets=[sock])


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class BackgroundServer:
    """An ASGI app served by uvicorn on a background thread::

    with BackgroundServer(app) as server:       # 127.0.0.1, a free port
        httpx.get(f"{server.url}/healthz")
    """

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
        startup_timeout: float = 30.0,
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.log_level = log_level
        self.startup_timeout = startup_timeout
        self._server: _GracefulServer | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` (the port is known once started)."""
        return _url(self.host, self.port)

    def start(self) -> BackgroundServer:
        sock = bind(self.host, self.port, self.app)
        self.port = sock.getsockname()[1]
        self._server = server = _GracefulServer(_config(self.app, self.log_level, False))
        self._thread = threading.Thread(
            target=self._run, args=(server, sock), name="atdak-server", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise UsageError(f"the server did not start on {self.url}: {self._error!r}")
            time.sleep(0.005)
        return self

    def _run(self, server: _GracefulServer, sock: socket.socket) -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # reported by start()
            self._error = exc
        finally:
            sock.close()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop gracefully (runs stop at a step boundary, checkpointed) and wait for it."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self._server = None
        self._thread = None

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
