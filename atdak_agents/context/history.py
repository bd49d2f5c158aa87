"""Fitting a conversation into a model's context budget.

A :class:`HistoryFitter` runs a list of strategies (see :mod:`atdak_agents.context.strategies`)
over a history until it fits the model's budget, then checks it::

    fitter = HistoryFitter("atdak-llama-70b", [DropOldest(keep_last=6), TruncateMiddle()])
    messages = await fitter.fit(history)      # or fitter.fit_sync(history)

History is seen as *pinned* messages (the leading system prompt and any summary) followed by
*turns*: a turn starts at a real user message and runs until the next one, so a tool call and
its results (messages sharing ``metadata["exchange"]``, or native ``tool_calls`` and their
``tool`` replies) always sit in one turn. Strategies drop or shrink whole turns or exchanges.

Fitting the same history again after appending to it costs O(new messages): a fitter keeps an
index (per-message counts, turn starts, prefix sums) of the last history it saw and only extends
it. Treat stored messages as immutable: replace a message rather than editing it in place.
"""

from __future__ import annotations

import asyncio
import operator
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, Protocol, runtime_checkable

from ..exceptions import UsageError
from ..messages import EXCHANGE, KIND, Message, MessageLike, as_message
from ..providers._wire import ChatCompletionRequest
from ..providers.profiles import ModelProfile
from .budget import ContextBudget, PromptCounter, PromptEstimate
from .calibration import TokenCalibration
from .tokens import REPLY_PRIMING, Tokenizer

__all__ = [
    "FitContext",
    "HistoryFitter",
    "HistoryIndex",
    "HistoryStrategy",
    "exchange_key",
    "is_pinned",
    "starts_turn",
]

_NOT_TURN_STARTS = frozenset({"tool_result", "correction"})


def starts_turn(message: Message) -> bool:
    """Whether ``message`` opens a turn: a user message that is not a tool result or correction."""
    if message.role != "user" or EXCHANGE in message.metadata:
        return False
    return message.metadata.get(KIND) not in _NOT_TURN_STARTS


def is_pinned(message: Message) -> bool:
    """System prompts and summaries at the head of a history are never dropped."""
    return message.role == "system" or message.metadata.get(KIND) == "summary"


def exchange_key(message: Message) -> str | None:
    """The tool exchange a message belongs to, when it is part of one."""
    found = message.metadata.get(EXCHANGE)
    if found is not None:
        return str(found)
    if message.tool_calls:
        return f"call:{message.tool_calls[0].id}"
    return None


