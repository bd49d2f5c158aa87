"""Tools by name: what an agent may call, and the answer to a name that does not exist."""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from ..exceptions import ToolDefinitionError
from ._records import RunContext, ToolCall, ToolResult
from ._schema import where
from ._tool import Tool, as_tool

__all__ = ["ToolRegistry"]


class ToolRegistry:
    """Tools by name; an agent may call only the tools in its registry."""

    def __init__(self, tools: Iterable[Tool[Any, Any] | Callable[..., Any]] = ()) -> None:
        self._tools: dict[str, Tool[Any, Any]] = {}
        for item in tools:
            self.add(item)

    def add(self, item: Tool[Any, Any] | Callable[..., Any]) -> Tool[Any, Any]:
        """Add a tool (a plain function is wrapped); a second tool of the same name is an error."""
        new = as_tool(item)
        old = self._tools.get(new.name)
        if old is not None and old is not new:
            raise ToolDefinitionError(
                f"two tools are named {new.name!r} ({where(old.function)} and "
                f"{where(new.function)}); give one another name with @tool(name=...)"
            )
        self._tools[new.name] = new
        return new

    def get(self, name: str) -> Tool[Any, Any] | None:
        return self._tools.get(name)

    def names(self) -> list[str]:
        return list(self._tools)

    def __iter__(self) -> Iterator[Tool[Any, Any]]:
        return iter(list(self._tools.values()))

    def __len__(self) -> int:
        return len(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def suggest(self, name: str) -> str | None:
        """The known name closest to ``name`` (``None`` when nothing is close)."""
        lowered = {n.lower(): n for n in self._tools}
        close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
        return lowered[close[0]] if close else None

    def unknown_tool_message(self, name: str) -> str:
        """What to tell a model that called a tool that does not exist."""
        close = self.suggest(name)
        hint = f" Did you mean {close!r}?" if close else ""
        known = ", ".join(self._tools) or "(none)"
        return f"There is no tool named {name!r}.{hint} The tools you can call are: {known}."

    async def run(self, call: ToolCall, context: RunContext[Any] | None = None) -> ToolResult:
        """Run one call; an unknown tool name gets an error result, not an exception."""
        found = self._tools.get(call.name)
        if found is None:
            text = self.unknown_tool_message(call.name)
            return ToolResult(call.id, call.name, text, is_error=True, error_kind="unknown_tool")
        return await found.run(call, context)

    async def run_all(
        self, calls: Sequence[ToolCall], context: RunContext[Any] | None = None
    ) -> list[ToolResult]:
        """Run several calls concurrently; the results come back in the order of the calls."""
        return list(await asyncio.gather(*(self.run(c, context) for c in calls)))
