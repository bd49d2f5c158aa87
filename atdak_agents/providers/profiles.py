"""Model profiles: the facts about each model that budgets, tools and costs depend on.

``model_profile("atdak-llama-70b").context_window == 32_000``. The four Atdak models are built in;
any other model (a vLLM, llama.cpp or Ollama endpoint) is added with :func:`register_model` or from
a workflow's configuration. "K" in the provider's table is read as 1,000 tokens, the conservative
reading.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict, Field

from ..exceptions import UsageError

__all__ = [
    "ModelProfile",
    "ModelRegistry",
    "UnknownModelError",
    "default_registry",
    "model_profile",
    "register_model",
]


class UnknownModelError(UsageError, KeyError):
    """A model name that no profile describes."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        super().__init__(
            f"unknown model {name!r}{hint}; known models: {', '.join(sorted(known))}. "
            "Describe a new one with atdak_agents.register_model(ModelProfile(name=..., "
            "context_window=...)) or in the workflow's `models:` section"
        )

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ModelProfile(BaseModel):
    """What atdak_agents needs to know about one model.

    ``native_tools`` says whether the endpoint accepts OpenAI-style ``tools``; when it is
    ``False`` tools are offered through the prompt protocol. Prices are per 1,000 tokens, in
    whatever currency the user works in; ``None`` when unknown.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    context_window: int = Field(gt=0)
    max_output_tokens: int = Field(gt=0)
    native_tools: bool = False
    input_price_per_1k: float | None = Field(default=None, ge=0)
    output_price_per_1k: float | None = Field(default=None, ge=0)
    tokenizer: str = "estimate"
    description: str = ""

    def cost(self, input_tokens: int, output_tokens: int) -> float | None:
        """The price of a request, or ``None`` when this profile has no prices."""
        if self.input_price_per_1k is None or self.output_price_per_1k is None:
            return None
        return (
            input_tokens * self.input_price_per_1k + output_tokens * self.output_price_per_1k
        ) / 1000


_ATDAK_MODELS = (
    ModelProfile(
        name="atdak-gpt-4",
        context_window=128_000,
        max_output_tokens=16_000,
        description="strongest all-round",
    ),
    ModelProfile(
        name="atdak-gpt-4-mini",
        context_window=128_000,
        max_output_tokens=16_000,
        description="best value",
    ),
    ModelProfile(
        name="atdak-claude-3",
        context_window=200_000,
        max_output_tokens=8_000,
        description="very long context",
    ),
    ModelProfile(
        name="atdak-llama-70b",
        context_window=32_000,
        max_output_tokens=4_000,
        description="open-weights model",
    ),
)


class ModelRegistry:
    """Model profiles by name. Registering a name again replaces its profile."""

    def __init__(self, profiles: tuple[ModelProfile, ...] | list[ModelProfile] = ()) -> None:
        self._profiles: dict[str, ModelProfile] = {p.name: p for p in profiles}

    def register(self, profile: ModelProfile) -> ModelProfile:
        self._profiles[profile.name] = profile
        return profile

    def find(self, name: str) -> ModelProfile | None:
        """The profile of ``name``, or ``None`` when it is unknown."""
        return self._profiles.get(name)

    def get(self, name: str) -> ModelProfile:
        """The profile of ``name``; raises :class:`UnknownModelError` naming the known ones."""
        profile = self._profiles.get(name)
        if profile is None:
            raise UnknownModelError(name, list(self._profiles))
        return profile

    def names(self) -> list[str]:
        return sorted(self._profiles)

    def __iter__(self) -> Iterator[ModelProfile]:
        return iter(list(self._profiles.values()))

    def __contains__(self, name: object) -> bool:
        return name in self._profiles

    def copy(self) -> ModelRegistry:
        return ModelRegistry(list(self._profiles.values()))


default_registry = ModelRegistry(_ATDAK_MODELS)


def model_profile(name: str) -> ModelProfile:
    """The profile of a model by name (``.context_window``, ``.max_output_tokens``, ...)."""
    return default_registry.get(name)


def register_model(profile: ModelProfile) -> ModelProfile:
    """Add (or replace) a model in the default registry."""
    return default_registry.register(profile)
