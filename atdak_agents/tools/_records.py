"""The protocol-blind records of a tool exchange, and the run context a tool may ask for."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

__all__ = ["ErrorKind", "RunContext", "ToolCall", "ToolResult"]

DepsT = TypeVar("DepsT")

ErrorKind = Literal["invalid_arguments", "exception", "timeout", "retry", "unknown_tool"]


@dataclass(frozen=True)
class ToolCall:
    """A call the model asked for, whatever the tool protocol: ``ToolCall(id, name, arguments)``.

    (Not to be confused with :class:`atdak_agents.messages.ToolCall`, the OpenAI wire shape.)
    """

    id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ToolResult:
    """The answer to one :class:`ToolCall`; ``content`` is the text the model will read."""

    call_id: str
    name: str
    content: str
    is_error: bool = False
    error_kind: ErrorKind | None = None
    value: Any = field(default=None, compare=False, repr=False)
    truncated: bool = False
    duration: float = field(default=0.0, compare=False)


@dataclass
class RunContext(Generic[DepsT]):
    """What a tool may know about the run calling it (declare it as the first parameter)."""

    deps: DepsT
    run_id: str = ""
    step: int = 0
    call: ToolCall | None = None
