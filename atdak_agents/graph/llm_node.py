"""The ``llm`` node: one prompt template → one model call → text or structured output in state."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..calls import CURRENT_MODEL, ModelSettings, call_model
from ..context.history import HistoryFitter
from ..exceptions import NodeError
from ..messages import Message, as_message
from ..output import OutputSpec
from ..templates import PromptEnvironment, PromptTemplate
from .nodes import NodeContext, NodeOutcome
from .spec import LlmNode

if TYPE_CHECKING:
    from .build import Graph

__all__ = [
    "LlmRunner",
    "history_messages",
    "model_settings",
    "prompt_environment",
    "workflow_file",
]

MAX_REPAIRS = 2


def prompt_environment(graph: Graph) -> PromptEnvironment:
    """Templates of a graph include files from the workflow's folder."""
    search = (str(graph.base_dir),) if graph.base_dir is not None else ()
    return PromptEnvironment(search)


def workflow_file(graph: Graph, file: str) -> Path:
    """A file named in the graph, relative to the workflow's folder."""
    return graph.base_dir / file if graph.base_dir is not None else Path(file)


def model_settings(
    graph: Graph, where: str, model: str | None, parameters: dict[str, Any], context: Any
) -> ModelSettings:
    """The model, request parameters and history fitter of a node (graph defaults merged);
    ``context`` is the node's fitting strategies (a ``summarize`` step uses the run's model)."""
    name = model or graph.spec.model
    if name is None:
        raise NodeError(where, "has no model: set `model:` on the graph or on the node")
    profile = graph.registry.get(name)
    if context:
        fitter = HistoryFitter.from_config(profile, context, chat_model=CURRENT_MODEL)
    else:
        fitter = HistoryFitter(profile)
    merged = {**graph.spec.parameters, **parameters}
    return ModelSettings(model=name, parameters=merged, fitter=fitter, profile=profile)


def history_messages(ctx: NodeContext, key: str | None) -> list[Message]:
    """The earlier messages a node sends first: the list of ``{role, content}`` in state."""
    if key is None:
        return []
    value = ctx.state.get(key) or []
    try:
        return [as_message(item) for item in value]
    except (TypeError, ValueError) as exc:
        raise NodeError(
            ctx.path,
            f"state key {key!r} (its `history`) must hold messages like "
            f"{{role: user, content: ...}}: {exc}",
        ) from None


class LlmRunner:
    """Renders the prompt (and system text), calls the model, writes the answer.

    With an ``output`` schema the answer must be JSON matching it; an invalid answer is sent back
    with what is wrong, at most :data:`MAX_REPAIRS` times.
    """

    kind = "llm"

    def __init__(self, name: str, config: LlmNode, graph: Graph) -> None:
        where = f"nodes.{name}.llm"
        environment = prompt_environment(graph)
        if config.prompt_file is not None:
            path = workflow_file(graph, config.prompt_file)
            self.prompt = PromptTemplate.from_file(path, environment=environment)
        else:
            self.prompt = PromptTemplate(
                config.prompt or "", name=f"{where}.prompt", environment=environment
            )
        self.system = (
            PromptTemplate(
                config.system, name=f"{where}.system", role="system", environment=environment
            )
            if config.system
            else None
        )
        self.output = OutputSpec(config.output, name=f"{name}_output") if config.output else None
        self.settings = model_settings(graph, name, config.model, config.parameters, config.context)
        self.writes = config.writes
        self.history = config.history

    async def run(self, ctx: NodeContext) -> NodeOutcome:
        names = ctx.expression_names()
        messages = self._messages(names, history_messages(ctx, self.history))
        client = ctx.env.model_client()
        for _ in range(MAX_REPAIRS + 1):
            call = await call_model(client, self.settings, messages, usage=ctx.env.usage)
            text = call.message.text
            if self.output is None:
                return NodeOutcome({self.writes: text} if self.writes else {})
            value, problem = self.output.parse(text)
            if value is not None:
                return NodeOutcome(self._updates(value.model_dump(mode="json")))
            messages += [
                Message(role="assistant", content=text),
                Message(role="user", content=self.output.correction(problem or "invalid")),
            ]
        raise NodeError(
            ctx.path,
            f"the model's answer did not match the output schema after {MAX_REPAIRS} repairs: "
            f"{problem}",
        )

    def _messages(self, names: dict[str, Any], history: list[Message]) -> list[Message]:
        system_parts = [self.system.render(names)] if self.system is not None else []
        if self.output is not None:
            system_parts.append(self.output.instructions())
        messages = [*history, *self.prompt.render_messages(names)]
        if system_parts:
            text = "\n\n".join(system_parts)
            if messages and messages[0].role == "system":
                first = messages[0]
                messages[0] = Message(role="system", content=f"{first.text}\n\n{text}")
            else:
                messages.insert(0, Message(role="system", content=text))
        return messages

    def _updates(self, data: dict[str, Any]) -> dict[str, Any]:
        return {self.writes: data} if self.writes else data
