"""Context budgets: how many prompt tokens a request may use, checked before it is sent.

For each request, ``prompt budget = context window - max_tokens - safety margin``::

    budget = ContextBudget.for_model("atdak-llama-70b", max_tokens=1000)
    budget.prompt_tokens        # 32000 - 1000 - 640 = 30360
    check_request(request)      # raises ContextBudgetError naming what took the space

Prompt sizes are estimated with the model's tokenizer (cached per message) and corrected by the
model's learnt calibration; :func:`record_usage` feeds that calibration from each answer's
``usage.prompt_tokens``.

Most prompts are far below their budget, and that can be known without estimating them: a
tokenizer never gives more tokens than its ``upper_bound`` of a text's UTF-8 size
(:meth:`PromptCounter.certainly_fits`), so fitting such a prompt counts nothing, and the
calibration's estimate of it is made only if its factor is needed later.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..exceptions import ContextBudgetError, InvalidParameterError
from ..messages import KIND, Message
from ..providers._wire import ChatCompletion, ChatCompletionRequest
from ..providers.profiles import ModelProfile, default_registry
from .calibration import TokenCalibration, default_calibration
from .tokens import (
    MESSAGE_OVERHEAD,
    REPLY_PRIMING,
    Tokenizer,
    count_message_tokens,
    get_tokenizer,
    json_text,
    json_tokens,
    message_token_bound,
)

__all__ = [
    "ContextBudget",
    "PromptCounter",
    "PromptEstimate",
    "check_request",
    "estimate_request",
    "record_usage",
]

SAFETY_FRACTION = 0.02
"""Default safety margin: this share of the context window (at least MIN_SAFETY_MARGIN)."""
MIN_SAFETY_MARGIN = 64
_SYSTEM_CACHE_SIZE = 64  # system prompts a counter remembers by content (then starts afresh)


def _profile(model: str | ModelProfile) -> ModelProfile:
    return model if isinstance(model, ModelProfile) else default_registry.get(model)


@dataclass(frozen=True)
class ContextBudget:
    """The token space of one request: ``prompt_tokens`` is what the prompt may use."""

    model: str
    context_window: int
    max_tokens: int
    safety_margin: int

    @classmethod
    def for_model(
        cls,
        model: str | ModelProfile,
        *,
        max_tokens: int | None = None,
        safety_margin: int | None = None,
    ) -> ContextBudget:
        """The budget of ``model`` for an answer of up to ``max_tokens`` tokens.

        ``max_tokens`` defaults to the model's longest answer; ``safety_margin`` to 2% of the
        window (at least 64 tokens), room for the estimate being a little low.
        """
        profile = _profile(model)
        window = profile.context_window
        reserve = profile.max_output_tokens if max_tokens is None else max_tokens
        if not 0 < reserve < window:
            raise InvalidParameterError(
                "max_tokens", reserve, f"must be between 1 and {window - 1} for {profile.name}"
            )
        margin = max(MIN_SAFETY_MARGIN, round(window * SAFETY_FRACTION))
        if safety_margin is not None:
            if safety_margin < 0:
                raise InvalidParameterError("safety_margin", safety_margin, "must be >= 0")
            margin = safety_margin
        return cls(profile.name, window, reserve, margin)

    @property
    def prompt_tokens(self) -> int:
        """Tokens the prompt may use (may be zero or less when max_tokens leaves no room)."""
        return self.context_window - self.max_tokens - self.safety_margin

    def shrunk(self, fraction: float) -> ContextBudget:
        """The same budget with only ``fraction`` of its prompt space (the rest added to margin)."""
        keep = max(0, math.floor(self.prompt_tokens * fraction))
        return replace(self, safety_margin=self.safety_margin + self.prompt_tokens - keep)


class PromptCounter:
    """Counts prompts for one model: its tokenizer, cached per-message counts, its calibration."""

    def __init__(
        self,
        model: str | ModelProfile,
        *,
        tokenizer: Tokenizer | str | None = None,
        calibration: TokenCalibration | None = None,
    ) -> None:
        profile = _profile(model)
        self.model = profile.name
        chosen = tokenizer if tokenizer is not None else profile.tokenizer
        self.tokenizer = get_tokenizer(chosen) if isinstance(chosen, str) else chosen
        self.calibration = default_calibration if calibration is None else calibration
        self._system: dict[tuple[object, ...], int] = {}

    def message(self, message: Message) -> int:
        """Raw tokens of one message, framing included (cached on the message).

        System prompts are also remembered by content, since each run (and a tool protocol,
        each turn) sends the same prompt in a new message object.
        """
        if message.role != "system" or message.tool_calls:
            return count_message_tokens(message, self.tokenizer)
        key = (message.content, message.name, message.tool_call_id)
        tokens = self._system.get(key)
        if tokens is None:
            if len(self._system) >= _SYSTEM_CACHE_SIZE:
                self._system.clear()
            tokens = self._system[key] = count_message_tokens(message, self.tokenizer)
        return tokens

    def raw(self, messages: Sequence[Message], tools: Sequence[Any] | None = None) -> int:
        """Raw tokens of a prompt: its messages, the reply priming and any native tools."""
        total = sum(map(self.message, messages))
        if messages:
            total += REPLY_PRIMING
        return total + self.tools(tools)

    def tools(self, tools: Sequence[Any] | None) -> int:
        """Raw tokens of native tool definitions sent with the request."""
        return json_tokens(list(tools), self.tokenizer) if tools else 0

    def calibrated(self, raw: int) -> int:
        """A raw count corrected by the model's calibration."""
        return self.calibration.adjust(self.model, raw)

    def raw_limit(self, calibrated_tokens: int) -> int:
        """The largest raw count whose calibrated value stays within ``calibrated_tokens``."""
        return math.floor(calibrated_tokens / self.calibration.factor(self.model))

    def estimate(self, messages: Sequence[Message], tools: Sequence[Any] | None = None) -> int:
        """Calibrated prompt tokens of ``messages`` (and ``tools``)."""
        return self.calibrated(self.raw(messages, tools))

    def bound(self, messages: Sequence[Message], tools: Sequence[Any] | None = None) -> int | None:
        """A raw count :meth:`raw` never exceeds, from the sizes of the texts alone (``None``
        when the tokenizer has no ``upper_bound``)."""
        upper = getattr(self.tokenizer, "upper_bound", None)
        if upper is None:
            return None
        total = REPLY_PRIMING if messages else 0
        for m in messages:
            if m.name is None and m.tool_call_id is None and m.tool_calls is None:
                total += MESSAGE_OVERHEAD + upper(m.content or "")  # the common case, inline
            else:
                total += message_token_bound(m, upper)
        if tools:
            total += upper(json_text(list(tools)))
        return int(total)

    def certainly_fits(
        self, messages: Sequence[Message], prompt_tokens: int, tools: Sequence[Any] | None = None
    ) -> bool:
        """Whether the calibrated estimate of ``messages`` (and ``tools``) is surely within
        ``prompt_tokens``, judged from :meth:`bound` without estimating anything. ``False``
        means only "maybe not": count to know."""
        bound = self.bound(messages, tools)
        if bound is None:
            return False
        factor = self.calibration.factor_bound(self.model)  # makes no pending estimate
        if bound <= math.floor(prompt_tokens / factor):
            return True
        return bound <= self.raw_limit(prompt_tokens)  # with the factor itself

    def lower_bound(self, messages: Sequence[Message]) -> int:
        """A raw count :meth:`raw` is never below: the framing, and the system prompts (whose
        counts are remembered by content)."""
        total = REPLY_PRIMING if messages else 0
        for message in messages:
            if message.role == "system":
                total += self.message(message)
            else:
                total += MESSAGE_OVERHEAD
        return total

    def parts(
        self, messages: Sequence[Message], tools: Sequence[Any] | None = None
    ) -> dict[str, int]:
        """Raw tokens by part of the prompt: system, summary, history, latest message, tools."""
        parts: dict[str, int] = {}
        last = len(messages) - 1
        for index, message in enumerate(messages):
            part = _part_of(message, index, last)
            parts[part] = parts.get(part, 0) + self.message(message)
        if messages:  # the reply priming goes with the message it answers
            part = _part_of(messages[-1], last, last)
            parts[part] = parts.get(part, 0) + REPLY_PRIMING
        if tools:
            parts["tools"] = self.tools(tools)
        return {k: v for k, v in parts.items() if v}


