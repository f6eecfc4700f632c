"""The `shell` tool: model-written commands under a policy, a sandbox and a scrubbed environment.

It speaks both forms: a strict function tool (`command`, `timeout_ms`, `max_output_length`) and the
Responses API native `shell` tool, whose `shell_call` action holds several commands and is answered
with one `{stdout, stderr, outcome}` entry per command plus the echoed `max_output_length`.

The orchestrator's run store (`<workspace>/.orchestrator/` and the run root, when inside the
workspace) is masked in the bubblewrap sandbox, for the model's commands and acceptance checks
alike: it looks empty and cannot be written; only this run's `shell/` output folder shows through,
read-only, so a command can read a full output whose path it was given. Unsandboxed
(`ORCH_SHELL_SANDBOX=off`, or no working bwrap), nothing stops a command from reading or changing
the store: only the file tools refuse it. The full-output files are written by the orchestrator
itself, outside any sandbox, so they work either way.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal, TypeVar

import anyio
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator.llm import JSONValue, ToolCall, ToolDefinition, ToolKind
from orchestrator.toolkit import ToolContext, ToolFailed, ToolOutput, ToolRetry

from .sandbox import Sandbox
from .shell_env import check_allow_list
from .shell_policy import DEFAULT_DENY, Allowed, Denied, ShellPolicy
from .shell_runner import DEFAULT_MAX_OUTPUT_LENGTH, DEFAULT_TIMEOUT_MS, ShellResult, arun_shell
from .workspace import run_store_mounts

_ModelT = TypeVar("_ModelT", bound=BaseModel)

MAX_TIMEOUT_MS = 600_000
"""The longest a model may ask a command to run."""
_REFUSED_EXIT_CODE = 126  # the shell's "found but cannot run"; the native outcome has no "refused"
_DESCRIPTION = (
    "Run a shell command (bash -c) in the task workspace and get its stdout, stderr and exit code. "
    "It is non-interactive: stdin is empty and nothing may prompt. Each call starts a fresh shell "
    "in the workspace root. Long output keeps its head and tail; the middle is saved to a file "
    "whose path is shown. Anything the command starts is killed when it ends."
)


class ShellArguments(BaseModel):
    """Arguments of the function form."""

    model_config = ConfigDict(extra="forbid")

    command: str = Field(min_length=1)
    timeout_ms: int | None = None
    max_output_length: int | None = None


class ShellAction(BaseModel):
    """The native `shell_call` action."""

    model_config = ConfigDict(extra="ignore")

    commands: list[str] = Field(min_length=1)
    timeout_ms: int | None = None
    max_output_length: int | None = None


_PARAMETERS: dict[str, JSONValue] = {
    "type": "object",
    "properties": {
        "command": {
            "type": "string",
            "description": "Shell text run with bash -c in the workspace root.",
        },
        "timeout_ms": {
            "type": ["integer", "null"],
            "description": "Milliseconds before the command is killed; null for "
            f"{DEFAULT_TIMEOUT_MS}.",
        },
        "max_output_length": {
            "type": ["integer", "null"],
            "description": "Characters of stdout plus stderr to return; null for "
            f"{DEFAULT_MAX_OUTPUT_LENGTH}.",
        },
    },
    "required": ["command", "timeout_ms", "max_output_length"],
    "additionalProperties": False,
}


class ShellTool:
    """Runs a model's shell commands; build one per run and share it between executors."""

    __slots__ = (
        "_default_output",
        "_default_timeout_ms",
        "_env_allow",
        "_max_timeout_ms",
        "_policy",
        "_sandbox",
    )

    def __init__(
        self,
        *,
        policy: ShellPolicy | None = None,
        sandbox: Sandbox | Literal["detect"] | None = "detect",
        env_allow: Iterable[str] = (),
        default_timeout_ms: int = DEFAULT_TIMEOUT_MS,
        max_timeout_ms: int = MAX_TIMEOUT_MS,
        default_max_output_length: int = DEFAULT_MAX_OUTPUT_LENGTH,
    ) -> None:
        """Wire the tool.

        Args:
            policy: Allow / deny rules; None means `ShellPolicy(deny=DEFAULT_DENY)`.
            sandbox: "detect" probes bubblewrap now (blocks, once per process); None: unisolated.
            env_allow: Extra variables passed to commands; `OPENAI_*` raises `ConfigError`.
            default_timeout_ms: Used when the model gives none.
            max_timeout_ms: The most a model may ask for.
            default_max_output_length: Used when the model gives none.
        """
        self._policy = ShellPolicy(deny=DEFAULT_DENY) if policy is None else policy
        self._sandbox = Sandbox.detect() if sandbox == "detect" else sandbox
        self._env_allow = check_allow_list(env_allow)
        self._default_timeout_ms = default_timeout_ms
        self._max_timeout_ms = max_timeout_ms
        self._default_output = default_max_output_length

    @property
    def name(self) -> str:
        """The tool's name in both forms."""
        return "shell"

    @property
    def sandbox(self) -> Sandbox | None:
        """The isolation in use; read `status_message` to report it."""
        return self._sandbox

    def definition(self, *, native: frozenset[ToolKind]) -> ToolDefinition:
        """The native `shell` tool when the backend has it, else a strict function tool."""
        description = _DESCRIPTION
        if self._sandbox is not None and self._sandbox.is_available:
            description += " There is no network, and only the workspace is writable."
        if self._policy.read_only:
            description += " Read-only mode: commands that write files are refused."
        if "shell" in native:
            return ToolDefinition(kind="shell", name="shell", description=description)
        return ToolDefinition(name="shell", description=description, parameters=_PARAMETERS)

    async def __call__(self, call: ToolCall, ctx: ToolContext) -> ToolOutput:
        """Run the call's command(s); refusals come back as error output, never as exceptions."""
        if call.kind == "shell":
            action = _parse(ShellAction, call.arguments)
            return await self._run_native(action, ctx)
        arguments = _parse(ShellArguments, call.arguments)
        verdict = await self._authorize(arguments.command, ctx)
        if isinstance(verdict, Denied):
            return ToolOutput(content=f"Command refused: {verdict.reason}", is_error=True)
        result = await self._run(arguments.command, ctx, 0, arguments)
        return ToolOutput(content=describe(result))

    async def _run_native(self, action: ShellAction, ctx: ToolContext) -> ToolOutput:
        echo: dict[str, JSONValue] = {"max_output_length": action.max_output_length}
        for index, command in enumerate(action.commands):
            verdict = await self._authorize(command, ctx)
            if isinstance(verdict, Denied):
                output = _refusal_entries(action.commands, index, verdict.reason)
                content = f"Command {index + 1} refused, so none ran: {verdict.reason}"
                return ToolOutput(content=content, is_error=True, native={**echo, "output": output})
        results = [await self._run(c, ctx, i, action) for i, c in enumerate(action.commands)]
        texts = [describe(r, command=c) for c, r in zip(action.commands, results, strict=True)]
        entries: list[JSONValue] = [native_entry(r) for r in results]
        return ToolOutput(content="\n\n".join(texts), native={**echo, "output": entries})

    async def _authorize(self, command: str, ctx: ToolContext) -> Allowed | Denied:
        return await self._policy.authorize(command, approve=ctx.approve, task_id=ctx.task_id)

    async def _run(
        self, command: str, ctx: ToolContext, index: int, limits: ShellArguments | ShellAction
    ) -> ShellResult:
        timeout_ms = limits.timeout_ms
        if timeout_ms is None or timeout_ms <= 0:
            timeout_ms = self._default_timeout_ms
        try:
            return await arun_shell(
                command,
                ctx.workdir,
                timeout_ms=min(timeout_ms, self._max_timeout_ms),
                max_output_length=limits.max_output_length or self._default_output,
                sandbox=self._sandbox,
                env_allow=self._env_allow,
                full_output_dir=ctx.run_dir / "shell",
                output_name=f"{ctx.task_id}-{ctx.call_id}-{index}",
                read_only=self._policy.read_only,
                hidden=run_store_mounts(ctx.workdir, ctx.run_dir),
            )
        except OSError as exc:
            raise ToolFailed(f"the command could not be started: {exc}") from exc


