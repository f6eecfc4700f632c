"""Run persistence: a directory per run (events.jsonl, result.json) and a SQLite index of runs.

What is written is redacted first (`orchestrator.secrets`): a failure message that echoes a key
must not be kept on disk.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import TypeAdapter

from .models import Failed, RunId, RunResult, Succeeded, TaskResult
from .plan import task_key
from .preview import OVERHEAD_KEY, HistoricCost
from .secrets import redact_data, redact_patterns

_RESULT_ADAPTER: TypeAdapter[RunResult] = TypeAdapter(RunResult)
_TASK_ADAPTER: TypeAdapter[TaskResult] = TypeAdapter(TaskResult)


def result_json(result: RunResult) -> bytes:
    """The result as indented JSON with credentials redacted, exactly as result.json stores it."""
    return _redacted_json(_RESULT_ADAPTER.dump_python(result, mode="json"), indent=2)


def _redacted_json(data: object, *, indent: int | None = None) -> bytes:
    # Redacting the data rather than the text keeps the JSON valid whatever a pattern matches.
    separators = (",", ":") if indent is None else None
    text = json.dumps(redact_data(data), indent=indent, separators=separators, ensure_ascii=False)
    return text.encode()


_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    goal TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    cost_usd REAL,
    tasks INTEGER,
    escalations INTEGER,
    run_dir TEXT NOT NULL,
    pid INTEGER,
    proc_start TEXT
);
CREATE TABLE IF NOT EXISTS task_results (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    task_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (run_id, task_id)
);
CREATE TABLE IF NOT EXISTS task_latency (
    key TEXT PRIMARY KEY,
    samples INTEGER NOT NULL,
    seconds REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS task_cost (
    key TEXT PRIMARY KEY,
    samples INTEGER NOT NULL,
    min_usd REAL NOT NULL,
    max_usd REAL NOT NULL,
    usd REAL NOT NULL,
    tier TEXT NOT NULL,
    updated_at REAL NOT NULL
);
"""

_HISTORY_ROWS = 20_000
"""The most recently updated keys loaded per run; older ones stay in the table."""
_MIN_WEIGHT = 0.25
"""A new sample counts at least this much, so estimates follow models getting faster or slower."""


def blend(seconds: float, samples: int, new: float) -> float:
    """The running mean of the first samples, then an exponential average."""
    weight = max(1 / (samples + 1), _MIN_WEIGHT)
    return seconds + weight * (new - seconds)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRow:
    run_id: str
    goal: str
    status: str
    started_at: float
    finished_at: float | None
    cost_usd: float | None
    run_dir: str


