"""``${ENV_VAR}`` and ``${ENV_VAR:-default}`` in a workflow's settings.

Interpolation applies to every string value of the file *except* templates and expressions
(prompts, instructions, questions, router conditions, ``over``, outputs, subgraph inputs, memory
sessions and queries), which jinja2 renders at run time. ``$${`` writes a literal ``${``.

Values read from the environment are secrets: the :class:`~atdak_agents.tracing.redact.Redactor`
of the loaded workflow masks them in traces and errors. Defaults written in the file are not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..tracing.redact import Redactor
from ._source import YamlPath

__all__ = ["Interpolation", "Interpolator", "is_template_path"]

_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# keys whose string values are jinja2 templates or expressions, wherever they appear in a node
_TEMPLATE_KEYS = frozenset(
    {"prompt", "system", "instructions", "input", "ask", "when", "over", "query", "session"}
)


def is_template_path(path: YamlPath) -> bool:
    """Whether the value at ``path`` is a template or expression (left for jinja2)."""
    for index in range(len(path) - 1, 0, -1):  # inside an inline graph: its own paths count
        if path[index] == "graph" and path[index - 1] in ("subgraph", "map"):
            return is_template_path(path[index + 1 :])
    if not path:
        return False
    if path[0] == "outputs" and len(path) == 2:
        return True
    strings = [p for p in path if isinstance(p, str)]
    if path[-1] in _TEMPLATE_KEYS and (path[0] == "nodes" or path[-1] == "session"):
        return True
    if "memory_write" in strings and "messages" in strings:
        return True
    return len(path) >= 2 and path[-2] == "inputs" and "subgraph" in strings


@dataclass
class Interpolation:
    """The result of interpolating one string."""

    value: str
    error: str | None = None
    hint: str | None = None
    used: bool = False


@dataclass
class Interpolator:
    """Replaces ``${NAME}`` references using ``env``, recording secrets in ``redactor``."""

    env: Mapping[str, str]
    redactor: Redactor = field(default_factory=Redactor)

    def __call__(self, text: str) -> Interpolation:
        if "$" not in text:
            return Interpolation(text)
        result = Interpolation(text)
        parts: list[str] = []
        last = 0
        for match in _REFERENCE.finditer(text):
            parts.append(text[last : match.start()])
            last = match.end()
            if match.group(0) == "$${":
                parts.append("${")
                result.used = True
                continue
            replacement = self._one(match.group(1), result)
            if replacement is None:
                return result
            parts.append(replacement)
        parts.append(text[last:])
        result.value = "".join(parts)
        return result

    def _one(self, body: str, result: Interpolation) -> str | None:
        result.used = True
        name, has_default, default = body.partition(":-")
        if not _NAME.match(name):
            result.error = f"`${{{body}}}` is not a valid reference"
            result.hint = "write ${NAME} or ${NAME:-default}; $${ writes a literal ${"
            return None
        value = self.env.get(name)
        if value is None or (has_default and value == ""):
            if has_default:
                return default
            result.error = f"environment variable {name!r} is not set"
            result.hint = f"export {name}=... or write a default: ${{{name}:-value}}"
            return None
        self.redactor.add_secret(value)
        return value
