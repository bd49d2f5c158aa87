"""``memory_read`` and ``memory_write`` nodes: a conversation in the run's memory store."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..exceptions import NodeError
from ..messages import Message
from ..templates import PromptTemplate
from .llm_node import prompt_environment
from .nodes import NodeContext, NodeOutcome
from .spec import MemoryReadNode, MemoryWriteNode

if TYPE_CHECKING:
    from .build import Graph

__all__ = ["MemoryReadRunner", "MemoryWriteRunner"]


def _session(template: PromptTemplate | None, ctx: NodeContext) -> str:
    session = template.render(ctx.expression_names()) if template else ctx.env.session_id
    if not session:
        raise NodeError(
            ctx.path, "has no session: give the node `session:` or the run a session id"
        )
    return session


def _store(ctx: NodeContext) -> Any:
    if ctx.env.memory is None:
        raise NodeError(
            ctx.path,
            "needs a memory store: declare `memory:` in the workflow or pass memory= to "
            "graph.start/run",
        )
    return ctx.env.memory


def _template(source: str | None, name: str, graph: Graph) -> PromptTemplate | None:
    if source is None:
        return None
    return PromptTemplate(source, name=name, environment=prompt_environment(graph))


class MemoryReadRunner:
    """Writes the session's messages (the last ``last``, or those recalled by ``query``) into
    state as ``{role, content}`` dicts."""

    kind = "memory_read"

    def __init__(self, name: str, config: MemoryReadNode, graph: Graph) -> None:
        where = f"nodes.{name}.memory_read"
        self.session = _template(config.session, f"{where}.session", graph)
        self.query = _template(config.query, f"{where}.query", graph)
        self.last = config.last
        self.writes = config.writes

    async def run(self, ctx: NodeContext) -> NodeOutcome:
        store = _store(ctx)
        session = _session(self.session, ctx)
        if self.query is not None:
            query = self.query.render(ctx.expression_names())
            hits = await store.search(query, session_id=session, limit=self.last or 5)
            messages = [hit.message for hit in hits]
        else:
            messages = await store.load(session, last=self.last)
        return NodeOutcome({self.writes: [_plain(m) for m in messages]})


class MemoryWriteRunner:
    """Appends rendered ``{role, content}`` messages to the session."""

    kind = "memory_write"

    def __init__(self, name: str, config: MemoryWriteNode, graph: Graph) -> None:
        where = f"nodes.{name}.memory_write"
        self.session = _template(config.session, f"{where}.session", graph)
        self.messages = [
            {
                key: PromptTemplate(
                    value,
                    name=f"{where}.messages[{i}].{key}",
                    environment=prompt_environment(graph),
                )
                for key, value in message.items()
            }
            for i, message in enumerate(config.messages)
        ]

    async def run(self, ctx: NodeContext) -> NodeOutcome:
        store = _store(ctx)
        names = ctx.expression_names()
        messages = [
            Message.model_validate({k: t.render(names) for k, t in m.items()})
            for m in self.messages
        ]
        await store.append(_session(self.session, ctx), messages)
        return NodeOutcome(None)


def _plain(message: Message | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(message, Message):
        return {"role": message.role, "content": message.text}
    return dict(message)
