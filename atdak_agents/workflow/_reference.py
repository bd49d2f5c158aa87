"""The format described from its models: a JSON Schema for editors, a Markdown reference page.

Both come from the pydantic models of :mod:`atdak_agents.graph.spec` (types, defaults, which
keys exist) plus :data:`~atdak_agents.workflow._fields.FIELD_DOCS` (what each key means), so
neither can drift from what the loader accepts. ``atdak-agents schema`` prints the first,
``atdak-agents schema --format markdown`` the second (``docs/yaml-reference.md``).
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Iterator
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from ..graph.spec import GraphSpec, NodeSpec
from ._fields import FIELD_DOCS

__all__ = ["field_description", "format_models", "reference_markdown", "workflow_schema"]

_EDGE_TEXT = {
    "type": "string",
    "pattern": r"^\s*[^\s&>-][^>]*(->[^>]+)+$",
    "description": 'a chain "a -> b -> c", a fan-out "a -> b & c" or a join "b & c -> d"',
}


def field_description(model: type[BaseModel], name: str, info: FieldInfo) -> str:
    """What a field means: the model's own description, else the format's table."""
    return info.description or FIELD_DOCS.get(f"{model.__name__}.{name}", "")


def format_models() -> list[type[BaseModel]]:
    """Every model of the format, :class:`GraphSpec` first, in the order a reader meets them."""
    found: list[type[BaseModel]] = []
    queue: list[type[BaseModel]] = [GraphSpec]
    while queue:
        model = queue.pop(0)
        if model in found:
            continue
        found.append(model)
        for info in model.model_fields.values():
            queue.extend(m for m in _models_in(info.annotation) if m not in found)
    return found


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if get_origin(annotation) is type:  # a model *class* given in Python (`output`)
        return
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for argument in get_args(annotation):
        yield from _models_in(argument)


# --------------------------------------------------------------------------- JSON Schema


def workflow_schema() -> dict[str, Any]:
    """The JSON Schema of a workflow file (Draft 2020-12), for editor completion."""
    schema = GraphSpec.model_json_schema()
    definitions = schema["$defs"]
    for model in format_models():
        properties = definitions[model.__name__]["properties"]
        for name, info in model.model_fields.items():
            entry = properties[info.alias or name]
            entry.setdefault("description", field_description(model, name, info))
            entry.pop("title", None)
    graph = definitions["GraphSpec"]["properties"]
    graph["edges"]["items"] = {"anyOf": [_EDGE_TEXT, {"$ref": "#/$defs/Edge"}]}
    edge_from = definitions["Edge"]["properties"]["from"]
    definitions["Edge"]["properties"]["from"] = {
        "anyOf": [{"type": "string"}, {k: v for k, v in edge_from.items() if k != "description"}],
        "description": edge_from.get("description", ""),
    }
    node = definitions["NodeSpec"]["properties"]
    node["tool"] = {**node["function"], "description": "Another name for `function`."}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "atdak-agents workflow",
        "description": "A workflow file of atdak_agents (see docs/yaml-reference.md).",
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }


# --------------------------------------------------------------------------- Markdown


_INTRO = """\
# Workflow file reference

<!-- Generated from the models in atdak_agents/graph/spec.py by
     `atdak-agents schema --format markdown > docs/yaml-reference.md`; do not edit by hand
     (tests/workflow/test_reference.py fails when this page and the models disagree). -->

Every key a workflow file may hold, with its type, its default and what it means. How to write
workflows, with examples, is in [workflows.md](workflows.md). Editors can complete and check
workflow files with the JSON Schema that `atdak-agents schema` prints.

A file is one [GraphSpec](#graphspec). Every node is a [NodeSpec](#nodespec): exactly one *kind*
key (`llm`, `agent`, `function`, `router`, `map`, `subgraph`, `human`, `memory_read`,
`memory_write`, `end`) holding that kind's settings, plus the settings every node has.

Text values may use `${NAME}` and `${NAME:-default}` to read environment variables, except
templates and expressions (prompts, instructions, questions, conditions, outputs), which jinja2
renders at run time.
"""


def reference_markdown() -> str:
    """``docs/yaml-reference.md``: one section per model of the format."""
    parts = [_INTRO]
    for model in format_models():
        parts.append(_section(model))
    return "\n".join(parts).rstrip("\n") + "\n"


def _section(model: type[BaseModel]) -> str:
    lines = [f"## {model.__name__}", "", _doc(model), ""]
    if model is NodeSpec:
        lines += ["`tool:` is accepted as another name for `function:`.", ""]
    lines += ["| key | type | default | meaning |", "|---|---|---|---|"]
    for name, info in model.model_fields.items():
        key = info.alias or name
        text = _cell(field_description(model, name, info))
        kind = _TYPE_OVERRIDES.get(f"{model.__name__}.{name}") or _field_type(info)
        lines.append(f"| `{key}` | {kind} | {_default(info)} | {text} |")
    return "\n".join(lines) + "\n"


def _doc(model: type[BaseModel]) -> str:
    text = inspect.cleandoc(model.__doc__ or "")
    text = re.sub(r"``([^`]+)``", r"`\1`", text)
    text = re.sub(r":(?:class|func|meth):`~?([^`]+)`", lambda m: f"`{m[1].split('.')[-1]}`", text)
    return text


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# what the YAML accepts beyond the model's own type (the loader's and validators' shortcuts)
_TYPE_OVERRIDES = {
    "GraphSpec.edges": "list of edge text or [Edge](#edge)",
    "Edge.source": "string or list of string",
}
_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean", Any: "any"}


def _field_type(info: FieldInfo) -> str:
    if any(_is_callable_ref(extra) for extra in info.metadata):
        return _one_type("import path")
    if any(_is_output_schema(extra) for extra in info.metadata):
        return "field mapping"
    return _type(info.annotation)


def _type(annotation: Any) -> str:
    members = [m for m in _members(annotation) if m is not type(None)]
    return " or ".join(dict.fromkeys(_one_type(m) for m in members)) or "null"


def _members(annotation: Any) -> list[Any]:
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        base, *extra = get_args(annotation)
        if any(_is_callable_ref(e) for e in extra):
            return ["import path"]
        if any(_is_output_schema(e) for e in extra):
            return ["field mapping"]
        return _members(base)
    if origin is typing.Union or origin is types.UnionType:
        return [m for arg in get_args(annotation) for m in _members(arg)]
    return [annotation]


def _is_callable_ref(extra: Any) -> bool:
    schema = getattr(extra, "json_schema", None)
    return isinstance(schema, dict) and "pattern" in schema


def _is_output_schema(extra: Any) -> bool:
    schema = getattr(extra, "json_schema", None)
    return isinstance(schema, dict) and schema.get("type") == "object"


def _one_type(member: Any) -> str:
    if isinstance(member, str):
        return "`module:function` import path" if member == "import path" else member
    if member in _SCALARS:
        return _SCALARS[member]
    if isinstance(member, type) and issubclass(member, BaseModel):
        return f"[{member.__name__}](#{member.__name__.lower()})"
    origin = get_origin(member)
    if origin is Literal:
        return "one of " + ", ".join(f"`{v}`" for v in get_args(member))
    if origin is list:
        return f"list of {_type(get_args(member)[0])}"
    if origin is dict:
        return f"mapping of name → {_type(get_args(member)[1])}"
    if get_origin(member) is typing.Annotated:
        return _type(member)
    return getattr(member, "__name__", str(member))


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "**required**"
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "—"
    if isinstance(value, BaseModel):
        return "`{}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`' if value == "" else f"`{value}`"
    return f"`{value}`"
