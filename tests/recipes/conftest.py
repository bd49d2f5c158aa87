from __future__ import annotations

from pathlib import Path

import pytest
from recipe_harness import copy_recipes


@pytest.fixture
def recipes(tmp_path: Path) -> Path:
    """A fresh copy of ``recipes/``: runs write their SQLite files there, not into the repo."""
    return copy_recipes(tmp_path)
