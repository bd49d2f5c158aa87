"""PromptTemplate (one template, inline or from a file) and PromptEnvironment (where they live)."""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from jinja2 import Template, nodes
from jinja2.exceptions import (
    SecurityError,
    TemplateNotFound,
    TemplateRuntimeError,
    TemplateSyntaxError,
)

from ..exceptions import InvalidParameterError, TemplateError
from ..messages import Message, Role
from ._chat import COLLECTOR, ROLES, Collector, RoleBlocks, stray_output_line, tidy
from ._errors import render_error, searched, syntax_error
from ._filters import make_filters
from ._sandbox import MissingValue, PromptSandbox, RecordingLoader, StrictPromptUndefined
from ._variables import TemplateProblem, TemplateVariable, VariableFinder, check_variables

__all__ = ["PromptEnvironment", "PromptTemplate", "SearchPath"]

SearchPath = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]

# errors that are the template author's or caller's mistake: no Python traceback is chained
_USER_MISTAKES = (MissingValue, SecurityError, TemplateNotFound, TemplateRuntimeError)


@dataclasses.dataclass(frozen=True)
class _Compiled:
    template: Template
    ast: nodes.Template


class PromptEnvironment:
    """Where templates find the files they include, and the filters they can use.

    ``search_path``: folders searched by ``{% include %}``, ``{% import %}`` and
    ``{% extends %}``. ``model``: the model ``truncate_tokens`` counts tokens for (each call may
    name another). ``filters``: extra filters, by name. Compiled templates are cached, so
    building the same template again is nearly free.
    """

    def __init__(
        self,
        search_path: SearchPath = (),
        *,
        model: str | None = None,
        filters: Mapping[str, Callable[..., Any]] | None = None,
    ) -> None:
        self.search_path = _paths(search_path)
        self.model = model
        self._loader = RecordingLoader(self.search_path)
        self._jinja = PromptSandbox(
            loader=self._loader,
            undefined=StrictPromptUndefined,
            extensions=[RoleBlocks],
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,  # an included file keeps its last line break
            autoescape=False,
        )
        self._jinja.filters.update(make_filters(model))
        self._jinja.filters.update(filters or {})
        self._compile_cached = functools.lru_cache(maxsize=512)(self._compile)

    def __repr__(self) -> str:
        return f"PromptEnvironment(search_path={list(self.search_path)!r}, model={self.model!r})"

    def _compile(self, source: str, name: str) -> _Compiled:
        try:
            ast = self._jinja.parse(source, name=name, filename=name)
            _refuse_stray_output(ast, name)
            code = self._jinja.compile(ast, name=name, filename=name)
        except TemplateSyntaxError as exc:
            raise syntax_error(exc) from None
        globals_ = self._jinja.make_globals(None)
        return _Compiled(self._jinja.template_class.from_code(self._jinja, code, globals_), ast)

    def _parse_included(self, name: str) -> tuple[str, nodes.Template]:
        """The filename and syntax tree of a template found on the search path."""
        try:
            source, filename, _ = self._loader.get_source(self._jinja, name)
        except TemplateNotFound:
            message = f"included template {name!r} not found {searched(self.search_path)}"
            raise TemplateNotFound(name, message) from None
        return filename or name, self._jinja.parse(source, name=name, filename=filename)

    def _finder(self, name: str, ast: nodes.Template) -> VariableFinder:
        """A finder that has walked the template ``name`` and everything it includes."""
        return VariableFinder(name, self._parse_included, self._jinja.globals).walk(ast)

    def _render_error(
        self, exc: Exception, template: PromptTemplate, values: Mapping[str, Any]
    ) -> TemplateError:
        """The :class:`TemplateError` explaining ``exc``, raised while rendering ``template``."""
        return render_error(
            exc,
            environment=self._jinja,
            sources={**self._loader.sources, template.name: template.source},
            default=template.name,
            given=values,
            search_path=self.search_path,
        )


def _refuse_stray_output(ast: nodes.Template, name: str) -> None:
    line = stray_output_line(ast)
    if line is not None:
        raise TemplateError(
            f"{name}:{line}: text outside the role blocks: in a chat template all text goes "
            "inside {% system %}, {% user %} or {% assistant %} blocks "
            "(a {# comment #} may stand outside)",
            template=name,
            line=line,
        )


def _paths(search_path: SearchPath) -> tuple[str, ...]:
    if isinstance(search_path, (str, os.PathLike)):
        return (os.fspath(search_path),)
    return tuple(os.fspath(p) for p in search_path)


@functools.lru_cache(maxsize=64)
def _shared(search_path: tuple[str, ...], cwd: str) -> PromptEnvironment:
    return PromptEnvironment(search_path)


def _shared_environment(search_path: tuple[str, ...]) -> PromptEnvironment:
    """One environment per search path (and working directory), shared by templates."""
    return _shared(search_path, os.getcwd() if search_path else "")


