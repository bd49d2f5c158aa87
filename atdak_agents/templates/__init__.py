"""Prompt templates: jinja2 in a sandbox, strict about missing values, rendering chat messages.

::

    from atdak_agents.templates import PromptTemplate

    classify = PromptTemplate(
        "{% system %}Classify the message: billing, shipping or other.{% endsystem %}\n"
        "{% user %}{{ question }}{% enduser %}",
        name="classify",
    )
    messages = classify.render_messages(question="我的订单还没发货")

- :class:`PromptTemplate`: one template, inline or from a file, rendered to text
  (:meth:`~PromptTemplate.render`) or to messages (:meth:`~PromptTemplate.render_messages`);
  its needs are known without rendering (:meth:`~PromptTemplate.variables`,
  :meth:`~PromptTemplate.check`).
- :class:`PromptEnvironment`: the search path for ``{% include %}``, extra filters, and the model
  ``truncate_tokens`` counts for.
- Every failure is a :class:`~atdak_agents.exceptions.TemplateError` naming the template and line.
"""

from __future__ import annotations

from ._expressions import compile_expression
from ._filters import DEFAULT_MARKER, bullets, numbered, tojson, truncate_tokens
from ._template import PromptEnvironment, PromptTemplate, SearchPath
from ._variables import TemplateProblem, TemplateVariable

__all__ = [
    "DEFAULT_MARKER",
    "PromptEnvironment",
    "PromptTemplate",
    "SearchPath",
    "TemplateProblem",
    "TemplateVariable",
    "bullets",
    "compile_expression",
    "numbered",
    "tojson",
    "truncate_tokens",
]
