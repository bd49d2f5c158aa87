"""Conversation memory: stores that keep messages per session, and views that select from them.

- :class:`MemoryStore` is the interface; :class:`InMemoryStore` and :class:`SQLiteStore`
  implement it (SQLite is the persistent default, with full-text recall that works for Chinese).
- :class:`WindowedMemory`, :class:`TokenBudgetMemory` and :class:`SummarisingMemory` are views:
  they choose what to bring back from any store, they do not store anything of their own
  (except the summaries, which they append to the session).
- :meth:`MemoryStore.sync` gives a blocking facade for scripts.
"""

from __future__ import annotations

from ._sync import SyncMemoryStore
from .base import (
    ConversationMemory,
    MemoryStore,
    SearchHit,
    SessionInfo,
    StoredMessage,
    message_tokens,
)
from .inmemory import InMemoryStore
from .sqlite import SQLiteStore
from .views import SummarisingMemory, TokenBudgetMemory, WindowedMemory, group_turns

__all__ = [
    "ConversationMemory",
    "InMemoryStore",
    "MemoryStore",
    "SQLiteStore",
    "SearchHit",
    "SessionInfo",
    "StoredMessage",
    "SummarisingMemory",
    "SyncMemoryStore",
    "TokenBudgetMemory",
    "WindowedMemory",
    "group_turns",
    "message_tokens",
]
