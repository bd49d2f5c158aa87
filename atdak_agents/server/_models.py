"""The HTTP API's bodies as pydantic models: they validate requests and describe the OpenAPI
document, so the document and the behaviour come from one source."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AnswerRequest",
    "ChatChoice",
    "ChatCompletionBody",
    "ChatMessageIn",
    "ChatMessageOut",
    "ChatRequest",
    "ChatRunRef",
    "ChatUsage",
    "ContentPart",
    "ErrorBody",
    "ErrorDetail",
    "Health",
    "InputInfo",
    "ModelInfo",
    "ModelList",
    "RunDeleted",
    "RunInfo",
    "RunList",
    "RunRequest",
    "RunStatus",
    "RunUsageInfo",
    "StreamOptions",
    "WorkflowChat",
    "WorkflowInfo",
    "WorkflowList",
]

RunStatus = Literal["pending", "running", "waiting", "interrupted", "done", "cut_off", "failed"]
SESSION_MAX = 200


class _Open(BaseModel):
    """A request body that tolerates fields it does not know (clients send more); the fields it
    knows must have their JSON types (no coercion: ``"1"`` is not a number)."""

    model_config = ConfigDict(extra="allow", strict=True)


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# --------------------------------------------------------------------------- chat


class ContentPart(_Open):
    """One part of a message's content (only ``{"type": "text", "text": ...}`` is read)."""

    type: str
    text: str | None = None


class ChatMessageIn(_Open):
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[ContentPart] | None = None
    name: str | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text or "" for p in self.content if p.type == "text")
        return self.content or ""


class StreamOptions(_Open):
    include_usage: bool = False


class ChatRequest(_Open):
    """``POST /v1/chat/completions``: the Atdak contract, with ``model`` naming a workflow.

    Extensions: ``session_id`` (or the ``X-Session-Id`` header) continues a conversation's
    memory; ``inputs`` gives the workflow's other inputs; ``cancel_on_disconnect`` stops the run
    when a streaming client goes away. Sampling parameters are accepted and ignored: each
    workflow node has its own.
    """

    model: str = Field(min_length=1, max_length=200)
    messages: list[ChatMessageIn] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    session_id: str | None = Field(default=None, min_length=1, max_length=SESSION_MAX)
    inputs: dict[str, Any] | None = None
    cancel_on_disconnect: bool = False
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None


class ChatMessageOut(_Closed):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(_Closed):
    index: int = 0
    message: ChatMessageOut
    finish_reason: str


class ChatUsage(_Closed):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatRunRef(_Closed):
    """The run behind an answer: ``waiting`` means its ``question`` needs an answer (send it
    as the next user message of the session, or to ``POST /v1/runs/{id}/answer``)."""

    id: str
    status: RunStatus
    question: str | None = None


class ChatCompletionBody(_Closed):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: ChatUsage
    run: ChatRunRef


class ModelInfo(_Closed):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "atdak-agents"


class ModelList(_Closed):
    object: Literal["list"] = "list"
    data: list[ModelInfo]


# --------------------------------------------------------------------------- runs


class RunRequest(_Closed):
    """``POST /v1/runs``: start a run of ``workflow`` with ``inputs``.

    ``tokens``: stream the model's answers as ``token`` events (usage is then estimated);
    ``session_id``: the conversation whose memory the run continues.
    """

    workflow: str = Field(min_length=1, max_length=200)
    inputs: dict[str, Any] = Field(default_factory=dict)
    session_id: str | None = Field(default=None, min_length=1, max_length=SESSION_MAX)
    tokens: bool = False


class AnswerRequest(_Closed):
    """``POST /v1/runs/{id}/answer``: the answer for the human node the run waits for."""

    answer: Any = Field(json_schema_extra={"description": "any JSON value"})


class RunUsageInfo(_Closed):
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    tool_calls: int = 0
    estimated_requests: int = 0
    cost: float | None = None


class RunInfo(_Closed):
    """A run as the server knows it. ``last_event_id`` is the ``seq`` of its latest event
    (give it as ``Last-Event-ID`` to read only what comes after)."""

    id: str
    workflow: str
    status: RunStatus
    live: bool
    step: int
    session_id: str | None = None
    question: str | None = None
    output: dict[str, Any] | None = None
    error: str | None = None
    reason: str | None = None
    usage: RunUsageInfo
    created_at: float
    updated_at: float
    last_event_id: int


class RunList(_Closed):
    object: Literal["list"] = "list"
    data: list[RunInfo]


class RunDeleted(_Closed):
    """``DELETE /v1/runs/{id}``: the run that was deleted — the status and step it had, and
    how many of its events went with it."""

    id: str
    object: Literal["run.deleted"] = "run.deleted"
    deleted: Literal[True] = True
    workflow: str
    status: RunStatus
    step: int
    events: int


# --------------------------------------------------------------------------- workflows


class InputInfo(_Closed):
    type: str
    description: str = ""
    required: bool = True
    default: Any = None
    example: Any = None


class WorkflowChat(_Closed):
    """How a chat request maps onto the workflow (see docs/services.md)."""

    input: str | None
    history: str | None
    output: str | None
    streams_from: list[str]


class WorkflowInfo(_Closed):
    name: str
    description: str
    inputs: dict[str, InputInfo]
    outputs: list[str]
    nodes: int
    chat: WorkflowChat


class WorkflowList(_Closed):
    object: Literal["list"] = "list"
    data: list[WorkflowInfo]


class Health(_Closed):
    status: Literal["ok", "stopping"]
    workflows: int
    live_runs: int


# --------------------------------------------------------------------------- errors


class ErrorDetail(_Closed):
    message: str
    type: str
    code: str | None = None
    param: str | None = None


class ErrorBody(_Closed):
    error: ErrorDetail
