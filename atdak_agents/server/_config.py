"""The server's settings: its own bearer keys, where runs are kept, and its limits."""

from __future__ import annotations

import hashlib
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..exceptions import InvalidParameterError, UsageError

__all__ = ["KEYS_ENV", "ServerConfig", "check_listen", "is_loopback", "key_id"]

KEYS_ENV = "ATDAK_SERVER_KEYS"
"""Environment variable with the server's bearer keys, separated by commas."""

ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class ServerConfig:
    """How a workflow server behaves. Every field has a safe default.

    - ``keys``: bearer keys clients must send (``Authorization: Bearer KEY``); ``None`` reads
      them from ``ATDAK_SERVER_KEYS`` (comma-separated). With no keys at all the server answers
      only on loopback (127.0.0.1, ::1) unless ``allow_unauthenticated=True``.
    - ``database``: the SQLite file holding the checkpoints (``None``: in memory, lost at
      exit); run events go to a file beside it, ``NAME.events.db``.
    - ``max_body_bytes``: largest request body; ``max_input_chars``: largest workflow input
      (the inputs as JSON, or the chat messages' text).
    - ``max_runs_per_key``: runs one key may have in progress at once (429 beyond).
    - ``event_buffer``: events of a live run kept in memory for reconnecting readers (older
      ones are read back from the database).
    - ``heartbeat``: seconds between keep-alive comments on an idle event stream.
    - ``shutdown_grace``: seconds a chat request in progress may still take when the server
      stops; after that every run stops at the end of its current step (checkpointed, and
      resumed when the server starts again if ``resume_on_start``).
    - ``lease_ttl``: seconds a crashed server's hold on a run lasts before another may resume it.
    """

    keys: Sequence[str] | None = field(default=None, repr=False)
    allow_unauthenticated: bool = False
    database: str | os.PathLike[str] | None = ".atdak/server.db"
    max_body_bytes: int = 1_048_576
    max_input_chars: int = 100_000
    max_runs_per_key: int = 32
    event_buffer: int = 2000
    heartbeat: float = 15.0
    shutdown_grace: float = 10.0
    lease_ttl: float = 60.0
    resume_on_start: bool = True

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_input_chars", "max_runs_per_key", "event_buffer"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidParameterError(name, value, "an integer >= 1")
        for name in ("heartbeat", "shutdown_grace", "lease_ttl"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise InvalidParameterError(name, value, "seconds, > 0")
        if isinstance(self.keys, str):
            raise InvalidParameterError("keys", "<a string>", "a list of keys, e.g. ['k1', 'k2']")

    def server_keys(self) -> tuple[str, ...]:
        """The bearer keys in force: ``keys`` or, when it is ``None``, ``ATDAK_SERVER_KEYS``."""
        raw = self.keys if self.keys is not None else os.environ.get(KEYS_ENV, "").split(",")
        keys = tuple(k.strip() for k in raw if k and k.strip())
        short = [k for k in keys if len(k) < 16]
        if short:
            raise UsageError(
                f"{len(short)} server key(s) are shorter than 16 characters; use long random "
                "keys (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        return keys

    def database_path(self) -> Path | None:
        return Path(self.database) if self.database is not None else None

    def events_path(self) -> Path | None:
        """The SQLite file of run events: ``server.db`` → ``server.events.db``."""
        path = self.database_path()
        return path.with_name(f"{path.stem}.events{path.suffix}") if path is not None else None


def key_id(key: str | None) -> str:
    """A stable, non-secret name for a key (for limits and logs): ``key-`` and 12 hex digits."""
    if key is None:
        return ANONYMOUS
    return "key-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address or ``localhost``."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_listen(host: str, config: ServerConfig) -> None:
    """Refuse to listen beyond loopback without server keys (unless explicitly allowed)."""
    if is_loopback(host) or config.allow_unauthenticated or config.server_keys():
        return
    raise UsageError(
        f"refusing to listen on {host} without server keys: anyone who can reach it could run "
        f"your workflows on your Atdak account. Set {KEYS_ENV}=KEY1,KEY2 (or "
        "ServerConfig(keys=[...])), listen on 127.0.0.1, or allow it explicitly "
        "(--allow-unauthenticated / allow_unauthenticated=True)"
    )
