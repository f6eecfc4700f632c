from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.models import TaskId
from orchestrator.scheduler import Scheduler, SkipNotice


def T(x: str) -> TaskId:
    return TaskId(x)


def diamond(**kw: object) -> Scheduler:
    s = Scheduler(**kw)  # type: ignore[arg-type]
    s.add(T("a"), ())
    s.add(T("b"), [T("a")], priority=1)
    s.add(T("c"), [T("a")], priority=5)
    s.add(T("d"), [T("b"), T("c")])
    return s


def test_scheduler_ready_only_after_own_dependencies() -> None:
    s = diamond()
    assert s.next_batch() == [T("a")]
    assert s.next_batch() == []
    assert s.succeed(T("a")) == [T("b"), T("c")]
    assert s.next_batch() == [T("c"), T("b")]  # longest remaining path first
    assert s.succeed(T("b")) == []
    assert s.succeed(T("c")) == [T("d")]


def test_scheduler_caps_total_and_per_tier() -> None:
    s = Scheduler(max_parallel=2, tier_caps={"frontier": 1})
    for i in range(3):
        s.add(T(f"f{i}"), (), tier="frontier", priority=10)
        s.add(T(f"m{i}"), (), tier="mini")
    first = s.next_batch()
    assert len(first) == 2
    assert sum(t.startswith("f") for t in first) == 1
    assert s.next_batch() == []
    s.attempt_finished(first[0])
    assert len(s.next_batch()) == 1


def test_scheduler_next_batch_limit_keeps_the_rest_ready_by_priority() -> None:
    s = Scheduler()
    for i, priority in enumerate((1.0, 5.0, 3.0, 4.0)):
        s.add(T(f"t{i}"), (), priority=priority)
    assert s.next_batch(2) == [T("t1"), T("t3")]
    assert s.count("ready") == 2
    s.add(T("late"), (), priority=9.0)
    assert s.next_batch(0) == []
    assert s.next_batch(1) == [T("late")]
    assert s.next_batch() == [T("t2"), T("t0")]


def test_scheduler_fan_out_counts_waiting_dependents() -> None:
    s = diamond()
    assert (s.fan_out(T("a")), s.fan_out(T("b")), s.fan_out(T("d"))) == (2, 1, 0)


def test_scheduler_failure_skips_exactly_transitive_dependents() -> None:
    s = diamond()
    s.add(T("e"), ())
    s.next_batch()
    s.succeed(T("a"))
    s.next_batch()
    notices = s.fail(T("b"))
    assert notices == [SkipNotice(task_id=T("d"), blocked_by=T("b"))]
    assert s.state(T("c")) == "running"
    assert s.state(T("e")) == "running"  # unrelated work is untouched


def test_scheduler_retry_returns_task_to_ready_at_new_tier() -> None:
    s = Scheduler()
    s.add(T("a"), (), tier="mini")
    s.next_batch()
    s.attempt_finished(T("a"))
    s.retry(T("a"), tier="base")
    assert s.tier(T("a")) == "base"
    assert s.next_batch() == [T("a")]


def test_scheduler_rewire_after_replace() -> None:
    s = diamond()
    s.next_batch()
    s.succeed(T("a"))
    s.next_batch()
    s.attempt_finished(T("b"))
    s.replace(T("b"))
    s.add(T("b2"), [T("a")])
    assert s.rewire(T("d"), [T("b2"), T("c")]) == []
    assert s.state(T("d")) == "pending"
    assert set(s.next_batch()) == {T("b2")}
    s.succeed(T("b2"))
    assert s.succeed(T("c")) == [T("d")]


def test_scheduler_rejects_unknown_dependency_and_bad_transitions() -> None:
    s = Scheduler()
    with pytest.raises(ValueError, match="unknown task"):
        s.add(T("a"), [T("ghost")])
    s.add(T("a"), ())
    with pytest.raises(ValueError, match="already scheduled"):
        s.add(T("a"), ())
    with pytest.raises(ValueError, match="cannot succeed"):
        s.succeed(T("a"))


def test_scheduler_add_after_failed_dependency_is_skipped() -> None:
    s = Scheduler()
    s.add(T("a"), ())
    s.next_batch()
    s.fail(T("a"))
    assert s.add(T("b"), [T("a")]) is False
    assert s.state(T("b")) == "skipped"


def test_scheduler_cancel_pending_and_finished() -> None:
    s = diamond()
    s.next_batch()
    assert not s.is_finished()
    assert set(s.cancel_pending()) == {T("b"), T("c"), T("d")}
    s.succeed(T("a"))
    assert s.is_finished()


@st.composite
def dags(draw: st.DrawFn) -> tuple[int, list[list[int]], set[int], int]:
    n = draw(st.integers(min_value=1, max_value=40))
    deps = [sorted(draw(st.sets(st.integers(0, i - 1), max_size=4))) if i else [] for i in range(n)]
    failing = draw(st.sets(st.integers(0, n - 1), max_size=3))
    cap = draw(st.integers(min_value=1, max_value=6))
    return n, deps, failing, cap


def _descendants(n: int, deps: list[list[int]], roots: set[int]) -> set[int]:
    out: set[int] = set()
    for i in range(n):
        if any(d in roots or d in out for d in deps[i]):
            out.add(i)
    return out


@given(dags(), st.randoms(use_true_random=False))
@settings(max_examples=150, deadline=None)
def test_scheduler_random_dags(
    dag: tuple[int, list[list[int]], set[int], int], rnd: random.Random
) -> None:
    """Every task runs at most once, never before its deps, never above the cap; failures skip exactly their descendants."""
    n, deps, failing, cap = dag
    s = Scheduler(max_parallel=cap)
    for i in range(n):
        s.add(T(str(i)), [T(str(d)) for d in deps[i]])
    done: set[int] = set()
    started: list[int] = []
    running: list[int] = []
    while True:
        for tid in s.next_batch():
            i = int(tid)
            assert all(d in done for d in deps[i]), "started before a dependency"
            assert i not in started, "started twice"
            started.append(i)
            running.append(i)
        assert len(running) <= cap
        if not running:
            break
        i = running.pop(rnd.randrange(len(running)))
        if i in failing:
            s.fail(T(str(i)))
        else:
            s.succeed(T(str(i)))
            done.add(i)
    assert s.is_finished()
    ran_and_failed = {i for i in started if i in failing}
    skipped = {i for i in range(n) if s.state(T(str(i))) == "skipped"}
    assert skipped == _descendants(n, deps, ran_and_failed) - set(started)
    assert set(started) | skipped == set(range(n))