class HistoryIndex:
    """Raw token counts, pinned head, turn starts and prefix sums of one history.

    :meth:`update` with the same list plus new messages at the end costs O(new messages).
    """

    def __init__(self, counter: PromptCounter) -> None:
        self.counter = counter
        self.messages: list[Message] = []
        self.prefix: list[int] = [0]  # prefix[i] = raw tokens of messages[:i]
        self.pinned_end = 0
        self.turn_starts: list[int] = []
        self.turn_prefix: list[int] = []  # prefix[] at each turn start

    def update(self, messages: list[Message]) -> HistoryIndex:
        """Bring the index up to date with ``messages`` (extending it when only appended to)."""
        old = self.messages
        if len(messages) < len(old) or not all(map(operator.is_, messages, old)):
            self.__init__(self.counter)  # type: ignore[misc]
            old = self.messages
        if len(messages) > len(old):
            self._extend(messages, len(old))
        return self

    def extended(self, messages: list[Message]) -> HistoryIndex:
        """An index of ``messages`` as a new object, reusing this one's counts when
        ``messages`` only appends to its history; this index is left as it is."""
        old = self.messages
        appended = len(messages) >= len(old) and all(map(operator.is_, messages, old))
        if appended and len(messages) == len(old):
            return self
        fresh = HistoryIndex(self.counter)
        start = 0
        if appended:
            fresh.prefix = list(self.prefix)
            fresh.pinned_end = self.pinned_end
            fresh.turn_starts = list(self.turn_starts)
            fresh.turn_prefix = list(self.turn_prefix)
            start = len(old)
        fresh._extend(messages, start)
        return fresh

    def _extend(self, messages: list[Message], start: int) -> None:
        count = self.counter.message
        prefix, starts, turn_prefix = self.prefix, self.turn_starts, self.turn_prefix
        for i in range(start, len(messages)):
            message = messages[i]
            if i == self.pinned_end and not starts and is_pinned(message):
                self.pinned_end += 1
            elif i == self.pinned_end or starts_turn(message):
                starts.append(i)
                turn_prefix.append(prefix[i])
            prefix.append(prefix[i] + count(message))
        self.messages = list(messages)

    @property
    def turns(self) -> int:
        return len(self.turn_starts)

    @property
    def total(self) -> int:
        """Raw tokens of the whole history as a prompt (reply priming included)."""
        return self.prefix[-1] + (REPLY_PRIMING if self.messages else 0)

    @property
    def pinned(self) -> int:
        return self.prefix[self.pinned_end]

    def cost_from_turn(self, turn: int) -> int:
        """Raw prompt tokens when the pinned head and turns ``turn..`` are kept."""
        kept = self.prefix[-1] - (self.turn_prefix[turn] if turn < self.turns else self.prefix[-1])
        return self.pinned + kept + REPLY_PRIMING

    def first_fitting_turn(self, limit: int, keep_last: int, *, base: int | None = None) -> int:
        """The oldest turn to keep so the prompt fits ``limit`` raw tokens, at most
        ``turns - keep_last`` (``base`` replaces the pinned head's tokens when given)."""
        head = self.pinned if base is None else base
        need = head + self.prefix[-1] + REPLY_PRIMING - limit
        turn = bisect_left(self.turn_prefix, need) if need > 0 else 0
        return min(turn, max(0, self.turns - keep_last))

    def keep_from_turn(self, turn: int) -> list[Message]:
        """The pinned head followed by turns ``turn..``."""
        head = self.messages[: self.pinned_end]
        if turn >= self.turns:
            return head
        return head + self.messages[self.turn_starts[turn] :]


@dataclass
class FitContext:
    """What a strategy knows while fitting: the budget, the counter and the input's index."""

    budget: ContextBudget
    counter: PromptCounter
    history: list[Message]
    index: HistoryIndex
    tools: Sequence[Any] | None = None
    _known: dict[int, tuple[list[Message], int]] = field(default_factory=dict, repr=False)
    _tools_tokens: int | None = field(default=None, init=False, repr=False)
    _surely: bool | None = field(default=None, init=False, repr=False)

    def remember(self, messages: list[Message], raw: int) -> list[Message]:
        """Note the raw tokens of a list a strategy built, so they are not summed again."""
        self._known[id(messages)] = (messages, raw)
        return messages

    @property
    def limit(self) -> int:
        """Raw tokens the messages may use (calibration and tools taken into account)."""
        tools = self._tools_tokens
        if tools is None:
            tools = self._tools_tokens = self.counter.tools(self.tools)
        return self.counter.raw_limit(self.budget.prompt_tokens) - tools

    def index_for(self, messages: list[Message]) -> HistoryIndex:
        """An index of ``messages``: the shared one for the input history, else a fresh one."""
        if messages is self.history:
            return self.index
        return HistoryIndex(self.counter).update(messages)

    def raw(self, messages: Sequence[Message]) -> int:
        """Raw prompt tokens of ``messages`` (without tools)."""
        if messages is self.history:
            return self.index.total
        known = self._known.get(id(messages))
        if known is not None and known[0] is messages:
            return known[1]
        return self.counter.raw(messages)

    def fits(self, messages: Sequence[Message]) -> bool:
        """Whether ``messages`` (with tools) fit the budget: the input history surely, from its
        size alone (:meth:`PromptCounter.certainly_fits`), else counted."""
        if messages is self.history:
            if self._surely is None:
                self._surely = self.counter.certainly_fits(
                    messages, self.budget.prompt_tokens, self.tools
                )
            if self._surely:
                return True
        return self.raw(messages) <= self.limit

    def check(self, messages: Sequence[Message]) -> None:
        """Raise :class:`ContextBudgetError` when ``messages`` (with tools) do not fit."""
        if not self.fits(messages):
            raise self.estimate(messages).error()

    def estimate(self, messages: Sequence[Message]) -> PromptEstimate:
        """The calibrated estimate of ``messages`` (with tools) against the budget."""
        raw = self.raw(messages) + self.counter.tools(self.tools)
        parts = self.counter.parts(messages, self.tools)
        return PromptEstimate(self.budget, self.counter.calibrated(raw), raw, parts)


