from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from workflow_helpers import Write


@pytest.fixture
def write(tmp_path: Path) -> Write:
    """``write("a.yaml", text)`` writes a dedented file under tmp_path and returns its path."""

    def writer(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return writer
