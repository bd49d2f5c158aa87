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


_MARK = "--- atdak-doc-block {} ---"


def doc_blocks(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return [code for skip, code in _BLOCK.findall(text) if not skip]


def doc_code(path: Path) -> str:
    """The page's blocks as one script, each announcing itself on stdout first."""
    parts = []
    for index, code in enumerate(doc_blocks(path)):
        parts.append(f"print({_MARK.format(index)!r}, flush=True)\n{code}")
    return "\n".join(parts)


DOC_PAGES = [p for p in DOCS if doc_blocks(p)]


@pytest.mark.parametrize("path", DOC_PAGES, ids=[p.name for p in DOC_PAGES])
def test_doc_examples_run(path: Path, tmp_path: Path) -> None:
    """The page's python blocks run in order, as one script, in an empty folder; a block's
    ``#>`` lines, when it has any, must match what that block printed."""
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
    printed = _printed_by_block(result.stdout)
    for index, code in enumerate(doc_blocks(path)):
        expected = [
            line.strip()[2:].strip() for line in code.splitlines() if line.strip().startswith("#>")
        ]
        mismatch = output_mismatch(expected, printed.get(index, []))
        assert mismatch is None, f"docs/{path.name}, python block {index + 1}: {mismatch}"


def _printed_by_block(stdout: str) -> dict[int, list[str]]:
    blocks: dict[int, list[str]] = {}
    current = -1
    for line in stdout.splitlines():
        if line.startswith("--- atdak-doc-block ") and line.endswith(" ---"):
            current = int(line.split()[2])
            blocks[current] = []
        else:
            blocks.setdefault(current, []).append(line)
    return blocks


def output_mismatch(expected: list[str], actual: list[str]) -> str | None:
    """Compare printed lines with a page's ``#>`` lines; ``...`` stands for any lines, and a
    line ending in ``...`` matches any line starting with what comes before it."""
    if not expected:
        return None
    position = 0
    for index, line in enumerate(expected):
        if line == "...":
            following = expected[index + 1] if index + 1 < len(expected) else None
            if following is None:
                return None
            while position < len(actual) and not _same(following, actual[position]):
                position += 1
            continue
        if position >= len(actual):
            return f"expected {line!r}, but the output ended"
        if not _same(line, actual[position]):
            return f"expected {line!r}, got {actual[position]!r}"
        position += 1
    if position < len(actual):
        return f"unexpected extra output {actual[position]!r}"
    return None


def _same(expected: str, actual: str) -> bool:
    actual = actual.strip()
    if expected.endswith("...") and expected != "...":
        return actual.startswith(expected[:-3].rstrip())
    return expected == actual
