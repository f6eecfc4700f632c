"""Durable runs from the outside (issue 10): the real CLI is SIGKILLed at a point of its run, then
resumed. The resumed run must end completed with the results of an uninterrupted run of the same
seed, run no task again that had succeeded before the kill, apply the patch once, and neither the
killed nor the resumed process may see its journal disagree with its live state
(ORCH_JOURNAL_VERIFY=1) or print a traceback. The harness is `tests/kill_harness.py`; the full
12-point matrix is `python -m bench.kill_matrix`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .kill_harness import Baseline, KillPoint, Review, baseline, run_case

SEEDS = (1, 2, 3)
N_TASKS = 12
"""Small plans keep each case to a few seconds; the seeds still vary width, dependencies, the
patcher's place, pacing, parallelism and the kill's offset (the bench varies the size too)."""
POINTS: tuple[KillPoint, ...] = (
    "planning",
    "mid_stream",
    "first_task",
    "pct30",
    "pct90",
    "final_answer",
)
CASES: list[tuple[KillPoint, int, Review]] = [
    *((point, seed, "all") for point in POINTS for seed in SEEDS),
    ("patch_mid_attempt", 1, "all"),
    # Killed between the patcher's acceptance and the end of its merge into the main tree.
    ("mid_merge", 1, "all"),
    ("mid_merge", 2, "all"),
    # Without review tasks succeed while the plan still streams: the cut plan is asked for again
    # and the tasks that succeeded are kept (for seed 1 the patcher is among them).
    ("mid_stream", 1, "none"),
]
IDS = [
    f"{point}-seed{seed}" + ("-unreviewed" if review == "none" else "")
    for point, seed, review in CASES
]


@pytest.fixture(scope="module")
def baselines() -> dict[int, Baseline]:
    """One uninterrupted run per seed, made on first use."""
    return {}


def _baseline(cache: dict[int, Baseline], seed: int, tmp: pytest.TempPathFactory) -> Baseline:
    if seed not in cache:
        cache[seed] = baseline(seed, tmp.mktemp(f"baseline-{seed}"), n_tasks=N_TASKS)
    return cache[seed]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("point", "seed", "review"), CASES, ids=IDS)
def test_kill_matrix_a_run_killed_at_any_point_resumes_to_the_same_result(
    point: KillPoint,
    seed: int,
    review: Review,
    baselines: dict[int, Baseline],
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
) -> None:
    base = _baseline(baselines, seed, tmp_path_factory)
    assert not base.problems, "\n".join(base.problems)
    report = run_case(point, tmp_path, base, review=review)
    assert not report.problems, report.describe()
    assert report.status == "completed" and report.reruns == {} and report.patch_lines == 1
