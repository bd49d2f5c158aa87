"""Tool-calling protocols: how tool specs reach the model and how its calls come back.

``native`` uses OpenAI-style ``tools`` / ``tool_calls`` / ``role: "tool"``; ``prompt`` (the default
for the Atdak models, whose API has no tools parameter) puts the specs in the system prompt and
reads calls from text with a tolerant, streaming-safe parser. Both produce the same
:class:`~atdak_agents.tools.ToolCall` records and take the same
:class:`~atdak_agents.tools.ToolResult` records back; see :mod:`.base` for the interface the
agent loop uses.
"""

from __future__ import annotations

from typing import Literal

from ..exceptions import InvalidParameterError
from ..providers.profiles import ModelProfile
from ._shapes import ToolIndex
from .base import ParsedTurn, PreparedRequest, ToolProtocol, TurnKind, TurnParser
from .native import NativeProtocol, NativeTurnParser
from .parsing import TextTurnParser, parse_text
from .prompt import PromptProtocol

__all__ = [
    "NativeProtocol",
    "NativeTurnParser",
    "ParsedTurn",
    "PreparedRequest",
    "PromptProtocol",
    "TextTurnParser",
    "ToolIndex",
    "ToolProtocol",
    "TurnKind",
    "TurnParser",
    "get_protocol",
    "parse_text",
]

ProtocolName = Literal["auto", "native", "prompt"]


def get_protocol(
    choice: ProtocolName | ToolProtocol | None = None, *, profile: ModelProfile | None = None
) -> ToolProtocol:
    """The protocol for ``choice``: ``"native"``, ``"prompt"``, a protocol object, or
    ``"auto"``/``None`` — native when the model's profile says it supports tools, else prompt.
    """
    if choice is None or choice == "auto":
        native = profile is not None and profile.native_tools
        return NativeProtocol() if native else PromptProtocol()
    if choice == "native":
        return NativeProtocol()
    if choice == "prompt":
        return PromptProtocol()
    if isinstance(choice, ToolProtocol):
        return choice
    raise InvalidParameterError(
        "tool_protocol", choice, "use 'auto', 'native', 'prompt' or a ToolProtocol object"
    )
