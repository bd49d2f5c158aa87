"""Every checkpointer passes the shared contract in checkpointer_suite.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from checkpointer_suite import CheckpointerSuite

from atdak_agents.graph.checkpoint import InMemoryCheckpointer
from atdak_agents.graph.sqlite_checkpoint import SQLiteCheckpointer


class TestInMemoryCheckpointer(CheckpointerSuite):
    @pytest.fixture
    async def checkpointer(self) -> AsyncIterator[InMemoryCheckpointer]:
        store = InMemoryCheckpointer()
        yield store
        await store.close()


class TestSQLiteCheckpointer(CheckpointerSuite):
    @pytest.fixture
    async def checkpointer(self, tmp_path: Path) -> AsyncIterator[SQLiteCheckpointer]:
        async with SQLiteCheckpointer(tmp_path / "checkpoints.db") as store:
            yield store
