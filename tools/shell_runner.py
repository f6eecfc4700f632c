"""Running one shell command for a model: sandbox, scrubbed environment, no stdin, bounded output.

Isolation is the default: bubblewrap when it works here (`Sandbox.detect`), unisolated only when
the caller says so (`sandbox=None` or `Sandbox.disabled()`) or bwrap cannot run; an unisolated
command started by root still runs without capabilities (`sandbox.without_capabilities`).

The command runs as `bash -c` in its own session. When it ends, times out, floods its output or the
caller is cancelled, its whole process group is stopped (SIGTERM, a short grace, SIGKILL) together
with any escaped process still carrying its marker, so nothing it started keeps running. It runs
under `shell_reaper`, which does the same if this process dies first, even by SIGKILL (what that
guarantees with and without the sandbox is in its docstring).

In the sandbox, `hidden` folders (the orchestrator's run store) look empty and are read-only.
Unisolated, the command can read and write them like any other file of our user.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import AsyncGenerator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import anyio
from anyio.abc import ByteReceiveStream, Process

from orchestrator.models import TaskId
from orchestrator.toolkit import ApprovalCallback

from .sandbox import Sandbox, without_capabilities
from .shell_env import child_environment
from .shell_output import OutputSink, StreamCapture, split_budget
from .shell_policy import Denied, ShellPolicy
from .shell_process import kill_marked, stop_group
from .shell_reaper import reaper_argv

DEFAULT_TIMEOUT_MS = 120_000
DEFAULT_MAX_OUTPUT_LENGTH = 10_000
MAX_OUTPUT_LENGTH = 1_000_000
"""Ceiling on `max_output_length`: memory per command stays within a few times this."""
OUTPUT_LIMIT_BYTES = 64 * 1024 * 1024
"""A command printing more than this is killed; the full-output file stops here too."""
_DRAIN_S = 0.5
_CLEANUP_S = 10.0
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True, slots=True, kw_only=True)
class ShellResult:
    """What one command did, with its output already capped for a model to read."""

    stdout: str
    stderr: str
    exit_code: int | None
    """Exit status (128+N when signal N ended it); None when it timed out or never ran."""
    timed_out: bool = False
    truncated: bool = False
    """Some output was left out of `stdout`/`stderr` (see `full_output_path`)."""
    full_output_path: Path | None = None
    """Both streams, interleaved as printed; kept only when the output was truncated."""
    sandboxed: bool = False
    duration_ms: int = 0
    output_limit_hit: bool = False
    """The command printed more than the byte limit and was killed for it."""
    denied: str | None = None
    """Why the policy refused the command; it did not run."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Job:
    argv: list[str]
    cwd: Path
    env: dict[str, str]
    token: str
    timeout_s: float
    limit: int
    byte_budget: int
    log_path: Path | None
    sandboxed: bool


async def arun_shell(
    command: str,
    cwd: Path,
    *,
    timeout_ms: int | None,
    max_output_length: int | None,
    policy: ShellPolicy | None = None,
    sandbox: Sandbox | Literal["detect"] | None = "detect",
    env_allow: Iterable[str] = (),
    full_output_dir: Path | None = None,
    output_name: str | None = None,
    read_only: bool = False,
    hidden: Sequence[Path] = (),
    approve: ApprovalCallback | None = None,
    task_id: TaskId | None = None,
    output_limit_bytes: int = OUTPUT_LIMIT_BYTES,
) -> ShellResult:
    """Run `command` in `cwd` so that a wrong or hostile command cannot outlive or flood us.

    Args:
        command: Shell text, run by `bash -c` (`/bin/sh -c` where bash is missing).
        cwd: The workspace; in a sandbox, the only host directory the command may write.
        timeout_ms: Run time allowed; None means `DEFAULT_TIMEOUT_MS`.
        max_output_length: Characters of stdout plus stderr returned; None means the default.
        policy: Judged first (`approve` settles approvals, told `task_id`); a refusal returns a
            result with `denied` set. Its `read_only` implies ours.
        sandbox: "detect" (the default) uses bubblewrap when it works here (probed once per
            process, off the event loop). None or `Sandbox.disabled()` runs the command
            unisolated on purpose: it can then read and write whatever our user can.
        env_allow: Variables (or globs) passed through besides the base set; see `shell_env`.
            The environment is always scrubbed: no `OPENAI_*` or credential-looking variables.
        full_output_dir: Gets `<output_name or token>.log`, kept only when output was truncated.
        read_only: Mount the workspace read-only in the sandbox.
        hidden: Existing folders inside `cwd` the sandbox shows empty and read-only (the run
            store, `workspace.run_store_mounts`); `full_output_dir` stays readable below them.
            Unisolated, they are not hidden.
    """
    if policy is not None:
        verdict = await policy.authorize(command, approve=approve, task_id=task_id)
        if isinstance(verdict, Denied):
            return _refused(verdict.reason)
        read_only = read_only or policy.read_only
    if sandbox == "detect":
        sandbox = await anyio.to_thread.run_sync(Sandbox.detect)
    token = secrets.token_hex(8)
    env = child_environment(allow=env_allow, marker=token)
    log_path = await _log_path(full_output_dir, output_name or token)
    argv = _argv(
        command, cwd, env, sandbox, writable=not read_only, logs=full_output_dir, hidden=hidden
    )
    if sandbox is None or not sandbox.is_available:
        argv = await anyio.to_thread.run_sync(without_capabilities, argv)
    job = _Job(
        argv=argv,
        cwd=cwd,
        env=env,
        token=token,
        timeout_s=(timeout_ms if timeout_ms and timeout_ms > 0 else DEFAULT_TIMEOUT_MS) / 1000,
        limit=_clamp_length(max_output_length),
        byte_budget=output_limit_bytes,
        log_path=log_path,
        sandboxed=sandbox is not None and sandbox.is_available,
    )
    return await _run(job)


