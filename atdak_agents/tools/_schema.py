"""A function's signature and docstring as a pydantic model and a JSON schema for the model."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import docstring_parser
import pydantic
from pydantic import BaseModel, ConfigDict
from pydantic.fields import FieldInfo

from ..exceptions import ToolDefinitionError
from ._records import RunContext

__all__ = ["Signature", "build_signature", "clean_schema", "description_of", "where"]


@dataclass(frozen=True)
class Signature:
    model: type[BaseModel]
    fields: dict[str, str]  # parameter name -> field name in the model
    context_param: str | None  # the RunContext parameter, when the tool takes one


def where(function: Callable[..., Any]) -> str:
    code = getattr(function, "__code__", None)
    if code is None:
        return repr(function)
    return f"{code.co_filename}:{code.co_firstlineno}"


def _is_context(annotation: Any) -> bool:
    return (typing.get_origin(annotation) or annotation) is RunContext


def _type_hints(function: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(function, include_extras=True)
    except Exception as exc:  # NameError for an undefined name, TypeError for a bad hint
        raise ToolDefinitionError(
            f"cannot read the type hints of {getattr(function, '__qualname__', function)} at "
            f"{where(function)}: {exc}; define the types it uses at module level"
        ) from exc


def _param_descriptions(doc: docstring_parser.Docstring) -> dict[str, str]:
    return {p.arg_name: " ".join((p.description or "").split()) for p in doc.params}


def _field(param: inspect.Parameter, annotation: Any, description: str | None) -> Any:
    default = param.default
    extra: dict[str, Any] = {"description": description} if description else {}
    if isinstance(default, FieldInfo):  # x: int = Field(5, ...): its own settings win
        ours = pydantic.Field(alias=param.name, **extra)
        return (annotation, FieldInfo.merge_field_infos(ours, default, alias=param.name))
    if default is inspect.Parameter.empty:
        return (annotation, pydantic.Field(alias=param.name, **extra))
    return (annotation, pydantic.Field(default, alias=param.name, **extra))


def _check_parameter(function: Callable[..., Any], param: inspect.Parameter) -> None:
    if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
        raise ToolDefinitionError(
            f"tool function {function.__qualname__} at {where(function)} takes "
            f"{'*' if param.kind is param.VAR_POSITIONAL else '**'}{param.name}: a tool needs "
            "named, typed parameters so the model can be told what to send"
        )
    if param.kind is inspect.Parameter.POSITIONAL_ONLY:
        raise ToolDefinitionError(
            f"tool function {function.__qualname__} at {where(function)}: parameter "
            f"{param.name!r} is positional-only; remove the '/' so it can be passed by name"
        )


def build_signature(
    function: Callable[..., Any], name: str, doc: docstring_parser.Docstring
) -> Signature:
    hints = _type_hints(function)
    descriptions = _param_descriptions(doc)
    params = list(inspect.signature(function).parameters.values())
    takes_context = bool(params) and _is_context(hints.get(params[0].name))
    fields: dict[str, str] = {}
    definitions: dict[str, Any] = {}
    for index, param in enumerate(params[1:] if takes_context else params):
        _check_parameter(function, param)
        if _is_context(hints.get(param.name)):
            raise ToolDefinitionError(
                f"tool function {function.__qualname__} at {where(function)}: the RunContext "
                f"parameter {param.name!r} must be the first parameter"
            )
        field_name = f"p{index}_{param.name}".replace("-", "_")
        fields[param.name] = field_name
        annotation = hints.get(param.name, Any)
        definitions[field_name] = _field(param, annotation, descriptions.get(param.name))
    config = ConfigDict(extra="forbid")
    try:
        model = pydantic.create_model(f"{name}_arguments", __config__=config, **definitions)
        model.model_json_schema(by_alias=True)
    except (pydantic.PydanticSchemaGenerationError, pydantic.PydanticUserError, TypeError) as exc:
        raise ToolDefinitionError(
            f"tool function {function.__qualname__} at {where(function)} has a parameter "
            f"type that cannot be described as JSON: {exc}"
        ) from exc
    return Signature(model, fields, params[0].name if takes_context else None)


_DATA_KEYS = frozenset({"default", "examples", "const", "enum"})
_MAP_KEYS = frozenset({"properties", "$defs", "definitions", "patternProperties"})


def clean_schema(node: Any) -> Any:
    """The schema without pydantic's generated ``title`` keys (they cost tokens, add nothing)."""
    if isinstance(node, list):
        return [clean_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title" and isinstance(value, str):
            continue
        if key in _DATA_KEYS:
            out[key] = value
        elif key in _MAP_KEYS and isinstance(value, dict):
            out[key] = {name: clean_schema(sub) for name, sub in value.items()}
        else:
            out[key] = clean_schema(value)
    return out


def description_of(doc: docstring_parser.Docstring) -> str:
    parts = [doc.short_description or "", doc.long_description or ""]
    return "\n\n".join(p.strip() for p in parts if p and p.strip())
