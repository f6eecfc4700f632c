"""The exception tree: every error the orchestrator raises on purpose.

```
OrchestratorError
├── ConfigError              caller misuse / bad settings; message names the exact fix
├── PlanValidationError      .task_ids, .cycle
├── ModelError
│   ├── ModelAPIError        .status_code, .retryable, .retry_after_s
│   │   └── ModelOutageError .outage_s: transport faults outlasted `Limits.outage_grace_s`
│   ├── ModelTimeoutError    .timeout_s
│   └── ModelBehaviorError   reply does not fit the requested schema; .usage it still cost
├── ToolError                a tool could not be built or run (registration, patch, path)
│   ├── PatchError           .path, .hunk: an apply_patch rejected; the workspace is unchanged
│   └── PathEscapeError      .path: a path leads outside the workspace
├── LocalModelError          the embedded model server could not be found, started or kept alive
├── WorkspaceError           .command, .stderr: git on a run's private workspace store failed
├── JournalError             a run's journal cannot be used (missing, newer schema, not resumable)
│   └── JournalMismatchError the fold of the journal differs from the live state (verify mode)
├── BudgetExceededError      Limits hit; checked before every model call
└── RunAbortedError          .result = partial RunResult
```

Tool *signals* (`ToolRetry`, `ToolFailed`) are not errors and live in `orchestrator.toolkit`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from .models import RunResult, StopReason, TokenUsage


class OrchestratorError(Exception):
    """Base of every error raised on purpose by the orchestrator."""


class ConfigError(OrchestratorError):
    """Caller misuse or bad settings; the message names the fix."""


class PlanValidationError(OrchestratorError):
    """A plan is not a valid DAG over known tools."""

    def __init__(
        self, message: str, *, task_ids: Sequence[str] = (), cycle: Sequence[str] = ()
    ) -> None:
        super().__init__(message)
        self.task_ids: tuple[str, ...] = tuple(task_ids)
        """The offending task ids."""
        self.cycle: tuple[str, ...] = tuple(cycle)
        """The ids along one dependency cycle, if the plan has one."""


class ModelError(OrchestratorError):
    """A model call did not produce a usable reply."""


class ModelAPIError(ModelError):
    """The model API answered with an error status or could not be reached."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None,
        retryable: bool,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        """HTTP status, or None when no response arrived."""
        self.retryable = retryable
        """Whether the same request may succeed later (408, 409, 429, 5xx, connection faults)."""
        self.retry_after_s = retry_after_s
        """How long the server asked us to wait (`retry-after-ms`, `retry-after`,
        `x-ratelimit-reset-*`), when it said."""


class ModelOutageError(ModelAPIError):
    """Every try of one call failed with transport faults for longer than the outage grace."""

    def __init__(self, message: str, *, status_code: int | None, outage_s: float) -> None:
        super().__init__(message, status_code=status_code, retryable=False)
        self.outage_s = outage_s
        """How long the call kept failing before it gave up."""


class ModelTimeoutError(ModelError):
    """A model call took longer than its timeout."""

    def __init__(self, message: str, *, timeout_s: float | None) -> None:
        super().__init__(message)
        self.timeout_s = timeout_s
        """The timeout that expired, when known."""


class ModelBehaviorError(ModelError):
    """The model replied, but not in the shape that was asked for."""

    def __init__(self, message: str, *, usage: TokenUsage | None = None, model: str = "") -> None:
        super().__init__(message)
        self.usage = usage
        """What the invalid reply was billed, when the backend reported it (counted as wasted)."""
        self.model = model
        """The model that answered, as the backend named it."""


class ToolError(OrchestratorError):
    """A tool could not be registered or run."""


class PatchError(ToolError):
    """An apply_patch call was rejected; nothing in the workspace changed."""

    def __init__(self, message: str, *, path: str | None = None, hunk: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        """The file the failing operation named, if any."""
        self.hunk = hunk
        """1-based index of the failing chunk within that file's operation, if any."""


class PathEscapeError(ToolError):
    """A path given by a model leads outside the workspace or into a protected place."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path
        """The path as the model gave it."""


class LocalModelError(OrchestratorError):
    """The embedded model or its server could not be located, started or kept running."""


class WorkspaceError(OrchestratorError):
    """A git command on the private workspace store failed."""

    def __init__(self, message: str, *, command: Sequence[str], stderr: str) -> None:
        super().__init__(f"{message}: {stderr.strip() or 'no output'}")
        self.command: tuple[str, ...] = tuple(command)
        """The git arguments that failed."""
        self.stderr: str = stderr
        """What git said."""


class JournalError(OrchestratorError):
    """A run's journal cannot be used: it is missing, has a newer schema, or cannot be resumed."""


class JournalMismatchError(JournalError):
    """The fold of the journal differs from the live state (checked only when verifying)."""


class BudgetExceededError(OrchestratorError):
    """A budget (cost, tokens, model calls) of the run, a tier or a task would be passed by the
    next model call's worst case, so the call did not start."""

    def __init__(
        self,
        message: str,
        *,
        scope: Literal["run", "tier", "task"] = "run",
        subject: str = "",
        kind: Literal["cost", "tokens", "calls"] = "cost",
    ) -> None:
        super().__init__(message)
        self.scope = scope
        """Whose budget: the run's (the run stops), a tier's or a task's (the task fails)."""
        self.subject = subject
        """The tier name or task id; empty for the run."""
        self.kind = kind
        """Which cap."""

    @property
    def reason(self) -> StopReason:
        """The typed stop reason this refusal gives, e.g. `budget: cost`."""
        reasons: dict[str, StopReason] = {
            "cost": "budget: cost",
            "tokens": "budget: tokens",
            "calls": "budget: calls",
        }
        return reasons[self.kind]


class RunAbortedError(OrchestratorError):
    """The run stopped before it finished; `result` holds what was done."""

    def __init__(self, message: str, *, result: RunResult) -> None:
        super().__init__(message)
        self.result = result
        """The partial result, with every task's terminal or skipped state."""