@runtime_checkable
class HistoryStrategy(Protocol):
    """One step of fitting: returns the messages to keep (a new list; never edits its input).

    A strategy that changes only histories over the budget may say so with a class attribute
    ``only_over_budget = True``: a history that surely fits is then not even counted.
    """

    async def apply(self, messages: list[Message], ctx: FitContext) -> list[Message]: ...


class Processor:
    """A plain function ``list[Message] -> list[Message]`` used as a strategy."""

    def __init__(self, function: Callable[[list[Message]], list[Message]]) -> None:
        self.function = function

    async def apply(self, messages: list[Message], ctx: FitContext) -> list[Message]:
        return list(self.function(list(messages)))

    def __repr__(self) -> str:
        return f"Processor({getattr(self.function, '__name__', self.function)!r})"


StrategyLike = HistoryStrategy | Callable[[list[Message]], list[Message]]


def _default_strategies() -> list[HistoryStrategy]:
    from .strategies import DropOldest

    # Dropping whole old turns loses nothing the current question needs; cutting a message
    # does, so truncate_middle is opt-in: by default an input that cannot fit is an error.
    return [DropOldest()]


class HistoryFitter:
    """Fits histories into one model's budget with a list of strategies, then checks the result.

    ``strategies`` run in order (default: drop the oldest turns; add ``TruncateMiddle()`` to
    cut one oversized message rather than fail — opt-in, because it loses content); plain
    functions ``list[Message] -> list[Message]`` are accepted too. ``max_tokens``
    is the answer's reserve (default: the model's longest answer; a request's own ``max_tokens``
    wins in :meth:`fit_request`). Raises :class:`ContextBudgetError` when nothing fits.
    """

    def __init__(
        self,
        model: str | ModelProfile,
        strategies: Sequence[StrategyLike] | None = None,
        *,
        max_tokens: int | None = None,
        safety_margin: int | None = None,
        tokenizer: Tokenizer | str | None = None,
        calibration: TokenCalibration | None = None,
    ) -> None:
        self.counter = PromptCounter(model, tokenizer=tokenizer, calibration=calibration)
        self.model = self.counter.model
        self._profile = model
        self.max_tokens = max_tokens
        self.safety_margin = safety_margin
        self._budgets: dict[tuple[int | None, int | None], ContextBudget] = {}
        self.budget = self.budget_for(max_tokens)
        chosen = _default_strategies() if strategies is None else list(strategies)
        self.strategies: list[HistoryStrategy] = [_as_strategy(s) for s in chosen]
        self._index = HistoryIndex(self.counter)

    @classmethod
    def from_config(
        cls,
        model: str | ModelProfile,
        config: object,
        *,
        chat_model: Any = None,
        **options: Any,
    ) -> HistoryFitter:
        """A fitter from configuration data, e.g. ``{"strategy": "drop_oldest", "keep_last": 6}``
        or a list of such entries (see ``strategies_from_config``)."""
        from .strategies import strategies_from_config

        return cls(model, strategies_from_config(config, chat_model=chat_model), **options)

    def budget_for(self, max_tokens: int | None) -> ContextBudget:
        """The budget for an answer of up to ``max_tokens`` (the fitter's default when None)."""
        reserve = self.max_tokens if max_tokens is None else max_tokens
        key = (reserve, self.safety_margin)
        budget = self._budgets.get(key)
        if budget is None:
            budget = ContextBudget.for_model(
                self._profile, max_tokens=reserve, safety_margin=self.safety_margin
            )
            if isinstance(self._profile, ModelProfile) and len(self._budgets) < 64:
                self._budgets[key] = budget  # a profile object's budgets never change
        return budget

    def estimate(self, messages: Sequence[MessageLike]) -> int:
        """Calibrated prompt tokens of ``messages`` for this fitter's model."""
        return self.counter.estimate([as_message(m) for m in messages])

    async def fit(
        self,
        messages: Sequence[MessageLike],
        *,
        max_tokens: int | None = None,
        tools: Sequence[Any] | None = None,
        shrink: float = 1.0,
    ) -> list[Message]:
        """The messages to send: ``messages`` fitted into the budget (a new list).

        ``shrink`` < 1 keeps only that fraction of the prompt budget (used to trim harder when a
        server still answers context-length-exceeded).
        """
        history = self._normalise(messages)
        budget = self.budget_for(max_tokens)
        if shrink != 1.0:
            budget = budget.shrunk(shrink)
        passes = self._passes(history, budget, tools)
        if passes:
            return list(history)
        # A new index per fit (counts reused): a strategy that awaits (a summary) keeps its own
        # while other runs of the same agent fit their histories meanwhile.
        index = self._index = self._index.extended(history)
        ctx = FitContext(budget, self.counter, history, index, tools)
        ctx._surely = passes  # None when not asked: a strategy may ask it
        current = history
        for strategy in self.strategies:
            current = await strategy.apply(current, ctx)
        ctx.check(current)
        return list(current) if current is history else current

    def _passes(
        self, history: list[Message], budget: ContextBudget, tools: Sequence[Any] | None
    ) -> bool | None:
        """Whether every strategy would leave ``history`` as it is, known without counting:
        each one changes only a history over the budget, and this one surely fits it
        (``None``: a strategy may change a history within the budget, so it was not asked)."""
        for strategy in self.strategies:  # (a loop: all() over a generator costs more)
            if not getattr(strategy, "only_over_budget", False):
                return None
        return self.counter.certainly_fits(history, budget.prompt_tokens, tools)

    def fit_sync(self, messages: Sequence[MessageLike], **options: Any) -> list[Message]:
        """:meth:`fit` for synchronous code (not from inside a running event loop)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.fit(messages, **options))
        raise UsageError("fit_sync() was called inside a running event loop: use `await fit(...)`")

    async def fit_request(
        self, request: ChatCompletionRequest, *, shrink: float = 1.0
    ) -> ChatCompletionRequest:
        """``request`` with messages that fit (its own ``max_tokens`` and tools counted): a copy
        when fitting changed them, else ``request`` itself."""
        if shrink == 1.0:  # a request's messages are Message objects: no need to normalise them
            budget = self.budget_for(request.max_tokens)
            if self._passes(request.messages, budget, request.tools):
                return request
        messages = await self.fit(
            request.messages, max_tokens=request.max_tokens, tools=request.tools, shrink=shrink
        )
        sent = request.messages
        if len(messages) == len(sent) and all(map(operator.is_, messages, sent)):
            return request
        return request.model_copy(update={"messages": messages})

    def _normalise(self, messages: Sequence[MessageLike]) -> list[Message]:
        if isinstance(messages, list):
            seen = len(self._index.messages)
            if all(isinstance(m, Message) for m in messages[seen:]) and all(
                map(operator.is_, messages[:seen], self._index.messages)
            ):
                return messages  # the last history plus new messages: O(new) checks
            if all(map(isinstance, messages, repeat(Message))):
                return messages
        return [as_message(m) for m in messages]

    def __repr__(self) -> str:
        return f"HistoryFitter({self.model!r}, {self.strategies!r}, budget={self.budget})"


def _as_strategy(value: StrategyLike) -> HistoryStrategy:
    if isinstance(value, HistoryStrategy):
        return value
    if callable(value):
        return Processor(value)
    raise UsageError(
        f"history strategy {value!r} is neither a strategy object (with an async apply method) "
        "nor a function list[Message] -> list[Message]"
    )
