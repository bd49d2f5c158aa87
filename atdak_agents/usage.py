"""Token, request and cost usage of a run, and the limits that stop it cleanly.

Pure arithmetic: no I/O, no provider knowledge. Costs are computed by whoever knows the prices
(the model profile) and added here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from .exceptions import UsageLimitExceeded

__all__ = ["RunUsage", "UsageLimits"]


@dataclass
class RunUsage:
    """Usage accumulated over a run (or a part of one).

    ``estimated_requests`` counts requests whose token figures were estimated by atdak_agents
    because the server did not report them (for example streamed answers); ``cost`` is ``None``
    until a request with a known price was added.
    """

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    tool_calls: int = 0
    estimated_requests: int = 0
    cost: float | None = None
    by_model: dict[str, int] = field(default_factory=dict)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def totals(self) -> dict[str, int | float | None]:
        """The figures as run events and the run API carry them (``by_model`` left out)."""
        return {
            "requests": self.requests,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "tool_calls": self.tool_calls,
            "estimated_requests": self.estimated_requests,
            "cost": self.cost,
        }

    def add_request(
        self,
        *,
        model: str,
        input_tokens: int,
        output_tokens: int,
        estimated: bool = False,
        cost: float | None = None,
    ) -> None:
        """Record one model request."""
        self.requests += 1
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        if estimated:
            self.estimated_requests += 1
        if cost is not None:
            self.cost = (self.cost or 0.0) + cost
        self.by_model[model] = self.by_model.get(model, 0) + input_tokens + output_tokens

    def add(self, other: RunUsage) -> None:
        """Add another usage record into this one (e.g. a sub-agent's)."""
        self.requests += other.requests
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.tool_calls += other.tool_calls
        self.estimated_requests += other.estimated_requests
        if other.cost is not None:
            self.cost = (self.cost or 0.0) + other.cost
        for model, tokens in other.by_model.items():
            self.by_model[model] = self.by_model.get(model, 0) + tokens


@dataclass(frozen=True)
class UsageLimits:
    """Optional ceilings for a run. ``None`` means no limit.

    :meth:`check` raises :class:`~atdak_agents.exceptions.UsageLimitExceeded` naming the limit.
    """

    max_requests: int | None = None
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    max_total_tokens: int | None = None
    max_tool_calls: int | None = None
    max_cost: float | None = None

    # no limit at all (most runs): check() returns at once
    _unlimited: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        limits = (getattr(self, f.name) for f in fields(self) if f.name.startswith("max_"))
        object.__setattr__(self, "_unlimited", all(limit is None for limit in limits))

    def check(self, usage: RunUsage) -> None:
        """Raise when ``usage`` is over any limit."""
        if self._unlimited:
            return
        pairs: tuple[tuple[str, float | None, float | None], ...] = (
            ("requests", usage.requests, self.max_requests),
            ("input tokens", usage.input_tokens, self.max_input_tokens),
            ("output tokens", usage.output_tokens, self.max_output_tokens),
            ("total tokens", usage.total_tokens, self.max_total_tokens),
            ("tool calls", usage.tool_calls, self.max_tool_calls),
            ("cost", usage.cost, self.max_cost),
        )
        for name, value, maximum in pairs:
            if maximum is not None and value is not None and value > maximum:
                raise UsageLimitExceeded(name, value, maximum)
