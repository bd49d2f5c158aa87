"""Test doubles for atdak_agents users and for its own suite.

- :class:`LocalAtdakServer`: a real Atdak-compatible HTTP server on 127.0.0.1, answering from a
  responder (:class:`Reply`, :class:`ScriptedResponder`, :class:`EchoResponder`, or any
  function of the :class:`ReceivedRequest`), with fault injection.
- :class:`ScriptedModel`: an in-process chat model answering from a script, loud on an
  unexpected call (:class:`ScriptError`) or an unused step.
- :class:`block_network`: refuses connections beyond loopback (the pytest plugin applies it to
  every test; ``@pytest.mark.network`` opts out). The plugin also provides the ``atdak_server``
  fixture.

Names are imported lazily: importing this package (as pytest does for the plugin) loads nothing
heavy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .pytest_plugin import NetworkBlockedError, block_network
    from .responders import (
        EchoResponder,
        ReceivedRequest,
        Reply,
        ScriptedResponder,
        rate_limited,
        server_error,
    )
    from .scripted import ScriptedModel, ScriptedStream, ScriptError
    from .server import DEFAULT_API_KEY, LocalAtdakServer

_EXPORTS: dict[str, str] = {
    "DEFAULT_API_KEY": "server",
    "EchoResponder": "responders",
    "LocalAtdakServer": "server",
    "NetworkBlockedError": "pytest_plugin",
    "ReceivedRequest": "responders",
    "Reply": "responders",
    "ScriptError": "scripted",
    "ScriptedModel": "scripted",
    "ScriptedResponder": "responders",
    "ScriptedStream": "scripted",
    "block_network": "pytest_plugin",
    "rate_limited": "responders",
    "server_error": "responders",
}

__all__ = [
    "DEFAULT_API_KEY",
    "EchoResponder",
    "LocalAtdakServer",
    "NetworkBlockedError",
    "ReceivedRequest",
    "Reply",
    "ScriptError",
    "ScriptedModel",
    "ScriptedResponder",
    "ScriptedStream",
    "block_network",
    "rate_limited",
    "server_error",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'atdak_agents.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
