"""Traces as OpenTelemetry spans, named and attributed per the GenAI semantic conventions.

    pip install 'atdak-agents[otel]'

    from atdak_agents.tracing.otel import OtelSink
    run = graph.start(inputs, sinks=[OtelSink()])   # the global tracer provider, or pass one

The event tree becomes a span tree: the run is an ``invoke_workflow {graph}`` span; each node a
span under it (an agent node is ``invoke_agent {node}``); each model call a ``chat {model}``
client span and each tool call an ``execute_tool {tool}`` span under their node. Attribute names
are the conventions' (``gen_ai.operation.name``, ``gen_ai.provider.name``,
``gen_ai.request.model``, ``gen_ai.request.max_tokens`` / ``temperature`` / ``top_p`` /
``frequency_penalty`` / ``presence_penalty``, ``gen_ai.usage.input_tokens`` /
``output_tokens``, ``gen_ai.response.finish_reasons``, ``gen_ai.response.id``,
``gen_ai.workflow.name``, ``gen_ai.agent.name``, ``gen_ai.tool.name``, ``gen_ai.tool.call.id``,
``gen_ai.tool.type``, ``error.type``); what the conventions have no name for is under
``atdak.*`` (the context budget, estimated tokens, cost, node paths, state keys).

Message contents, tool arguments and results are opt-in, as the conventions advise
(``content=True``: ``gen_ai.input.messages``, ``gen_ai.output.messages``,
``gen_ai.tool.call.arguments``, ``gen_ai.tool.call.result``). Spans carry the events'
timestamps, so a replayed trace exports with its original timing. OpenTelemetry is imported
only when an :class:`OtelSink` is made.

A live run gives the sink every event but streamed tokens (a node's span starts at its
``node_started``, so the calls it makes hang under it as they happen). A default JSONL trace has
no ``node_started``: :func:`~atdak_agents.tracing.sinks.replay` puts them back (at each node's
``started``) before the sink sees the events; a node that still arrives without one gets its
span from its ``node_finished`` alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..exceptions import UsageError
from .events import (
    CheckpointSaved,
    EventBase,
    MapStarted,
    ModelRequest,
    ModelResponse,
    ModelRetrying,
    NodeFinished,
    NodeStarted,
    RunFailed,
    RunFinished,
    RunInterrupted,
    RunStarted,
    StateUpdated,
    ToolCalled,
    ToolReturned,
    start_of,
)
from .routing import ALL_TYPES

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

__all__ = ["PROVIDER_NAME", "OtelSink"]

PROVIDER_NAME = "atdak"  # gen_ai.provider.name: a custom value, as the conventions allow

# request parameter -> its attribute (gen_ai.request.*)
_PARAMETERS = {
    "max_tokens": "gen_ai.request.max_tokens",
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "stop": "gen_ai.request.stop_sequences",
    "seed": "gen_ai.request.seed",
}


def _ns(ts: float) -> int:
    return int(ts * 1_000_000_000)


def _clean(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """OpenTelemetry takes str, bool, int, float and lists of them; None is left out."""
    out: dict[str, Any] = {}
    for key, value in attributes.items():
        if value is None:
            continue
        if isinstance(value, str | bool | int | float):
            out[key] = value
        elif isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            out[key] = list(value)
        else:
            out[key] = json.dumps(value, ensure_ascii=False, default=str)
    return out


def _messages(messages: Sequence[Mapping[str, Any]]) -> str:
    """Wire messages in the conventions' shape: ``{"role", "parts": [...]}``, as JSON."""
    shaped = []
    for message in messages:
        parts: list[dict[str, Any]] = []
        if message.get("content"):
            parts.append({"type": "text", "content": message["content"]})
        for call in message.get("tool_calls") or ():
            function = call.get("function", {})
            parts.append(
                {
                    "type": "tool_call",
                    "id": call.get("id"),
                    "name": function.get("name"),
                    "arguments": function.get("arguments"),
                }
            )
        shaped.append({"role": message.get("role"), "parts": parts})
    return json.dumps(shaped, ensure_ascii=False)


