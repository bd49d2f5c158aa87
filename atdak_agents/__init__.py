"""atdak_agents: declarative, step-by-step LLM agent graphs on the Atdak Chat Completions API.

Public names are imported lazily, so ``import atdak_agents`` stays light: heavy libraries load
only when the part that needs them is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .exceptions import (
        APIConnectionError,
        APIStatusError,
        APITimeoutError,
        AtdakError,
        ContextBudgetError,
        ContextLengthExceededError,
        DefinitionError,
        GraphValidationError,
        InvalidParameterError,
        MissingAPIKeyError,
        ModelRetry,
        ProviderError,
        RateLimitError,
        RunError,
        UsageError,
        UsageLimitExceeded,
    )
    from .messages import Message
    from .providers.base import CallOptions, ChatModel
    from .providers.profiles import ModelProfile, model_profile, register_model
    from .usage import RunUsage, UsageLimits

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "APIConnectionError": "exceptions",
    "APIStatusError": "exceptions",
    "APITimeoutError": "exceptions",
    "AtdakError": "exceptions",
    "CallOptions": "providers.base",
    "ChatModel": "providers.base",
    "ContextBudgetError": "exceptions",
    "ContextLengthExceededError": "exceptions",
    "DefinitionError": "exceptions",
    "GraphValidationError": "exceptions",
    "InvalidParameterError": "exceptions",
    "Message": "messages",
    "MissingAPIKeyError": "exceptions",
    "ModelProfile": "providers.profiles",
    "ModelRetry": "exceptions",
    "ProviderError": "exceptions",
    "RateLimitError": "exceptions",
    "RunError": "exceptions",
    "RunUsage": "usage",
    "UsageError": "exceptions",
    "UsageLimitExceeded": "exceptions",
    "UsageLimits": "usage",
    "model_profile": "providers.profiles",
    "register_model": "providers.profiles",
}

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AtdakError",
    "CallOptions",
    "ChatModel",
    "ContextBudgetError",
    "ContextLengthExceededError",
    "DefinitionError",
    "GraphValidationError",
    "InvalidParameterError",
    "Message",
    "MissingAPIKeyError",
    "ModelProfile",
    "ModelRetry",
    "ProviderError",
    "RateLimitError",
    "RunError",
    "RunUsage",
    "UsageError",
    "UsageLimitExceeded",
    "UsageLimits",
    "model_profile",
    "register_model",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'atdak_agents' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
