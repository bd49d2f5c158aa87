"""Writing a graph as a workflow file: :func:`dump_workflow`.

The YAML holds only what differs from the defaults, in the order of the format's fields.
Python callables become import paths ``module:qualname`` (checked to import back to the very same
object), edges become ``"a -> b -> c"`` chains, multi-line texts become ``|`` blocks. A loaded
workflow dumps with its ``${ENV}`` references and subgraph file names as written, so secrets
never land in the output.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import BaseModel

from ..exceptions import DefinitionError
from ..graph.build import Graph
from ..graph.compile import resolve_import
from ..graph.spec import Edge, GraphSpec
from ._interpolate import is_template_path
from ._source import YamlPath, format_path
from ._workflow import Workflow

__all__ = ["dump_workflow", "edge_chains", "spec_data"]


_FLOW_WIDTH = 60


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line text, flow style (``{type: list, reducer: append}``) for short
    collections of plain values; otherwise PyYAML's safe representation."""

    def represent_mapping(self, tag: str, mapping: Any, flow_style: Any = None) -> yaml.MappingNode:
        node = super().represent_mapping(tag, mapping, flow_style)
        node.flow_style = _fits_flow(node.value)
        return node

    def represent_sequence(
        self, tag: str, sequence: Any, flow_style: Any = None
    ) -> yaml.SequenceNode:
        node = super().represent_sequence(tag, sequence, flow_style)
        node.flow_style = _fits_flow(node.value)
        return node


def _fits_flow(items: list[Any]) -> bool:
    nodes = [n for item in items for n in (item if isinstance(item, tuple) else (item,))]
    if not all(isinstance(n, yaml.ScalarNode) and n.style is None for n in nodes):
        return False
    text = sum(len(str(n.value)) + 2 for n in nodes)
    return bool(nodes) and text <= _FLOW_WIDTH and not any("\n" in str(n.value) for n in nodes)


_LINE_BREAKS = ("\x85", "\u2028", "\u2029", "\r")  # PyYAML folds these unless escaped


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style: str | None = None
    if any(mark in value for mark in _LINE_BREAKS):
        style = '"'
    elif "\n" in value and _block_safe(value):
        style = "|"
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _block_safe(value: str) -> bool:
    return not any(line != line.rstrip() for line in value.split("\n")) and "\t" not in value


class _Lines(list[str]):
    """A list written one item per line (edges), however short."""


def _lines(dumper: yaml.SafeDumper, value: _Lines) -> yaml.SequenceNode:
    node = dumper.represent_list(value)
    node.flow_style = False
    return node


_Dumper.add_representer(str, _text)
_Dumper.add_representer(_Lines, _lines)


def dump_workflow(workflow: Workflow | Graph | GraphSpec) -> str:
    """The YAML text of a workflow, a graph (its Python tools included) or a spec.

    Raises :class:`~atdak_agents.exceptions.DefinitionError` naming the place when something
    cannot be written as YAML (a lambda, a local function, a pydantic model as output).
    """
    data = spec_data(workflow)
    if isinstance(workflow, Workflow):
        _restore(data, workflow.originals)
    text: str = yaml.dump(
        data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100, indent=2
    )
    return text


def spec_data(workflow: Workflow | Graph | GraphSpec) -> dict[str, Any]:
    """The spec as plain YAML-ready data (callables as import paths, defaults left out)."""
    spec = workflow if isinstance(workflow, GraphSpec) else workflow.spec
    base = workflow.base_dir if isinstance(workflow, Workflow | Graph) else None
    data: dict[str, Any] = _model(spec, (), base)
    if isinstance(workflow, Graph):
        tools = data.setdefault("tools", {})
        for name, value in workflow.tools.items():
            tools.setdefault(name, _import_path(value, ("tools", name), base))
        if not tools:
            data.pop("tools")
        else:
            _move_before(data, "tools", ("memory", "checkpointer", "limits", "entry", "nodes"))
    return data


