"""The public names of atdak_agents are pinned: adding or removing one is a decision."""

from __future__ import annotations

import subprocess
import sys

import atdak_agents

EXPECTED = [
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


def test_all_is_pinned_and_sorted() -> None:
    assert atdak_agents.__all__ == EXPECTED
    assert sorted(atdak_agents.__all__) == atdak_agents.__all__


def test_all_matches_the_lazy_export_table() -> None:
    assert atdak_agents.__all__ == sorted(atdak_agents._EXPORTS)


def test_every_public_name_resolves() -> None:
    for name in atdak_agents.__all__:
        assert getattr(atdak_agents, name) is not None, name


def test_import_is_light() -> None:
    """Importing the package does not import the heavy libraries (they load where used)."""
    code = (
        "import sys, atdak_agents; "
        "heavy = ('networkx', 'jinja2', 'aiohttp', 'yaml', 'structlog'); "
        "heavy = [m for m in heavy if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
