"""pytest plugin (registered as ``atdak_agents``): blocks real network requests in tests.

Any socket connection to a host other than loopback fails with a clear message unless the test
opts in with ``@pytest.mark.network``. Loopback stays open, so tests can use the local
Atdak-compatible server over real HTTP: the ``atdak_server`` fixture gives each test its own
(on an ephemeral port, in a background thread), ``atdak_server_module`` one per test module;
``scripted_model`` makes scripted chat models that must use their whole script by the test's end.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .scripted import ScriptedModel, ScriptStep
    from .server import LocalAtdakServer

__all__ = [
    "NetworkBlockedError",
    "atdak_server",
    "atdak_server_module",
    "block_network",
    "scripted_model",
]

_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "ip6-localhost"}


class NetworkBlockedError(RuntimeError):
    """A test tried to reach a real host; mark it ``@pytest.mark.network`` to allow it."""


def _host_of(address: Any) -> str | None:
    if isinstance(address, tuple) and address:
        return str(address[0])
    return None  # unix sockets and the like are local


def _is_loopback(host: str) -> bool:
    return host in _LOOPBACK_NAMES or host.startswith("127.") or host.startswith("::ffff:127.")


class block_network:
    """Context manager that refuses socket connections beyond loopback while active."""

    def __enter__(self) -> block_network:
        self._connect = socket.socket.connect
        self._connect_ex = socket.socket.connect_ex
        original_connect, original_connect_ex = self._connect, self._connect_ex

        def guarded_connect(sock: socket.socket, address: Any) -> None:
            _check(address)
            original_connect(sock, address)

        def guarded_connect_ex(sock: socket.socket, address: Any) -> int:
            _check(address)
            return original_connect_ex(sock, address)

        socket.socket.connect = guarded_connect  # type: ignore[method-assign,assignment]
        socket.socket.connect_ex = guarded_connect_ex  # type: ignore[method-assign,assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        socket.socket.connect = self._connect  # type: ignore[method-assign]
        socket.socket.connect_ex = self._connect_ex  # type: ignore[method-assign]


def _check(address: Any) -> None:
    host = _host_of(address)
    if host is not None and not _is_loopback(host):
        raise NetworkBlockedError(
            f"real network request to {host!r} blocked in tests: use the local Atdak server "
            "(atdak_agents.testing) or mark the test @pytest.mark.network to allow it"
        )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "network: allow real network requests beyond loopback in this test"
    )


@pytest.fixture(autouse=True)
def _atdak_block_network(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker("network") is not None:
        yield
        return
    with block_network():
        yield


@pytest.fixture
def atdak_server() -> Iterator[LocalAtdakServer]:
    """A local Atdak-compatible server for one test (echoes until given a responder).

    Set ``atdak_server.responder = [...]`` to script it; point a client at it with
    ``atdak_server.client()`` / ``atdak_server.async_client()``.
    """
    from .server import LocalAtdakServer

    with LocalAtdakServer() as server:
        yield server


@pytest.fixture(scope="module")
def atdak_server_module() -> Iterator[LocalAtdakServer]:
    """One local server shared by a test module; call ``reset(responder)`` at each test's start."""
    from .server import LocalAtdakServer

    with LocalAtdakServer() as server:
        yield server


@pytest.fixture
def scripted_model() -> Iterator[Callable[..., ScriptedModel]]:
    """A factory of :class:`~atdak_agents.testing.ScriptedModel`; at the end of the test every
    model it made must have used its whole script (an unused step fails the test)."""
    from .scripted import ScriptedModel

    made: list[ScriptedModel] = []

    def make(steps: Iterable[ScriptStep], **options: Any) -> ScriptedModel:
        model = ScriptedModel(steps, **options)
        made.append(model)
        return model

    yield make
    for model in made:
        model.assert_done()
