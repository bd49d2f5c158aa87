"""One model call as the framework makes it: fit → announce → call (journaled) → account.

Both the ``llm`` node and the agent loop call models through :func:`call_model`:

1. the messages are fitted into the model's context budget (:class:`HistoryFitter`), and a
   ``model_request`` event says how (message count, estimate, budget, what was dropped);
2. the request is sent — *streamed* when someone is listening for tokens (each visible piece
   becomes a ``token`` event), otherwise not, so the server reports exact usage and the model's
   token calibration learns from it; a context-length refusal is trimmed harder and retried once;
3. inside a checkpointed run the call is journaled, so a resumed step replays it instead of
   paying for it again;
4. usage and cost are added to the run, and a ``model_response`` event reports them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from .context.history import HistoryFitter
from .context.refit import complete_fitted, stream_fitted
from .context.strategies import DropOldest, KeepLast, RaiseOnOverflow, Summarize, TruncateMiddle
from .exceptions import UsageError
from .graph.journal import current_journal, journaled
from .messages import KIND, Message
from .providers._wire import ChatCompletion, ChatCompletionRequest, Delta
from .providers.base import CallOptions, ChatModel, ChatStream
from .providers.profiles import ModelProfile
from .providers.streaming import StreamAccumulator
from .tracing.bus import current_scope, span
from .tracing.events import ModelRequest, ModelResponse, TokenDelta
from .usage import RunUsage

__all__ = ["CURRENT_MODEL", "CallResult", "ModelSettings", "call_model"]

REQUEST_PARAMETERS = frozenset(
    {"temperature", "max_tokens", "top_p", "frequency_penalty", "presence_penalty"}
)


class _CurrentModel:
    """The chat model of the call being made — for history strategies (``summarize``) that
    are configured before any run exists and must use the run's own endpoint."""

    def _model(self) -> ChatModel:
        model = _current_model.get()
        if model is None:
            raise UsageError("no model call is in progress to borrow the model endpoint from")
        return model

    async def complete(
        self, request: ChatCompletionRequest, *, options: CallOptions | None = None
    ) -> ChatCompletion:
        return await self._model().complete(request, options=options)

    async def stream(
        self, request: ChatCompletionRequest, *, options: CallOptions | None = None
    ) -> ChatStream:
        return await self._model().stream(request, options=options)


_current_model: ContextVar[ChatModel | None] = ContextVar("atdak_current_model", default=None)
CURRENT_MODEL: ChatModel = _CurrentModel()
_NEVER_BORROW = frozenset({KeepLast, DropOldest, TruncateMiddle, RaiseOnOverflow})


def _borrows_model(fitter: HistoryFitter) -> bool:
    """Whether fitting a history may ask :data:`CURRENT_MODEL` for the call's endpoint: a
    ``summarize`` strategy set up with it, or a strategy of the user's. (Only then is it set:
    switching a context variable around every call costs more than it seems under
    concurrency, see docs/agents-performance.md.)"""
    for strategy in fitter.strategies:
        kind = type(strategy)  # (a subclass may do anything: it borrows)
        if kind is Summarize:
            borrows = getattr(strategy, "chat_model", None) is CURRENT_MODEL
        else:
            borrows = kind not in _NEVER_BORROW
        if borrows:
            return True
    return False


@dataclass
class ModelSettings:
    """Which model a call site uses, with its request parameters and history fitter."""

    model: str
    parameters: Mapping[str, Any]
    fitter: HistoryFitter
    profile: ModelProfile | None = None


@dataclass
class CallResult:
    """The answer, and whether it was streamed (a replayed call was not)."""

    completion: ChatCompletion
    streamed: bool

    @property
    def message(self) -> Message:
        if not self.completion.choices:
            return Message(role="assistant", content="")
        return self.completion.choices[0].message


def _wants_tokens() -> bool:
    scope = current_scope()
    return scope is not None and scope.bus.wants_tokens


async def call_model(
    client: ChatModel,
    settings: ModelSettings,
    messages: Sequence[Message],
    *,
    usage: RunUsage,
    extra: Mapping[str, Any] | None = None,
    on_delta: Callable[[Delta], str] | None = None,
    options: CallOptions | None = None,
) -> CallResult:
    """Fit, send and account for one request (see the module docstring).

    ``extra`` adds request fields (a tool protocol's ``tools``); ``on_delta`` turns each streamed
    delta into the text the user may see (a tool protocol's turn parser hides its markup).
    """
    # (the request validates its own copy of the list: no copy before)
    listed = messages if isinstance(messages, list) else list(messages)
    if extra:
        request = ChatCompletionRequest(
            model=settings.model, messages=listed, **settings.parameters, **extra
        )
    else:
        request = ChatCompletionRequest(
            model=settings.model, messages=listed, **settings.parameters
        )
    token = _current_model.set(client) if _borrows_model(settings.fitter) else None
    try:
        here = current_scope()
        if (here is None or not here.bus.active) and current_journal() is None:
            # nobody listens and nothing is journaled: no span, no event, no replay
            started = time.monotonic()
            fitter = settings.fitter
            completion = await complete_fitted(client, request, fitter, options=options)
            _account(settings, request, completion, usage, time.monotonic() - started)
            return CallResult(completion, streamed=False)
        return await _call(client, settings, request, usage, on_delta, options)
    finally:
        if token is not None:
            _current_model.reset(token)


