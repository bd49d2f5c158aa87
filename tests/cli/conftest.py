from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import InProcess, copy_flows


@pytest.fixture
def here(tmp_path: Path) -> Path:
    """A folder holding a copy of tests/cli/flows as `flows/`; commands run in it."""
    return copy_flows(tmp_path)


@pytest.fixture
def atdak(
    here: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> InProcess:
    """Runs commands in-process, in ``here``, as a user with no API key."""
    monkeypatch.chdir(here)
    for name in ("ATDAK_API_KEY", "ATDAK_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    return InProcess(capsys)
