"""Memory backends under test: every backend in BACKENDS runs the shared conformance suite.

A new backend (Redis, Postgres, ...) adds a factory here and must pass test_memory_conformance.py,
test_memory_recall.py and test_memory_views.py unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from atdak_agents.memory import InMemoryStore, MemoryStore, SQLiteStore

BACKENDS: dict[str, Callable[[Path], MemoryStore]] = {
    "inmemory": lambda tmp: InMemoryStore(),
    "sqlite": lambda tmp: SQLiteStore(tmp / "memory.db"),
}


@pytest.fixture(params=sorted(BACKENDS))
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], MemoryStore]:
    """A factory of fresh stores of one backend (each call: a new, empty store)."""
    counter = iter(range(1_000_000))

    def make() -> MemoryStore:
        folder = tmp_path / f"store{next(counter)}"
        folder.mkdir()
        return BACKENDS[request.param](folder)

    return make


@pytest.fixture
async def store(make_store: Callable[[], MemoryStore]) -> AsyncIterator[MemoryStore]:
    """One open store of each backend, closed after the test."""
    opened = make_store()
    yield opened
    await opened.close()