class RunStore:
    """Owns `<root>/runs.sqlite3` and `<root>/<run_id>/`; crash-safe (WAL, commit per write)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(root / "runs.sqlite3", timeout=10, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(runs)")}
        for column, kind in (("pid", "INTEGER"), ("proc_start", "TEXT")):
            if column not in columns:  # an index written before runs were resumable
                self._db.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")

    def run_dir(self, run_id: RunId) -> Path:
        path = self.root / run_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def started(self, run_id: RunId, goal: str, at: float, *, pid: int | None = None) -> None:
        """Index a new run as running in process `pid` (this one by default)."""
        pid = pid or os.getpid()
        with self._db:
            self._db.execute(
                "INSERT INTO runs (run_id, goal, status, started_at, run_dir, pid, proc_start) "
                "VALUES (?,?,?,?,?,?,?)",
                (
                    run_id,
                    redact_patterns(goal),
                    "running",
                    at,
                    str(self.root / run_id),
                    pid,
                    process_start(pid),
                ),
            )

    def resumed(self, run_id: RunId, *, pid: int | None = None) -> None:
        """The run is running again, now in process `pid`."""
        pid = pid or os.getpid()
        with self._db:
            self._db.execute(
                "UPDATE runs SET status='running', finished_at=NULL, pid=?, proc_start=? "
                "WHERE run_id=?",
                (pid, process_start(pid), run_id),
            )

    def finished(self, result: RunResult, at: float) -> Path:
        """Write result.json and index the outcome; returns the result file."""
        path = self.run_dir(result.run_id) / "result.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(result_json(result))
        tmp.replace(path)
        with self._db:
            self._db.execute(
                "UPDATE runs SET status=?, finished_at=?, cost_usd=?, tasks=?, escalations=? "
                "WHERE run_id=?",
                (
                    result.status,
                    at,
                    result.usage.cost_usd,
                    len(result.results),
                    result.escalations,
                    result.run_id,
                ),
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO task_results (run_id, task_id, kind, body) "
                "VALUES (?,?,?,?)",
                [
                    (
                        result.run_id,
                        tid,
                        r.kind,
                        _redacted_json(_TASK_ADAPTER.dump_python(r, mode="json")).decode(),
                    )
                    for tid, r in result.results.items()
                ],
            )
        self._learn_latency(result, at)
        self._learn_cost(result, at)
        return path

    def _learn_latency(self, result: RunResult, at: float) -> None:
        if result.plan is None:
            return
        specs = {t.id: t for t in result.plan.tasks}
        self.record_latencies(
            {
                task_key(specs[tid]): r.duration_s
                for tid, r in result.results.items()
                if isinstance(r, Succeeded) and r.duration_s > 0 and tid in specs
            },
            at,
        )

    def record_latencies(self, samples: Mapping[str, float], at: float) -> None:
        """Fold one duration per `plan.task_key` into the history (also to seed it by hand)."""
        with self._db:
            for key, new in samples.items():
                row = self._db.execute(
                    "SELECT seconds, samples FROM task_latency WHERE key=?", (key,)
                ).fetchone()
                seconds, count = (
                    (new, 1) if row is None else (blend(row[0], row[1], new), row[1] + 1)
                )
                self._db.execute(
                    "INSERT OR REPLACE INTO task_latency (key, samples, seconds, updated_at) "
                    "VALUES (?,?,?,?)",
                    (key, count, seconds, at),
                )

    def latency_history(self) -> dict[str, float]:
        """Seconds an accepted attempt took, by `plan.task_key`, learned from finished runs."""
        rows = self._db.execute(
            "SELECT key, seconds FROM task_latency ORDER BY updated_at DESC LIMIT ?",
            (_HISTORY_ROWS,),
        ).fetchall()
        return {str(key): float(seconds) for key, seconds in rows}

    def _learn_cost(self, result: RunResult, at: float) -> None:
        """Each task that ended on its own (succeeded or failed) costs what all its attempts did;
        review and synthesis are learned per such task. Costs with an unpriced model are left
        out: their $0 would be a guess."""
        if result.plan is None:
            return
        specs = {t.id: t for t in result.plan.tasks}
        samples: dict[str, tuple[float, str]] = {}
        for tid, r in result.results.items():
            usage = result.usage_by_task.get(tid)
            if isinstance(r, Succeeded | Failed) and tid in specs and usage is not None:
                if usage.unpriced_models:
                    continue
                samples[task_key(specs[tid])] = (usage.cost_usd, r.tier)
        ran = sum(isinstance(r, Succeeded | Failed) for r in result.results.values())
        overhead = [result.usage_by_role.get(role) for role in ("reviewer", "synthesizer")]
        if ran and not any(u is not None and u.unpriced_models for u in overhead):
            samples[OVERHEAD_KEY] = (sum(u.cost_usd for u in overhead if u is not None) / ran, "")
        self.record_costs(samples, at)

    def record_costs(self, samples: Mapping[str, tuple[float, str]], at: float) -> None:
        """Fold one (USD, tier) per `plan.task_key` into the cost history (also to seed it)."""
        with self._db:
            for key, (new, tier) in samples.items():
                row = self._db.execute(
                    "SELECT samples, min_usd, max_usd, usd FROM task_cost WHERE key=?", (key,)
                ).fetchone()
                count, low, high, usd = (
                    (1, new, new, new)
                    if row is None
                    else (
                        row[0] + 1,
                        min(row[1], new),
                        max(row[2], new),
                        blend(row[3], row[0], new),
                    )
                )
                self._db.execute(
                    "INSERT OR REPLACE INTO task_cost (key, samples, min_usd, max_usd, usd, "
                    "tier, updated_at) VALUES (?,?,?,?,?,?,?)",
                    (key, count, low, high, usd, tier, at),
                )

    def cost_history(self) -> dict[str, HistoricCost]:
        """What tasks cost in finished runs, by `plan.task_key` (and `OVERHEAD_KEY`)."""
        rows = self._db.execute(
            "SELECT key, samples, min_usd, max_usd, usd, tier FROM task_cost "
            "ORDER BY updated_at DESC LIMIT ?",
            (_HISTORY_ROWS,),
        ).fetchall()
        return {
            str(key): HistoricCost(
                samples=int(n), low_usd=float(lo), high_usd=float(hi), usd=float(u), tier=str(t)
            )
            for key, n, lo, hi, u, t in rows
        }

    def list_runs(self, limit: int = 20) -> list[RunRow]:
        """The latest runs; one indexed as running whose process is gone shows as interrupted."""
        rows = self._db.execute(
            "SELECT run_id, goal, status, started_at, finished_at, cost_usd, run_dir, pid, "
            "proc_start FROM runs ORDER BY started_at DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            RunRow(
                run_id=r[0],
                goal=r[1],
                status="interrupted" if r[2] == "running" and not is_alive(r[7], r[8]) else r[2],
                started_at=r[3],
                finished_at=r[4],
                cost_usd=r[5],
                run_dir=r[6],
            )
            for r in rows
        ]

    def row(self, run_id: str) -> RunRow | None:
        """One run's index entry, with the same interrupted rule as `list_runs`."""
        for row in self.list_runs(limit=1_000_000):
            if row.run_id == run_id:
                return row
        return None

    def load_result(self, run_id: str) -> RunResult:
        return _RESULT_ADAPTER.validate_json((self.root / run_id / "result.json").read_bytes())

    def close(self) -> None:
        self._db.close()


def read_cost_history(root: Path) -> dict[str, HistoricCost]:
    """The cost history under a run root, creating nothing where there is no index yet."""
    if not (root / "runs.sqlite3").is_file():
        return {}
    store = RunStore(root)
    try:
        return store.cost_history()
    finally:
        store.close()


def process_start(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot, with the boot id), to tell a live
    process from a later one that reused its pid; None where /proc does not say."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return f"{boot}:{fields[19]}"


def is_alive(pid: int | None, started: str | None) -> bool:
    """Whether the process that wrote a `running` row still runs (unknown pids count as alive)."""
    if pid is None:
        return True  # indexed before pids were kept: do not guess
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return started is None or process_start(pid) == started
