"""What each key of the workflow format means, for ``schema`` and ``docs/yaml-reference.md``.

Keyed ``"Model.field"``. A field whose model gives its own ``Field(description=...)`` needs no
entry here (and must not have one): ``tests/workflow`` checks that every field of the format is
described exactly once, so the reference cannot fall behind the models.
"""

from __future__ import annotations

__all__ = ["FIELD_DOCS"]

FIELD_DOCS: dict[str, str] = {
    # ------------------------------------------------------------------ GraphSpec
    "GraphSpec.name": "The workflow's name (shown in traces and `runs list`).",
    "GraphSpec.version": "Your version of the workflow; change it when its behaviour changes.",
    "GraphSpec.description": "What the workflow does, for people reading it.",
    "GraphSpec.model": "Default model of every `llm` and `agent` node (a node may name its own).",
    "GraphSpec.parameters": "Default request parameters (`temperature`, `max_tokens`, `top_p`, "
    "...) of every model call; a node's `parameters` override them key by key.",
    "GraphSpec.provider": "Where model calls go: base URL, API key and client settings "
    "(typically `${ENV}` references).",
    "GraphSpec.models": "Extra model profiles by name, for models beyond the built-in four.",
    "GraphSpec.inputs": "The run's inputs by name; templates read them as `inputs.NAME`.",
    "GraphSpec.outputs": "The run's outputs by name, each an expression on the final state "
    '(`"state.drafts[-1]"`).',
    "GraphSpec.state": "The state keys by name, with their types and reducers; templates read "
    "them as `state.NAME`, nodes write them.",
    "GraphSpec.tools": "Tools agent nodes may use, by name: import paths `module:function` "
    "(the workflow's folder is searched first). Only tools listed here are importable.",
    "GraphSpec.memory": "The conversation memory store used by `memory_read`/`memory_write` "
    "nodes and agents with `memory: true`.",
    "GraphSpec.checkpointer": "Where run checkpoints are kept (for resume, history and human "
    "pauses).",
    "GraphSpec.limits": "Run-wide limits on steps, requests, tokens, cost and time.",
    "GraphSpec.entry": "The node the run starts at (default: the first node).",
    "GraphSpec.nodes": "The nodes by name (letters, digits, `_` and `-`; `end` is reserved).",
    "GraphSpec.edges": 'Static transitions: `"a -> b -> c"` chains, `"a -> b & c"` fan-outs, '
    '`"b & c -> d"` joins (d waits for both), or `{from: [b, c], to: d}`.',
    # ------------------------------------------------------------------ ProviderSpec
    "ProviderSpec.base_url": "Base URL of the chat-completions endpoint (default: "
    "`ATDAK_BASE_URL`, else the Atdak API).",
    "ProviderSpec.api_key": "API key (default: `ATDAK_API_KEY`); write `${NAME}` rather than "
    "the key itself.",
    "ProviderSpec.timeout": "Seconds a request may take in all.",
    "ProviderSpec.max_retries": "Retries of a failed request (429, 5xx, connection errors); "
    "default 2.",
    "ProviderSpec.headers": "Extra HTTP headers sent with every request.",
    # ------------------------------------------------------------------ ModelSpec
    "ModelSpec.context_window": "Tokens the model can take in one request (prompt + answer).",
    "ModelSpec.max_output_tokens": "Most tokens the model writes in one answer.",
    "ModelSpec.native_tools": "Whether the endpoint accepts OpenAI-style `tools` for this model "
    "(otherwise tools go through the prompt).",
    "ModelSpec.input_price_per_1k": "Price of 1,000 prompt tokens, for cost totals and limits.",
    "ModelSpec.output_price_per_1k": "Price of 1,000 answer tokens.",
    "ModelSpec.tokenizer": "How tokens are counted: `estimate` or an exact vocabulary name.",
    # ------------------------------------------------------------------ InputSpec
    "InputSpec.type": "The value's type; a run given another type is refused.",
    "InputSpec.description": "What the input is (shown when it is missing).",
    "InputSpec.default": "Value used when the run does not give one.",
    "InputSpec.required": "Whether a run must give it (an input with a default never must).",
    "InputSpec.example": "A value to try the workflow with (`atdak-agents run` uses it when no "
    "input is given).",
    # ------------------------------------------------------------------ StateKeySpec
    "StateKeySpec.type": "The value's type.",
    "StateKeySpec.reducer": "How a node's update combines with the current value: `replace`, "
    "`append`, `extend`, `merge`, `add`, or an import path to `(current, update) -> new`.",
    "StateKeySpec.default": "The value before any node writes it.",
    "StateKeySpec.description": "What the key holds.",
    # ------------------------------------------------------------------ StoreSpec
    "StoreSpec.store": "`sqlite` (a file that survives restarts) or `memory` (this process).",
    "StoreSpec.path": "The SQLite file, relative to the workflow's folder.",
    "StoreSpec.session": 'Template naming the conversation (`"{{ inputs.customer_id }}"`).',
    # ------------------------------------------------------------------ Limits
    "Limits.steps": "Most engine steps in a run.",
    "Limits.requests": "Most model requests in a run.",
    "Limits.tokens": "Most tokens (prompt + answer) in a run.",
    "Limits.cost": "Most cost in a run (needs model prices).",
    "Limits.wall_seconds": "Most seconds a run may take.",
    # ------------------------------------------------------------------ NodeSpec
    "NodeSpec.llm": "One prompt → one model call.",
    "NodeSpec.agent": "The tool-using agent loop.",
    "NodeSpec.function": "A Python function on the state (also written `tool:`).",
    "NodeSpec.router": "Conditional routes, tried in order; the last one is `otherwise`.",
    "NodeSpec.map": "Run a node or graph for each item of a list, concurrently.",
    "NodeSpec.subgraph": "Run another graph (inline, or a file) as one node.",
    "NodeSpec.human": "Pause the run with a question until it is answered.",
    "NodeSpec.memory_read": "Load messages of a conversation from memory.",
    "NodeSpec.memory_write": "Append messages to a conversation in memory.",
    "NodeSpec.end": "A named end of the run.",
    "NodeSpec.description": "What the node does, for people reading it.",
    "NodeSpec.next": "The node(s) that follow this one (like an edge).",
    "NodeSpec.timeout": "Seconds the node may take before it fails.",
    "NodeSpec.retry": "Retry the node when it fails.",
    # ------------------------------------------------------------------ RetryPolicy
    "RetryPolicy.attempts": "Attempts in all (1 = no retry).",
    "RetryPolicy.backoff": "Seconds before the first retry; doubled for each next one.",
    "RetryPolicy.max_backoff": "Longest wait between two attempts.",
    # ------------------------------------------------------------------ LlmNode
    "LlmNode.prompt": "The prompt: a jinja2 template of the user message (chat blocks make "
    "several messages).",
    "LlmNode.prompt_file": "The prompt as a file, relative to the workflow's folder.",
    "LlmNode.system": "A system message (a template).",
    "LlmNode.model": "The model of this node (default: the workflow's `model`).",
    "LlmNode.parameters": "Request parameters of this node (over the workflow's).",
    "LlmNode.output": "Structured output: field name → `{type, enum, description, items, "
    "required}`; each field is written to the state key of the same name.",
    "LlmNode.writes": "The state key that receives the answer (or the whole structured output).",
    "LlmNode.history": "A state key holding earlier messages (`{role, content}`) to send before "
    "the prompt.",
    "LlmNode.context": "How the request is fitted into the model's window: a strategy name "
    "(`drop_oldest`, `keep_last`, `truncate_middle`, `summarize`, `raise`), `{strategy: ..., "
    "options}`, or a list of them (default: drop the oldest turns; an input that still does not "
    "fit is an error).",
    # ------------------------------------------------------------------ AgentNode
    "AgentNode.instructions": "The agent's instructions (a template; the system message).",
    "AgentNode.instructions_file": "The instructions as a file, relative to the workflow's folder.",
    "AgentNode.input": "The user message that starts the loop (a template; default: the inputs).",
    "AgentNode.tools": "Names of tools (from `tools:`) the agent may call.",
    "AgentNode.max_steps": "Most model calls in the loop before it stops.",
    "AgentNode.model": "The model of this node (default: the workflow's `model`).",
    "AgentNode.parameters": "Request parameters of this node (over the workflow's).",
    "AgentNode.tool_protocol": "How tools reach the model: `native` (OpenAI-style `tools`), "
    "`prompt` (described in the prompt), or `auto` (native when the model supports it).",
    "AgentNode.output": "Structured final answer, as for `llm`.",
    "AgentNode.writes": "The state key that receives the final answer.",
    "AgentNode.history": "A state key holding earlier messages to send before the input, as for "
    "`llm`.",
    "AgentNode.context": "How the conversation is fitted into the model's window, as for `llm`.",
    "AgentNode.memory": "Load and save the conversation in the workflow's memory store.",
    # ------------------------------------------------------------------ FunctionNode
    "FunctionNode.function": "Import path `module:function` (the workflow's folder is searched "
    "first); the function returns a dict of updates.",
    "FunctionNode.writes": "The state keys the function may update.",
    "FunctionNode.reads": "The state keys it reads (documentation and validation).",
    "FunctionNode.threaded": "Run a blocking (non-async) function in a worker thread.",
    # ------------------------------------------------------------------ Route
    "Route.when": 'A condition on `state` and `inputs` (`"state.score > 0.8"`).',
    "Route.to": "The node to go to when `when` holds.",
    "Route.otherwise": "The node to go to when no condition holds (the last route).",
    "Route.max_iterations": "How often this route may be taken in a run; then it is skipped.",
    "Route.exhausted": "Where an `otherwise` route with `max_iterations` goes once used up.",
    # ------------------------------------------------------------------ MapNode
    "MapNode.over": 'An expression giving the list to map over (`"state.chunks"`).',
    "MapNode.node": "The node to run for each item (it reads the item as `item`).",
    "MapNode.graph": "A graph (inline, or a file name) to run for each item; its input `item` "
    "receives the item and its outputs are the result.",
    "MapNode.item": "The name the item has in templates and expressions.",
    "MapNode.concurrency": "Most items processed at once.",
    "MapNode.writes": "The state key that receives the results, in input order.",
    # ------------------------------------------------------------------ SubgraphNode
    "SubgraphNode.graph": "The graph to run: inline, or a workflow file relative to this one.",
    "SubgraphNode.inputs": 'Its input name → an expression here (`"state.question"`).',
    "SubgraphNode.outputs": "A state key here → the name of one of its outputs.",
    # ------------------------------------------------------------------ HumanNode
    "HumanNode.ask": "The question (a template).",
    "HumanNode.writes": "The state key that receives the answer.",
    "HumanNode.choices": "The answers allowed (any answer when not given).",
    # ------------------------------------------------------------------ memory nodes
    "MemoryReadNode.session": "Template naming the conversation (default: the run's session).",
    "MemoryReadNode.last": "Load only the last N messages.",
    "MemoryReadNode.query": "Load the messages matching this text (a template).",
    "MemoryReadNode.writes": "The state key that receives the messages.",
    "MemoryWriteNode.session": "Template naming the conversation (default: the run's session).",
    "MemoryWriteNode.messages": "Messages to append: `{role, content}` with templates.",
    # ------------------------------------------------------------------ EndNode, Edge
    "EndNode.status": "The run's status when it ends here: `done`, or `failed` (the run ends as "
    "failed, e.g. a `gave_up` end).",
    "Edge.source": "The source node(s); several make a join.",
    "Edge.target": "The node that follows.",
}
