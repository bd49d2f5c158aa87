"""What a template needs, found without rendering it.

:class:`VariableFinder` walks a template's syntax tree (and the templates it includes or extends)
and records every use of a value the template does not define itself: ``question``,
``inputs.question``, ``state.drafts[-1]``, with the template and line of each use. Names bound in
the template (``{% for %}`` targets, ``{% set %}``, macro arguments, imports) are not needs. A use
is *optional* when the template copes with its absence: ``x | default(...)``, ``x is defined``,
or inside ``{% if x is defined %}``.

:func:`check_variables` compares those needs with what a caller will provide and returns the
problems, each with a suggestion (``did you mean 'question'?``).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import TemplateNotFound, TemplateSyntaxError
from pydantic import BaseModel

from ..exceptions import Problem

__all__ = [
    "TemplateProblem",
    "TemplateVariable",
    "VariableFinder",
    "chain_of",
    "check_variables",
    "closest",
    "format_path",
]

Segment = str | int
Loader = Callable[[str], tuple[str, nodes.Template]]  # name -> (filename, syntax tree)

_SPECIAL_NAMES = frozenset({"self", "super", "varargs", "kwargs", "caller", "loop"})
_DEFAULT_FILTERS = frozenset({"default", "d"})
_DEFINED_TESTS = frozenset({"defined", "undefined"})


@dataclasses.dataclass(frozen=True)
class TemplateVariable:
    """One use of a value the template is not given by itself.

    ``path`` is how the template reaches it (``inputs.question``); ``segments`` the same as a
    tuple (``("inputs", "question")``); ``template`` and ``line`` where it is used; ``optional``
    is true when the template copes with it being absent.
    """

    path: str
    segments: tuple[Segment, ...]
    template: str
    line: int
    optional: bool = False

    @property
    def name(self) -> str:
        """The top-level name (``inputs`` for ``inputs.question``)."""
        return str(self.segments[0])


@dataclasses.dataclass(frozen=True)
class TemplateProblem:
    """A problem found without rendering: an undefined variable or a missing include.

    ``variable`` is the path that is not provided (``None`` for include problems) and
    ``suggestion`` the closest path that is. :meth:`to_problem` turns it into the
    :class:`~atdak_agents.exceptions.Problem` graph and workflow validation report.
    """

    template: str
    line: int
    message: str
    variable: str | None = None
    suggestion: str | None = None
    known: tuple[str, ...] = ()

    @property
    def hint(self) -> str | None:
        """``did you mean 'question'?``, else the names that are provided (when few)."""
        if self.suggestion:
            return f"did you mean {self.suggestion!r}?"
        if self.known and len(self.known) <= 12:
            return "available: " + ", ".join(self.known)
        return None

    def to_problem(self, location: str | None = None) -> Problem:
        """As a :class:`Problem` located at ``location`` (default ``template:line``)."""
        return Problem(location or f"{self.template}:{self.line}", self.message, self.hint)

    def __str__(self) -> str:
        return str(self.to_problem())


def format_path(segments: Iterable[Segment]) -> str:
    """``("inputs", "question")`` -> ``inputs.question``; ``("a", 0)`` -> ``a[0]``."""
    text = ""
    for segment in segments:
        if isinstance(segment, int):
            text += f"[{segment}]"
        elif segment.isidentifier():
            text += f".{segment}" if text else segment
        else:
            text += f"[{segment!r}]"
    return text


def chain_of(node: nodes.Node) -> tuple[str, tuple[Segment, ...], list[nodes.Expr]] | None:
    """For ``a.b[0].c`` the root name, the segments after it, and dynamic subscripts met.

    The path stops before a dynamic subscript (``a[i].c`` is ``a``, with ``i`` returned to be
    looked at separately). ``None`` when the chain does not start at a name.
    """
    segments: list[Segment] = []
    dynamic: list[nodes.Expr] = []
    while True:
        if isinstance(node, nodes.Getattr):
            segments.append(node.attr)
        elif isinstance(node, nodes.Getitem):
            key = _constant_key(node.arg)
            if isinstance(key, (str, int)) and not isinstance(key, bool):
                segments.append(key)
            else:
                dynamic.append(node.arg)
                segments.clear()
        elif isinstance(node, nodes.Name):
            return node.name, tuple(reversed(segments)), dynamic
        else:
            return None
        node = node.node


def _constant_key(node: nodes.Expr) -> object:
    """The value of a constant subscript (``x["a"]``, ``x[0]``, ``x[-1]``), else ``None``."""
    if isinstance(node, nodes.Neg) and isinstance(node.node, nodes.Const):
        value = node.node.value
        return -value if isinstance(value, int) and not isinstance(value, bool) else None
    return node.value if isinstance(node, nodes.Const) else None


def _stored_names(target: nodes.Node) -> set[str]:
    found = {n.name for n in target.find_all(nodes.Name)}
    if isinstance(target, nodes.Name):
        found.add(target.name)
    return found


def _defined_paths(test: nodes.Node | None) -> frozenset[str]:
    """Paths checked with ``is defined`` in a condition: uses of them under it are optional."""
    if test is None:
        return frozenset()
    found = set()
    for node in [test, *test.find_all(nodes.Test)]:
        if isinstance(node, nodes.Test) and node.name == "defined":
            chain = chain_of(node.node)
            if chain is not None:
                found.add(format_path((chain[0], *chain[1])))
    return frozenset(found)


@dataclasses.dataclass(frozen=True)
class _Scope:
    bound: frozenset[str] = frozenset()
    guarded: frozenset[str] = frozenset()

    def bind(self, names: Iterable[str]) -> _Scope:
        return dataclasses.replace(self, bound=self.bound | frozenset(names))

    def guard(self, paths: frozenset[str]) -> _Scope:
        return dataclasses.replace(self, guarded=self.guarded | paths) if paths else self

    def is_guarded(self, path: str) -> bool:
        return any(path == g or path.startswith((g + ".", g + "[")) for g in self.guarded)


class VariableFinder:
    """Walks a template's syntax tree; collects :attr:`found`, :attr:`problems`, :attr:`bound`."""

    def __init__(self, template: str, load: Loader | None, ignore: Iterable[str]) -> None:
        self.found: list[TemplateVariable] = []
        self.problems: list[TemplateProblem] = []
        self.bound: set[str] = set()  # every name the templates bind somewhere (for suggestions)
        self._load = load
        self._ignore = frozenset(ignore) | _SPECIAL_NAMES
        self._stack = [template]

    def walk(self, ast: nodes.Template) -> VariableFinder:
        """Collect the variables of ``ast`` (and of what it includes)."""
        self._body(ast.body, _Scope())
        return self

    # ------------------------------------------------------------------ statements

    def _body(self, body: Iterable[nodes.Node], scope: _Scope) -> _Scope:
        for node in body:
            scope = self._statement(node, scope)
        return scope

    def _statement(self, node: nodes.Node, scope: _Scope) -> _Scope:
        handler = _STATEMENTS.get(type(node))
        if handler is not None:
            return handler(self, node, scope)
        for child in node.iter_child_nodes():
            if isinstance(child, nodes.Expr):
                self._expr(child, scope)
            else:
                scope = self._statement(child, scope)
        return scope

    def _bind(self, scope: _Scope, names: Iterable[str]) -> _Scope:
        names = set(names)
        self.bound |= names
        return scope.bind(names)

    def _for(self, node: nodes.For, scope: _Scope) -> _Scope:
        self._expr(node.iter, scope)
        inner = self._bind(scope, {*_stored_names(node.target), "loop"})
        if node.test is not None:
            self._expr(node.test, inner)
        self._body(node.body, inner)
        self._body(node.else_, scope)
        return scope

    def _if(self, node: nodes.If, scope: _Scope) -> _Scope:
        self._expr(node.test, scope)
        after = self._body(node.body, scope.guard(_defined_paths(node.test)))
        for branch in [*node.elif_, *node.else_]:
            after = after.bind(self._statement(branch, scope).bound)
        return scope.bind(after.bound)

    def _macro(self, node: nodes.Macro, scope: _Scope) -> _Scope:
        for default in node.defaults:
            self._expr(default, scope)
        args = {arg.name for arg in node.args}
        self._body(node.body, self._bind(scope, args | {"varargs", "kwargs", "caller"}))
        return self._bind(scope, {node.name})

    def _call_block(self, node: nodes.CallBlock, scope: _Scope) -> _Scope:
        self._expr(node.call, scope)
        self._body(node.body, self._bind(scope, {arg.name for arg in node.args}))
        return scope

    def _assign(self, node: nodes.Assign, scope: _Scope) -> _Scope:
        self._expr(node.node, scope)
        return self._bind(scope, _stored_names(node.target))

    def _assign_block(self, node: nodes.AssignBlock, scope: _Scope) -> _Scope:
        self._body(node.body, scope)
        if node.filter is not None:
            self._expr(node.filter, scope)
        return self._bind(scope, _stored_names(node.target))

    def _with(self, node: nodes.With, scope: _Scope) -> _Scope:
        for value in node.values:
            self._expr(value, scope)
        names: set[str] = set()
        for target in node.targets:
            names |= _stored_names(target)
        self._body(node.body, self._bind(scope, names))
        return scope

    def _import(self, node: nodes.Import, scope: _Scope) -> _Scope:
        self._expr(node.template, scope)
        return self._bind(scope, {node.target})

    def _from_import(self, node: nodes.FromImport, scope: _Scope) -> _Scope:
        self._expr(node.template, scope)
        names = {n[1] if isinstance(n, tuple) else n for n in node.names}
        return self._bind(scope, names)

    def _include(self, node: nodes.Include | nodes.Extends, scope: _Scope) -> _Scope:
        self._expr(node.template, scope)
        target = node.template
        if self._load is None or not isinstance(target, nodes.Const):
            return scope
        if not isinstance(target.value, str):
            return scope
        with_context = getattr(node, "with_context", True)
        ignore_missing = getattr(node, "ignore_missing", False)
        self._follow(target.value, node.lineno, scope if with_context else _Scope(), ignore_missing)
        return scope

    def _follow(self, name: str, line: int, scope: _Scope, ignore_missing: bool) -> None:
        assert self._load is not None
        try:
            filename, ast = self._load(name)
        except TemplateNotFound as exc:
            if not ignore_missing:
                self._problem(line, exc.message or f"included template {name!r} not found")
            return
        except TemplateSyntaxError as exc:
            self._problem(line, f"included template {name!r} has a syntax error: {exc.message}")
            return
        if filename in self._stack:
            return  # a template that includes itself: its variables are already being collected
        self._stack.append(filename)
        self._body(ast.body, scope)
        self._stack.pop()

    def _problem(self, line: int, message: str) -> None:
        self.problems.append(TemplateProblem(self._stack[-1], line, message))

    # ------------------------------------------------------------------ expressions

    def _expr(self, node: nodes.Node, scope: _Scope, optional: bool = False) -> None:
        chain = chain_of(node)
        if chain is not None:
            root, segments, dynamic = chain
            self._use(root, segments, node.lineno, scope, optional)
            for index in dynamic:
                self._expr(index, scope)
            return
        special = _EXPRESSIONS.get(type(node))
        if special is not None and special(self, node, scope):
            return
        for child in node.iter_child_nodes():
            self._expr(child, scope)

    def _use(
        self, root: str, segments: tuple[Segment, ...], line: int, scope: _Scope, optional: bool
    ) -> None:
        if root in scope.bound or root in self._ignore:
            return
        path = format_path((root, *segments))
        optional = optional or scope.is_guarded(path)
        self.found.append(
            TemplateVariable(path, (root, *segments), self._stack[-1], line, optional)
        )

    def _call(self, node: nodes.Call, scope: _Scope) -> bool:
        if not isinstance(node.node, nodes.Getattr):
            return False
        self._expr(node.node.node, scope)  # a method call needs its object, not the method name
        for child in [*node.args, *node.kwargs, node.dyn_args, node.dyn_kwargs]:
            if child is not None:
                self._expr(child, scope)
        return True

    def _filter_or_test(self, node: nodes.Filter | nodes.Test, scope: _Scope) -> bool:
        names = _DEFAULT_FILTERS if isinstance(node, nodes.Filter) else _DEFINED_TESTS
        if node.name not in names or node.node is None:
            return False
        self._expr(node.node, scope, optional=True)
        for child in [*node.args, *node.kwargs, node.dyn_args, node.dyn_kwargs]:
            if child is not None:
                self._expr(child, scope)
        return True

    def _and(self, node: nodes.And, scope: _Scope) -> bool:
        self._expr(node.left, scope)
        self._expr(node.right, scope.guard(_defined_paths(node.left)))
        return True

    def _cond(self, node: nodes.CondExpr, scope: _Scope) -> bool:
        self._expr(node.test, scope)
        self._expr(node.expr1, scope.guard(_defined_paths(node.test)))
        if node.expr2 is not None:
            self._expr(node.expr2, scope)
        return True


