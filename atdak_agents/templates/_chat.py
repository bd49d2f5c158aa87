"""Chat templates: ``{% system %}``, ``{% user %}``, ``{% assistant %}`` and ``{% message role %}``.

Each block renders its body and appends one :class:`~atdak_agents.messages.Message` to the
collector of the current render (a ContextVar, so renders in threads and tasks never mix); the
block itself outputs nothing. The split into messages is
made from the template's *structure*, never from the rendered text, so a value containing
``{% system %}`` or ``# system:`` stays inside the message it was put in: user input cannot forge
a new message.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from typing import Any, TypeGuard, get_args

from jinja2 import nodes, pass_context
from jinja2.environment import Environment
from jinja2.exceptions import TemplateRuntimeError
from jinja2.ext import Extension
from jinja2.parser import Parser
from jinja2.runtime import Context

from ..messages import Message, Role

__all__ = ["COLLECTOR", "ROLES", "Collector", "RoleBlocks", "stray_output_line", "tidy"]

ROLES: tuple[str, ...] = tuple(r for r in get_args(Role) if r != "tool")

_LEADING_BLANK_LINES = re.compile(r"\A(?:[ \t]*\n)+")


def tidy(text: str) -> str:
    """Drop blank lines at the start and whitespace at the end; the rest is kept as written."""
    return _LEADING_BLANK_LINES.sub("", text.rstrip())


class Collector:
    """The messages produced so far by one render."""

    __slots__ = ("in_block", "messages")

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.in_block = False


COLLECTOR: ContextVar[Collector | None] = ContextVar("atdak_prompt_collector", default=None)


# Filter names a template cannot write (``-`` ends a name), so only role blocks use them.
_OPEN = "atdak-open-message"
_CLOSE = "atdak-close-message"


class RoleBlocks(Extension):
    """The jinja2 extension behind the role blocks.

    A block compiles to a ``{% filter %}`` block: its body renders into a buffer, a first filter
    call marks the block open (to refuse nesting through macros and includes), and the closing
    filter turns the buffer into a message. Filters are called directly by the compiled code,
    which keeps a block cheap (no macro object, no sandboxed call per block).
    """

    tags = {*ROLES, "message"}  # noqa: RUF012 - the base class declares it this way

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters[_OPEN] = _open_block
        environment.filters[_CLOSE] = _close_block

    def parse(self, parser: Parser) -> nodes.Node:
        """``{% user %}...{% enduser %}`` or ``{% message expr %}...{% endmessage %}``."""
        token = next(parser.stream)
        if token.value == "message":
            role: nodes.Expr = parser.parse_expression()
        else:
            role = nodes.Const(token.value)
        body = parser.parse_statements((f"name:end{token.value}",), drop_needle=True)
        inner = next(_role_blocks(body), None)
        if inner is not None:
            parser.fail(
                "role blocks cannot be nested: close the "
                f"{{% {token.value} %}} block (line {token.lineno}) before opening another",
                inner.lineno,
            )
        opening = nodes.Output([nodes.Filter(nodes.Const(token.value), _OPEN, [], [], None, None)])
        closing = nodes.Filter(None, _CLOSE, [role], [], None, None)
        return nodes.FilterBlock([opening, *body], closing).set_lineno(token.lineno)


@pass_context
def _open_block(context: Context, tag: str) -> str:
    collector = COLLECTOR.get()
    if collector is None:  # pragma: no cover - templates only render through PromptTemplate
        raise TemplateRuntimeError("role blocks only render through PromptTemplate")
    if collector.in_block:
        raise TemplateRuntimeError(
            f"role blocks cannot be nested: a {{% {tag} %}} block opened inside another one "
            "(through a macro or an include)"
        )
    collector.in_block = True
    return ""


def _close_block(body: str, role: Any) -> str:
    collector = COLLECTOR.get()
    if collector is None:  # pragma: no cover - templates only render through PromptTemplate
        raise TemplateRuntimeError("role blocks only render through PromptTemplate")
    collector.in_block = False
    if role not in ROLES:
        raise TemplateRuntimeError(f"unknown message role {role!r}: use one of {', '.join(ROLES)}")
    content = tidy(body)
    if content:
        collector.messages.append(Message(role=role, content=content))
    return ""


def _role_blocks(body: Sequence[nodes.Node]) -> Iterator[nodes.FilterBlock]:
    for node in body:
        if is_role_block(node):
            yield node
        for block in node.find_all(nodes.FilterBlock):
            if is_role_block(block):
                yield block


def is_role_block(node: nodes.Node) -> TypeGuard[nodes.FilterBlock]:
    """Whether ``node`` is a role block."""
    return isinstance(node, nodes.FilterBlock) and node.filter.name == _CLOSE


_NOT_OUTPUT_NOW = (nodes.Macro, nodes.AssignBlock, nodes.CallBlock)


def stray_output_line(ast: nodes.Template) -> int | None:
    """The line of the first text written outside role blocks, in a template that has them.

    Macro and ``{% set %}`` bodies are not output where they stand, so they are not looked at;
    calls may be macros writing role blocks, so they are left to the check after rendering.
    ``None`` when the template has no role blocks or writes only whitespace outside them.
    """
    if next(_role_blocks(ast.body), None) is None:
        return None
    return _first_output(ast.body)


def _writes_text(part: nodes.Expr) -> bool:
    """Literal text or a value; a call may be a macro that writes role blocks, so it passes."""
    if isinstance(part, nodes.TemplateData):
        return bool(part.data.strip())
    return not isinstance(part, nodes.Call)


def _first_output(body: Sequence[nodes.Node]) -> int | None:
    for node in body:
        if isinstance(node, _NOT_OUTPUT_NOW) or is_role_block(node):
            continue
        if isinstance(node, nodes.Output):
            for part in node.nodes:
                if _writes_text(part):
                    return part.lineno
            continue
        children = [c for c in node.iter_child_nodes() if isinstance(c, nodes.Stmt)]
        line = _first_output(children)
        if line is not None:
            return line
    return None