async def _call(
    client: ChatModel,
    settings: ModelSettings,
    request: ChatCompletionRequest,
    usage: RunUsage,
    on_delta: Callable[[Delta], str] | None,
    options: CallOptions | None,
) -> CallResult:
    with span() as here:
        # Fitting happens when sending; only an announcement needs it beforehand (unlistened,
        # the history is fitted once per call, not twice).
        listened = here is not None and here.bus.active
        fitted = await settings.fitter.fit_request(request) if listened else request
        if listened:
            _announce(settings, request, fitted)
        started = time.monotonic()
        wanted = _wants_tokens()
        made: list[bool] = []

        async def send() -> ChatCompletion:
            made.append(True)
            if wanted:
                return await _streamed(client, fitted, settings, on_delta, options)
            return await complete_fitted(client, fitted, settings.fitter, options=options)

        load = ChatCompletion.model_validate
        completion = await journaled("model", send, dump=_dump, load=load)
        _account(settings, fitted, completion, usage, time.monotonic() - started)
    return CallResult(completion, streamed=wanted and bool(made))


async def _streamed(
    client: ChatModel,
    request: ChatCompletionRequest,
    settings: ModelSettings,
    on_delta: Callable[[Delta], str] | None,
    options: CallOptions | None,
) -> ChatCompletion:
    stream = await stream_fitted(client, request, settings.fitter, options=options)
    accumulator = StreamAccumulator(request)
    scope = current_scope()
    async with stream:
        async for chunk in stream:
            accumulator.add(chunk)
            if not chunk.choices:
                continue
            delta = chunk.choices[0].delta
            visible = on_delta(delta) if on_delta is not None else (delta.content or "")
            if visible and scope is not None:
                scope.emit(TokenDelta, text=visible, size=len(visible))
    return accumulator.completion()


def _dump(completion: ChatCompletion) -> Any:
    data = completion.model_dump(mode="json")
    if completion.usage is not None and completion.usage.estimated:
        data["usage"]["estimated"] = True
    return data


def _announce(
    settings: ModelSettings, request: ChatCompletionRequest, fitted: ChatCompletionRequest
) -> None:
    scope = current_scope()
    if scope is None:
        return
    fitter = settings.fitter
    budget = fitter.budget_for(fitted.max_tokens)
    estimate = fitter.estimate(fitted.messages)
    wire = [m.to_wire() for m in fitted.messages]
    scope.emit(
        ModelRequest,
        model=settings.model,
        parameters={k: v for k, v in fitted.to_wire().items() if k in REQUEST_PARAMETERS},
        message_count=len(fitted.messages),
        estimated_tokens=estimate,
        budget=budget.prompt_tokens,
        context_window=budget.context_window,
        fit=_fit_report(request.messages, fitted.messages),
        messages=wire,
        size=sum(len(m.text) for m in fitted.messages),
    )


def _fit_report(before: Sequence[Message], after: Sequence[Message]) -> dict[str, Any]:
    kept = {id(m) for m in after}
    dropped = sum(1 for m in before if id(m) not in kept)
    summaries = sum(1 for m in after if m.metadata.get(KIND) == "summary" and id(m) not in kept)
    report: dict[str, Any] = {"messages": len(before), "sent": len(after)}
    if dropped:
        report["dropped_or_changed"] = dropped
    if summaries:
        report["summaries"] = summaries
    return report


def _account(
    settings: ModelSettings,
    request: ChatCompletionRequest,
    completion: ChatCompletion,
    usage: RunUsage,
    latency: float,
) -> None:
    reported = completion.usage
    prompt = reported.prompt_tokens if reported else 0
    answer = reported.completion_tokens if reported else 0
    estimated = reported is None or reported.estimated
    cost = settings.profile.cost(prompt, answer) if settings.profile is not None else None
    usage.add_request(
        model=settings.model,
        input_tokens=prompt,
        output_tokens=answer,
        estimated=estimated,
        cost=cost,
    )
    scope = current_scope()
    if scope is None or not scope.bus.active:
        return
    choice = completion.choices[0] if completion.choices else None
    text = choice.message.text if choice is not None else ""
    scope.emit(
        ModelResponse,
        model=settings.model,
        prompt_tokens=prompt,
        completion_tokens=answer,
        usage_estimated=estimated,
        estimated_prompt_tokens=settings.fitter.estimate(request.messages),
        cost=cost,
        latency=latency,
        finish_reason=choice.finish_reason if choice is not None else None,
        content=text,
        size=len(text),
    )
