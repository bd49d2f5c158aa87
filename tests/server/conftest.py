from __future__ import annotations

from collections.abc import Iterator

import pytest
from server_helpers import GATES, UPSTREAM_KEY, Gate

from atdak_agents.testing import LocalAtdakServer


@pytest.fixture
def upstream() -> Iterator[LocalAtdakServer]:
    """The upstream model endpoint: the local Atdak server (echoes unless scripted)."""
    with LocalAtdakServer(api_key=UPSTREAM_KEY) as server:
        yield server


@pytest.fixture
def gate() -> Iterator[Gate]:
    """Holds the ``slow`` workflow's first node until ``gate.release.set()``."""
    GATES["slow"] = gate = Gate()
    yield gate
    gate.release.set()
