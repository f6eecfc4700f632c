"""The tool seam: the `Tool` Protocol, its context and output, and the two tool signals."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from .llm import JSONValue, ToolCall, ToolDefinition, ToolKind
from .models import PatchRecord, RunId, TaskId


class ToolRetry(Exception):
    """Raised by a tool: the model sees the message and may call again with better arguments."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ToolFailed(Exception):
    """Raised by a tool: terminal for this call; the model still sees the message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True, kw_only=True)
class ApprovalRequest:
    """What a tool asks a human or policy to approve."""

    tool: str
    summary: str
    """One line a person can judge, e.g. the command or the files a patch touches."""
    arguments: Mapping[str, JSONValue] = field(default_factory=lambda: {})
    task_id: TaskId | None = None


ApprovalCallback = Callable[[ApprovalRequest], Awaitable[bool]]


class EffectLog(Protocol):
    """The run's journal of side effects, so a re-run attempt never applies a change twice."""

    def find(self, task_id: TaskId, key: str) -> PatchRecord | None:
        """The record of this change made earlier by the same task (any attempt), if any."""
        ...

    def record(self, record: PatchRecord) -> None:
        """Journal `record` durably; returns only once it would survive a crash."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolContext:
    """Where and for whom a tool call runs."""

    workdir: Path
    """The task's workspace root: every path a tool touches must resolve inside it."""
    run_dir: Path
    """The run's directory; tools keep large artifacts (full shell output) here."""
    run_id: RunId
    task_id: TaskId
    call_id: str
    approve: ApprovalCallback | None = None
    """Answers `needs_approval` requests; None means approval-gated calls are refused."""
    effects: EffectLog | None = None
    """Where side effects are journaled; None outside a durable run (nothing is replayed)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolOutput:
    """What a tool hands back to the model."""

    content: str
    is_error: bool = False
    native: Mapping[str, JSONValue] | None = None
    """Extra fields for a native output item (apply_patch `status`, shell `output` list)."""


@runtime_checkable
class Tool(Protocol):
    """Something an executor can call; built by the app and passed in."""

    @property
    def name(self) -> str: ...

    def definition(self, *, native: frozenset[ToolKind]) -> ToolDefinition:
        """Describe the tool, natively when the backend supports this tool's native kind."""
        ...

    async def __call__(self, call: ToolCall, ctx: ToolContext) -> ToolOutput:
        """Run one call; raise `ToolRetry`/`ToolFailed` to signal, anything else is a bug."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckOutcome:
    """The result of running a task's acceptance check."""

    passed: bool
    output: str
    """Capped stdout/stderr and the exit status, for the reviewer or the retry feedback."""


CheckRunner = Callable[[str, Path, float, Path], Awaitable[CheckOutcome]]
"""(command, workdir, timeout_s, run_dir) → outcome. The app wires the sandboxed shell in."""
