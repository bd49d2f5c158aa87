"""Running the real ``atdak-agents`` command in a subprocess, on copies of ``tests/cli/flows``."""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from atdak_agents.cli import main

FLOWS = Path(__file__).resolve().parent / "flows"
_SCRIPT = shutil.which("atdak-agents", path=str(Path(sys.executable).parent))
COMMAND = [_SCRIPT] if _SCRIPT else [sys.executable, "-m", "atdak_agents.cli"]
RESUME = re.compile(r"atdak-agents resume [0-9a-f]{32}[^\n]*")


def environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a user with no API key (so runs go offline), plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("ATDAK_API_KEY", "ATDAK_BASE_URL") and not k.startswith("SHOP_")
    }
    env["NO_COLOR"] = "1"
    return {**env, **(extra or {})}


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def resume_command(self) -> list[str]:
        """The resume command the run printed, as arguments after ``atdak-agents``."""
        match = RESUME.search(self.stderr)
        assert match, f"no resume command in:\n{self.stderr}"
        words = match.group(0).split()
        return [w.strip("'\"") for w in words[1:]]


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60) -> Result:
    """Run ``atdak-agents ARGS`` and check it printed no traceback."""
    done = subprocess.run(
        [*COMMAND, *args],
        cwd=cwd,
        env=environment(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return Result(done.returncode, done.stdout, done.stderr)


def copy_flows(target: Path) -> Path:
    """A copy of the test workflows; runs store their files under ``target``."""
    shutil.copytree(FLOWS, target / "flows", ignore=shutil.ignore_patterns("__pycache__"))
    return target


class Running:
    """A started ``atdak-agents`` process whose stderr is read line by line as it comes."""

    def __init__(self, *args: str, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [*COMMAND, *args],
            cwd=cwd,
            env=environment(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert self.process.stderr is not None
        stream = self.process.stderr
        self._reader = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._reader.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.put(line)
        self.lines.put("")

    def wait_for(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                break
            self.seen.append(line)
            if text in line:
                return
            if line == "":
                break
        self.process.kill()
        raise AssertionError(f"{text!r} never appeared on stderr:\n{''.join(self.seen)}")

    def finish(self, timeout: float = 30) -> Result:
        assert self.process.stdout is not None
        stdout = self.process.stdout.read()  # stderr belongs to the reading thread
        self.process.wait(timeout=timeout)
        rest: list[str] = []
        while True:
            try:
                line = self.lines.get(timeout=5)
            except queue.Empty:
                break
            if line == "":
                break
            rest.append(line)
        self._reader.join(5)
        self.process.stdout.close()
        self.process.stderr.close()  # type: ignore[union-attr]
        stderr = "".join(self.seen + rest)
        assert "Traceback" not in stderr, stderr
        return Result(self.process.returncode, stdout, stderr)


class InProcess:
    """``atdak-agents`` run through ``main()`` in this process: the same code as the command,
    without a new interpreter (for the many small checks of messages and exit codes)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(self, *args: str) -> Result:
        self.capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse's usage errors
            code = int(exc.code or 0)
        out, err = self.capsys.readouterr()
        assert "Traceback" not in err, err
        return Result(code, out, err)
