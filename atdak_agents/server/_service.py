"""The server's state and lifecycle: the served workflows, the shared upstream client(s), the
stores, the run manager, and who may call it."""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeAlias

import orjson
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import Scope

from ..exceptions import UsageError
from ..graph.checkpoint import Checkpointer, InMemoryCheckpointer
from ..graph.engine import RunResult
from ..graph.spec import ProviderSpec, StoreSpec
from ..graph.sqlite_checkpoint import SQLiteCheckpointer
from ..providers.base import ChatModel
from ..tracing.redact import Redactor
from ._config import KEYS_ENV, ServerConfig, is_loopback, key_id
from ._errors import HTTPError
from ._events import EventStore, InMemoryEventStore, SQLiteEventStore
from ._runs import RunManager
from ._served import ServedWorkflow

__all__ = ["Upstream", "WorkflowService"]

Upstream: TypeAlias = "ChatModel | ProviderSpec"
"""A model endpoint: client settings (the server opens the client) or a chat model."""

log = logging.getLogger("atdak_agents.server")

_API_KEY_ENV = "ATDAK_API_KEY"


class WorkflowService:
    """Everything a workflow server holds; ``start()`` opens it, ``close()`` stops it.

    ``provider``: the model endpoint every run uses, overriding the workflows' ``provider:``
    sections — a :class:`~atdak_agents.graph.spec.ProviderSpec` (the service opens one pooled
    client and closes it at the end) or any chat model (yours to close); or a mapping from
    workflow names to those, for some workflows only. By default one pooled
    :class:`~atdak_agents.AsyncAtdakClient` from ``ATDAK_API_KEY``/``ATDAK_BASE_URL`` is shared
    by all runs, plus one per distinct ``provider:`` section. ``memory``: the store of workflows
    that declare none.
    """

    def __init__(
        self,
        workflows: Mapping[str, ServedWorkflow],
        config: ServerConfig,
        *,
        provider: Upstream | Mapping[str, Upstream] | None = None,
        memory: Any = None,
        secrets: Iterable[str] = (),
    ) -> None:
        self.workflows = dict(workflows)
        self.config = config
        self.keys = config.server_keys()
        given = provider.values() if isinstance(provider, Mapping) else [provider]
        upstream = [p.api_key for p in given if isinstance(p, ProviderSpec) and p.api_key]
        found = [*self.keys, *secrets, *upstream, *_env_secrets(self.workflows)]
        self.redactor = Redactor([s for s in found if s])
        self._provider = provider
        self._memory = memory
        self._owned: list[Any] = []  # clients and stores this service opened (closed at the end)
        self._manager: RunManager | None = None
        self._starting = asyncio.Lock()

    # ------------------------------------------------------------------ lifecycle

    @property
    def manager(self) -> RunManager:
        if self._manager is None:
            raise HTTPError(503, "the server is starting; retry in a moment", code="starting")
        return self._manager

    @property
    def started(self) -> bool:
        return self._manager is not None

    async def start(self) -> None:
        """Open the stores and clients and resume runs a previous server left (idempotent)."""
        async with self._starting:
            if self._manager is not None:
                return
            checkpointer, events = self._stores()
            self._open_providers()
            self._open_memory()
            self._manager = RunManager(
                self.workflows, checkpointer, events, self.config, self.redactor.bytes
            )
            if self.config.resume_on_start:
                resumed = await self._manager.resume_interrupted()
                if resumed:
                    log.info("resuming %d runs left by a previous server", resumed)

    def _stores(self) -> tuple[Checkpointer, EventStore]:
        path, events_path = self.config.database_path(), self.config.events_path()
        if path is None or events_path is None:
            checkpointer: Checkpointer = InMemoryCheckpointer(lease_ttl=self.config.lease_ttl)
            events: EventStore = InMemoryEventStore()
        else:
            checkpointer = SQLiteCheckpointer(path, lease_ttl=self.config.lease_ttl)
            events = SQLiteEventStore(os.fspath(events_path))
        self._owned += [events, checkpointer]
        return checkpointer, events

    def _open_providers(self) -> None:
        """One pooled client per distinct endpoint, shared by every run that uses it."""
        shared: dict[Any, ChatModel] = {}
        for served in self.workflows.values():
            given = self._provider
            if isinstance(given, Mapping):
                given = given.get(served.name)
            if given is not None and not isinstance(given, ProviderSpec):
                served.provider = given  # a chat model the caller owns
                continue
            settings = given if given is not None else served.provider_spec
            key = _provider_key(settings)
            if key not in shared:
                shared[key] = self._client(settings)
            served.provider = shared[key]

    def _client(self, settings: ProviderSpec | None) -> ChatModel:
        from ..providers.client import AsyncAtdakClient

        if settings is None:
            client = AsyncAtdakClient()
        else:
            client = AsyncAtdakClient(
                api_key=settings.api_key,
                base_url=settings.base_url,
                timeout=settings.timeout,
                max_retries=2 if settings.max_retries is None else settings.max_retries,
                default_headers=settings.headers or None,
            )
        self._owned.append(client)
        return client

    def _open_memory(self) -> None:
        stores: dict[Any, Any] = {}
        for served in self.workflows.values():
            spec = served.memory_spec
            if spec is None:
                served.memory = self._memory
                continue
            key = _store_key(spec, served.base_dir)
            if key not in stores:
                stores[key] = self._memory_store(spec, served.base_dir)
            served.memory = stores[key]

    def _memory_store(self, spec: StoreSpec, base_dir: Path | None) -> Any:
        from ..memory import InMemoryStore, SQLiteStore

        store: Any
        if spec.store == "memory":
            store = InMemoryStore()
        else:
            store = SQLiteStore((base_dir or Path.cwd()) / spec.path)
        self._owned.append(store)
        return store

    def begin_shutdown(self) -> None:
        """Refuse new runs and end event streams; runs stop at their next step boundary."""
        if self._manager is not None:
            self._manager.begin_shutdown()

    async def close(self) -> None:
        """Stop every run at a step boundary (checkpointed), then close clients and stores."""
        if self._manager is not None:
            await self._manager.close()
        for thing in reversed(self._owned):
            try:
                await thing.close()
            except Exception as exc:  # closing the rest matters more
                log.error("closing %s: %s", type(thing).__name__, exc)
        self._owned.clear()
        self._manager = None

    # ------------------------------------------------------------------ from Python

    async def run(
        self,
        workflow: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        session_id: str | None = None,
    ) -> RunResult:
        """Run a served workflow from code in the same process — with the server's pooled
        client, checkpoints and event log, as any run — and return its result."""
        await self.start()
        manager = self.manager
        try:
            served = manager.workflow(workflow)
            served.check_session(session_id)
            live = await manager.start(
                served,
                inputs or {},
                session_id=session_id,
                key_id="in-process",
                tokens=False,
                kind="api",
            )
        except HTTPError as exc:
            raise UsageError(exc.message) from None
        return await asyncio.shield(live.finished)

    # ------------------------------------------------------------------ callers

    def authenticate(self, scope: Scope) -> str:
        """The calling key's id; a 401/403 :class:`HTTPError` when it may not call."""
        if not self.keys:
            if self.config.allow_unauthenticated or _from_loopback(scope):
                return key_id(None)
            raise HTTPError(
                403,
                "this server has no keys, so it only answers on loopback; set "
                f"{KEYS_ENV} (or ServerConfig(keys=[...])), or allow_unauthenticated=True",
                code="no_server_keys",
            )
        header = Headers(scope=scope).get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HTTPError(
                401,
                "missing bearer key: send `Authorization: Bearer <server key>`",
                code="missing_key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        given = token.strip().encode("utf-8")
        for key in self.keys:
            if hmac.compare_digest(given, key.encode("utf-8")):
                return key_id(key)
        raise HTTPError(
            401, "invalid server key", code="invalid_key", headers={"WWW-Authenticate": "Bearer"}
        )

    def mask(self, text: str, served: ServedWorkflow | None = None) -> str:
        """``text`` with every secret this server knows masked."""
        for redactor in self._redactors(served):
            text = redactor.text(text)
        return text

    def mask_bytes(self, data: bytes) -> bytes:
        """``data`` (UTF-8) with every secret of the server and of every workflow masked."""
        for redactor in self._redactors(None):
            data = redactor.bytes(data)
        return data

    def respond(
        self, payload: Any, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> Response:
        """A JSON answer, with every secret masked."""
        body = orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS, default=str)
        return Response(
            self.mask_bytes(body),
            status_code=status,
            headers=dict(headers or {}),
            media_type="application/json",
        )

    def _redactors(self, served: ServedWorkflow | None) -> list[Redactor]:
        if served is not None:
            return [self.redactor, *([served.redactor] if served.redactor else [])]
        return [self.redactor, *(w.redactor for w in self.workflows.values() if w.redactor)]


def _from_loopback(scope: Scope) -> bool:
    server = scope.get("server")
    return server is None or is_loopback(str(server[0]))


def _env_secrets(workflows: Mapping[str, ServedWorkflow]) -> list[str]:
    """The upstream keys this server may hold: ``ATDAK_API_KEY`` and ``provider:`` keys."""
    found = [os.environ.get(_API_KEY_ENV, "")]
    for served in workflows.values():
        settings = served.provider_spec
        if settings is not None and settings.api_key:
            found.append(settings.api_key)
    return [s for s in found if s]


def _provider_key(settings: ProviderSpec | None) -> Any:
    if settings is None:
        return None
    headers = tuple(sorted(settings.headers.items()))
    return (settings.base_url, settings.api_key, settings.timeout, settings.max_retries, headers)


def _store_key(spec: StoreSpec, base_dir: Path | None) -> Any:
    if spec.store == "memory":
        return ("memory", id(spec))
    return ("sqlite", ((base_dir or Path.cwd()) / spec.path).resolve())