async def run_acceptance_check(
    command: str,
    cwd: Path,
    timeout_s: float,
    run_dir: Path,
    *,
    sandbox: Sandbox | Literal["detect"] | None = "detect",
    env_allow: Sequence[str] = (),
    policy: ShellPolicy | None = None,
) -> ShellResult:
    """Run a task's acceptance check with the same sandbox and scrubbing as the model's commands.

    The check passes when `exit_code == 0`. Its full output, when long, lands in `run_dir/shell/`.
    The run store is masked as for the model's commands.
    """
    if sandbox == "detect":
        sandbox = await anyio.to_thread.run_sync(Sandbox.detect)
    return await arun_shell(
        command,
        cwd,
        timeout_ms=max(1, round(timeout_s * 1000)),
        max_output_length=DEFAULT_MAX_OUTPUT_LENGTH,
        policy=policy,
        sandbox=sandbox,
        env_allow=env_allow,
        full_output_dir=run_dir / "shell",
        output_name=f"check-{secrets.token_hex(6)}",
        hidden=run_store_mounts(cwd, run_dir),
    )


def native_entry(result: ShellResult) -> dict[str, JSONValue]:
    """One `shell_call_output.output` entry: `{stdout, stderr, outcome}`."""
    outcome: dict[str, JSONValue]
    if result.timed_out:
        outcome = {"type": "timeout"}
    else:
        code = _REFUSED_EXIT_CODE if result.exit_code is None else result.exit_code
        outcome = {"type": "exit", "exit_code": code}
    return {"stdout": result.stdout, "stderr": result.stderr, "outcome": outcome}


def describe(result: ShellResult, *, command: str | None = None) -> str:
    """The text a model reads for one command."""
    parts = [f"$ {command}"] if command is not None else []
    if result.stdout:
        parts.append(result.stdout.rstrip("\n"))
    if result.stderr:
        parts.append("[stderr]\n" + result.stderr.rstrip("\n"))
    if not result.stdout and not result.stderr:
        parts.append("(no output)")
    if result.timed_out:
        parts.append(f"[timed out after {result.duration_ms} ms; the command was killed]")
    else:
        parts.append(f"[exit code {result.exit_code}]")
    return "\n".join(parts)


def _refusal_entries(commands: Sequence[str], refused: int, reason: str) -> list[JSONValue]:
    entries: list[JSONValue] = []
    for index in range(len(commands)):
        why = reason if index == refused else f"not run: command {refused + 1} was refused"
        outcome = {"type": "exit", "exit_code": _REFUSED_EXIT_CODE}
        entries.append({"stdout": "", "stderr": f"command refused: {why}", "outcome": outcome})
    return entries


def _parse(model: type[_ModelT], arguments: str) -> _ModelT:
    try:
        return model.model_validate_json(arguments or "{}")
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'arguments'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ToolRetry(f"invalid shell arguments: {problems}") from exc
