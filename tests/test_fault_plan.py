"""The fault server's decisions, pure: seeded per request, independent of arrival order, and
refusals by time window and by role."""

from __future__ import annotations

from collections import Counter

import pytest

from .fault_openai import ApiCall
from .fault_plan import ALL_KINDS, STREAM_ONLY, FaultPlan, FaultPolicy, RoleFailure, Window

PLAIN = ApiCall(api="chat", body={}, model="m", stream=False)
STREAMED = ApiCall(api="responses", body={}, model="m", stream=True)


def decide_all(policy: FaultPolicy, keys: list[str], call: ApiCall = PLAIN) -> list[str | None]:
    return [policy.decide(call, key=k, nth=1, now=0.0).fault for k in keys]


def test_fault_policy_is_seeded_per_call_not_per_arrival() -> None:
    keys = [f"k{i}" for i in range(200)]
    plan = FaultPlan(rate=0.3)
    forward = decide_all(FaultPolicy(plan=plan, seed=7), keys)
    backward = decide_all(FaultPolicy(plan=plan, seed=7), keys[::-1])[::-1]
    other_seed = decide_all(FaultPolicy(plan=plan, seed=8), keys)
    assert forward == backward
    assert forward != other_seed


def test_fault_policy_retry_of_a_call_draws_again() -> None:
    policy = FaultPolicy(plan=FaultPlan(rate=0.5), seed=1)
    draws = {policy.decide(PLAIN, key="k", nth=n, now=0.0).fault for n in range(1, 40)}
    assert None in draws
    assert len(draws) > 2


@pytest.mark.parametrize(
    ("rate", "low", "high"),
    [(0.0, 0.0, 0.0), (0.1, 0.07, 0.13), (0.2, 0.17, 0.23), (1.0, 1.0, 1.0)],
)
def test_fault_policy_faults_at_the_planned_rate(rate: float, low: float, high: float) -> None:
    faults = decide_all(
        FaultPolicy(plan=FaultPlan(rate=rate), seed=3), [f"k{i}" for i in range(2000)]
    )
    share = sum(f is not None for f in faults) / len(faults)
    assert low <= share <= high


def test_fault_policy_draws_only_kinds_that_apply() -> None:
    keys = [f"k{i}" for i in range(3000)]
    plain = Counter(decide_all(FaultPolicy(plan=FaultPlan(rate=1.0), seed=1), keys, PLAIN))
    streamed = Counter(decide_all(FaultPolicy(plan=FaultPlan(rate=1.0), seed=1), keys, STREAMED))
    assert set(plain) == set(ALL_KINDS) - STREAM_ONLY
    assert set(streamed) == set(ALL_KINDS) - {"truncated"}


def test_fault_policy_429_carries_the_planned_retry_after() -> None:
    policy = FaultPolicy(plan=FaultPlan(rate=1.0, kinds=("429",), retry_after_s=2.5), seed=1)
    decision = policy.decide(PLAIN, key="k", nth=1, now=0.0)
    assert (decision.fault, decision.status, decision.retry_after_s) == ("429", 429, 2.5)


def test_fault_policy_window_starts_after_n_arrivals_and_ends() -> None:
    policy = FaultPolicy(plan=FaultPlan(), seed=1)
    window = policy.add_window(
        Window(mode="rate_limit", seconds=5.0, retry_after_s=2.0, after_requests=2), now=0.0
    )
    first = policy.decide(PLAIN, key="a", nth=1, now=1.0)
    second = policy.decide(PLAIN, key="b", nth=1, now=2.0)
    inside = policy.decide(PLAIN, key="c", nth=1, now=6.9)
    after = policy.decide(PLAIN, key="d", nth=1, now=7.0)
    assert window.start == 2.0
    assert [first.fault, second.fault, inside.fault, after.fault] == [
        None,
        "rate_limit",
        "rate_limit",
        None,
    ]
    assert second.retry_after_s == 2.0


def test_fault_policy_outage_until_reports_the_window_end() -> None:
    policy = FaultPolicy(plan=FaultPlan(), seed=1)
    policy.add_window(Window(mode="outage", seconds=3.0), now=10.0)
    assert policy.outage_until(9.0) is None
    assert policy.outage_until(11.0) == 13.0
    assert policy.decide(PLAIN, key="k", nth=1, now=12.0).fault == "outage"


def test_fault_policy_role_failure_counts_down_for_that_role_only() -> None:
    policy = FaultPolicy(plan=FaultPlan(), seed=1)
    policy.add_role_failure(
        RoleFailure(role="reviewer", status=503, times=2, seconds=None, start=0.0)
    )
    faults = [
        policy.decide(PLAIN, key=f"k{i}", nth=1, now=0.0, role=role).fault
        for i, role in enumerate(["reviewer", "worker", "reviewer", "reviewer"])
    ]
    assert faults == ["fail_role", None, "fail_role", None]


def test_fault_policy_role_failure_for_a_period() -> None:
    policy = FaultPolicy(plan=FaultPlan(), seed=1)
    policy.add_role_failure(
        RoleFailure(role="reviewer", status=500, times=None, seconds=4.0, start=10.0)
    )
    during = policy.decide(PLAIN, key="a", nth=1, now=13.9, role="reviewer")
    after = policy.decide(PLAIN, key="b", nth=1, now=14.0, role="reviewer")
    assert (during.fault, during.status, after.fault) == ("fail_role", 500, None)
