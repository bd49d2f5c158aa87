"""The ``agent`` node: the tool-using agent loop as one node of a graph."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..agent import Agent
from ..exceptions import NodeError
from ..messages import Message
from ..templates import PromptTemplate
from .llm_node import history_messages, model_settings, prompt_environment, workflow_file
from .nodes import NodeContext, NodeOutcome
from .spec import AgentNode

if TYPE_CHECKING:
    from .build import Graph

__all__ = ["DEFAULT_INPUT", "AgentRunner"]

# What the agent is asked when the node gives no `input` template: the run's inputs.
DEFAULT_INPUT = "{% for name, value in inputs.items() %}{{ name }}: {{ value }}\n{% endfor %}"
# An input that is one value: `{{ inputs.question }}`, `{{ state.request }}`.
_ONE_VALUE = re.compile(r"\{\{\s*(inputs|state)\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class AgentRunner:
    """Renders the node's instructions and input, runs an :class:`Agent`, writes its answer.

    The agent's model calls and tool calls go through the run's journal, usage, limits and event
    stream; with ``memory: true`` it continues the run's session in the run's memory store.
    """

    kind = "agent"

    def __init__(self, name: str, config: AgentNode, graph: Graph) -> None:
        where = f"nodes.{name}.agent"
        environment = prompt_environment(graph)
        settings = model_settings(graph, name, config.model, config.parameters, config.context)
        instructions = self._instructions(config, graph, where)
        self.agent = Agent(
            settings.model,
            instructions,
            tools=[graph.tools[t] for t in config.tools],
            max_steps=config.max_steps,
            tool_protocol=config.tool_protocol,
            output_type=config.output,
            context=config.context,
            parameters=settings.parameters,
            name=name,
            registry=graph.registry,
        )
        self.input = PromptTemplate(
            config.input or DEFAULT_INPUT, name=f"{where}.input", environment=environment
        )
        found = _ONE_VALUE.fullmatch(self.input.source)
        self._one_value = (found.group(1), found.group(2)) if found else None
        self.writes = config.writes
        self.memory = config.memory
        self.history = config.history

    @staticmethod
    def _instructions(config: AgentNode, graph: Graph, where: str) -> PromptTemplate | str:
        environment = prompt_environment(graph)
        if config.instructions_file is not None:
            path = workflow_file(graph, config.instructions_file)
            return PromptTemplate.from_file(path, role="system", environment=environment)
        if not config.instructions:
            return ""
        return PromptTemplate(
            config.instructions,
            name=f"{where}.instructions",
            role="system",
            environment=environment,
        )

    async def run(self, ctx: NodeContext) -> NodeOutcome:
        names = ctx.expression_names()
        env = ctx.env
        memory = env.memory if self.memory else None
        if self.memory and (memory is None or env.session_id is None):
            raise NodeError(
                ctx.path,
                "uses memory, but the run has no memory store or session id: pass memory= and "
                "session_id= to graph.start/run (or --session on the command line)",
            )
        text = self._render_input(names)
        history = history_messages(ctx, self.history)
        result = await self.agent.run(
            [*history, Message(role="user", content=text)] if history else text,
            provider=env.model_client(),
            variables=names,
            usage=env.usage,
            session_id=env.session_id if self.memory else None,
            memory=memory,
            deps=ctx,
            run_id=env.run_id,
        )
        if result.status != "done":
            raise NodeError(ctx.path, f"the agent stopped ({result.status}): {result.reason}")
        return NodeOutcome(self._updates(result.output))

    def _render_input(self, names: Mapping[str, Any]) -> str:
        """The input template rendered; an input that is one text value is that text (what the
        template would render: a mapping's key first, a string as it is), without jinja2."""
        if self._one_value is not None:
            where, key = self._one_value
            container = names.get(where)
            if isinstance(container, Mapping):
                value = container.get(key)
                if type(value) is str:
                    return value
        return self.input.render(names)

    def _updates(self, output: Any) -> dict[str, Any]:
        value = output
        if type(output) is not str and hasattr(output, "model_dump"):  # structured output
            value = output.model_dump(mode="json")
        if self.writes:
            return {self.writes: value}
        return dict(value) if isinstance(value, dict) else {}
