"""Kill a real CLI run with SIGKILL at a chosen point, resume it, and check what the resume did.

`run_case(point, tmp, baseline(seed, tmp2))` seeds a workspace, serves `KillModel` from an
in-process fault server, starts `orchestrator run` as a subprocess (ORCH_JOURNAL_VERIFY=1) and
SIGKILLs it from the server's request (or streamed chunk) hook when `point` is reached. Then it reads the journal (which tasks had succeeded),
checks `orchestrator runs list` calls the run interrupted, runs `orchestrator resume`, and
compares everything with an uninterrupted run of the same seed (`baseline`). The problems found
are listed in the `KillReport`; none means the run survived the kill.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast, get_args

from .engine_model import EngineModel
from .fault_openai import ApiCall
from .fault_server import FaultServer
from .kill_model import GOAL, NOTES, KillModel, KillShape, draw, task_of

KillPoint = Literal[
    "planning",
    "mid_stream",
    "first_task",
    "pct10",
    "pct30",
    "pct50",
    "pct70",
    "pct90",
    "patch_mid_attempt",
    "review",
    "after_patch_review",
    "final_answer",
    "mid_merge",
]
"""mid_merge: the patcher was accepted and its copy is being merged into the main tree (a `git`
shim on PATH holds the merge's checkout: deletions done, files not yet written)."""
KILL_POINTS: tuple[KillPoint, ...] = tuple(p for p in get_args(KillPoint) if p != "mid_merge")
"""The bench's twelve points (mid_merge needs its git shim and runs in the tests only)."""
TEST_KEY = "sk-test-kill-0123456789abcdef"
MODELS = "mini-m,base-m,top-m"
RUN_TIMEOUT_S = 40.0
_MISMATCH = "journal mismatch:"
_PCT = re.compile(r"^pct(\d+)$")
_PATCHER_REVIEW = "### {} (tier "
Review = Literal["all", "none"]


# -- the trigger ------------------------------------------------------------------------------


class KillSwitch:
    """Fires once, from a fault-server hook, when the run reaches `point`: waits the seeded
    offset, SIGKILLs the CLI and holds the request that triggered it until the process is dead."""

    def __init__(self, point: KillPoint, model: KillModel) -> None:
        self.point: KillPoint = point
        self.model = model
        seed, n = model.shape.seed, model.shape.n_tasks
        self.offset_s = 0.03 * draw(seed, "offset", point)
        self.stream_k = max(1, min(n - 1, round(n * (0.3 + 0.4 * draw(seed, "stream")))))
        """mid_stream: kill once this many tasks are streamed."""
        pct = _PCT.match(point)
        self.pct_tasks = max(1, math.ceil(n * int(pct.group(1)) / 100)) if pct else 0
        """pctN: kill at the first executor request of the this-many-th task to start."""
        self.armed = False
        self.fired = threading.Event()
        self.dead = threading.Event()
        """Set by the harness once the killed process is reaped."""
        self.pid = 0
        self._lock = threading.Lock()
        self._started: set[str] = set()
        self._streamed: dict[int, str] = {}

    def arm(self, pid: int) -> None:
        self.pid, self.armed = pid, True

    def watch(self, marker: Path) -> threading.Thread:
        """Fire when the `git` shim marks the merge it holds (mid_merge)."""

        def poll() -> None:
            while not self.dead.is_set():
                if marker.exists():
                    self._fire()
                    return
                time.sleep(0.005)

        thread = threading.Thread(target=poll, daemon=True)
        thread.start()
        return thread

    def on_request(self, call: ApiCall, role: str | None) -> None:
        if self.armed and self._reached(call, role):
            self._fire()

    def on_chunk(self, call: ApiCall, index: int, event: bytes) -> None:
        if not self.armed or self.point != "mid_stream" or EngineModel.role_of(call) != "planner":
            return
        with self._lock:
            key = id(call)
            self._streamed[key] = self._streamed.get(key, "") + _delta_text(event)
            done = self.model.tasks_streamed(len(self._streamed[key]))
        if done >= self.stream_k:
            self._fire()

    def _reached(self, call: ApiCall, role: str | None) -> bool:
        point = self.point
        if point == "planning":
            return role == "planner"
        if role == "worker":
            return self._worker_point(call)
        if role == "reviewer":
            patcher = _PATCHER_REVIEW.format(self.model.shape.patcher)
            return point == "review" or (
                point == "after_patch_review" and patcher in call.user_text
            )
        return point == "final_answer" and role == "synthesizer"

    def _worker_point(self, call: ApiCall) -> bool:
        if self.point == "first_task":
            return True
        task_id = task_of(call)
        if self.point == "patch_mid_attempt":
            return call.has_tool_result and task_id == self.model.shape.patcher
        if not self.pct_tasks:
            return False
        with self._lock:
            if task_id:
                self._started.add(task_id)
            return len(self._started) >= self.pct_tasks

    def _fire(self) -> None:
        with self._lock:
            if not self.armed:
                return
            self.armed = False
        time.sleep(self.offset_s)
        os.kill(self.pid, signal.SIGKILL)
        self.fired.set()
        self.dead.wait(RUN_TIMEOUT_S)  # no reply reaches a process that might still run


def _delta_text(event: bytes) -> str:
    """The text a streamed event adds (chat chunk content or a Responses text delta)."""
    for line in event.decode().splitlines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        data = cast(Mapping[str, Any], json.loads(line[6:]))
        if data.get("type") == "response.output_text.delta":
            return str(data.get("delta") or "")
        for choice in cast(list[Mapping[str, Any]], data.get("choices") or []):
            delta = cast(Mapping[str, Any], choice.get("delta") or {})
            return str(delta.get("content") or "")
    return ""


# -- running the CLI --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CliRun:
    returncode: int
    stdout: str
    stderr: str
    wall_s: float


def cli_env(path_prefix: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ORCH_"))}
    if path_prefix is not None:
        env["PATH"] = f"{path_prefix}{os.pathsep}{env.get('PATH', '')}"
    return env | {
        "OPENAI_API_KEY": TEST_KEY,
        "ORCH_JOURNAL_VERIFY": "1",
        "ORCH_REQUEST_TIMEOUT_S": "10",
    }


def backend_args(base_url: str, shape: KillShape) -> tuple[str, ...]:
    return (
        *("--base-url", base_url, "--backend", "compatible", "--api-style", "chat"),
        *("--models", MODELS, "--max-parallel", str(shape.max_parallel)),
    )


def run_cli(
    args: Sequence[str],
    workdir: Path,
    logs: Path,
    *,
    switch: KillSwitch | None = None,
    path_prefix: Path | None = None,
) -> CliRun:
    """Run `orchestrator <args>` in `workdir`, stdout/stderr to `logs`.{out,err}; with `switch`,
    arm it with the process id (the switch may SIGKILL it)."""
    out, err = logs.with_suffix(".out"), logs.with_suffix(".err")
    started = time.monotonic()
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli", *args],
            stdout=stdout,
            stderr=stderr,
            env=cli_env(path_prefix),
            cwd=workdir,
        )
        if switch is not None:
            switch.arm(proc.pid)
            if path_prefix is not None:
                switch.watch(path_prefix / "merge.marker")
        try:
            code = proc.wait(RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        finally:
            if switch is not None:
                switch.dead.set()
    wall = time.monotonic() - started
    return CliRun(returncode=code, stdout=out.read_text(), stderr=err.read_text(), wall_s=wall)


def run_root(workdir: Path) -> Path:
    return workdir / ".orchestrator" / "runs"


def the_run_dir(workdir: Path) -> Path | None:
    """The one run directory under the run root (None if there is none yet)."""
    root = run_root(workdir)
    dirs = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    return dirs[0] if len(dirs) == 1 else None


def listed_status(workdir: Path, run_id: str, logs: Path) -> str:
    """The status `orchestrator runs list` shows for `run_id` ("" if it is not listed)."""
    done = run_cli(("runs", "list", "--workdir", str(workdir)), workdir, logs)
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == run_id:
            return parts[1]
    return ""


# -- journal and results ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalView:
    succeeded: frozenset[str]
    patches: int
    """patch_applied events."""
    kinds: tuple[str, ...]
    """Every event kind, in order."""
    phases: dict[str, str]
    """Each task's phase in the fold (planned, running, finished, succeeded, ...)."""


def read_journal(run_dir: Path) -> JournalView:
    from orchestrator.fold import fold
    from orchestrator.journal import read_events

    events = read_events(run_dir)
    state = fold(events)
    succeeded = frozenset(
        str(getattr(e, "task_id", "")) for e in events if e.kind == "task_succeeded"
    )
    return JournalView(
        succeeded=succeeded,
        patches=sum(1 for e in events if e.kind == "patch_applied"),
        kinds=tuple(e.kind for e in events),
        phases={str(t): r.phase for t, r in state.tasks.items()},
    )


TaskView = tuple[str, str, tuple[tuple[str, str], ...]]
"""(kind, summary, sorted outputs) of one task result."""


def task_views(result: Mapping[str, Any]) -> dict[str, TaskView]:
    views: dict[str, TaskView] = {}
    for tid, raw in cast(Mapping[str, Mapping[str, Any]], result.get("results") or {}).items():
        outputs = cast(Mapping[str, Any], raw.get("outputs") or {})
        pairs = tuple(sorted((str(k), str(v)) for k, v in outputs.items()))
        views[tid] = (str(raw.get("kind")), str(raw.get("summary", "")), pairs)
    return views


def load_result(run_dir: Path | None) -> dict[str, Any]:
    path = None if run_dir is None else run_dir / "result.json"
    if path is None or not path.is_file():
        return {}
    return cast(dict[str, Any], json.loads(path.read_text()))


def patch_lines(workdir: Path, shape: KillShape) -> int:
    lines = (workdir / NOTES).read_text().splitlines()
    return sum(1 for line in lines if line == shape.patch_line)


def stderr_problems(stderr: str, what: str) -> list[str]:
    found: list[str] = []
    for line in stderr.splitlines():
        if line.startswith(_MISMATCH):
            found.append(f"{what}: {line[:300]}")
    if "Traceback" in stderr:
        found.append(f"{what}: a traceback on stderr: {stderr[-1500:]}")
    return found


# -- baseline and cases -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Baseline:
    """An uninterrupted run of a seed."""

    shape: KillShape
    views: dict[str, TaskView]
    worker_calls: int
    wall_s: float
    problems: tuple[str, ...]


@contextlib.contextmanager
def serving(model: KillModel, switch: KillSwitch | None = None) -> Generator[FaultServer]:
    hooks: dict[str, Any] = {}
    if switch is not None:
        hooks = {"on_request": switch.on_request, "on_chunk": switch.on_chunk}
    with FaultServer(model, role_of=EngineModel.role_of, **hooks) as srv:
        yield srv


def baseline(seed: int, tmp: Path, *, n_tasks: int | None = None) -> Baseline:
    shape = KillShape.for_seed(seed, n_tasks=n_tasks)
    model = KillModel(shape)
    work = tmp / "work"
    shape.seed_workdir(work)
    with serving(model) as srv:
        args = ("run", GOAL, "--workdir", str(work), *backend_args(srv.base_url, shape), "--json")
        done = run_cli(args, work, tmp / "run")
    result = load_result(the_run_dir(work))
    problems = stderr_problems(done.stderr, "baseline")
    if done.returncode != 0 or result.get("status") != "completed":
        problems.append(f"baseline: exit {done.returncode}, {done.stderr[-1500:]}")
    if patch_lines(work, shape) != 1:
        problems.append(f"baseline: {patch_lines(work, shape)} patch lines")
    return Baseline(
        shape=shape,
        views=task_views(result),
        worker_calls=sum(model.worker_calls().values()),
        wall_s=done.wall_s,
        problems=tuple(problems),
    )


@dataclass(slots=True, kw_only=True)
class KillReport:
    """What one kill-and-resume did; `problems` is empty when it all held."""

    point: KillPoint
    seed: int
    review: Review = "all"
    status: str = ""
    killed_rc: int | None = None
    listed: str = ""
    succeeded_before_kill: frozenset[str] = frozenset()
    reruns: dict[str, int] = field(default_factory=lambda: {})
    """Executor requests after the kill, per task that had succeeded before it."""
    patch_lines: int = 0
    patch_events: int = 0
    resume_rc: int | None = None
    resume_wall_s: float = 0.0
    worker_calls: int = 0
    baseline_calls: int = 0
    kinds_at_kill: tuple[str, ...] = ()
    phases_at_kill: dict[str, str] = field(default_factory=lambda: {})
    resumed_calls: dict[str, int] = field(default_factory=lambda: {})
    """Executor requests of the resumed process, per task."""
    resumed_planner_calls: int = 0
    """Planner requests of the resumed process (0 when the plan was complete at the kill)."""
    problems: list[str] = field(default_factory=lambda: [])

    @property
    def patches_twice(self) -> int:
        return max(0, self.patch_lines - 1)

    def describe(self) -> str:
        tail = ", ".join(self.kinds_at_kill[-12:])
        lines = [
            f"{self.point} seed {self.seed} review {self.review}: status {self.status or '-'}, killed rc "
            f"{self.killed_rc}, listed {self.listed or '-'}, resume rc {self.resume_rc}",
            f"succeeded before kill: {sorted(self.succeeded_before_kill)}",
            f"reruns: {self.reruns}, patch lines {self.patch_lines}, patch events "
            f"{self.patch_events}, worker calls {self.worker_calls} vs {self.baseline_calls}",
            f"phases at kill: {self.phases_at_kill}",
            f"executor calls after the kill: {self.resumed_calls}, planner calls after the "
            f"kill: {self.resumed_planner_calls}",
            f"journal at kill (last events): {tail}",
            *self.problems,
        ]
        return "\n".join(lines)


def run_case(point: KillPoint, tmp: Path, base: Baseline, *, review: Review = "all") -> KillReport:
    """Kill a run of `base`'s seed at `point`, resume it, and report against `base` (with
    `review="none"` tasks succeed as their attempts finish, even while the plan streams)."""
    shape = base.shape
    model = KillModel(shape)
    switch = KillSwitch(point, model)
    work = tmp / "work"
    shape.seed_workdir(work)
    report = KillReport(
        point=point, seed=shape.seed, review=review, baseline_calls=base.worker_calls
    )
    with serving(model, switch) as srv:
        backend = (*backend_args(srv.base_url, shape), "--review", review)
        args = ("run", GOAL, "--workdir", str(work), *backend, "--json")
        shim = git_shim(tmp / "shim") if point == "mid_merge" else None
        killed = run_cli(args, work, tmp / "killed", switch=switch, path_prefix=shim)
        report.killed_rc = killed.returncode
        report.problems += stderr_problems(killed.stderr, "killed run")
        if not switch.fired.is_set():
            report.problems.append(f"the run never reached {point}: exit {killed.returncode}")
            return report
        run_dir = the_run_dir(work)
        if run_dir is None:
            report.problems.append("no run directory after the kill")
            return report
        _after_kill(report, run_dir, work, tmp, shape)
        model.phase = "resume"
        resume = ("resume", run_dir.name, "--workdir", str(work), *backend)
        resumed = run_cli(resume, work, tmp / "resumed")
    report.resume_rc, report.resume_wall_s = resumed.returncode, resumed.wall_s
    report.problems += stderr_problems(resumed.stderr, "resume")
    if resumed.returncode != 0:
        report.problems.append(f"resume exit {resumed.returncode}: {resumed.stderr[-1500:]}")
    _check_outcome(report, model, base, run_dir, work)
    return report


def git_shim(where: Path) -> Path:
    """A `git` that holds the merge's write into the main tree (it marks that it got there, then
    waits to be killed with its orchestrator); every other git command runs as usual."""
    real = shutil.which("git")
    assert real is not None
    where.mkdir(parents=True, exist_ok=True)
    shim = where / "git"
    shim.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do\n'
        '  if [ "$a" = "--pathspec-from-file=-" ]; then\n'
        f'    touch "{where / "merge.marker"}"; sleep 30; exit 1\n'
        "  fi\n"
        "done\n"
        f'exec "{real}" "$@"\n'
    )
    shim.chmod(0o755)
    return where


def point_problems(point: KillPoint, journal: JournalView, shape: KillShape) -> list[str]:
    """Harness checks: the journal at the kill shows the run was where `point` says. (Events
    that decide nothing may still be buffered at a kill: a cut stream can leave no task_planned.)"""
    planned = journal.kinds.count("task_planned")
    expected = {
        "planning": planned == 0,
        "mid_stream": planned < shape.n_tasks and "plan_validated" not in journal.kinds,
        "patch_mid_attempt": "patch_applied" in journal.kinds
        and shape.patcher not in journal.succeeded,
        "final_answer": len(journal.succeeded) == shape.n_tasks,
        "mid_merge": "merge_started" in journal.kinds and shape.patcher not in journal.succeeded,
    }
    if expected.get(point, True):
        return []
    return [f"harness: the kill missed {point} ({planned} planned, {len(journal.succeeded)} ok)"]


def _after_kill(report: KillReport, run_dir: Path, work: Path, tmp: Path, shape: KillShape) -> None:
    if report.killed_rc != -signal.SIGKILL:
        report.problems.append(f"the killed run exited {report.killed_rc}, not by SIGKILL")
    try:
        journal = read_journal(run_dir)
    except Exception as exc:  # a product failure to report, not a harness crash
        report.problems.append(f"the journal at the kill is unreadable: {exc!r}")
    else:
        report.succeeded_before_kill = journal.succeeded
        report.kinds_at_kill = journal.kinds
        report.phases_at_kill = journal.phases
        report.problems += point_problems(report.point, journal, shape)
    report.listed = listed_status(work, run_dir.name, tmp / "list")
    if report.listed != "interrupted":
        report.problems.append(f"runs list shows {report.listed or 'nothing'}, not interrupted")
    report.problems += shown_problems(work, run_dir.name, tmp / "show", report)


def shown_problems(workdir: Path, run_id: str, logs: Path, report: KillReport) -> list[str]:
    """`runs show` of the interrupted run: its status, and each task that succeeded as such."""
    done = run_cli(("runs", "show", run_id, "--workdir", str(workdir)), workdir, logs)
    problems: list[str] = []
    if done.returncode != 0 or f"run {run_id}: interrupted" not in done.stdout:
        problems.append(f"runs show exited {done.returncode}: {done.stdout[:200]!r}")
    for tid in sorted(report.succeeded_before_kill):
        if not any(
            line.strip().startswith(f"[{tid}]") and "succeeded" in line
            for line in done.stdout.splitlines()
        ):
            problems.append(f"runs show does not show {tid} as succeeded")
    return problems


def _check_outcome(
    report: KillReport, model: KillModel, base: Baseline, run_dir: Path, work: Path
) -> None:
    result = load_result(run_dir)
    report.status = str(result.get("status", ""))
    if report.status != "completed":
        report.problems.append(f"result status {report.status or 'missing'}")
    views = task_views(result)
    for tid in sorted(set(views) | set(base.views)):
        if views.get(tid) != base.views.get(tid):
            report.problems.append(f"{tid}: {views.get(tid)} != baseline {base.views.get(tid)}")
    after = model.worker_calls("resume")
    report.resumed_calls = dict(sorted(after.items()))
    report.resumed_planner_calls = model.role_calls("planner", "resume")
    report.reruns = {t: after[t] for t in sorted(report.succeeded_before_kill) if after[t]}
    if report.reruns:
        report.problems.append(f"succeeded tasks re-run after the kill: {report.reruns}")
    waiting = [t for t, phase in report.phases_at_kill.items() if phase == "finished"]
    if rerun := {t: after[t] for t in sorted(waiting) if after[t]}:
        report.problems.append(f"tasks awaiting their verdict re-run after the kill: {rerun}")
    report.patch_lines = patch_lines(work, model.shape)
    if report.patch_lines != 1:
        report.problems.append(f"{NOTES} holds the patch line {report.patch_lines} times")
    try:
        report.patch_events = read_journal(run_dir).patches
    except Exception as exc:  # reported, as at the kill
        report.problems.append(f"the journal after the resume is unreadable: {exc!r}")
    report.worker_calls = sum(model.worker_calls().values())
