"""The bench's correctness checks on tiny workloads, so `bench/` cannot rot. No timing asserts."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest

from bench.bounds import critical_path, list_schedule, remaining_path, superstep_makespan
from bench.measure import planned_bounds
from bench.report import markdown, targets
from bench.run import measure_workload
from bench.run_orchestrator import peak_rss_mb, prep_time_s, run_workload
from bench.run_streaming import measure_streaming
from bench.trace import BenchCheckError, Trace, percentile
from bench.workloads import BenchTask, Workload, chain, scaled_to, standard, tiny
from orchestrator.models import TaskId
from orchestrator.plan import validate_plan

TINY = tiny()
IDS = [w.name for w in TINY]
HAS_LANGGRAPH = importlib.util.find_spec("langgraph") is not None


def test_workloads_list_every_task_after_its_dependencies() -> None:
    for workload in (*TINY, *standard(quick=True)):
        seen: set[str] = set()
        for task in workload.tasks:
            assert set(task.deps) <= seen, task.id
            assert task.id not in seen
            seen.add(task.id)


@pytest.mark.parametrize("workload", TINY, ids=IDS)
def test_bounds_priority_matches_validate_plan(workload: Workload) -> None:
    """The simulated policy ranks tasks exactly as the engine's plan layer does."""
    ours = remaining_path(workload.deps(), workload.latencies())
    assert ours == pytest.approx(dict(validate_plan(workload.to_plan()).priority))


@pytest.mark.parametrize("workload", TINY, ids=IDS)
def test_bounds_list_schedule_spans_critical_path_to_serial(workload: Workload) -> None:
    deps, latency = workload.deps(), workload.latencies()
    cp = critical_path(deps, latency)
    assert list_schedule(deps, latency, cap=None) == pytest.approx(cp)
    assert list_schedule(deps, latency, cap=1) == pytest.approx(sum(latency.values()))
    assert cp <= list_schedule(deps, latency, cap=2) <= sum(latency.values()) + 1e-9
    assert superstep_makespan(deps, latency) >= cp - 1e-9


def test_workloads_scale_to_the_requested_critical_path() -> None:
    workload = scaled_to(chain(length=5), 0.5)
    assert critical_path(workload.deps(), workload.latencies()) == pytest.approx(0.5)


@pytest.mark.parametrize("cap", [None, 2], ids=["uncapped", "cap2"])
@pytest.mark.parametrize("workload", TINY, ids=IDS)
async def test_orchestrator_run_keeps_every_rule(workload: Workload, cap: int | None) -> None:
    trace = await run_workload(workload, max_parallel=cap)
    assert set(trace.start) == {t.id for t in workload.tasks}
    assert cap is None or trace.peak <= cap
    assert set(trace.ready) == set(trace.start)


async def test_orchestrator_zero_latency_run_keeps_every_rule() -> None:
    trace = await run_workload(TINY[0].zero_latency(), max_parallel=None)
    assert len(trace.end) == len(TINY[0].tasks)


@pytest.mark.skipif(not HAS_LANGGRAPH, reason="langgraph is a bench-only dependency")
@pytest.mark.parametrize("cap", [None, 2], ids=["uncapped", "cap2"])
@pytest.mark.parametrize("workload", TINY, ids=IDS)
async def test_langgraph_run_keeps_every_rule(workload: Workload, cap: int | None) -> None:
    from bench.run_langgraph import LangGraphRunner

    trace = await LangGraphRunner(workload).run(max_parallel=cap)
    assert trace is not None
    assert set(trace.end) == {t.id for t in workload.tasks}


def _pair() -> Workload:
    a = BenchTask(id=TaskId("a"), deps=(), latency_s=0.0)
    b = BenchTask(id=TaskId("b"), deps=(a.id,), latency_s=0.0)
    c = BenchTask(id=TaskId("c"), deps=(), latency_s=0.0)
    return Workload(name="pair", description="a -> b, c", tasks=(a, b, c))


def test_trace_check_catches_a_task_started_before_its_dependency() -> None:
    trace = Trace(_pair(), cap=None)
    for tid in ("b", "a", "c"):
        trace.started(TaskId(tid))
        trace.ended(TaskId(tid))
    with pytest.raises(BenchCheckError, match="b started before its dependency a"):
        trace.check()