def _part_of(message: Message, index: int, last: int) -> str:
    if message.metadata.get(KIND) == "summary":
        return "summary"
    if index == last:
        return "latest message"
    return "system" if message.role == "system" else "history"


@dataclass(frozen=True)
class PromptEstimate:
    """A request's estimated prompt size against its budget."""

    budget: ContextBudget
    tokens: int
    raw_tokens: int
    parts: Mapping[str, int] = field(default_factory=dict)

    @property
    def fits(self) -> bool:
        return self.tokens <= self.budget.prompt_tokens

    @property
    def over(self) -> int:
        """Tokens above the budget (0 when it fits)."""
        return max(0, self.tokens - self.budget.prompt_tokens)

    def error(self, advice: str | None = None) -> ContextBudgetError:
        """The error that names the model, window, estimate and what took the space."""
        budget = self.budget
        scale = self.tokens / self.raw_tokens if self.raw_tokens else 1.0
        breakdown = {part: math.ceil(raw * scale) for part, raw in self.parts.items()}
        if advice is None:
            advice = (
                f"the prompt may use {budget.prompt_tokens} tokens after a safety margin of "
                f"{budget.safety_margin}; lower max_tokens, shorten the input, or choose a "
                "history strategy that drops or summarises old turns"
            )
        return ContextBudgetError(
            model=budget.model,
            context_window=budget.context_window,
            estimate=self.tokens,
            max_tokens=budget.max_tokens,
            breakdown=breakdown,
            advice=advice,
        )

    def check(self) -> PromptEstimate:
        """This estimate; raises :class:`ContextBudgetError` when it does not fit."""
        if not self.fits:
            raise self.error()
        return self


