"""Expressions: one jinja2 expression evaluated to a Python value, in the prompts' sandbox.

Routers (``state.category == 'shipping'``), map sources (``state.chunks``) and outputs
(``state.drafts[-1]``) are expressions: the same sandbox, filters and strict undefined as
templates, but the result is the value itself, not text.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from jinja2 import TemplateSyntaxError

from ..exceptions import TemplateError
from ._filters import make_filters
from ._sandbox import PromptSandbox, StrictPromptUndefined

__all__ = ["compile_expression"]


@functools.lru_cache(maxsize=1)
def _sandbox() -> PromptSandbox:
    environment = PromptSandbox(undefined=StrictPromptUndefined, autoescape=False)
    environment.filters.update(make_filters(None))
    return environment


@functools.lru_cache(maxsize=1024)
def compile_expression(source: str) -> Callable[..., Any]:
    """A function evaluating ``source`` with keyword values: ``f(state=..., inputs=...)``."""
    try:
        return _sandbox().compile_expression(source, undefined_to_none=False)
    except TemplateSyntaxError as exc:
        message = f"invalid expression {source!r}: {exc.message}"
        raise TemplateError(message, template=source) from None
