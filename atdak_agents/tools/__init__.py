"""Python functions as tools a model can call: ``@tool``, :class:`Tool`, :class:`ToolRegistry`.

A tool is a plain or async function. Its JSON schema comes from the type hints (pydantic types and
models, ``Literal``, ``Enum``, ``Optional``, lists, dicts, defaults, ``Annotated[..., Field()]``)
and from the parameter descriptions of its docstring (Google, NumPy or Sphinx style)::

    @tool
    def get_weather(city: str, unit: Literal["c", "f"] = "c") -> dict[str, float]:
        '''Current weather of a city.

        Args:
            city: City name, e.g. "Paris".
            unit: Temperature unit.
        '''

    @tool(timeout=5, max_output_tokens=1_000)
    async def search(query: str) -> list[str]: ...

The interface the agent loop builds on (protocol-blind; both tool protocols produce these):

- :class:`ToolCall` ``(id, name, arguments)`` — what the model asked for.
- :class:`ToolResult` ``(call_id, name, content, is_error, error_kind, value, truncated,
  duration)`` — what goes back to the model. ``content`` is always text for the model.
- ``await tool.run(call, context=None) -> ToolResult`` never raises for the model's mistakes or
  the tool's failures: invalid arguments (checked with pydantic before the call), an exception
  in the tool, a timeout, or :class:`~atdak_agents.exceptions.ModelRetry` all become
  ``ToolResult(is_error=True, error_kind=..., content=<what to fix>)``. Counting retries is the
  loop's job (``error_kind`` tells why). Only :class:`~atdak_agents.exceptions.ToolExecutionError`
  raised by a tool (and cancellation) propagates, to end the run.
- Sync tools run in a daemon thread; a timed-out sync tool cannot be killed, its result is
  ignored. ``timeout=None`` disables the limit (default :data:`DEFAULT_TIMEOUT` seconds).
- Return values (str, dict, list, pydantic models, dataclasses, None, ...) become text
  (:func:`render_output`), capped to ``max_output_tokens`` (default
  :data:`DEFAULT_MAX_OUTPUT_TOKENS`, ``None`` for no cap) by :func:`cap_output`, which tells the
  model what was cut and how much.
- A tool whose first parameter is annotated :class:`RunContext` receives the run's context
  (``deps``, ``run_id``, ``step``, ``call``); it is not part of the schema.
- :class:`ToolRegistry` holds tools by name; ``await registry.run(call)`` answers an unknown
  name with an error result naming the tools that exist (and the closest match).
"""

from __future__ import annotations

from ._output import DEFAULT_MAX_OUTPUT_TOKENS, cap_output, render_output
from ._records import ErrorKind, RunContext, ToolCall, ToolResult
from ._registry import ToolRegistry
from ._tool import DEFAULT_TIMEOUT, Tool, as_tool, tool

__all__ = [
    "DEFAULT_MAX_OUTPUT_TOKENS",
    "DEFAULT_TIMEOUT",
    "ErrorKind",
    "RunContext",
    "Tool",
    "ToolCall",
    "ToolRegistry",
    "ToolResult",
    "as_tool",
    "cap_output",
    "render_output",
    "tool",
]
