"""Memory views: which stored messages to bring back, over any :class:`MemoryStore`.

A view is not a store: it keeps nothing of its own. ``append`` goes straight to the store;
``load(session_id)`` returns a selection of the session, always in whole *turns*: a tool call
is never separated from its results (messages sharing a ``metadata["exchange"]`` id, and
``tool`` role messages with the call before them, stay together).

- :class:`WindowedMemory`: the newest ``last`` messages.
- :class:`TokenBudgetMemory`: the newest turns that fit ``max_tokens``.
- :class:`SummarisingMemory`: a summary of older turns (written by a chat model and appended to
  the session, so it is paid for once) followed by the newest turns, within ``max_tokens``.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterable, Sequence

from ..exceptions import InvalidParameterError, ModelOutputError
from ..messages import EXCHANGE, KIND, Message, MessageLike
from ..providers._wire import ChatCompletionRequest
from ..providers.base import ChatModel
from .base import MemoryStore, StoredMessage, check_count, message_tokens

__all__ = [
    "DEFAULT_SUMMARY_INSTRUCTIONS",
    "SUMMARY_PREFIX",
    "SummarisingMemory",
    "TokenBudgetMemory",
    "WindowedMemory",
    "group_turns",
]

SUMMARY_PREFIX = "Summary of the earlier conversation:\n"
SUMMARY_THROUGH = "summary_through"
DEFAULT_SUMMARY_INSTRUCTIONS = (
    "You maintain the memory of a conversation between a user and an assistant. Write a concise "
    "summary that keeps every fact, name, number, decision, preference and open question needed "
    "to continue the conversation. Merge the summary so far with the new turns. Write in the "
    "language the conversation uses. Reply with the summary only."
)


def group_turns(messages: Sequence[Message]) -> list[list[Message]]:
    """Consecutive messages grouped into turns that must be kept or dropped together."""
    groups: list[list[Message]] = []
    for message in messages:
        exchange = message.metadata.get(EXCHANGE)
        previous = groups[-1][-1] if groups else None
        joins = previous is not None and (
            message.role == "tool"
            or (exchange is not None and previous.metadata.get(EXCHANGE) == exchange)
        )
        if joins:
            groups[-1].append(message)
        else:
            groups.append([message])
    return groups


def _flatten(groups: Iterable[list[Message]]) -> list[StoredMessage]:
    return [m for group in groups for m in group if isinstance(m, StoredMessage)]


def _positive(value: int, parameter: str) -> int:
    check_count(value, parameter, minimum=1)
    return value


class _View:
    """The part every view shares: the store, and ``append`` straight to it."""

    def __init__(self, store: MemoryStore) -> None:
        if not isinstance(store, MemoryStore):
            raise InvalidParameterError("store", store, "a MemoryStore such as SQLiteStore(...)")
        self.store = store

    async def append(
        self, session_id: str, messages: MessageLike | Iterable[MessageLike]
    ) -> list[StoredMessage]:
        """Store messages in the underlying store (see :meth:`MemoryStore.append`)."""
        return await self.store.append(session_id, messages)


class WindowedMemory(_View):
    """The newest ``last`` messages of a session (fewer when that would split a turn)."""

    def __init__(self, store: MemoryStore, *, last: int) -> None:
        super().__init__(store)
        self.last = _positive(last, "last")

    def __repr__(self) -> str:
        return f"WindowedMemory({self.store!r}, last={self.last})"

    async def load(self, session_id: str) -> list[StoredMessage]:
        """The newest whole turns among the last ``last`` messages, oldest first."""
        messages = await self.store.load(session_id, last=self.last + 1)
        groups = group_turns(messages)
        if len(messages) > self.last:  # the oldest turn reaches outside the window
            groups = groups[1:]
        return _flatten(groups)


class TokenBudgetMemory(_View):
    """The newest whole turns of a session whose tokens add up to at most ``max_tokens``.

    Token counts are those stored with each message; pass ``model`` to count for a specific
    model instead. Only as many messages as needed are read (in growing pages), so the cost
    follows the size of the result, not of the session.
    """

    def __init__(self, store: MemoryStore, *, max_tokens: int, model: str | None = None) -> None:
        super().__init__(store)
        self.max_tokens = _positive(max_tokens, "max_tokens")
        self.model = model

    def __repr__(self) -> str:
        return f"TokenBudgetMemory({self.store!r}, max_tokens={self.max_tokens})"

    async def load(self, session_id: str) -> list[StoredMessage]:
        """The newest whole turns within ``max_tokens``, oldest first."""
        page = 64
        while True:
            messages = await self.store.load(session_id, last=page)
            whole = len(messages) < page
            chosen, full = newest_within(messages, self.max_tokens, whole, self.model)
            if full or whole:
                return chosen
            page *= 4


def newest_within(
    messages: Sequence[StoredMessage], budget: int, whole: bool, model: str | None = None
) -> tuple[list[StoredMessage], bool]:
    """The newest whole turns of ``messages`` within ``budget`` tokens, and whether the budget
    was reached. When ``messages`` is not the whole session (``whole=False``) its oldest turn
    may be cut, so it is never chosen."""
    groups = group_turns(messages)
    candidates = groups if whole else groups[1:]
    chosen: list[list[Message]] = []
    total = 0
    for group in reversed(candidates):
        total += sum(_tokens(group, model))
        if total > budget:
            return _flatten(reversed(chosen)), True
        chosen.append(group)
    return _flatten(reversed(chosen)), False


def _tokens(messages: Sequence[Message], model: str | None) -> list[int]:
    if model is None:
        return [m.tokens if isinstance(m, StoredMessage) else 0 for m in messages]
    return message_tokens(messages, model)


class SummarisingMemory(_View):
    """A running summary of older turns, then the newest turns, within ``max_tokens``.

    When a session outgrows ``max_tokens``, the oldest turns (all but the newest
    ``keep_tokens``) are summarised by ``model`` (any :class:`~atdak_agents.ChatModel`, asked
    for ``model_name``; a cheap model is fine) together with the previous summary. The
    summary is appended to the session as a ``system`` message with
    ``metadata={"kind": "summary", "summary_through": <id of the last message it covers>}``,
    so it survives restarts and is computed once, not on every load. The store's own
    ``load`` still returns every original message.

    Long stretches are summarised in pieces of at most ``chunk_tokens``.
    """

    def __init__(
        self,
        store: MemoryStore,
        model: ChatModel,
        *,
        model_name: str,
        max_tokens: int,
        keep_tokens: int | None = None,
        summary_max_tokens: int | None = None,
        chunk_tokens: int = 6000,
        instructions: str = DEFAULT_SUMMARY_INSTRUCTIONS,
    ) -> None:
        super().__init__(store)
        if not isinstance(model, ChatModel):
            raise InvalidParameterError("model", model, "a ChatModel, e.g. AsyncAtdakClient()")
        self.model = model
        self.model_name = model_name
        self.max_tokens = _positive(max_tokens, "max_tokens")
        self.keep_tokens = _positive(keep_tokens or max_tokens // 2, "keep_tokens")
        self.summary_max_tokens = _positive(
            summary_max_tokens or min(1024, max_tokens // 4), "summary_max_tokens"
        )
        if self.keep_tokens + self.summary_max_tokens > self.max_tokens:
            raise InvalidParameterError(
                "keep_tokens",
                self.keep_tokens,
                f"at most max_tokens - summary_max_tokens = "
                f"{self.max_tokens - self.summary_max_tokens}, so that a summary and the kept "
                "turns fit max_tokens together",
            )
        self.chunk_tokens = _positive(chunk_tokens, "chunk_tokens")
        self.instructions = instructions
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._start: dict[str, int] = {}  # session -> last message id covered by its summary

    def __repr__(self) -> str:
        return f"SummarisingMemory({self.store!r}, max_tokens={self.max_tokens})"

    async def load(self, session_id: str) -> list[StoredMessage]:
        """The latest summary (if any) and the newest turns, within ``max_tokens``."""
        lock = self._locks.setdefault(session_id, asyncio.Lock())
        async with lock:
            after = self._start.get(session_id)
            messages = await self.store.load(session_id, after_id=after)
            summary, tail = split_at_summary(messages)
            head = [summary] if summary is not None else []
            if sum(m.tokens for m in [*head, *tail]) <= self.max_tokens:
                return [*head, *tail]
            keep, _ = newest_within(tail, self.keep_tokens, whole=True)
            older = tail[: len(tail) - len(keep)]
            if not older:  # the newest turn alone is over the budget: nothing to summarise
                return [*head, *keep]
            summary = await self._summarise(session_id, summary, older)
            return [summary, *keep]

    async def _summarise(
        self, session_id: str, previous: StoredMessage | None, older: list[StoredMessage]
    ) -> StoredMessage:
        text = previous.text.removeprefix(SUMMARY_PREFIX) if previous is not None else ""
        for chunk in _chunks(older, self.chunk_tokens):
            text = await self._ask(text, chunk)
        metadata = {KIND: "summary", SUMMARY_THROUGH: older[-1].id}
        message = Message(role="system", content=SUMMARY_PREFIX + text, metadata=metadata)
        (stored,) = await self.store.append(session_id, message)
        self._start[session_id] = older[-1].id
        return stored

    async def _ask(self, summary_so_far: str, turns: list[StoredMessage]) -> str:
        transcript = "\n".join(_transcript_line(m) for m in turns)
        so_far = f"Summary so far:\n{summary_so_far}\n\n" if summary_so_far else ""
        request = ChatCompletionRequest(
            model=self.model_name,
            messages=[
                Message(role="system", content=self.instructions),
                Message(role="user", content=f"{so_far}New turns:\n{transcript}"),
            ],
            max_tokens=self.summary_max_tokens,
            temperature=0,
        )
        response = await self.model.complete(request)
        text = response.text.strip()
        if not text:
            raise ModelOutputError(
                f"summarising memory: {self.model_name} returned an empty summary of "
                f"{len(turns)} messages; check the model, or the instructions of SummarisingMemory",
                output=response.text,
            )
        return text


def split_at_summary(
    messages: Sequence[StoredMessage],
) -> tuple[StoredMessage | None, list[StoredMessage]]:
    """The latest summary among ``messages`` and the messages it does not cover."""
    summaries = [m for m in messages if _is_summary(m)]
    if not summaries:
        return None, list(messages)
    latest = summaries[-1]
    through = latest.metadata[SUMMARY_THROUGH]
    return latest, [m for m in messages if m.id > through and not _is_summary(m)]


def _is_summary(message: Message) -> bool:
    meta = message.metadata
    return meta.get(KIND) == "summary" and isinstance(meta.get(SUMMARY_THROUGH), int)


def _chunks(messages: list[StoredMessage], limit: int) -> list[list[StoredMessage]]:
    chunks: list[list[StoredMessage]] = [[]]
    size = 0
    for message in messages:
        if chunks[-1] and size + message.tokens > limit:
            chunks.append([])
            size = 0
        chunks[-1].append(message)
        size += message.tokens
    return chunks


def _transcript_line(message: Message) -> str:
    calls = ", ".join(
        f"{c.function.name}({c.function.arguments})" for c in message.tool_calls or []
    )
    suffix = f" [calls {calls}]" if calls else ""
    return f"{message.role}: {message.text}{suffix}"
