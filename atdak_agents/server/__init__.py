"""Serving workflows over HTTP: an Atdak/OpenAI-compatible chat endpoint, a run API with live
event streams, keys and limits. Needs the ``server`` extra (``pip install "atdak-agents[server]"``).

::

    from atdak_agents.server import create_app

    app = create_app("workflows/")          # then: uvicorn mymodule:app, or
                                            #   atdak-agents serve workflows/

See ``docs/services.md``.
"""

try:
    import starlette  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        f"atdak_agents.server needs the `server` extra ({exc.name} is missing): "
        'pip install "atdak-agents[server]"'
    ) from exc

from ._app import WorkflowApp, create_app
from ._chatmap import ChatMapping
from ._config import KEYS_ENV, ServerConfig
from ._service import WorkflowService
from ._uvicorn import BackgroundServer, serve

__all__ = [
    "KEYS_ENV",
    "BackgroundServer",
    "ChatMapping",
    "ServerConfig",
    "WorkflowApp",
    "WorkflowService",
    "create_app",
    "serve",
]