class PromptTemplate:
    """A jinja2 prompt template, compiled once, rendered to text or to chat messages.

    ``PromptTemplate(source, name="classify")`` makes one from a string (``name`` is what errors
    call it); :meth:`from_file` reads one from a file. ``role`` is the role of the single message
    a template without role blocks renders to. Includes are looked up in ``search_path`` (or the
    ``environment``'s). Rendering never treats a value as template source.
    """

    __slots__ = ("_compiled", "_environment", "name", "role", "source")

    def __init__(
        self,
        source: str,
        *,
        name: str = "<template>",
        role: Role = "user",
        search_path: SearchPath = (),
        environment: PromptEnvironment | None = None,
    ) -> None:
        if role not in ROLES:
            raise InvalidParameterError("role", role, f"one of {', '.join(ROLES)}")
        if environment is not None and _paths(search_path):
            raise InvalidParameterError(
                "search_path", search_path, "give it to the PromptEnvironment, not with it"
            )
        self._environment = environment or _shared_environment(_paths(search_path))
        self.source = source
        self.name = name
        self.role = role
        self._compiled = self._environment._compile_cached(source, name)

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        *,
        role: Role = "user",
        search_path: SearchPath = (),
        environment: PromptEnvironment | None = None,
    ) -> PromptTemplate:
        """The template in the UTF-8 file ``path``; it includes files from its own folder first."""
        file = Path(path)
        source = _read(file)
        if environment is None:
            environment = _shared_environment((str(file.parent), *_paths(search_path)))
            search_path = ()
        return cls(
            source, name=str(file), role=role, search_path=search_path, environment=environment
        )

    def __repr__(self) -> str:
        return f"PromptTemplate(name={self.name!r}, role={self.role!r})"

    @property
    def environment(self) -> PromptEnvironment:
        """The environment the template was compiled in."""
        return self._environment

    def render(self, variables: Mapping[str, Any] | None = None, /, **values: Any) -> str:
        """The template rendered to text, from ``variables`` and/or keyword values.

        Raises :class:`TemplateError` for a chat template (use :meth:`render_messages`).
        """
        messages, text = self._run(variables, values)
        if messages:
            raise TemplateError(
                f"{self.name}: this is a chat template (it has role blocks); "
                "use render_messages() to get its messages",
                template=self.name,
            )
        return text

    def render_messages(
        self, variables: Mapping[str, Any] | None = None, /, **values: Any
    ) -> list[Message]:
        """The template rendered to chat messages.

        Each role block gives one message (a block that renders empty gives none); a template
        without role blocks gives one message with the template's ``role``.
        """
        messages, text = self._run(variables, values)
        if not messages:
            return [Message(role=self.role, content=text)] if text else []
        if text:
            raise TemplateError(
                f"{self.name}: text outside the role blocks ({text[:60]!r}); in a chat template "
                "all text goes inside {% system %}, {% user %} or {% assistant %} blocks",
                template=self.name,
            )
        return messages

    def _run(
        self, variables: Mapping[str, Any] | None, values: dict[str, Any]
    ) -> tuple[list[Message], str]:
        if variables:
            values = {**variables, **values}
        collector = Collector()
        token = COLLECTOR.set(collector)
        try:
            text = self._compiled.template.render(values)
        except TemplateError:
            raise
        except Exception as exc:
            error = self._environment._render_error(exc, self, values)
            raise error from (None if isinstance(exc, _USER_MISTAKES) else exc)
        finally:
            COLLECTOR.reset(token)
        return collector.messages, tidy(text)

    def variables(self) -> list[TemplateVariable]:
        """Every use of a value the template is not given by itself, includes followed.

        Found without rendering, in the order they appear, each with its template and line.
        """
        return self._environment._finder(self.name, self._compiled.ast).found

    def check(self, available: Mapping[str, Any] | Sequence[str]) -> list[TemplateProblem]:
        """The problems of rendering with ``available`` values, found without rendering.

        ``available`` lists the names that will be given, or maps each to what is known of its
        keys: ``None`` (anything), a list of key names, a nested mapping, or a pydantic model
        class. Uses guarded by ``default`` or ``is defined`` are never problems.
        """
        finder = self._environment._finder(self.name, self._compiled.ast)
        return [*finder.problems, *check_variables(finder.found, available)]


def _read(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TemplateError(
            f"{file}: template file not found (looked for {file.resolve()})", template=str(file)
        ) from None
    except UnicodeDecodeError as exc:
        raise TemplateError(
            f"{file}: not a UTF-8 text file ({exc.reason} at byte {exc.start}); save it as UTF-8",
            template=str(file),
        ) from None
    except OSError as exc:
        raise TemplateError(f"{file}: cannot read the template: {exc}", template=str(file)) from exc
