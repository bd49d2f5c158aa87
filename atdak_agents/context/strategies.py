"""History strategies: the steps a :class:`~atdak_agents.context.history.HistoryFitter` runs.

Each is a small object with ``async apply(messages, ctx) -> messages``; they compose in a list,
and each has a name for configuration files::

    history: {strategy: drop_oldest, keep_last: 6}
    history:
      - {strategy: summarize, model: atdak-gpt-4-mini, keep_last: 4}
      - truncate_middle

============== ===========================================================================
name           what it does
============== ===========================================================================
keep_last      always keep only the pinned head and the newest ``turns`` turns
drop_oldest    drop the oldest whole turns until the history fits (then old tool exchanges
               inside the kept turns, whole, if ``drop_exchanges``)
truncate_middle cut the largest message in the middle, with a visible marker
summarize      replace the oldest turns by a summary written by a (cheaper) model
raise          fail at once with ContextBudgetError when the history does not fit
============== ===========================================================================
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..exceptions import InvalidParameterError, ModelOutputError, UsageError
from ..messages import KIND, Message
from ..providers._wire import ChatCompletionRequest
from ..providers.base import ChatModel
from ..providers.profiles import default_registry
from .history import FitContext, HistoryIndex, HistoryStrategy, exchange_key
from .split import split_text
from .tokens import MESSAGE_OVERHEAD, REPLY_PRIMING, Tokenizer

__all__ = [
    "DropOldest",
    "KeepLast",
    "RaiseOnOverflow",
    "Summarize",
    "TruncateMiddle",
    "register_strategy",
    "strategies_from_config",
    "strategy_names",
    "truncate_text_middle",
]


@dataclass
class KeepLast:
    """Keep the pinned head (system prompt, summary) and the newest ``turns`` turns, always."""

    turns: int = 6
    name = "keep_last"

    def __post_init__(self) -> None:
        _require(self.turns >= 1, "turns", self.turns, "must be at least 1")

    async def apply(self, messages: list[Message], ctx: FitContext) -> list[Message]:
        index = ctx.index_for(messages)
        if index.turns <= self.turns:
            return messages
        first = index.turns - self.turns
        return ctx.remember(index.keep_from_turn(first), index.cost_from_turn(first))


@dataclass
class DropOldest:
    """Drop the oldest whole turns until the history fits; never the newest ``keep_last``.

    With ``drop_exchanges`` (default) and still too long, whole tool exchanges inside the kept
    turns go next, oldest first (never a turn's opening message, never the latest exchange).
    """

    keep_last: int = 1
    drop_exchanges: bool = True
    name = "drop_oldest"
    only_over_budget = True  # a history within the budget is returned as it is

    def __post_init__(self) -> None:
        _require(self.keep_last >= 0, "keep_last", self.keep_last, "must be >= 0")

    async def apply(self, messages: list[Message], ctx: FitContext) -> list[Message]:
        if ctx.fits(messages):
            return messages
        index = ctx.index_for(messages)
        limit = ctx.limit
        turn = index.first_fitting_turn(limit, self.keep_last)
        kept = ctx.remember(index.keep_from_turn(turn), index.cost_from_turn(turn))
        if ctx.raw(kept) <= limit or not self.drop_exchanges:
            return kept
        return _drop_exchanges(kept, ctx, limit)


def _units(messages: list[Message]) -> list[list[int]]:
    """Indices of ``messages`` grouped so a tool call and its results form one unit."""
    units: list[list[int]] = []
    by_key: dict[str, list[int]] = {}
    for i, message in enumerate(messages):
        key = exchange_key(message)
        if key is None and message.role == "tool" and message.tool_call_id:
            key = next((k for k in by_key if k == f"call:{message.tool_call_id}"), None)
            key = key or _native_key(messages, message.tool_call_id)
        if key is not None and key in by_key:
            by_key[key].append(i)
            continue
        unit = [i]
        units.append(unit)
        if key is not None:
            by_key[key] = unit
    return units


def _native_key(messages: list[Message], call_id: str) -> str | None:
    for message in messages:
        if message.tool_calls and any(c.id == call_id for c in message.tool_calls):
            return f"call:{message.tool_calls[0].id}"
    return None


def _drop_exchanges(messages: list[Message], ctx: FitContext, limit: int) -> list[Message]:
    """Drop droppable units (not pinned, not a turn opener, not the last unit), oldest first."""
    index = HistoryIndex(ctx.counter).update(messages)
    openers = set(index.turn_starts)
    units = _units(messages)
    droppable = [u for u in units[:-1] if u[0] >= index.pinned_end and not (openers & set(u))]
    total = index.total
    dropped: set[int] = set()
    for unit in droppable:
        if total <= limit:
            break
        dropped.update(unit)
        total -= sum(index.prefix[i + 1] - index.prefix[i] for i in unit)
    return [m for i, m in enumerate(messages) if i not in dropped]


@dataclass
class TruncateMiddle:
    """Last resort: cut the largest message in the middle, leaving a visible marker.

    The message keeps its head and tail; ``marker`` (with ``{omitted}``, the tokens cut) replaces
    the middle. Nothing is cut below ``min_tokens`` of content: the fit then fails loudly.
    """

    marker: str = "\n\n[... {omitted} tokens omitted to fit the context window ...]\n\n"
    min_tokens: int = 64
    name = "truncate_middle"
    only_over_budget = True  # a history within the budget is returned as it is

    async def apply(self, messages: list[Message], ctx: FitContext) -> list[Message]:
        if ctx.fits(messages):
            return messages
        limit = ctx.limit
        excess = ctx.raw(messages) - limit
        if excess <= 0 or not messages:
            return messages
        candidates = [i for i, m in enumerate(messages) if m.metadata.get(KIND) != "summary"]
        if not candidates:
            return messages
        largest = max(candidates, key=lambda i: ctx.counter.message(messages[i]))
        message = messages[largest]
        keep = ctx.counter.tokenizer.count(message.text) - excess
        if keep < self.min_tokens:
            return messages
        text = truncate_text_middle(message.text, keep, ctx.counter.tokenizer, self.marker)
        metadata = {**message.metadata, "truncated": True}
        shortened = message.model_copy(update={"content": text, "metadata": metadata})
        return [*messages[:largest], shortened, *messages[largest + 1 :]]


def truncate_text_middle(
    text: str, max_tokens: int, tokenizer: Tokenizer, marker: str = TruncateMiddle.marker
) -> str:
    """``text`` cut to at most ``max_tokens`` by removing its middle, marked with ``marker``."""
    total = tokenizer.count(text)
    if total <= max_tokens:
        return text
    room = max_tokens - tokenizer.count(marker.format(omitted=total))
    if room <= 0:
        raise InvalidParameterError("max_tokens", max_tokens, "leaves no room beside the marker")
    keep_chars = math.floor(len(text) * room / total)
    for _ in range(8):
        head, tail = _halves(text, keep_chars)
        kept = tokenizer.count(head) + tokenizer.count(tail)
        result = head + marker.format(omitted=max(0, total - kept)) + tail
        if tokenizer.count(result) <= max_tokens or keep_chars == 0:
            return result
        keep_chars = math.floor(keep_chars * 0.9)
    return marker.format(omitted=total)


def _halves(text: str, keep_chars: int) -> tuple[str, str]:
    """The first and last ``keep_chars / 2`` characters, moved back to whitespace when close."""
    half = keep_chars // 2
    head = text[:half]
    cut = head.rfind(" ", max(0, half - 40))
    head = head[: cut + 1] if cut > 0 else head
    tail = text[len(text) - (keep_chars - half) :] if keep_chars - half else ""
    cut = tail.find(" ", 0, 40)
    return head, (tail[cut + 1 :] if cut >= 0 else tail)


SUMMARY_INSTRUCTIONS = (
    "You summarise conversations for an assistant that will continue them. Write a concise "
    "summary of the conversation below, in its own language: facts, names, numbers, decisions, "
    "tool results that still matter, open questions and what the user wants. Reply with the "
    "summary only."
)


@dataclass
class Summarize:
    """Replace the oldest turns by a summary written by a (cheaper) model.

    ``chat_model`` answers the summary requests (any :class:`ChatModel`, e.g. the agent's
    client) for ``model``. When the history overflows, the oldest turns are dropped until the
    kept ones use at most ``target`` of the budget (so summaries are not rewritten every turn)
    and are summarised, together with any earlier summary, into one message with
    ``metadata["kind"] == "summary"`` placed after the system prompt. Summaries are reused while
    the dropped turns stay the same.
    """

    chat_model: ChatModel | None = None
    model: str = "atdak-gpt-4-mini"
    max_summary_tokens: int = 500
    keep_last: int = 1
    target: float = 0.7
    role: Literal["system", "user"] = "system"
    instructions: str = SUMMARY_INSTRUCTIONS
    prefix: str = "Summary of the earlier conversation:\n"
    name = "summarize"
    only_over_budget = True  # a history within the budget is returned as it is
    _memo: tuple[Message, int, Message] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        _require(0 < self.target <= 1, "target", self.target, "must be in (0, 1]")
        _require(self.max_summary_tokens > 0, "max_summary_tokens", self.max_summary_tokens, "> 0")
        _require(self.role in ("system", "user"), "role", self.role, "'system' or 'user'")

    async def apply(self, messages: list[Message], ctx: FitContext) -> list[Message]:
        if ctx.fits(messages):
            return messages
        index = ctx.index_for(messages)
        head = messages[: index.pinned_end]
        system = [m for m in head if m.metadata.get(KIND) != "summary"]
        earlier = [m for m in head if m.metadata.get(KIND) == "summary"]
        reused = self._reuse(messages, index, system, ctx)
        if reused is not None:
            return reused
        reserve = self.max_summary_tokens + MESSAGE_OVERHEAD + 16
        base = sum(map(ctx.counter.message, system)) + reserve
        limit = math.floor(ctx.limit * self.target)
        turn = index.first_fitting_turn(limit, self.keep_last, base=base)
        if turn == 0:
            return messages
        dropped = messages[index.pinned_end : index.turn_starts[turn]]
        summary = await self._summary(earlier, dropped, ctx)
        return [*system, summary, *messages[index.turn_starts[turn] :]]

    def _reuse(
        self, messages: list[Message], index: HistoryIndex, system: list[Message], ctx: FitContext
    ) -> list[Message] | None:
        """The last summary and cut again, while the turns kept since then still fit."""
        if self._memo is None:
            return None
        last, count, summary = self._memo
        cut = index.pinned_end + count
        if cut > len(messages) or messages[cut - 1] is not last:
            return None
        kept = index.prefix[-1] - index.prefix[cut]
        head = sum(map(ctx.counter.message, [*system, summary]))
        raw = head + kept + REPLY_PRIMING
        if raw > ctx.limit:
            return None
        return ctx.remember([*system, summary, *messages[cut:]], raw)

    async def _summary(
        self, earlier: list[Message], dropped: list[Message], ctx: FitContext
    ) -> Message:
        previous = earlier[-1].text.removeprefix(self.prefix) if earlier else ""
        memo = self._memo
        if memo and len(dropped) >= memo[1] and dropped[memo[1] - 1] is memo[0]:
            previous, dropped_new = memo[2].text.removeprefix(self.prefix), dropped[memo[1] :]
            if not dropped_new:
                return memo[2]
        else:
            dropped_new = dropped
        text = await self._summarise(previous, dropped_new, ctx.counter.tokenizer)
        summary = Message(
            role=self.role,
            content=self.prefix + text,
            metadata={KIND: "summary", "summarized_messages": len(dropped)},
        )
        self._memo = (dropped[-1], len(dropped), summary)
        return summary

    async def _summarise(self, previous: str, dropped: list[Message], tokenizer: Tokenizer) -> str:
        if self.chat_model is None:
            raise UsageError(
                "the summarize history strategy has no chat model: pass chat_model=... (for "
                "example the agent's client) to Summarize or to HistoryFitter.from_config"
            )
        transcript = "\n".join(_transcript_line(m) for m in dropped)
        summary = previous
        for chunk in split_text(transcript, self._chunk_tokens(), tokenizer=tokenizer):
            summary = await self._ask(summary, chunk.text)
        return summary

    def _chunk_tokens(self) -> int:
        profile = default_registry.find(self.model)
        window = profile.context_window if profile else 8_000
        return max(256, window - 3 * self.max_summary_tokens - 1_000)

    async def _ask(self, previous: str, transcript: str) -> str:
        assert self.chat_model is not None
        content = f"Earlier summary:\n{previous}\n\n" if previous else ""
        request = ChatCompletionRequest(
            model=self.model,
            messages=[
                Message(role="system", content=self.instructions),
                Message(role="user", content=f"{content}Conversation:\n{transcript}"),
            ],
            max_tokens=self.max_summary_tokens,
            temperature=0.2,
        )
        answer = (await self.chat_model.complete(request)).text.strip()
        if not answer:
            raise ModelOutputError(f"the summary model {self.model!r} returned an empty summary")
        return answer


def _transcript_line(message: Message) -> str:
    text = message.text
    for call in message.tool_calls or ():
        text += f"\n[calls {call.function.name}({call.function.arguments})]"
    return f"{message.role}: {text}"


@dataclass
class RaiseOnOverflow:
    """Fail at once with :class:`ContextBudgetError` when the history does not fit."""

    name = "raise"
    only_over_budget = True  # a history within the budget is returned as it is

    async def apply(self, messages: list[Message], ctx: FitContext) -> list[Message]:
        if not ctx.fits(messages):
            raise ctx.estimate(messages).error(
                advice="the history strategy is 'raise', so nothing was dropped; shorten the "
                "conversation or choose drop_oldest, summarize or truncate_middle"
            )
        return messages


def _require(ok: bool, parameter: str, value: object, allowed: str) -> None:
    if not ok:
        raise InvalidParameterError(parameter, value, allowed)


# --------------------------------------------------------------------------- configuration

_STRATEGIES: dict[str, Callable[..., HistoryStrategy]] = {
    "keep_last": KeepLast,
    "drop_oldest": DropOldest,
    "truncate_middle": TruncateMiddle,
    "summarize": Summarize,
    "summarise": Summarize,
    "raise": RaiseOnOverflow,
}


def register_strategy(name: str, factory: Callable[..., HistoryStrategy]) -> None:
    """Make ``factory(**options)`` available as ``{strategy: name, ...}`` in configuration."""
    _STRATEGIES[name] = factory


def strategy_names() -> list[str]:
    """The strategy names configuration accepts."""
    return sorted(_STRATEGIES)


def strategies_from_config(config: object, *, chat_model: ChatModel | None = None) -> list[Any]:
    """Strategies from configuration data: a name, a mapping ``{"strategy": name, **options}``,
    or a list of those. ``chat_model`` serves the ``summarize`` strategy."""
    entries = config if isinstance(config, Sequence) and not isinstance(config, str) else [config]
    return [_strategy_from_entry(entry, chat_model) for entry in entries]


def _strategy_from_entry(entry: object, chat_model: ChatModel | None) -> HistoryStrategy:
    if isinstance(entry, str):
        entry = {"strategy": entry}
    if not isinstance(entry, Mapping) or "strategy" not in entry:
        raise InvalidParameterError(
            "history", entry, "use a strategy name or a mapping like {strategy: drop_oldest}"
        )
    options = {k: v for k, v in entry.items() if k != "strategy"}
    name = str(entry["strategy"])
    factory = _STRATEGIES.get(name)
    if factory is None:
        known = ", ".join(strategy_names())
        raise InvalidParameterError("history.strategy", name, f"known strategies: {known}")
    if factory is Summarize:
        options.setdefault("chat_model", chat_model)
    _check_options(name, factory, options)
    return factory(**options)


def _check_options(name: str, factory: Any, options: dict[str, Any]) -> None:
    if not (isinstance(factory, type) and dataclasses.is_dataclass(factory)):
        return
    accepted = {f.name for f in dataclasses.fields(factory) if f.init}
    unknown = sorted(set(options) - accepted)
    if unknown:
        allowed = ", ".join(sorted(accepted - {"chat_model"})) or "none"
        raise InvalidParameterError(
            f"history ({name})", ", ".join(unknown), f"unknown option; {name} accepts: {allowed}"
        )
