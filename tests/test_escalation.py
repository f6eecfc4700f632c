from __future__ import annotations

import pytest

from orchestrator.escalation import Decision, Escalate, EscalationPolicy, GiveUp, Retry, Trigger


@pytest.mark.parametrize(
    ("trigger", "attempts", "tier", "expected"),
    [
        ("api_error", 1, 0, Retry(tier_index=0)),
        ("api_error", 2, 0, Escalate(tier_index=1)),
        ("timeout", 1, 1, Retry(tier_index=1)),
        ("check_failed", 1, 0, Retry(tier_index=0)),
        ("check_failed", 2, 1, Escalate(tier_index=2)),
        ("review_rejected", 1, 0, Retry(tier_index=0)),
        ("invalid_output", 2, 0, Escalate(tier_index=1)),
        ("self_failed", 1, 0, Retry(tier_index=0)),
        ("ambiguous", 1, 0, Escalate(tier_index=1)),
        ("turn_limit", 1, 1, Escalate(tier_index=2)),
        ("review_escalate", 1, 0, Escalate(tier_index=1)),
        ("ambiguous", 1, 2, Retry(tier_index=2)),
        ("api_error", 2, 2, GiveUp(reason="api_error at the top tier after 2 attempt(s) there")),
        ("fatal_error", 1, 0, GiveUp(reason="fatal_error is not retryable")),
    ],
    ids=lambda v: str(v) if not isinstance(v, Retry | Escalate | GiveUp) else v.kind,
)
def test_policy_decide(trigger: Trigger, attempts: int, tier: int, expected: Decision) -> None:
    decision = EscalationPolicy().decide(
        trigger, attempts_at_tier=attempts, tier_index=tier, ladder_len=3
    )
    assert decision == expected


def test_policy_single_attempt_per_tier_climbs_at_once() -> None:
    policy = EscalationPolicy(max_attempts_per_tier=1)
    assert policy.decide("api_error", attempts_at_tier=1, tier_index=0, ladder_len=2) == Escalate(
        tier_index=1
    )