_STATEMENTS: dict[type[nodes.Node], Callable[[VariableFinder, Any, _Scope], _Scope]] = {
    nodes.For: VariableFinder._for,
    nodes.If: VariableFinder._if,
    nodes.Macro: VariableFinder._macro,
    nodes.CallBlock: VariableFinder._call_block,
    nodes.Assign: VariableFinder._assign,
    nodes.AssignBlock: VariableFinder._assign_block,
    nodes.With: VariableFinder._with,
    nodes.Import: VariableFinder._import,
    nodes.FromImport: VariableFinder._from_import,
    nodes.Include: VariableFinder._include,
    nodes.Extends: VariableFinder._include,
}

_EXPRESSIONS: dict[type[nodes.Node], Callable[[VariableFinder, Any, _Scope], bool]] = {
    nodes.Call: VariableFinder._call,
    nodes.Filter: VariableFinder._filter_or_test,
    nodes.Test: VariableFinder._filter_or_test,
    nodes.And: VariableFinder._and,
    nodes.CondExpr: VariableFinder._cond,
}


# ---------------------------------------------------------------------- checking


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to ``word`` (difflib), if any is close enough."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _known_keys(spec: object) -> dict[str, object] | None:
    """What is known of the keys under a name: a mapping of key -> spec, or ``None``."""
    if spec is None or isinstance(spec, (str, bytes)):
        return None
    if isinstance(spec, Mapping):
        return {str(key): value for key, value in spec.items()}
    if isinstance(spec, type) and issubclass(spec, BaseModel):
        return {name: field.annotation for name, field in spec.model_fields.items()}
    if isinstance(spec, Iterable):
        return {str(key): None for key in spec}
    return None


def check_variables(
    found: Iterable[TemplateVariable], available: Mapping[str, Any] | Iterable[str]
) -> Iterator[TemplateProblem]:
    """The uses in ``found`` that ``available`` does not provide, one problem per place."""
    top = _known_keys(available) or {}
    seen: set[tuple[str, int, str]] = set()
    for variable in found:
        if variable.optional:
            continue
        problem = _check_one(variable, top)
        if problem is not None and (problem.template, problem.line, str(problem.variable)) not in (
            seen
        ):
            seen.add((problem.template, problem.line, str(problem.variable)))
            yield problem


def _check_one(variable: TemplateVariable, top: dict[str, object]) -> TemplateProblem | None:
    known: dict[str, object] | None = top
    for depth, segment in enumerate(variable.segments):
        if known is None or isinstance(segment, int):
            return None
        if segment not in known:
            prefix = variable.segments[:depth]
            missing = format_path((*prefix, segment))
            near = closest(segment, known)
            return TemplateProblem(
                variable.template,
                variable.line,
                f"undefined variable {missing!r}",
                variable=missing,
                suggestion=format_path((*prefix, near)) if near else None,
                known=tuple(sorted(known)),
            )
        known = _known_keys(known[segment])
    return None
