"""Escalation policy: (trigger, attempt, tier) → retry here, move up a tier, or give up. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

Trigger = Literal[
    "api_error",
    "timeout",
    "turn_limit",
    "invalid_output",
    "ambiguous",
    "self_failed",
    "check_failed",
    "review_rejected",
    "review_escalate",
    "fatal_error",
    "outage",
    "budget",
]
"""Why an attempt did not produce an accepted result."""

ALL_TRIGGERS: tuple[Trigger, ...] = get_args(Trigger)


@dataclass(frozen=True, slots=True, kw_only=True)
class Retry:
    """Run the task again at the same tier, with feedback."""

    kind: Literal["retry"] = "retry"
    tier_index: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Escalate:
    """Run the task again one tier up, with a summary of the failed attempt."""

    kind: Literal["escalate"] = "escalate"
    tier_index: int


@dataclass(frozen=True, slots=True, kw_only=True)
class GiveUp:
    """The task fails for good; its dependents are skipped."""

    kind: Literal["give_up"] = "give_up"
    reason: str


Decision = Retry | Escalate | GiveUp


@dataclass(frozen=True, slots=True, kw_only=True)
class EscalationPolicy:
    """When a failed attempt is retried in place and when it climbs the ladder."""

    max_attempts_per_tier: int = 2
    """Attempts at one tier (the first included) before climbing."""
    escalate_at_once: frozenset[Trigger] = field(
        default_factory=lambda: frozenset({"ambiguous", "turn_limit", "review_escalate"})
    )
    """Triggers that say the tier is too weak, so retrying it in place is wasted money."""
    never_retry: frozenset[Trigger] = field(
        default_factory=lambda: frozenset({"fatal_error", "outage", "budget"})
    )
    """Triggers that fail the task at once: a non-retryable API error, a refused request, an
    outage that outlasted its grace (the gateway already retried it for that long), or the
    task's or its tier's budget spent (a dearer tier would only spend more)."""

    def decide(
        self, trigger: Trigger, *, attempts_at_tier: int, tier_index: int, ladder_len: int
    ) -> Decision:
        """Choose what happens after a failed attempt.

        Args:
            trigger: why the attempt failed.
            attempts_at_tier: attempts already made at the current tier, the failed one included.
            tier_index: the current tier's position in the ladder (0 = bottom).
            ladder_len: the number of tiers.
        """
        if trigger in self.never_retry:
            return GiveUp(reason=f"{trigger} is not retryable")
        at_top = tier_index + 1 >= ladder_len
        in_place = trigger not in self.escalate_at_once or at_top
        if in_place and attempts_at_tier < self.max_attempts_per_tier:
            return Retry(tier_index=tier_index)
        if not at_top:
            return Escalate(tier_index=tier_index + 1)
        return GiveUp(reason=f"{trigger} at the top tier after {attempts_at_tier} attempt(s) there")