def _plain(value: Any, path: YamlPath, base: Any) -> Any:
    if isinstance(value, BaseModel):
        return _model(value, path, base)
    if isinstance(value, type) and issubclass(value, BaseModel):
        raise DefinitionError(
            f"{format_path(path)}: the pydantic model {value.__name__} cannot be written as YAML; "
            "give `output` as a field mapping ({field: {type: ..., enum: [...]}}) instead"
        )
    if isinstance(value, Mapping):
        return {str(k): _plain(v, (*path, str(k)), base) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, (*path, i), base) for i, v in enumerate(value)]
    if callable(value):
        return _import_path(value, path, base)
    if isinstance(value, str) and "${" in value and not is_template_path(path):
        return value.replace("${", "$${")  # loads back as the same text, not a reference
    return value


def _model(model: BaseModel, path: YamlPath, base: Any) -> dict[str, Any]:
    data: dict[str, Any] = {}
    fields = type(model).model_fields
    for name, info in fields.items():
        if not _differs(model, name):
            continue
        key = info.alias or name
        value = getattr(model, name)
        if isinstance(model, GraphSpec) and name == "edges":
            data[key] = edge_chains(value)
        else:
            data[key] = _plain(value, (*path, key), base)
    return data


def _differs(model: BaseModel, name: str) -> bool:
    info = type(model).model_fields[name]
    default = info.get_default(call_default_factory=True)
    value = getattr(model, name)
    if isinstance(value, BaseModel) and isinstance(default, BaseModel):
        return value != default
    return bool(value != default) or type(value) is not type(default)


def _import_path(value: Any, path: YamlPath, base: Any) -> str:
    """``module:qualname`` that imports back to ``value`` itself, or a clear error."""
    where = _owner(path)
    for candidate in (value, getattr(value, "function", None), getattr(value, "__wrapped__", None)):
        module = getattr(candidate, "__module__", None)
        qualname = getattr(candidate, "__qualname__", None)
        if not isinstance(module, str) or not isinstance(qualname, str):
            continue
        if "<" in qualname:
            raise DefinitionError(
                f"{where}: {qualname.split('.')[-1]} ({module}.{qualname}) is a lambda or a local "
                "function, which YAML cannot name; define it at the top level of a module"
            )
        if module == "__main__":
            raise DefinitionError(
                f"{where}: {qualname} is defined in the running script (__main__), which another "
                "program cannot import; move it into a module and import it from there"
            )
        reference = f"{module}:{qualname}"
        try:
            if resolve_import(reference, base) is value:
                return reference
        except ValueError:
            continue
    raise DefinitionError(
        f"{where}: {value!r} cannot be written as an import path 'module:function' "
        "(it does not import back to the same object)"
    )


def _owner(path: YamlPath) -> str:
    if len(path) >= 2 and path[0] == "nodes":
        return f"node {path[1]!r} ({format_path(path)})"
    if len(path) >= 2 and path[0] == "tools":
        return f"tool {path[1]!r}"
    return format_path(path)


def _move_before(data: dict[str, Any], key: str, later: tuple[str, ...]) -> None:
    value = data.pop(key)
    items = list(data.items())
    index = next((i for i, (k, _) in enumerate(items) if k in later), len(items))
    items.insert(index, (key, value))
    data.clear()
    data.update(items)


def edge_chains(edges: list[Edge]) -> _Lines:
    """Edges as ``"a -> b -> c"`` strings: consecutive edges that continue a chain join it."""
    chains: list[list[str]] = []
    for edge in edges:
        if chains and len(edge.source) == 1 and chains[-1][-1] == edge.source[0]:
            chains[-1].append(edge.target)
        else:
            chains.append([" & ".join(edge.source), edge.target])
    return _Lines(" -> ".join(chain) for chain in chains)


def _restore(data: dict[str, Any], originals: Mapping[YamlPath, Any]) -> None:
    """Put back ``${ENV}`` references and subgraph file names as the file had them."""
    for path, original in originals.items():
        if path[:1] == ("edges",):
            continue
        holder: Any = data
        for part in path[:-1]:
            holder = holder[part] if _has(holder, part) else None
        if _has(holder, path[-1]):
            holder[path[-1]] = original


def _has(holder: Any, part: str | int) -> bool:
    if isinstance(holder, dict):
        return part in holder
    return isinstance(holder, list) and isinstance(part, int) and 0 <= part < len(holder)