def run_shell(
    command: str,
    cwd: Path,
    *,
    timeout_ms: int | None = None,
    max_output_length: int | None = None,
    sandbox: Sandbox | Literal["detect"] | None = "detect",
    env_allow: Sequence[str] = (),
    full_output_dir: Path | None = None,
) -> ShellResult:
    """Run one command from synchronous code (harnesses, scripts); see `arun_shell`.

    Sandboxed like the `shell` tool unless `sandbox=None` is passed explicitly.
    """
    run = functools.partial(
        arun_shell,
        command,
        cwd,
        timeout_ms=timeout_ms,
        max_output_length=max_output_length,
        sandbox=sandbox,
        env_allow=env_allow,
        full_output_dir=full_output_dir,
    )
    return anyio.run(run)


def _argv(
    command: str,
    cwd: Path,
    env: dict[str, str],
    sandbox: Sandbox | None,
    *,
    writable: bool,
    logs: Path | None,
    hidden: Sequence[Path],
) -> list[str]:
    argv = [shutil.which("bash", path=env["PATH"]) or "/bin/sh", "-c", command]
    if sandbox is None or not sandbox.is_available:
        return argv
    # We start bwrap in a new session ourselves (see `Sandbox.wrap`), so its namespace init stays
    # in the group we wait on: once the group is empty, so is the namespace.
    readable = [logs] if logs else []
    return sandbox.wrap(
        argv, cwd, writable=writable, readable=readable, masked=hidden, new_session=False
    )


def _refused(reason: str) -> ShellResult:
    return ShellResult(
        stdout="", stderr=f"command refused: {reason}", exit_code=None, denied=reason
    )


async def _log_path(directory: Path | None, name: str) -> Path | None:
    if directory is None:
        return None
    await anyio.Path(directory).mkdir(parents=True, exist_ok=True)
    return directory / f"{_UNSAFE_NAME.sub('_', name)}.log"


def _clamp_length(max_output_length: int | None) -> int:
    if max_output_length is None or max_output_length <= 0:
        return DEFAULT_MAX_OUTPUT_LENGTH
    return min(max_output_length, MAX_OUTPUT_LENGTH)


async def _run(job: _Job) -> ShellResult:
    started = anyio.current_time()
    sink = OutputSink(
        stdout=StreamCapture(limit=job.limit),
        stderr=StreamCapture(limit=job.limit),
        byte_budget=job.byte_budget,
    )
    process, lifeline = await _start(job)
    timed_out = finished = False
    try:
        async with _open_log(job.log_path) as log:
            sink.log = log
            timed_out = await _supervise(process, sink, job)
        finished = True
    finally:
        # Runs on cancellation and errors too: stop everything the command started, then re-raise.
        try:
            with anyio.move_on_after(_CLEANUP_S, shield=True):
                if not finished:
                    await _terminate(process.pid, job.token)
                await _reap(process)
        finally:
            os.close(lifeline)  # if the reaper still runs (cleanup timed out), it kills the rest
    return await _result(job, sink, process, timed_out=timed_out, started=started)