def test_trace_check_catches_a_second_run_and_a_missing_one() -> None:
    trace = Trace(_pair(), cap=None)
    for tid in ("a", "a", "b"):
        trace.started(TaskId(tid))
        trace.ended(TaskId(tid))
    with pytest.raises(BenchCheckError, match=r"a started twice.*1 tasks never ran"):
        trace.check()


def test_trace_check_catches_the_cap_exceeded() -> None:
    trace = Trace(_pair(), cap=1)
    trace.started(TaskId("a"))
    trace.started(TaskId("c"))
    trace.ended(TaskId("a"))
    trace.ended(TaskId("c"))
    trace.started(TaskId("b"))
    trace.ended(TaskId("b"))
    with pytest.raises(BenchCheckError, match="2 tasks ran at once, above the cap of 1"):
        trace.check()


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.99), percentile([3.0], 0.99)) == (
        50.0, 99.0, 3.0,
    )


async def test_streaming_engine_dispatches_before_the_plan_is_written() -> None:
    result = await measure_streaming(generation_s=0.2)
    assert result.first_dispatch_s < result.generation_s
    assert 0 < result.earliest_fraction < 1


def test_rss_subprocess_and_prep_time_report_numbers() -> None:
    rss = peak_rss_mb(200, critical_path_s=0.05)
    assert rss["tasks"] == 200
    assert rss["peak_rss_mb"] >= rss["baseline_rss_mb"] > 0
    assert prep_time_s(TINY[0], repeats=1) > 0


def test_report_renders_every_target() -> None:
    rows = [measure_workload(w, reps=1, lg_max_tasks=0) for w in TINY]
    assert all(row["langgraph"] is None and row["note"] for row in rows)
    extras = {
        "rss_ours": {"tasks": 10_000, "peak_rss_mb": 80.0, "baseline_rss_mb": 66.0},
        "prep": {"tasks": 1000, "repeats": 7, "median_ms": 5.0},
        "streaming": {"fraction": 0.12, "earliest_fraction": 0.11, "first_dispatch_s": 0.1,
                      "generation_s": 1.0, "tasks": 11, "plan_chars": 3000, "measured": "Engine"},
        "environment": {"started": "now", "python": "3.11", "anyio": "4", "langgraph": "-",
                        "cpus": 2, "load_before": 0.0, "load_after": 0.0, "duration_s": 1.0,
                        "repetitions": 1, "quick": True},
    }
    found = targets(rows, extras)
    text = markdown(rows, extras, found)
    assert len(found) == 8
    assert all(t.line() in text for t in found)
    assert all(f"| {w.name} |" in text for w in TINY)
    assert planned_bounds(TINY[0])["critical_path_s"] == pytest.approx(0.05)


def test_budget_overshoot_tiny_mode_writes_a_section(tmp_path: Path) -> None:
    """bench/budget_overshoot.py on the working tree alone: every cell measured and written."""
    from bench.budget_overshoot import main

    out = tmp_path / "budget_overshoot.md"
    main(["--tiny", "--out", str(out), "--label", "tiny"])
    text = out.read_text()
    assert text.count("<!-- section: tiny -->") == 1
    for kind in ("cost", "tokens", "calls"):
        assert f"| {kind} | 8 | 3 |" in text


@pytest.mark.timeout(60)
def test_budget_overshoot_measures_another_commit_in_a_worktree() -> None:
    """The before side: the script copied into a `git worktree` of a commit, run there, removed."""
    from bench.budget_overshoot import Elsewhere

    repo = Path(__file__).resolve().parent.parent
    if subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True).returncode:
        pytest.skip("not a git checkout")
    remote = Elsewhere("HEAD", runs=2, widths=[8])
    try:
        side = remote.result()
    finally:
        remote.close()
    assert [(c.kind, len(c.samples)) for c in side.cells] == [
        ("cost", 2), ("tokens", 2), ("calls", 2),
    ]
    assert "budget_overshoot_" in side.checkout  # measured in the worktree, not here
    assert side.reserve_field