def estimate_request(
    request: ChatCompletionRequest,
    *,
    budget: ContextBudget | None = None,
    counter: PromptCounter | None = None,
) -> PromptEstimate:
    """Estimate ``request``'s prompt against its model's budget (its own ``max_tokens``)."""
    counter = counter or PromptCounter(request.model)
    budget = budget or ContextBudget.for_model(request.model, max_tokens=request.max_tokens)
    raw = counter.raw(request.messages, request.tools)
    parts = counter.parts(request.messages, request.tools)
    return PromptEstimate(budget, counter.calibrated(raw), raw, parts)


def check_request(
    request: ChatCompletionRequest,
    *,
    budget: ContextBudget | None = None,
    counter: PromptCounter | None = None,
) -> PromptEstimate:
    """:func:`estimate_request`, raising :class:`ContextBudgetError` when it does not fit."""
    return estimate_request(request, budget=budget, counter=counter).check()


def record_usage(
    request: ChatCompletionRequest,
    completion: ChatCompletion,
    *,
    counter: PromptCounter | None = None,
) -> float | None:
    """Feed the server's ``usage.prompt_tokens`` for ``request`` into the model's calibration.

    Call it after each non-streamed answer. Returns the model's new correction factor, or
    ``None`` when the answer carried no server-reported usage.
    """
    usage = completion.usage
    if usage is None or usage.estimated or usage.prompt_tokens <= 0:
        return None
    counter = counter or PromptCounter(request.model)
    raw = counter.raw(request.messages, request.tools)
    return counter.calibration.observe(counter.model, raw, usage.prompt_tokens)


def record_usage_later(
    request: ChatCompletionRequest, completion: ChatCompletion, *, counter: PromptCounter
) -> None:
    """:func:`record_usage`, estimating the request only when the calibration is next read
    (see :meth:`TokenCalibration.observe_later`); a request too small to be sure it counts as
    a sample is estimated at once."""
    usage = completion.usage
    if usage is None or usage.estimated or usage.prompt_tokens <= 0:
        return
    calibration = counter.calibration
    framing = REPLY_PRIMING + MESSAGE_OVERHEAD * len(request.messages)  # a lower bound too
    if framing < calibration.min_tokens and counter.lower_bound(request.messages) < (
        calibration.min_tokens
    ):
        record_usage(request, completion, counter=counter)
        return
    estimate = functools.partial(counter.raw, request.messages, request.tools)
    calibration.observe_later(counter.model, estimate, usage.prompt_tokens)
