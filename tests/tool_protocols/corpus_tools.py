"""The tools the corpus of model outputs is written against, and the corpus loader."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml

from atdak_agents.tools import Tool, tool

CORPUS_PATH = Path(__file__).with_name("corpus.yaml")


@tool
def get_weather(
    city: str, unit: Literal["celsius", "fahrenheit"] = "celsius", location: str = ""
) -> str:
    """Current weather of a city."""
    return f"{city}: 20 {unit}"


@tool
def search(query: str, max_results: int = 5, safe: bool = True) -> list[str]:
    """Search the web."""
    return [query] * max_results


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression."""
    return expression


@tool
def send_email(to: str, subject: str, body: str) -> str:
    """Send an email."""
    return "sent"


@tool
def read_file(path: str) -> str:
    """Read a text file."""
    return path


@tool
def get_time(timezone: str = "UTC") -> str:
    """Current time in a timezone."""
    return timezone


TOOLS: list[Tool[Any, Any]] = [get_weather, search, calculator, send_email, read_file, get_time]


def load_corpus() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = yaml.safe_load(CORPUS_PATH.read_text(encoding="utf-8"))
    return cases
