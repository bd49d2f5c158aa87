"""Reading YAML safely, keeping the position of every key and value.

The text is composed into a node tree with PyYAML's safe loader (aliases and ``<<`` merges work,
nothing executes), then converted to plain Python values here, so that this module decides what
is allowed: the standard scalar types only (a ``!!python/object`` tag is an error at its
position), no key twice in one mapping, keys that are strings. Every value's node and key is
recorded in a :class:`~atdak_agents.workflow._source.Source`; ``${ENV}`` references are
interpolated on the way (not in templates).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from ._interpolate import Interpolator, is_template_path
from ._source import Position, Source, WorkflowProblem, YamlPath, format_path

__all__ = ["YamlDocument", "read_yaml"]

_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_CORE = "tag:yaml.org,2002:"
_SCALAR_TAGS = frozenset(
    _CORE + name for name in ("str", "int", "float", "bool", "null", "timestamp")
)
_MAP = _CORE + "map"
_SEQ = _CORE + "seq"
_MERGE = _CORE + "merge"


def _shown_tag(tag: str) -> str:
    return "!!" + tag.removeprefix(_CORE) if tag.startswith(_CORE) else tag


class _Reader:
    """Converts one composed document to Python values (see the module docstring)."""

    def __init__(self, loader: Any, source: Source, interpolate: Interpolator) -> None:
        self.loader = loader
        self.source = source
        self.interpolate = interpolate
        self.problems: list[WorkflowProblem] = []
        self.interpolated: dict[YamlPath, str] = {}
        self.failed: set[YamlPath] = set()

    def fail(self, node: yaml.Node, path: YamlPath, message: str, hint: str | None) -> None:
        position = self.source.node_position(node)
        self.problems.append(WorkflowProblem(position, format_path(path), message, hint))
        self.failed.add(path)

    def value(self, node: yaml.Node, path: YamlPath) -> Any:
        self.source.values.setdefault(path, node)
        if isinstance(node, yaml.MappingNode) and node.tag == _MAP:
            return self.mapping(node, path)
        if isinstance(node, yaml.SequenceNode) and node.tag == _SEQ:
            return [self.value(item, (*path, index)) for index, item in enumerate(node.value)]
        if isinstance(node, yaml.ScalarNode) and node.tag in _SCALAR_TAGS:
            return self.scalar(node, path)
        self.fail(
            node,
            path,
            f"the tag {_shown_tag(node.tag)} is not allowed here",
            "workflows are plain YAML: strings, numbers, booleans, null, lists and mappings "
            "(no tags that create Python objects)",
        )
        return None

    def scalar(self, node: yaml.ScalarNode, path: YamlPath) -> Any:
        if node.tag != _CORE + "str" or is_template_path(path):
            return self.loader.construct_object(node)
        result = self.interpolate(node.value)
        if result.error is not None:
            self.fail(node, path, result.error, result.hint)
            return None
        if not result.used:
            return node.value
        self.interpolated[path] = node.value
        if not node.style:  # plain: `steps: ${MAX_STEPS:-40}` is the number 40
            tag = self.loader.resolve(yaml.ScalarNode, result.value, (True, False))
            if tag in _SCALAR_TAGS - {_CORE + "timestamp"}:
                return self.loader.construct_object(yaml.ScalarNode(tag, result.value))
        return result.value

    def mapping(self, node: yaml.MappingNode, path: YamlPath) -> dict[str, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE or not isinstance(key_node, yaml.ScalarNode):
                continue
            if key_node.value in seen:
                first = seen[key_node.value].start_mark.line + 1
                self.fail(
                    key_node,
                    (*path, key_node.value),
                    f"duplicate key {key_node.value!r} (first given on line {first})",
                    "YAML keeps only the last one; remove or rename one of them",
                )
            seen[key_node.value] = key_node
        try:
            self.loader.flatten_mapping(node)  # `<<: *defaults` merges
        except yaml.MarkedYAMLError as exc:
            self.fail(node, path, _yaml_message(exc), None)
            return {}
        return self._pairs(node, path)

    def _pairs(self, node: yaml.MappingNode, path: YamlPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in _SCALAR_TAGS:
                self.fail(key_node, path, "a key must be a plain text", None)
                continue
            key = key_node.value if key_node.tag == _CORE + "str" else str(key_node.value)
            child = (*path, key)
            self.source.keys[child] = key_node
            self.source.values[child] = value_node
            result[key] = self.value(value_node, child)
        return result


def _yaml_message(exc: yaml.MarkedYAMLError) -> str:
    parts = [exc.context or "", exc.problem or ""]
    return ", ".join(p for p in parts if p) or "invalid YAML"


@dataclass
class YamlDocument:
    """What :func:`read_yaml` found: the data (None when unreadable), its problems, the paths
    whose values failed (tags, ``${}``), and the original text of interpolated values."""

    data: Any = None
    problems: list[WorkflowProblem] = field(default_factory=list)
    failed: set[YamlPath] = field(default_factory=set)
    interpolated: dict[YamlPath, str] = field(default_factory=dict)


def read_yaml(text: str, source: Source, interpolate: Interpolator) -> YamlDocument:
    """Compose ``text`` safely and convert it, recording positions in ``source``."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        position = Position(source.file, line, column)
        text_line = source.lines[line - 1] if 0 < line <= len(source.lines) else ""
        hint = "YAML indents with spaces, never tabs" if "\t" in text_line[:column] else None
        problem = WorkflowProblem(position, "", f"invalid YAML: {_yaml_message(exc)}", hint)
        return YamlDocument(problems=[problem], failed={()})
    finally:
        loader.dispose()
    if root is None:
        return YamlDocument()
    reader = _Reader(loader, source, interpolate)
    data = reader.value(root, ())
    return YamlDocument(data, reader.problems, reader.failed, reader.interpolated)