async def _start(job: _Job) -> tuple[Process, int]:
    """Start the command under `shell_reaper`; return it and the lifeline's write end.

    The reaper SIGKILLs everything the command started once the lifeline reads EOF: when we close
    it, or when this process dies in any way. Only we hold the write end (`os.pipe` descriptors
    are close-on-exec, so no other child inherits it).
    """
    # Shielded: a cancellation landing mid-start would lose the process before our cleanup owns
    # it (asyncio would SIGKILL the reaper alone, not its group).
    with anyio.CancelScope(shield=True):
        watched, lifeline = os.pipe()
        try:
            process = await anyio.open_process(
                reaper_argv(job.argv, watched),
                stdin=subprocess.DEVNULL,
                cwd=job.cwd,
                env=job.env,
                start_new_session=True,
                pass_fds=(watched,),
            )
        except BaseException:
            os.close(lifeline)
            raise
        finally:
            os.close(watched)
        return process, lifeline
    raise AssertionError("unreachable: a shielded scope swallows no exception")  # for pyright


@asynccontextmanager
async def _open_log(path: Path | None) -> AsyncGenerator[anyio.AsyncFile[bytes] | None, None]:
    if path is None:
        yield None
        return
    log = await anyio.open_file(path, "wb")
    try:
        yield log
    finally:
        with anyio.move_on_after(_CLEANUP_S, shield=True):
            await log.aclose()


async def _supervise(process: Process, sink: OutputSink, job: _Job) -> bool:
    """Wait for exit, timeout or flood; stop what is left; drain the pipes. True on timeout."""
    if process.stdout is None or process.stderr is None:
        raise RuntimeError("the command was started without output pipes")
    done = (anyio.Event(), anyio.Event())
    timed_out = False
    async with anyio.create_task_group() as pumps:
        pumps.start_soon(_pump, sink, process.stdout, sink.stdout, done[0])
        pumps.start_soon(_pump, sink, process.stderr, sink.stderr, done[1])
        timed_out = await _wait_for_end(process, job.timeout_s, sink.exceeded)
        await _terminate(process.pid, job.token)
        # Whatever still holds a pipe now escaped both the group and the marker: stop listening.
        with anyio.move_on_after(_DRAIN_S):
            for event in done:
                await event.wait()
        pumps.cancel_scope.cancel()
    return timed_out


async def _pump(
    sink: OutputSink, stream: ByteReceiveStream, capture: StreamCapture, done: anyio.Event
) -> None:
    try:
        await sink.pump(stream, capture)
    finally:
        done.set()


async def _wait_for_end(process: Process, timeout_s: float, flood: anyio.Event) -> bool:
    """Return when the shell exits (False), the output floods (False) or time runs out (True)."""
    with anyio.move_on_after(timeout_s) as deadline:
        async with anyio.create_task_group() as waiters:
            waiters.start_soon(_cancel_on, flood, waiters.cancel_scope)
            await process.wait()
            waiters.cancel_scope.cancel()
    return deadline.cancelled_caught


async def _cancel_on(event: anyio.Event, scope: anyio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


async def _terminate(pgid: int, token: str) -> None:
    await stop_group(pgid)
    await anyio.to_thread.run_sync(kill_marked, token)


async def _reap(process: Process) -> None:
    if process.returncode is None:
        process.kill()  # the group leader survived SIGKILL to its group only if it left the group
    await process.wait()
    await process.aclose()


async def _result(
    job: _Job, sink: OutputSink, process: Process, *, timed_out: bool, started: float
) -> ShellResult:
    flooded = sink.exceeded.is_set()
    total = sink.stdout.total + sink.stderr.total
    truncated = flooded or total > job.limit
    path = job.log_path if truncated else None
    where = f"; full output: {path}" if path is not None else ""
    marker = f"\n…[{{omitted}} characters truncated{where}]…\n"
    out_budget, err_budget = split_budget(job.limit, sink.stdout.total, sink.stderr.total)
    stdout = sink.stdout.render(out_budget, marker)
    stderr = sink.stderr.render(err_budget, marker)
    if flooded:
        stderr += f"\n[output passed {job.byte_budget} bytes; the command was killed]"
    if job.log_path is not None and path is None:
        await anyio.Path(job.log_path).unlink(missing_ok=True)
    code = process.returncode
    return ShellResult(
        stdout=stdout,
        stderr=stderr,
        exit_code=None if timed_out or code is None else (128 - code if code < 0 else code),
        timed_out=timed_out,
        truncated=truncated,
        full_output_path=path,
        sandboxed=job.sandboxed,
        duration_ms=round((anyio.current_time() - started) * 1000),
        output_limit_hit=flooded,
    )
