"""Where things are in a workflow file: positions of every key and value, and located problems.

A :class:`Source` remembers, for each path of the loaded data (``("nodes", "route", "router", 1,
"to")``), the YAML node of its value and the position of its key. Problems found later — by
pydantic, by graph validation (dotted paths such as ``nodes.route.router[1].to``), by the loader
itself — are turned into :class:`WorkflowProblem`, which prints as
``file.yaml:LINE:COL nodes.route.router[1].to: message (hint)``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import yaml

from ..exceptions import Problem

__all__ = ["Position", "Source", "WorkflowProblem", "YamlPath", "format_path", "parse_dotted"]

YamlPath: TypeAlias = tuple[str | int, ...]

_INDEX = re.compile(r"^(.*?)((?:\[\d+\])+)$")


@dataclass(frozen=True, slots=True)
class Position:
    """A place in a file: 1-based line and column (column unknown for some places)."""

    file: str
    line: int
    column: int | None = None

    def __str__(self) -> str:
        if self.column is None:
            return f"{self.file}:{self.line}"
        return f"{self.file}:{self.line}:{self.column}"


class WorkflowProblem(Problem):
    """A :class:`~atdak_agents.exceptions.Problem` that knows its place in the YAML.

    ``location`` is the path in the file (``nodes.classify.llm.prompt``), ``position`` the
    ``file:line:col`` it points at; ``line`` (inherited) is the line inside a multi-line value.
    """

    __slots__ = ("position",)

    def __init__(
        self,
        position: Position,
        location: str,
        message: str,
        hint: str | None = None,
        *,
        line: int | None = None,
    ) -> None:
        super().__init__(location, message, hint, line=line)
        self.position = position

    def __str__(self) -> str:
        where = f"{self.position} {self.location}:" if self.location else f"{self.position}"
        text = f"{where} {self.message}"
        return f"{text} ({self.hint})" if self.hint else text

    def __repr__(self) -> str:
        return f"WorkflowProblem({str(self)!r})"

    def to_json(self) -> dict[str, Any]:
        """The problem as plain data (for ``--json`` output and editors)."""
        return {
            "file": self.position.file,
            "line": self.position.line,
            "column": self.position.column,
            "path": self.location,
            "message": self.message,
            "hint": self.hint,
        }


def format_path(path: Sequence[str | int]) -> str:
    """``("nodes", "r", "router", 1, "to")`` → ``nodes.r.router[1].to``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


@dataclass
class Source:
    """Positions of one loaded YAML file (see the module docstring)."""

    file: str
    lines: list[str]
    values: dict[YamlPath, yaml.Node] = field(default_factory=dict)
    keys: dict[YamlPath, yaml.Node] = field(default_factory=dict)
    edges: list[int] = field(default_factory=list)  # expanded edge index → index in the file
    children: dict[YamlPath, Source] = field(default_factory=dict)
    files: dict[YamlPath, str] = field(default_factory=dict)  # prompt files, for problems inside

    # ------------------------------------------------------------------ positions

    def start(self) -> Position:
        return Position(self.file, 1, 1)

    def node_position(self, node: yaml.Node) -> Position:
        return Position(self.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def problem(
        self,
        path: YamlPath,
        message: str,
        hint: str | None = None,
        *,
        at_key: bool = False,
        line: int | None = None,
        as_written: bool = False,
    ) -> WorkflowProblem:
        """A problem at ``path`` (the deepest part of it that exists in the file).

        ``path`` indexes edges as the spec has them (chains expanded) unless ``as_written``.
        """
        path = path if as_written else self._file_path(path)
        for cut in range(1, len(path)):
            child = self.children.get(path[:cut])
            if child is not None:
                return child.problem(path[cut:], message, hint, at_key=at_key, line=line)
        position = self.position(path, at_key=at_key, line=line)
        shown = format_path(path)
        if line is not None and position.file == self.file and not self._is_block(path):
            message = f"{message} (line {line} of the value)"
        return WorkflowProblem(position, shown, message, hint, line=line)

    def position(
        self, path: YamlPath, *, at_key: bool = False, line: int | None = None
    ) -> Position:
        """Where ``path`` is: a scalar's value, a collection's key, else the nearest parent."""
        if line is not None and path in self.files:
            return Position(self.files[path], line)
        for cut in range(len(path), -1, -1):
            prefix = path[:cut]
            value = self.values.get(prefix)
            if value is None:
                continue
            key = self.keys.get(prefix)
            exact = cut == len(path)
            if exact and isinstance(value, yaml.ScalarNode) and not at_key:
                return self._inside(value, line)
            return self.node_position(key if key is not None else value)
        return self.start()

    def _inside(self, node: yaml.ScalarNode, line: int | None) -> Position:
        if line is None or node.style != "|":
            return self.node_position(node)
        number = node.start_mark.line + line  # 0-based: the block starts on the next line
        if number >= len(self.lines):
            return self.node_position(node)
        text = self.lines[number]
        return Position(self.file, number + 1, len(text) - len(text.lstrip(" ")) + 1)

    def _is_block(self, path: YamlPath) -> bool:
        node = self.values.get(path)
        return isinstance(node, yaml.ScalarNode) and node.style == "|"

    def _file_path(self, path: YamlPath) -> YamlPath:
        """Expanded edge indexes (``edges[3]``) → the item written in the file."""
        if len(path) >= 2 and path[0] == "edges" and isinstance(path[1], int):
            index = path[1]
            if 0 <= index < len(self.edges):
                return ("edges", self.edges[index], *path[2:])
        return path

    # ------------------------------------------------------------------ dotted paths

    def parse(self, location: str) -> YamlPath:
        """A dotted location (``nodes.a.router[1].to``) as a path, matching keys with dots."""
        return parse_dotted(location, self)


def parse_dotted(location: str, source: Source | None = None) -> YamlPath:
    """Parse ``nodes.a.router[1].to``; keys that contain dots are matched against the file."""
    tokens: list[str | int] = []
    for piece in location.split(".") if location else []:
        match = _INDEX.match(piece)
        if match:
            tokens.append(match.group(1))
            tokens.extend(int(i) for i in re.findall(r"\d+", match.group(2)))
        else:
            tokens.append(piece)
    if source is None:
        return tuple(tokens)
    return _join_dotted_keys(tokens, source)


def _join_dotted_keys(tokens: list[str | int], source: Source) -> YamlPath:
    path: list[str | int] = []
    index = 0
    while index < len(tokens):
        taken = 1
        for end in range(len(tokens), index + 1, -1):
            parts = tokens[index:end]
            if all(isinstance(p, str) for p in parts):
                candidate = (*path, ".".join(str(p) for p in parts))
                if candidate in source.values:
                    taken = end - index
                    break
        if taken == 1:
            path.append(tokens[index])
        else:
            path.append(".".join(str(p) for p in tokens[index : index + taken]))
        index += taken
    return tuple(path)
