"""Expressions on state — router conditions, map sources, outputs — evaluated safely.

``state.category == 'shipping' and inputs.urgent`` is compiled once in the prompts' jinja2 sandbox
(never Python ``eval``): attribute tricks that reach Python internals are refused, and an undefined
name is an error naming it rather than a silent ``False``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import UndefinedError
from jinja2.exceptions import SecurityError

from ..exceptions import NodeError
from ..templates import compile_expression

__all__ = ["Expression"]


class Expression:
    """A compiled expression; call :meth:`evaluate` with the names it may use."""

    __slots__ = ("_compiled", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self._compiled = compile_expression(source)

    def evaluate(self, names: Mapping[str, Any], *, where: str) -> Any:
        """The expression's value; errors become a :class:`NodeError` at ``where``."""
        try:
            return self._compiled(**names)
        except UndefinedError as exc:
            raise NodeError(where, f"expression {self.source!r}: {exc.message}") from None
        except SecurityError as exc:
            raise NodeError(where, f"expression {self.source!r} refused: {exc}") from None
        except Exception as exc:
            raise NodeError(
                where, f"expression {self.source!r} failed: {type(exc).__name__}: {exc}"
            ) from None
