"""atdak_agents: declarative, step-by-step LLM agent graphs on the Atdak Chat Completions API.

Public names are imported lazily, so ``import atdak_agents`` stays light: heavy libraries load
only when the part that needs them is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .agent import Agent, AgentResult
    from .context.budget import ContextBudget
    from .context.history import HistoryFitter
    from .context.split import split_text
    from .context.tokens import Tokenizer, count_tokens
    from .exceptions import (
        APIConnectionError,
        APIResponseValidationError,
        APIStatusError,
        APITimeoutError,
        AtdakError,
        AuthenticationError,
        BadRequestError,
        ConflictError,
        ContextBudgetError,
        ContextLengthExceededError,
        DefinitionError,
        GraphChangedError,
        GraphValidationError,
        IncompleteStreamError,
        InternalServerError,
        InvalidParameterError,
        MissingAPIKeyError,
        ModelRetry,
        NodeError,
        NotFoundError,
        PermissionDeniedError,
        ProviderError,
        RateLimitError,
        RunError,
        RunLockedError,
        StreamError,
        TemplateError,
        ToolExecutionError,
        UnprocessableEntityError,
        UsageError,
        UsageLimitExceeded,
        WorkflowError,
    )
    from .graph.build import Graph, build_graph
    from .graph.builder import GraphBuilder
    from .graph.checkpoint import Checkpointer, InMemoryCheckpointer, RunRecord, StepRecord
    from .graph.engine import Run, RunResult
    from .graph.spec import GraphSpec
    from .graph.sqlite_checkpoint import SQLiteCheckpointer
    from .memory import InMemoryStore, MemoryStore, SQLiteStore
    from .messages import Message
    from .providers._retry import RetryPolicy, Timeouts
    from .providers._wire import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, Usage
    from .providers.base import CallOptions, ChatModel, ChatStream
    from .providers.client import AsyncAtdakClient, AtdakClient
    from .providers.profiles import ModelProfile, model_profile, register_model
    from .providers.streaming import StreamAccumulator
    from .server import ChatMapping, ServerConfig, create_app
    from .templates import PromptEnvironment, PromptTemplate
    from .tools import RunContext, Tool, ToolRegistry, ToolResult, tool
    from .usage import RunUsage, UsageLimits
    from .workflow import Workflow, dump_workflow, load_workflow, loads_workflow

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "APIConnectionError": "exceptions",
    "APIResponseValidationError": "exceptions",
    "APIStatusError": "exceptions",
    "APITimeoutError": "exceptions",
    "Agent": "agent",
    "AgentResult": "agent",
    "AsyncAtdakClient": "providers.client",
    "AtdakClient": "providers.client",
    "AtdakError": "exceptions",
    "AuthenticationError": "exceptions",
    "BadRequestError": "exceptions",
    "CallOptions": "providers.base",
    "ChatCompletion": "providers._wire",
    "ChatCompletionChunk": "providers._wire",
    "ChatCompletionRequest": "providers._wire",
    "ChatMapping": "server",
    "ChatModel": "providers.base",
    "ChatStream": "providers.base",
    "Checkpointer": "graph.checkpoint",
    "ConflictError": "exceptions",
    "ContextBudget": "context.budget",
    "ContextBudgetError": "exceptions",
    "ContextLengthExceededError": "exceptions",
    "DefinitionError": "exceptions",
    "Graph": "graph.build",
    "GraphBuilder": "graph.builder",
    "GraphChangedError": "exceptions",
    "GraphSpec": "graph.spec",
    "GraphValidationError": "exceptions",
    "HistoryFitter": "context.history",
    "InMemoryCheckpointer": "graph.checkpoint",
    "InMemoryStore": "memory",
    "IncompleteStreamError": "exceptions",
    "InternalServerError": "exceptions",
    "InvalidParameterError": "exceptions",
    "MemoryStore": "memory",
    "Message": "messages",
    "MissingAPIKeyError": "exceptions",
    "ModelProfile": "providers.profiles",
    "ModelRetry": "exceptions",
    "NodeError": "exceptions",
    "NotFoundError": "exceptions",
    "PermissionDeniedError": "exceptions",
    "PromptEnvironment": "templates",
    "PromptTemplate": "templates",
    "ProviderError": "exceptions",
    "RateLimitError": "exceptions",
    "RetryPolicy": "providers._retry",
    "Run": "graph.engine",
    "RunContext": "tools",
    "RunError": "exceptions",
    "RunLockedError": "exceptions",
    "RunRecord": "graph.checkpoint",
    "RunResult": "graph.engine",
    "RunUsage": "usage",
    "SQLiteCheckpointer": "graph.sqlite_checkpoint",
    "SQLiteStore": "memory",
    "ServerConfig": "server",
    "StepRecord": "graph.checkpoint",
    "StreamAccumulator": "providers.streaming",
    "StreamError": "exceptions",
    "TemplateError": "exceptions",
    "Timeouts": "providers._retry",
    "Tokenizer": "context.tokens",
    "Tool": "tools",
    "ToolExecutionError": "exceptions",
    "ToolRegistry": "tools",
    "ToolResult": "tools",
    "UnprocessableEntityError": "exceptions",
    "Usage": "providers._wire",
    "UsageError": "exceptions",
    "UsageLimitExceeded": "exceptions",
    "UsageLimits": "usage",
    "Workflow": "workflow",
    "WorkflowError": "exceptions",
    "build_graph": "graph.build",
    "count_tokens": "context.tokens",
    "create_app": "server",
    "dump_workflow": "workflow",
    "load_workflow": "workflow",
    "loads_workflow": "workflow",
    "model_profile": "providers.profiles",
    "register_model": "providers.profiles",
    "split_text": "context.split",
    "tool": "tools",
}

__all__ = [
    "APIConnectionError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "Agent",
    "AgentResult",
    "AsyncAtdakClient",
    "AtdakClient",
    "AtdakError",
    "AuthenticationError",
    "BadRequestError",
    "CallOptions",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "ChatMapping",
    "ChatModel",
    "ChatStream",
    "Checkpointer",
    "ConflictError",
    "ContextBudget",
    "ContextBudgetError",
    "ContextLengthExceededError",
    "DefinitionError",
    "Graph",
    "GraphBuilder",
    "GraphChangedError",
    "GraphSpec",
    "GraphValidationError",
    "HistoryFitter",
    "InMemoryCheckpointer",
    "InMemoryStore",
    "IncompleteStreamError",
    "InternalServerError",
    "InvalidParameterError",
    "MemoryStore",
    "Message",
    "MissingAPIKeyError",
    "ModelProfile",
    "ModelRetry",
    "NodeError",
    "NotFoundError",
    "PermissionDeniedError",
    "PromptEnvironment",
    "PromptTemplate",
    "ProviderError",
    "RateLimitError",
    "RetryPolicy",
    "Run",
    "RunContext",
    "RunError",
    "RunLockedError",
    "RunRecord",
    "RunResult",
    "RunUsage",
    "SQLiteCheckpointer",
    "SQLiteStore",
    "ServerConfig",
    "StepRecord",
    "StreamAccumulator",
    "StreamError",
    "TemplateError",
    "Timeouts",
    "Tokenizer",
    "Tool",
    "ToolExecutionError",
    "ToolRegistry",
    "ToolResult",
    "UnprocessableEntityError",
    "Usage",
    "UsageError",
    "UsageLimitExceeded",
    "UsageLimits",
    "Workflow",
    "WorkflowError",
    "build_graph",
    "count_tokens",
    "create_app",
    "dump_workflow",
    "load_workflow",
    "loads_workflow",
    "model_profile",
    "register_model",
    "split_text",
    "tool",
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
