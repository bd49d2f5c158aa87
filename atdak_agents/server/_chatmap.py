"""How a chat request becomes a workflow run, and a run's output becomes the answer.

The rules (each can be set per workflow with ``create_app(chat={name: ChatMapping(...)})``):

- **input**: the last user message's text goes into the workflow's one string input (the only
  *required* string input, else the only string input). A workflow with none, or several, takes
  the last user message as a JSON object of inputs instead. The request's ``inputs`` field adds
  the others.
- **history**: an input named ``history`` or ``messages`` (type list) receives the earlier
  messages as ``{role, content}`` dicts; without one they are ignored (a session's memory is
  the way to keep a conversation, see ``session_id``).
- **answer**: the only declared output, else the output named ``answer``, ``reply`` or
  ``response`` (the first there is; a state key of that name when no outputs are declared);
  anything but a string is sent as JSON. Without any of those, the whole output as JSON.
- **streamed tokens**: those of the ``llm``/``agent`` nodes that write the answer's state key as
  text. The streamed text is completed at the end with anything of the answer not yet sent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import UsageError
from ..graph.build import Graph
from ..graph.validate import node_writes
from ._errors import HTTPError
from ._models import ChatMessageIn

__all__ = ["ChatMapping", "last_user_text"]

_HISTORY_NAMES = ("history", "messages")
_ANSWER_NAMES = ("answer", "reply", "response")
_STATE_REF = re.compile(r"^\s*state\.([A-Za-z_]\w*)\s*$")
_UNSET: Any = object()


@dataclass(frozen=True)
class ChatMapping:
    """Where a chat request's messages go and where the answer comes from.

    ``input``: the input receiving the last user message (``None``: that message is a JSON object
    of inputs). ``history``: the input receiving earlier messages (``None``: they are ignored).
    ``output``: the output holding the answer (``None``: the whole output as JSON).
    ``answer_key``: the state key behind that output, whose writers' tokens are streamed.
    """

    input: str | None = _UNSET
    history: str | None = _UNSET
    output: str | None = _UNSET
    answer_key: str | None = _UNSET
    streams_from: frozenset[str] = field(default_factory=frozenset)

    # ------------------------------------------------------------------ inference

    def resolve(self, graph: Graph) -> ChatMapping:
        """This mapping with every unset field inferred from ``graph`` (and checked)."""
        history = self.history if self.history is not _UNSET else _infer_history(graph)
        chosen = self.input if self.input is not _UNSET else _infer_input(graph, history)
        output = self.output if self.output is not _UNSET else _infer_output(graph)
        _check_names(graph, chosen, history, output)
        key = self.answer_key if self.answer_key is not _UNSET else _answer_key(graph, output)
        return ChatMapping(chosen, history, output, key, _writers(graph, key))

    # ------------------------------------------------------------------ requests

    def inputs(
        self, messages: Sequence[ChatMessageIn], extra: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """The run's inputs from a chat request (a 400 error when they cannot be made)."""
        text = last_user_text(messages)
        inputs = dict(extra or {})
        if self.input is not None:
            inputs[self.input] = text
        else:
            inputs.update(_json_inputs(text))
        if self.history is not None:
            inputs[self.history] = [{"role": m.role, "content": m.text} for m in messages[:-1]]
        return inputs

    def answer(self, output: Mapping[str, Any]) -> str:
        """The answer text from a finished run's output."""
        if self.output is None:
            value: Any = dict(output)
        elif self.output in output:
            value = output[self.output]
        else:
            value = output.get("answer", "")
        if isinstance(value, str):
            return value
        return json.dumps(value, ensure_ascii=False, default=str)


def last_user_text(messages: Sequence[ChatMessageIn]) -> str:
    """The text of the last message, which must come from the user (a 400 error otherwise)."""
    last = messages[-1]
    if last.role != "user":
        raise HTTPError(
            400,
            f"the last message must come from the user (got role {last.role!r})",
            param="messages",
            code="last_message_not_user",
        )
    if not last.text.strip():
        raise HTTPError(400, "the last user message is empty", param="messages", code="empty")
    return last.text


def _infer_history(graph: Graph) -> str | None:
    declared = graph.spec.inputs
    for name in _HISTORY_NAMES:
        spec = declared.get(name)
        if spec is not None and spec.type in ("list", "any"):
            return name
    return None


def _infer_input(graph: Graph, history: str | None) -> str | None:
    strings = [
        (name, spec)
        for name, spec in graph.spec.inputs.items()
        if spec.type == "string" and name != history
    ]
    required = [name for name, spec in strings if spec.required and spec.default is None]
    if len(required) == 1:
        return required[0]
    if len(strings) == 1:
        return strings[0][0]
    return None


def _infer_output(graph: Graph) -> str | None:
    outputs = graph.spec.outputs
    if len(outputs) == 1:
        return next(iter(outputs))
    declared = outputs or graph.spec.state  # without outputs, the output is the whole state
    return next((name for name in _ANSWER_NAMES if name in declared), None)


def _check_names(graph: Graph, chosen: str | None, history: str | None, output: str | None) -> None:
    declared = graph.spec.inputs
    for role, name in (("input", chosen), ("history", history)):
        if name is not None and name not in declared:
            raise UsageError(
                f"chat mapping of workflow {graph.name!r}: {role}={name!r} is not one of its "
                f"inputs ({', '.join(declared) or 'none declared'})"
            )
    outputs = graph.spec.outputs or graph.spec.state
    if output is not None and output not in outputs:
        raise UsageError(
            f"chat mapping of workflow {graph.name!r}: output={output!r} is not one of its "
            f"outputs ({', '.join(outputs) or 'none declared'})"
        )


def _answer_key(graph: Graph, output: str | None) -> str | None:
    if output is None:
        return None
    if not graph.spec.outputs:
        return output  # the output is the whole state: the answer is a state key
    match = _STATE_REF.match(graph.spec.outputs.get(output, ""))
    return match.group(1) if match else None


def _writers(graph: Graph, key: str | None) -> frozenset[str]:
    if key is None:
        return frozenset()
    return frozenset(
        name
        for name, node in graph.spec.nodes.items()
        if node.kind in ("llm", "agent") and node.config.output is None and key in node_writes(node)
    )


def _json_inputs(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise HTTPError(
            400,
            "this workflow has no single text input, so the last user message must be a JSON "
            'object of its inputs, e.g. {"question": "...", "lang": "en"} (see GET /v1/workflows)',
            param="messages",
            code="inputs_not_json",
        )
    return value
