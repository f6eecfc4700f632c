"""Scheduler transitions off the happy path: bad states, rewiring, and counts under random edits."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.models import TaskId
from orchestrator.scheduler import TERMINAL, Scheduler, SkipNotice, TaskState


def T(x: str) -> TaskId:
    return TaskId(x)


A, B, C, D = T("a"), T("b"), T("c"), T("d")


def started(
    *tasks: tuple[TaskId, tuple[TaskId, ...]],
    max_parallel: int | None = None,
    tier_caps: Mapping[str, int] | None = None,
) -> Scheduler:
    """A scheduler with `tasks` added in order, and the first ready batch running."""
    s = Scheduler(max_parallel=max_parallel, tier_caps=tier_caps or {})
    for task_id, deps in tasks:
        s.add(task_id, deps)
    s.next_batch()
    return s


def test_retry_from_running_frees_the_slot_and_requeues() -> None:
    s = started((A, ()), max_parallel=1, tier_caps={"mini": 1})
    assert (s.running, s.max_parallel) == (1, 1)
    s.retry(A)
    assert (s.state(A), s.running, s.tier(A)) == ("ready", 0, "")
    assert s.next_batch() == [A]
    assert s.running == 1


@pytest.mark.parametrize("finish", ["succeed", "fail"])
def test_retry_and_fail_refuse_a_finished_task(finish: str) -> None:
    s = started((A, ()))
    getattr(s, finish)(A)
    with pytest.raises(ValueError, match=f"task a cannot be retried from {s.state(A)}"):
        s.retry(A)
    with pytest.raises(ValueError, match=f"task a cannot fail from {s.state(A)}"):
        s.fail(A)
    assert s.state(A) == ("succeeded" if finish == "succeed" else "failed")


def test_fail_from_pending_skips_its_dependents() -> None:
    s = started((A, ()), (B, (A,)), (C, (B,)))
    assert s.state(B) == "pending"
    assert s.fail(B) == [SkipNotice(task_id=C, blocked_by=B)]
    assert (s.state(B), s.state(C), s.running) == ("failed", "skipped", 1)


def test_replace_refuses_a_running_task() -> None:
    s = started((A, ()))
    with pytest.raises(ValueError, match="task a cannot be replaced from running"):
        s.replace(A)
    assert s.state(A) == "running"


def test_replace_detaches_the_task_from_its_dependencies() -> None:
    s = started((A, ()), (B, (A,)), (C, (A,)))
    assert s.fan_out(A) == 2
    s.replace(B)
    assert (s.state(B), s.fan_out(A)) == ("replaced", 1)
    assert s.succeed(A) == [C]  # the replaced task never becomes ready
    assert s.state(B) == "replaced"


def test_rewire_refuses_a_started_task_and_unknown_or_replaced_deps() -> None:
    s = started((A, ()), (B, ()), (C, (A,)))
    with pytest.raises(ValueError, match="task a cannot be rewired from running"):
        s.rewire(A, ())
    with pytest.raises(ValueError, match="task c depends on unknown task ghost"):
        s.rewire(C, [T("ghost")])
    s.attempt_finished(B)
    s.replace(B)
    with pytest.raises(ValueError, match="task c depends on unknown task b"):
        s.rewire(C, [B])
    assert s.fan_out(A) == 1  # a refused rewire changes nothing
    assert s.succeed(A) == [C]


def test_rewire_onto_a_failed_task_skips_it_and_its_dependents() -> None:
    s = started((A, ()), (B, ()), (C, (A,)), (D, (C,)))
    s.fail(B)
    notices = s.rewire(C, [B])
    assert notices == [
        SkipNotice(task_id=C, blocked_by=B),
        SkipNotice(task_id=D, blocked_by=C),
    ]
    assert (s.state(C), s.state(D)) == ("skipped", "skipped")
    assert (s.fan_out(A), s.fan_out(B)) == (0, 1)
    assert s.succeed(A) == []


def test_rewire_onto_finished_deps_makes_a_pending_task_ready() -> None:
    s = started((A, ()), (B, ()), (C, (B,)))
    s.succeed(A)
    assert s.rewire(C, [A]) == []
    assert (s.state(C), s.count("ready")) == ("ready", 1)
    assert s.next_batch() == [C]
    assert s.succeed(B) == []  # b no longer holds c


def test_rewire_keeps_a_ready_task_ready_once() -> None:
    s = Scheduler()
    s.add(A, ())
    s.add(B, ())
    s.next_batch(1)
    s.succeed(A)
    assert s.state(B) == "ready"
    assert s.rewire(B, [A]) == []
    assert (s.state(B), s.count("ready")) == ("ready", 1)
    assert s.next_batch() == [B]
    assert s.next_batch() == []  # no duplicate heap entry started it twice


def test_rewire_a_ready_task_onto_unfinished_work_makes_it_pending() -> None:
    s = Scheduler()
    s.add(A, ())
    s.add(B, ())
    assert s.next_batch(1) == [A]
    assert s.rewire(B, [A]) == []
    assert (s.state(B), s.count("ready"), s.count("pending")) == ("pending", 0, 1)
    assert s.next_batch() == []  # its stale heap entry is dropped
    assert s.succeed(A) == [B]
    assert s.next_batch() == [B]


@pytest.mark.parametrize(
    ("method", "expected"),
    [("succeed_reused", "ready"), ("resume_review", "ready"), ("attempt_finished", "running")],
)
def test_transitions_that_expect_one_state_name_it(method: str, expected: str) -> None:
    s = Scheduler()
    s.add(A, ())
    s.add(B, (A,))
    with pytest.raises(ValueError, match=f"task b is pending, expected {expected}"):
        getattr(s, method)(B)
    assert s.state(B) == "pending"


def test_succeed_reused_and_resume_review_from_ready() -> None:
    s = Scheduler(tier_caps={"mini": 1})
    s.add(A, (), tier="mini")
    s.add(B, (A,), tier="mini")
    s.add(C, ())
    assert s.succeed_reused(A) == [B]
    assert (s.state(A), s.running) == ("succeeded", 0)
    s.resume_review(B)
    assert s.state(B) == "reviewing"
    assert s.next_batch() == [C]
    assert s.succeed(B) == []


def test_set_priority_reorders_ready_tasks_and_waits_for_pending_ones() -> None:
    s = Scheduler()
    s.add(A, (), priority=1.0)
    s.add(B, (), priority=2.0)
    s.add(C, (A,), priority=0.0)
    s.set_priority(A, 3.0)
    s.set_priority(C, 9.0)
    assert s.next_batch(1) == [A]  # its old entry (priority 1) is stale and skipped later
    s.add(D, (), priority=5.0)
    assert s.succeed(A) == [C]
    assert s.next_batch() == [C, D, B]


# -- random edits keep the books straight ------------------------------------------------------
_OPS = (
    *("add",) * 3,
    *("batch",) * 2,
    *("finish", "succeed", "succeed", "fail", "retry", "replace", "rewire", "rewire"),
)
"""Weighted so that most runs build a graph and take it through many transitions; each run
ends with `cancel_pending` (drawn as an op, it would skip most of what follows it)."""
_TRANSITION_ERRORS = ("cannot", "expected", "depends on unknown task", "already scheduled")


def _apply(s: Scheduler, op: str, task_id: TaskId, deps: list[TaskId], tier: str) -> list[TaskId]:
    """Make the call `op` stands for; return the dependencies it passed (an add or rewire that
    succeeds makes exactly those edges)."""
    match op:
        case "add":
            s.add(task_id, deps, priority=float(len(deps)), tier=tier)
        case "batch":
            s.next_batch(len(deps) or None)
        case "finish":
            s.attempt_finished(task_id)
        case "succeed":
            s.succeed(task_id)
        case "fail":
            s.fail(task_id)
        case "retry":
            s.retry(task_id, tier=tier or None)
        case "replace":
            s.replace(task_id)
        case _:
            assert op == "rewire"
            # Mostly onto tasks it knows, so that rewires happen; an unknown one is refused.
            known = [d for d in deps if d in s.states()]
            deps = known if len(known) >= len(deps) - 1 else deps
            s.rewire(task_id, deps)
    return deps


@given(
    st.lists(
        st.tuples(
            st.sampled_from(_OPS),
            st.integers(0, 7),
            st.lists(st.integers(0, 7), max_size=3),
            st.sampled_from(("", "mini", "base")),
        ),
        max_size=80,
    )
)
@settings(max_examples=300, deadline=None)
def test_random_operations_keep_counts_edges_and_slots_consistent(
    ops: list[tuple[str, int, list[int], str]],
) -> None:
    """Any sequence of calls either makes its transition or refuses with ValueError and changes
    nothing; either way the per-state counts, the dependency edges, the running slots and the
    caps agree with the task states."""
    s = Scheduler(max_parallel=3, tier_caps={"mini": 1})
    ids = [T(f"t{i}") for i in range(8)]
    edges: dict[TaskId, list[TaskId]] = {}
    for op, i, dep_ix, tier in ops:
        task_id, deps = ids[i], [ids[j] for j in dep_ix]
        before: dict[TaskId, TaskState] = dict(s.states())
        refused: KeyError | ValueError | None = None
        try:
            used = _apply(s, op, task_id, deps, tier)
        except (KeyError, ValueError) as exc:
            refused = exc
        else:
            if op in ("add", "rewire"):
                edges[task_id] = used
        if refused is not None:
            assert dict(s.states()) == before  # a refused call changes nothing
            if isinstance(refused, KeyError):
                assert task_id not in before  # a call about a task never added
            else:
                assert any(part in str(refused) for part in _TRANSITION_ERRORS), refused
        _check_books(s, edges, before)
    waiting = {t for t, v in s.states().items() if v in ("pending", "ready")}
    before = dict(s.states())
    assert set(s.cancel_pending()) == waiting
    _check_books(s, edges, before)
    assert all(s.state(t) == "skipped" for t in waiting)
    assert s.next_batch() == []
    assert s.is_finished() is (s.count("running") == s.count("reviewing") == 0)


def _check_books(
    s: Scheduler, edges: dict[TaskId, list[TaskId]], before: dict[TaskId, TaskState]
) -> None:
    states = s.states()
    for state in ("pending", "ready", "running", "reviewing", *TERMINAL):
        assert s.count(state) == sum(1 for v in states.values() if v == state)
    live = [t for t in edges if states[t] != "replaced"]
    for dep in states:
        assert s.fan_out(dep) == sum(edges[t].count(dep) for t in live)
    running = [t for t, v in states.items() if v == "running"]
    assert s.running == len(running) <= 3
    assert sum(1 for t in running if s.tier(t) == "mini") <= 1
    assert all(before.get(t) not in TERMINAL or v in TERMINAL for t, v in states.items())


def test_add_refused_for_an_unknown_later_dependency_leaves_no_edge() -> None:
    s = Scheduler()
    s.add(A, ())
    with pytest.raises(ValueError, match="task b depends on unknown task ghost"):
        s.add(B, [A, T("ghost")])
    assert s.fan_out(A) == 0
