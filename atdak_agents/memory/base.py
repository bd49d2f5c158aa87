"""The memory store interface: conversation history kept per session (thread) id.

A memory store keeps the messages of many conversations, each under a *session id* (a user, a
thread, a ticket: any string). Every backend implements :class:`MemoryStore`; the shared test
suite (``tests/memory/test_memory_conformance.py``, with the backend added to
``BACKENDS`` in ``tests/memory/conftest.py``) pins its behaviour, so a new backend is done when it
passes that suite.

Writing a backend (Redis, Postgres, ...) means implementing seven coroutines:

``append(session_id, messages)``
    Store one message or many, **atomically** (all or none), after everything already in the
    session, and return them as :class:`StoredMessage` records. Each record gets an ``id`` that
    is unique in the store and larger than every id handed out before (so ``after_id`` is a
    valid cursor), ``created_at`` (``time.time()`` unless the message's ``metadata`` already
    holds a ``"created_at"`` number) and ``tokens`` (see :func:`message_tokens`). ``metadata``
    must survive the round trip as JSON; the ``"exchange"`` and ``"kind"`` keys of
    :mod:`atdak_agents.messages` are kept as they are.
``load(session_id, *, last=None, since=None, after_id=None)``
    The session's messages in the order they were appended (oldest first), optionally only
    those with ``id > after_id`` and ``created_at >= since``, and of those only the newest
    ``last``. An unknown session loads as ``[]``.
``clear(session_id)``
    Remove the session's messages, keep the session (listed with no messages); return how
    many were removed.
``delete_session(session_id)``
    Remove the session and its messages; return whether it existed.
``list_sessions(limit=None)``
    :class:`SessionInfo` of every session, most recently updated first.
``search(query, *, session_id=None, limit=10)``
    Full-text recall over one session's messages or all of them, best first, as
    :class:`SearchHit`. Matching follows :mod:`atdak_agents.memory._search` (CJK bigrams,
    words elsewhere, terms OR-ed, BM25 ranking) so that results agree across backends.
``close()``
    Release connections and threads. Stores are async context managers that close on exit.

A backend must never return one session's messages for another, must be safe to use from
many tasks at once, and must not block the event loop for longer than a small, bounded piece
of work (run blocking client libraries in a worker thread).
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

from pydantic import Field

from ..context.tokens import count_tokens
from ..exceptions import InvalidParameterError, UsageError
from ..messages import Message, MessageLike

if TYPE_CHECKING:
    from ._sync import SyncMemoryStore

__all__ = [
    "ConversationMemory",
    "MemoryStore",
    "SearchHit",
    "SessionInfo",
    "StoredMessage",
    "message_tokens",
]

_Store = TypeVar("_Store", bound="MemoryStore")


class StoredMessage(Message):
    """A message as kept by a memory store: the :class:`~atdak_agents.Message` plus its record.

    It *is* a ``Message`` (send it to a model as it is); the record fields are never sent:

    - ``id``: unique in the store, increasing in append order;
    - ``session_id``: the session it belongs to;
    - ``created_at``: UNIX timestamp of the append (also in ``metadata["created_at"]``);
    - ``tokens``: its estimated tokens as counted when stored (see :func:`message_tokens`).
    """

    id: int = Field(exclude=True)
    session_id: str = Field(exclude=True)
    created_at: float = Field(exclude=True)
    tokens: int = Field(default=0, exclude=True)


@dataclass(frozen=True)
class SessionInfo:
    """One session of a store: when it started, when it last changed, how much it holds."""

    session_id: str
    created_at: float
    updated_at: float
    message_count: int
    token_count: int


@dataclass(frozen=True)
class SearchHit:
    """A message found by :meth:`MemoryStore.search`; a higher ``score`` is a better match."""

    message: StoredMessage
    score: float


def message_tokens(messages: Sequence[Message], model: str | None = None) -> list[int]:
    """Tokens each message adds to a request for ``model``, via ``count_tokens``.

    That is the message's own cost in a chat request (its text plus per-message overhead),
    without the fixed overhead of the request itself.
    """
    base = count_tokens([], model=model)
    return [count_tokens([m], model=model) - base for m in messages]


@runtime_checkable
class ConversationMemory(Protocol):
    """What an agent needs from memory: stores and memory views both provide it."""

    async def append(
        self, session_id: str, messages: MessageLike | Iterable[MessageLike]
    ) -> list[StoredMessage]: ...

    async def load(self, session_id: str) -> list[StoredMessage]: ...


class MemoryStore(abc.ABC):
    """Conversation history per session id; the interface every backend implements.

    All operations are coroutines and safe to call from many tasks at once. Scripts without an
    event loop use :meth:`sync`: ``with SQLiteStore("chat.db").sync() as memory: ...``.
    """

    @abc.abstractmethod
    async def append(
        self, session_id: str, messages: MessageLike | Iterable[MessageLike]
    ) -> list[StoredMessage]:
        """Store one message or several, atomically, at the end of the session."""

    @abc.abstractmethod
    async def load(
        self,
        session_id: str,
        *,
        last: int | None = None,
        since: float | None = None,
        after_id: int | None = None,
    ) -> list[StoredMessage]:
        """The session's messages, oldest first (``last``: only the newest that many;
        ``since``: only those created at or after that UNIX time; ``after_id``: only those
        stored after that message)."""

    @abc.abstractmethod
    async def clear(self, session_id: str) -> int:
        """Remove the session's messages (the session stays listed); returns how many."""

    @abc.abstractmethod
    async def delete_session(self, session_id: str) -> bool:
        """Remove the session and all its messages; returns whether it existed."""

    @abc.abstractmethod
    async def list_sessions(self, limit: int | None = None) -> list[SessionInfo]:
        """Every session (or the ``limit`` most recent), most recently updated first."""

    @abc.abstractmethod
    async def search(
        self, query: str, *, session_id: str | None = None, limit: int = 10
    ) -> list[SearchHit]:
        """Messages matching ``query`` in one session (or all sessions), best match first."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the store's resources; later calls raise."""

    def sync(self) -> SyncMemoryStore:
        """A blocking facade over this store, for scripts without an event loop."""
        from ._sync import SyncMemoryStore

        return SyncMemoryStore(self)

    async def __aenter__(self: _Store) -> _Store:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


# --------------------------------------------------------------------------- argument checks


def check_session_id(session_id: object, parameter: str = "session_id") -> str:
    """``session_id`` if it is a non-empty string, else an :class:`InvalidParameterError`."""
    if not isinstance(session_id, str) or not session_id:
        raise InvalidParameterError(
            parameter, session_id, "a non-empty string naming the conversation, e.g. 'user-42'"
        )
    return session_id


def check_count(value: int | None, parameter: str, minimum: int = 0) -> int | None:
    """``value`` if it is ``None`` or an integer >= ``minimum``."""
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int) or value < minimum
    ):
        raise InvalidParameterError(parameter, value, f"None or an integer >= {minimum}")
    return value


def closed_error(store: str) -> UsageError:
    """The error for an operation on a store that was closed."""
    return UsageError(f"{store} is closed: create a new store (or keep it open until done)")
