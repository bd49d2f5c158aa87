"""Every examples/*.py runs, and every Python block in docs/*.md runs, as a user would run them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
DOCS = sorted((ROOT / "docs").glob("*.md"))

_BLOCK = re.compile(r"(<!-- test: skip -->\s*)?```python\n(.*?)```", re.DOTALL)


def _clean_env() -> dict[str, str]:
    env = dict(os.environ)
    for key in ("ATDAK_API_KEY", "ATDAK_BASE_URL"):
        env.pop(key, None)  # examples must run offline, against the local server
    return env


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(path: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(path)],
        cwd=tmp_path,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"{path.name} failed:\n{result.stdout}\n{result.stderr}"
    assert result.stdout.strip(), f"{path.name} printed nothing"


def doc_code(path: Path) -> str:
    blocks = [code for skip, code in _BLOCK.findall(path.read_text(encoding="utf-8")) if not skip]
    return "\n".join(blocks)


DOC_PAGES = [p for p in DOCS if doc_code(p).strip()]


@pytest.mark.parametrize("path", DOC_PAGES, ids=[p.name for p in DOC_PAGES])
def test_doc_examples_run(path: Path, tmp_path: Path) -> None:
    """The page's python blocks run in order, as one script, in an empty folder."""
    script = tmp_path / f"{path.stem}_doc.py"
    script.write_text(doc_code(path), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    output = f"{result.stdout}\n{result.stderr}"
    assert result.returncode == 0, f"docs/{path.name} examples failed:\n{output}"
