"""Sending a fitted request, and trimming harder once when the server still says it is too long.

The fitter's estimate can be wrong for a model whose tokenizer is unknown. When the server answers
400 context-length-exceeded anyway, :func:`complete_fitted` fits the history again into a smaller
budget (using the server's own token count when its message gives one, which also corrects the
model's calibration) and retries once::

    answer = await complete_fitted(client, request, fitter)

Non-streamed answers feed ``usage.prompt_tokens`` back into the calibration, so estimates converge
(each request is estimated for it only when the calibration is next read).
"""

from __future__ import annotations

import operator
import re

from ..exceptions import ContextBudgetError, ContextLengthExceededError
from ..providers._wire import ChatCompletion, ChatCompletionRequest
from ..providers.base import CallOptions, ChatModel, ChatStream
from .budget import ContextBudget, record_usage_later
from .history import HistoryFitter

__all__ = ["complete_fitted", "reported_prompt_tokens", "stream_fitted"]

DEFAULT_SHRINK = 0.75
"""Share of the prompt budget kept on the retry when the server gave no token count."""

_REPORTED = (
    re.compile(r"([\d,]+) (?:tokens )?in the messages", re.IGNORECASE),
    re.compile(r"(?:messages|prompt) resulted in ([\d,]+) tokens", re.IGNORECASE),
    re.compile(r"prompt (?:is|has|contains) ([\d,]+) tokens", re.IGNORECASE),
)
_WINDOW = re.compile(r"maximum context length is ([\d,]+)", re.IGNORECASE)


def reported_prompt_tokens(error: ContextLengthExceededError) -> int | None:
    """The prompt size a context-length error reports (OpenAI and vLLM wordings), if any."""
    text = f"{error.message} {error.body if isinstance(error.body, str) else ''}"
    for pattern in _REPORTED:
        found = pattern.search(text)
        if found:
            return int(found.group(1).replace(",", ""))
    return None


async def complete_fitted(
    model: ChatModel,
    request: ChatCompletionRequest,
    fitter: HistoryFitter,
    *,
    options: CallOptions | None = None,
    shrink: float = DEFAULT_SHRINK,
) -> ChatCompletion:
    """``model.complete`` with ``request``'s history fitted by ``fitter``; one harder retry.

    Raises :class:`ContextBudgetError` when the history cannot be fitted (or trimmed further
    after the server refused it), and the server's error when the retry is refused too.
    """
    fitted = await fitter.fit_request(request)
    try:
        completion = await model.complete(fitted, options=options)
    except ContextLengthExceededError as exc:
        fitted = await _refit(request, fitted, fitter, exc, shrink)
        completion = await model.complete(fitted, options=options)
    record_usage_later(fitted, completion, counter=fitter.counter)
    return completion


async def stream_fitted(
    model: ChatModel,
    request: ChatCompletionRequest,
    fitter: HistoryFitter,
    *,
    options: CallOptions | None = None,
    shrink: float = DEFAULT_SHRINK,
) -> ChatStream:
    """``model.stream`` with the history fitted, retried once harder like :func:`complete_fitted`
    (a context-length refusal comes before the first chunk, so nothing is lost)."""
    fitted = await fitter.fit_request(request)
    try:
        return await model.stream(fitted, options=options)
    except ContextLengthExceededError as exc:
        fitted = await _refit(request, fitted, fitter, exc, shrink)
        return await model.stream(fitted, options=options)


async def _refit(
    request: ChatCompletionRequest,
    sent: ChatCompletionRequest,
    fitter: HistoryFitter,
    error: ContextLengthExceededError,
    shrink: float,
) -> ChatCompletionRequest:
    counter = fitter.counter
    raw = counter.raw(sent.messages, sent.tools)
    estimate = counter.calibrated(raw)
    reported = reported_prompt_tokens(error)
    if reported is not None:
        counter.calibration.observe(counter.model, raw, reported)
    keep = _share_to_keep(error, reported, estimate, sent.max_tokens, shrink)
    # Shrink what was refused, not the budget: the server's window may be smaller than ours.
    budget = fitter.budget_for(request.max_tokens)
    fraction = keep * min(1.0, estimate / budget.prompt_tokens) if budget.prompt_tokens > 0 else 0
    try:
        refitted = await fitter.fit_request(request, shrink=fraction)
    except ContextBudgetError as budget_error:
        raise _cannot_trim(budget, budget_error, error) from error
    if len(refitted.messages) == len(sent.messages) and all(
        map(operator.is_, refitted.messages, sent.messages)
    ):
        raise _cannot_trim(budget, None, error) from error
    return refitted


def _share_to_keep(
    error: ContextLengthExceededError,
    reported: int | None,
    estimate: int,
    max_tokens: int | None,
    shrink: float,
) -> float:
    """The share of the refused prompt to send again."""
    window = _WINDOW.search(error.message)
    if reported and window:
        allowed = int(window.group(1).replace(",", "")) - (max_tokens or 0)
        return max(0.0, min(1.0, 0.95 * allowed / reported))
    if reported and reported > estimate:
        return min(shrink, 0.95 * estimate / reported)
    return shrink


def _cannot_trim(
    budget: ContextBudget,
    budget_error: ContextBudgetError | None,
    error: ContextLengthExceededError,
) -> ContextBudgetError:
    window = _WINDOW.search(error.message)
    return ContextBudgetError(
        model=budget.model,
        context_window=int(window.group(1).replace(",", "")) if window else budget.context_window,
        estimate=reported_prompt_tokens(error) or (budget_error.estimate if budget_error else 0),
        max_tokens=budget.max_tokens,
        breakdown=budget_error.breakdown if budget_error else None,
        advice=f"the server refused the prompt as too long ({error.message}) and the history "
        "strategies could not trim it enough; add drop_oldest or truncate_middle, or describe "
        "the model's real window in its profile",
    )