class OtelSink:
    """Exports a run's events as OpenTelemetry spans (see the module docstring).

    ``tracer_provider``: where spans go (default: the global provider). ``content``: record
    message contents, tool arguments and results (off by default). ``provider_name``: the
    ``gen_ai.provider.name`` of model calls.
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        *,
        content: bool = False,
        provider_name: str = PROVIDER_NAME,
    ) -> None:
        try:
            from opentelemetry import trace
        except ImportError:
            raise UsageError(
                "OtelSink needs OpenTelemetry: pip install 'atdak-agents[otel]'"
            ) from None
        self._trace = trace
        provider = tracer_provider or trace.get_tracer_provider()
        self._tracer: Tracer = provider.get_tracer("atdak_agents")
        self._content = content
        self._provider_name = provider_name
        self._spans: dict[str, Span] = {}  # run and node spans by span id
        self._calls: dict[str, Span] = {}  # model and tool call spans by span id
        #: The event types it takes: all but streamed tokens.
        self.event_types = ALL_TYPES - {"token"}

    # ------------------------------------------------------------------ sink

    def write(self, event: EventBase) -> None:
        handler = getattr(self, f"_{event.type}", None)
        if handler is not None:
            handler(event)

    def close(self) -> None:
        """End what a crash or a pause left open (marked ``atdak.incomplete``)."""
        for span in [*self._calls.values(), *reversed(self._spans.values())]:
            span.set_attribute("atdak.incomplete", True)
            span.end()
        self._calls.clear()
        self._spans.clear()

    # ------------------------------------------------------------------ helpers

    def _start(
        self,
        name: str,
        event: EventBase,
        parent: Span | None,
        attributes: Mapping[str, Any],
        *,
        client: bool = False,
    ) -> Span:
        trace = self._trace
        context = trace.set_span_in_context(parent) if parent is not None else None
        kind = trace.SpanKind.CLIENT if client else trace.SpanKind.INTERNAL
        return self._tracer.start_span(
            name,
            context=context,
            kind=kind,
            attributes=_clean(attributes),
            start_time=_ns(event.ts),
        )

    def _parent(self, event: EventBase) -> Span | None:
        found = self._spans.get(event.span_id)
        if found is None and event.parent_span_id is not None:
            found = self._spans.get(event.parent_span_id)
        return found

    def _fail(self, span: Span, error_type: str, description: str) -> None:
        span.set_attribute("error.type", error_type or "_OTHER")
        span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, description))

    @staticmethod
    def _ids(event: EventBase) -> dict[str, Any]:
        return {"atdak.run_id": event.run_id, "atdak.node": event.node, "atdak.step": event.step}

    # ------------------------------------------------------------------ runs

    def _run_started(self, event: RunStarted) -> None:
        parent = self._spans.get(event.parent_span_id) if event.parent_span_id else None
        attributes = {
            "gen_ai.operation.name": "invoke_workflow",
            "gen_ai.workflow.name": event.graph,
            "atdak.run_id": event.run_id,
            "atdak.resumed": event.resumed,
            "atdak.node": event.node,
        }
        if self._content and event.inputs is not None:
            attributes["atdak.inputs"] = event.inputs
        span = self._start(f"invoke_workflow {event.graph}", event, parent, attributes)
        self._spans[event.span_id] = span

    def _end_run(self, event: EventBase, usage: Mapping[str, Any], status: str) -> Span | None:
        span = self._spans.pop(event.span_id, None)
        if span is not None:
            attributes = {f"atdak.usage.{key}": value for key, value in usage.items()}
            attributes["atdak.run.status"] = status
            span.set_attributes(_clean(attributes))
        return span

    def _run_finished(self, event: RunFinished) -> None:
        span = self._end_run(event, event.usage, event.status)
        if span is not None:
            span.set_status(self._trace.Status(self._trace.StatusCode.OK))
            span.end(end_time=_ns(event.ts))

    def _run_failed(self, event: RunFailed) -> None:
        span = self._end_run(event, event.usage, "failed")
        if span is not None:
            self._fail(span, event.error_type, event.error)
            span.end(end_time=_ns(event.ts))

    def _run_interrupted(self, event: RunInterrupted) -> None:
        span = self._end_run(event, event.usage, "interrupted")
        if span is not None:
            span.set_attributes(_clean({"atdak.run.reason": event.reason}))
            if self._content and event.question is not None:
                span.set_attribute("atdak.run.question", event.question)
            span.end(end_time=_ns(event.ts))

    def _state_updated(self, event: StateUpdated) -> None:
        span = self._spans.get(event.span_id)
        if span is not None:
            attributes = {"atdak.state.keys": list(event.keys), "atdak.step": event.step}
            span.add_event("atdak.state_updated", _clean(attributes), timestamp=_ns(event.ts))

    def _checkpoint_saved(self, event: CheckpointSaved) -> None:
        span = self._spans.get(event.span_id)
        if span is not None:
            attributes = {"atdak.checkpoint.id": event.checkpoint_id}
            span.add_event("atdak.checkpoint_saved", attributes, timestamp=_ns(event.ts))

    # ------------------------------------------------------------------ nodes

    def _node_started(self, event: NodeStarted) -> None:
        parent = self._spans.get(event.parent_span_id) if event.parent_span_id else None
        attributes: dict[str, Any] = {**self._ids(event), "atdak.node.kind": event.kind}
        if event.kind == "agent":
            attributes["gen_ai.operation.name"] = "invoke_agent"
            attributes["gen_ai.agent.name"] = event.node
            attributes["gen_ai.provider.name"] = self._provider_name
            name = f"invoke_agent {event.node}"
        else:
            name = f"{event.kind} {event.node}"
        self._spans[event.span_id] = self._start(name, event, parent, attributes)

    def _map_started(self, event: MapStarted) -> None:
        span = self._spans.get(event.span_id)
        if span is not None:
            span.set_attributes({"atdak.map.items": event.items})

    def _node_finished(self, event: NodeFinished) -> None:
        span = self._spans.pop(event.span_id, None)
        if span is None:  # no node_started came: the span from its end alone
            self._node_started(start_of(event))
            span = self._spans.pop(event.span_id)
        span.set_attributes(_clean({"atdak.node.updated": list(event.updated)}))
        if event.error is not None:
            self._fail(span, event.error.split(":", 1)[0], event.error)
        span.end(end_time=_ns(event.ts))

    # ------------------------------------------------------------------ model calls

    def _model_request(self, event: ModelRequest) -> None:
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": self._provider_name,
            "gen_ai.request.model": event.model,
            **self._ids(event),
            "atdak.request.message_count": event.message_count,
            "atdak.request.estimated_tokens": event.estimated_tokens,
            "atdak.context.budget": event.budget,
            "atdak.context.window": event.context_window,
            "atdak.context.fit": event.fit or None,
        }
        for key, value in event.parameters.items():
            if key in _PARAMETERS:
                attributes[_PARAMETERS[key]] = (
                    [value] if key == "stop" and isinstance(value, str) else value
                )
        if self._content and event.messages is not None:
            attributes["gen_ai.input.messages"] = _messages(event.messages)
        span = self._start(
            f"chat {event.model}", event, self._parent(event), attributes, client=True
        )
        self._calls[event.span_id] = span

    def _model_retrying(self, event: ModelRetrying) -> None:
        span = self._calls.get(event.span_id) or self._parent(event)
        if span is not None:
            attributes = {"atdak.retry.attempt": event.attempt, "atdak.retry.wait": event.wait}
            attributes["atdak.retry.reason"] = event.reason  # type: ignore[assignment]
            span.add_event("atdak.retry", _clean(attributes), timestamp=_ns(event.ts))

    def _model_response(self, event: ModelResponse) -> None:
        span = self._calls.pop(event.span_id, None)
        if span is None:
            return
        attributes: dict[str, Any] = {
            "gen_ai.response.model": event.model,
            "gen_ai.response.id": event.response_id,
            "gen_ai.usage.input_tokens": event.prompt_tokens,
            "gen_ai.usage.output_tokens": event.completion_tokens,
            "atdak.usage.estimated": event.usage_estimated,
            "atdak.usage.estimated_input_tokens": event.estimated_prompt_tokens,
            "atdak.cost": event.cost,
            "atdak.latency": event.latency,
        }
        if event.finish_reason is not None:
            attributes["gen_ai.response.finish_reasons"] = [event.finish_reason]
        if self._content and event.content is not None:
            message = {"role": "assistant", "content": event.content}
            attributes["gen_ai.output.messages"] = _messages([message])
        span.set_attributes(_clean(attributes))
        span.end(end_time=_ns(event.ts))

    # ------------------------------------------------------------------ tools

    def _tool_called(self, event: ToolCalled) -> None:
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": event.tool,
            "gen_ai.tool.call.id": event.call_id,
            "gen_ai.tool.type": "function",
            **self._ids(event),
        }
        if self._content and event.arguments is not None:
            attributes["gen_ai.tool.call.arguments"] = event.arguments
        span = self._start(f"execute_tool {event.tool}", event, self._parent(event), attributes)
        self._calls[event.span_id] = span

    def _tool_returned(self, event: ToolReturned) -> None:
        span = self._calls.pop(event.span_id, None)
        if span is None:
            return
        if self._content and event.content is not None:
            span.set_attribute("gen_ai.tool.call.result", event.content)
        if event.is_error:
            self._fail(span, "tool_error", event.content or "the tool failed")
        span.end(end_time=_ns(event.ts))
