"""Pydantic's validation errors, said in the words of the YAML file.

Each error's ``loc`` is cleaned of pydantic's union tags (``union[str,callable]``, ``GraphSpec``)
so it reads as a path in the file; alternatives of one union are reported once; "extra inputs"
become "unknown key 'promt' (did you mean 'prompt'?)" with the keys the model knows.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterator, Mapping
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from ..graph.spec import GraphSpec, NodeSpec
from ._source import Source, WorkflowProblem, YamlPath

__all__ = ["model_at", "pydantic_problems"]

_FIELD = re.compile(r"^[a-z_][a-z0-9_]*$")
_TYPE_NAMES = frozenset({"str", "int", "float", "bool", "none", "callable", "list", "dict"})
_ALIASES: Mapping[str, str] = {"tool": "function"}  # NodeSpec accepts `tool:` for `function:`


def pydantic_problems(
    error: ValidationError, data: Any, source: Source
) -> Iterator[tuple[YamlPath, WorkflowProblem]]:
    """One located problem per distinct place, with the cleaned path it is about."""
    seen: set[YamlPath] = set()
    for item in error.errors(include_url=False):
        path = clean_loc(item["loc"], data)
        if path in seen:
            continue
        seen.add(path)
        message, hint, at_key = _wording(item, path)
        yield path, source.problem(path, message, hint, at_key=at_key)


def clean_loc(loc: tuple[Any, ...], data: Any) -> YamlPath:
    """``loc`` without union tags, following ``data`` (a tag is never a key of the data)."""
    path: list[str | int] = []
    current = data
    for position, part in enumerate(loc):
        if _has(current, part):
            path.append(part)
            current = current[part]
        elif isinstance(current, dict) and part in _ALIASES and _ALIASES[part] in current:
            path.append(_ALIASES[part])
            current = current[_ALIASES[part]]
        elif isinstance(current, dict) and part in _reverse_aliases(current):
            key = _reverse_aliases(current)[part]
            path.append(key)
            current = current[key]
        elif _is_tag(part):
            continue
        else:
            path.append(part)
            current = None
            if position == len(loc) - 1:
                break
    return tuple(path)


def _has(current: Any, part: Any) -> bool:
    if isinstance(current, dict):
        return part in current
    return isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)


def _reverse_aliases(current: dict[Any, Any]) -> dict[str, str]:
    return {target: alias for alias, target in _ALIASES.items() if alias in current}


def _is_tag(part: Any) -> bool:
    if not isinstance(part, str):
        return False
    return part.lower() in _TYPE_NAMES or not _FIELD.match(part)


def _wording(item: Mapping[str, Any], path: YamlPath) -> tuple[str, str | None, bool]:
    kind = item["type"]
    message = str(item["msg"])
    key = path[-1] if path else None
    if kind == "extra_forbidden":
        known = known_keys(path[:-1])
        match = difflib.get_close_matches(str(key), known, n=1)
        hint: str | None = f"known keys: {', '.join(known)}" if known else None
        if match:
            hint = f"did you mean {match[0]!r}?"
        return f"unknown key {key!r}", hint, True
    if kind == "missing":
        return f"missing required key {key!r}", None, False
    if kind in ("value_error", "assertion_error"):
        message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if key == "reducer" and kind == "literal_error":
        message += ", or an import path 'module:function'"
    return message[:1].lower() + message[1:], None, False


# --------------------------------------------------------------------------- the models


def known_keys(path: YamlPath) -> list[str]:
    """The keys the format allows at ``path`` (empty when that is not a model)."""
    model = model_at(path)
    if model is None:
        return []
    names = [info.alias or name for name, info in model.model_fields.items()]
    return [*names, "tool"] if model is NodeSpec else names


def model_at(path: YamlPath) -> type[BaseModel] | None:
    """The pydantic model describing the mapping at ``path`` in a workflow file."""
    annotation: Any = GraphSpec
    for part in path:
        model = _model_in(annotation)
        if model is not None and isinstance(part, str):
            name = _field_name(model, part)
            if name is None:
                return None
            annotation = model.model_fields[name].annotation
            continue
        annotation = _item_of(annotation)
        if annotation is None:
            return None
    return _model_in(annotation)


def _field_name(model: type[BaseModel], key: str) -> str | None:
    key = _ALIASES.get(key, key) if model is NodeSpec else key
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return name
    return None


def _members(annotation: Any) -> tuple[Any, ...]:
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        return _members(get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return tuple(m for arg in get_args(annotation) for m in _members(arg))
    return (annotation,)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    for member in _members(annotation):
        if isinstance(member, type) and issubclass(member, BaseModel):
            return member
    return None


def _item_of(annotation: Any) -> Any:
    """The value type of a dict or the item type of a list among ``annotation``'s members."""
    for member in _members(annotation):
        origin = get_origin(member)
        if origin is dict:
            return get_args(member)[1]
        if origin is list:
            return get_args(member)[0]
    return None
