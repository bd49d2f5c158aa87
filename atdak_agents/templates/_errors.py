"""Turning jinja2's exceptions into :class:`~atdak_agents.exceptions.TemplateError` messages.

Every message starts with ``template:line:`` and says what was wrong and how to fix it. The line
of a render error is read from the traceback, which jinja2 rewrites to point into templates;
the path that failed (``inputs.questoin``) from the syntax tree at that line.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from jinja2 import nodes
from jinja2.environment import Environment
from jinja2.exceptions import (
    SecurityError,
    TemplateNotFound,
    TemplateRuntimeError,
    TemplateSyntaxError,
)
from jinja2.utils import missing
from pydantic import BaseModel

from ..exceptions import TemplateError
from ._sandbox import MissingValue
from ._variables import Segment, VariableFinder, chain_of, closest, format_path

__all__ = ["render_error", "searched", "syntax_error"]

_TAGS = (
    "block",
    "call",
    "extends",
    "filter",
    "for",
    "from",
    "if",
    "import",
    "include",
    "macro",
    "raw",
    "set",
    "with",
    "system",
    "user",
    "assistant",
    "message",
)
_KNOWN_TAGS = (*_TAGS, *(f"end{tag}" for tag in _TAGS if tag not in ("extends", "import")))
_UNKNOWN_TAG = re.compile(r"unknown tag '(\w+)'")
_MAX_LISTED = 12


def _where(template: str, line: int | None) -> str:
    return f"{template}:{line}" if line else template


def syntax_error(exc: TemplateSyntaxError) -> TemplateError:
    """A :class:`TemplateError` for a template that does not parse."""
    template = exc.filename or exc.name or "<template>"
    message = exc.message or "invalid syntax"
    unknown = _UNKNOWN_TAG.search(message)
    near = closest(unknown.group(1), _KNOWN_TAGS) if unknown else None
    if near and "looking for" not in message:
        message += f" Did you mean {{% {near} %}}?"
    return TemplateError(
        f"{_where(template, exc.lineno)}: syntax error: {message}",
        template=template,
        line=exc.lineno,
    )


def render_error(
    exc: Exception,
    *,
    environment: Environment,
    sources: Mapping[str, str],
    default: str,
    given: Collection[str],
    search_path: Sequence[str],
) -> TemplateError:
    """A :class:`TemplateError` for ``exc``, raised while rendering.

    ``sources`` maps the filename of every template that may have run to its source;
    ``default`` names the template rendered; ``given`` the variables it was given;
    ``search_path`` the folders includes are looked up in.
    """
    if isinstance(exc, TemplateSyntaxError):  # an included file that does not parse
        return syntax_error(exc)
    template, line = _innermost_frame(exc, sources) or (default, None)
    where = _where(template, line)
    if isinstance(exc, MissingValue):
        source = sources.get(template)
        ast = environment.parse(source) if source is not None else None
        return _missing_error(exc, ast, template, line, given)
    if isinstance(exc, SecurityError):
        message = (
            f"refused by the sandbox: {str(exc).rstrip('.')}. Templates can read the values "
            "they are given, but not reach Python internals or change the data."
        )
    elif isinstance(exc, TemplateRuntimeError):
        message = str(exc)
    elif isinstance(exc, TemplateNotFound):
        message = f"included template {exc.name!r} not found {searched(search_path)}"
    else:
        message = f"{type(exc).__name__}: {exc}"
    return TemplateError(f"{where}: {message}", template=template, line=line)


def searched(search_path: Sequence[str]) -> str:
    """Where included templates were looked for, for a "not found" message."""
    if not search_path:
        return "(no search path: give the template search_path=[folder, ...])"
    return "in the search path " + ", ".join(search_path)


def _innermost_frame(exc: BaseException, sources: Mapping[str, str]) -> tuple[str, int] | None:
    found = None
    traceback = exc.__traceback__
    while traceback is not None:
        filename = traceback.tb_frame.f_code.co_filename
        if filename in sources:
            found = (filename, traceback.tb_lineno)
        traceback = traceback.tb_next
    return found


def _failed_segments(
    exc: MissingValue, ast: nodes.Template | None, line: int | None
) -> tuple[Segment, ...] | None:
    """The path the template used when it failed, e.g. ``("inputs", "questoin")``."""
    if exc.container is missing:
        return (str(exc.key),)
    if ast is None or line is None:
        return None
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        chain = chain_of(node)
        if node.lineno == line and chain is not None and chain[1] and chain[1][-1] == exc.key:
            return (chain[0], *chain[1])
    return None


def _missing_error(
    exc: MissingValue,
    ast: nodes.Template | None,
    template: str,
    line: int | None,
    given: Collection[str],
) -> TemplateError:
    found = _failed_segments(exc, ast, line)
    segments = found or (exc.key,)
    path = format_path(segments) if found else str(exc.key)
    if exc.container is missing:  # a top-level name: suggest from the values and the locals
        bound = VariableFinder("", None, ()).walk(ast).bound if ast is not None else set()
        known, candidates, owner = sorted(given), [*given, *bound], "variables given"
    else:
        known = candidates = _keys_of(exc.container)
        owner = f"{format_path(segments[:-1])} has" if found else "it has"
    near = closest(exc.key, candidates) if isinstance(exc.key, str) else None
    suggestion = format_path((*segments[:-1], near)) if near else None
    message = f"undefined variable {path!r}{_explanation(exc, suggestion, owner, known)}"
    return TemplateError(
        f"{_where(template, line)}: {message}",
        template=template,
        line=line,
        variable=path,
        suggestion=suggestion,
    )


def _explanation(exc: MissingValue, suggestion: str | None, owner: str, known: list[str]) -> str:
    if isinstance(exc.key, int) and isinstance(exc.container, (list, tuple)):
        return f": index {exc.key} is out of range, the list has {len(exc.container)} items"
    if suggestion:
        return f" (did you mean {suggestion!r}?); {owner}: {_listing(known)}"
    if exc.container is missing:
        return (
            f"; {owner}: {_listing(known)}. Pass {exc.key}=... when rendering, or write "
            f"{{{{ {exc.key} | default('') }}}} if it may be missing"
        )
    return f"; {owner}: {_listing(known)}" if known else ""


def _keys_of(container: Any) -> list[str]:
    if isinstance(container, Mapping):
        return [str(key) for key in container]
    if isinstance(container, BaseModel):
        return list(type(container).model_fields)
    if isinstance(container, (str, int, float, list, tuple)):
        return []
    return [name for name in dir(container) if not name.startswith("_")]


def _listing(names: Iterable[str]) -> str:
    ordered = sorted(names)
    if not ordered:
        return "none"
    shown = ", ".join(ordered[:_MAX_LISTED])
    return shown + (f", … ({len(ordered)} in all)" if len(ordered) > _MAX_LISTED else "")
