"""Structured output: a final answer that must be JSON matching a schema, with repair.

An :class:`OutputSpec` is built from a pydantic model or from a field mapping as written in YAML
(``{category: {enum: [billing, shipping]}, score: {type: integer}}``). It tells the model what to
answer (:meth:`~OutputSpec.instructions`), reads the answer tolerantly (fenced or bare JSON,
prose around it, small defects such as trailing commas), validates it, and words a correction the
model can act on when it is wrong.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from .exceptions import DefinitionError, Problem
from .tool_protocols._json import Incomplete, Invalid, read_value

__all__ = ["FIELD_KEYS", "OutputSpec", "model_from_fields", "output_problems"]

FIELD_KEYS = frozenset({"type", "enum", "description", "items", "required", "default"})

_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "list": list[Any],
    "array": list[Any],
    "dict": dict[str, Any],
    "object": dict[str, Any],
    "any": Any,
}
_FENCE = re.compile(r"```(?:json|JSON)?\s*\n(.*?)```", re.DOTALL)


def output_problems(where: str, fields: Mapping[str, Any]) -> list[Problem]:
    """What is wrong with a YAML-style output field mapping (unknown keys, unknown types)."""
    problems = []
    for field, spec in fields.items():
        place = f"{where}.{field}"
        if not isinstance(spec, Mapping):
            if spec not in _TYPES:
                problems.append(Problem(place, f"unknown type {spec!r}", _types_hint()))
            continue
        problems += [
            Problem(f"{place}.{key}", f"unknown key {key!r}", _key_hint(str(key)))
            for key in spec
            if key not in FIELD_KEYS
        ]
        kind = spec.get("type")
        if kind is not None and kind not in _TYPES:
            problems.append(Problem(f"{place}.type", f"unknown type {kind!r}", _types_hint()))
    return problems


def _key_hint(key: str) -> str:
    close = difflib.get_close_matches(key, FIELD_KEYS, n=1)
    return f"did you mean {close[0]!r}?" if close else f"use {', '.join(sorted(FIELD_KEYS))}"


def _types_hint() -> str:
    return "use one of " + ", ".join(sorted(_TYPES))


def model_from_fields(name: str, fields: Mapping[str, Any]) -> type[BaseModel]:
    """A pydantic model from a YAML-style field mapping: each field is ``{type, enum,
    description, items, required, default}`` (``type`` defaults to string, or to the enum)."""
    definitions: dict[str, Any] = {}
    for field, spec in fields.items():
        spec = spec if isinstance(spec, Mapping) else {"type": spec}
        definitions[field] = _field(name, field, spec)
    model: type[BaseModel] = create_model(
        name, __config__=ConfigDict(extra="forbid"), **definitions
    )
    return model


def _field(model: str, field: str, spec: Mapping[str, Any]) -> tuple[Any, Any]:
    enum = spec.get("enum")
    if enum is not None:
        annotation: Any = Literal[tuple(enum)]
    else:
        kind = spec.get("type", "string")
        if kind not in _TYPES:
            known = ", ".join(sorted(_TYPES))
            raise DefinitionError(
                f"output field {model}.{field}: unknown type {kind!r} (use one of {known})"
            )
        annotation = _TYPES[kind]
        if kind in ("list", "array") and "items" in spec:
            item = spec["items"]
            item_type = _TYPES.get(
                item.get("type", "string") if isinstance(item, Mapping) else item
            )
            annotation = list[item_type or Any]  # type: ignore[misc]
    required = spec.get("required", "default" not in spec)
    default = ... if required else spec.get("default")
    if not required and default is None:
        annotation = annotation | None
    return annotation, Field(default, description=spec.get("description"))


class OutputSpec:
    """What a final answer must be, and how to read and repair it."""

    def __init__(
        self, output: type[BaseModel] | Mapping[str, Any], *, name: str = "Answer"
    ) -> None:
        if isinstance(output, type) and issubclass(output, BaseModel):
            self.model = output
        else:
            self.model = model_from_fields(name, output)
        self.schema = self.model.model_json_schema()

    @property
    def fields(self) -> list[str]:
        return list(self.model.model_fields)

    def instructions(self) -> str:
        """What to tell the model about the shape of its final answer."""
        schema = json.dumps(self.schema, ensure_ascii=False, separators=(",", ":"))
        return (
            "Give your final answer as a single JSON object, with no other text, that matches "
            f"this JSON schema:\n```json\n{schema}\n```"
        )

    def parse(self, text: str) -> tuple[BaseModel | None, str | None]:
        """``(value, None)`` for a valid answer, ``(None, what is wrong)`` otherwise."""
        data, problem = extract_json(text)
        if problem is not None:
            return None, problem
        try:
            return self.model.model_validate(data), None
        except ValidationError as exc:
            return None, _explain(exc)

    def correction(self, problem: str) -> str:
        """The message that asks the model to fix its answer."""
        return (
            f"Your final answer could not be used: {problem}. Answer again with only the JSON "
            "object, fixed, matching the schema."
        )


def extract_json(text: str) -> tuple[Any, str | None]:
    """The JSON object in ``text``: a fenced block, else the first object that reads."""
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for candidate in candidates:
        for start in (i for i, ch in enumerate(candidate) if ch in "{["):
            try:
                value, _ = read_value(candidate, start, close_truncated=True)
            except (Incomplete, Invalid, RecursionError):
                continue
            if isinstance(value, dict | list):
                return value, None
    return None, "it contains no JSON object"


def _explain(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "the answer"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)
