"""YAML workflows: a workflow file ⇄ :class:`~atdak_agents.graph.spec.GraphSpec` ⇄ a runnable graph.

The format *is* the pydantic models of :mod:`atdak_agents.graph.spec`; this package reads it
safely with positions (every problem as ``file.yaml:LINE:COL path: message (hint)``, all at once),
interpolates ``${ENV}`` settings, resolves prompt files, tools and subgraph files relative to the
file, and writes graphs back as YAML. See ``docs/workflows.md``.
"""

from ._dump import dump_workflow
from ._reference import reference_markdown, workflow_schema
from ._source import Position, WorkflowProblem
from ._workflow import Workflow, load_spec, load_workflow, loads_spec, loads_workflow

__all__ = [
    "Position",
    "Workflow",
    "WorkflowProblem",
    "dump_workflow",
    "load_spec",
    "load_workflow",
    "loads_spec",
    "loads_workflow",
    "reference_markdown",
    "workflow_schema",
]
