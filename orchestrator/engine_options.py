"""How runs are executed (`EngineConfig`) and per-backend generation options for the roles."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .escalation import EscalationPolicy
from .journal import Durability
from .models import DEFAULT_LADDER, Limits, TierSpec
from .pricing import PriceTable
from .retry import RetryPolicy
from .throttle import RateLimit


@dataclass(frozen=True, slots=True, kw_only=True)
class RoleOptions:
    """A backend's defaults for every role; generation options (`orchestrator.generation`) win."""

    temperature: float | None = None
    max_output_tokens: int | None = None
    compact: bool = False
    """Smaller output schemas (no acceptance checks, tier hints or estimates; short summaries)
    for models too small to fill the full ones."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineConfig:
    """How runs are executed; every field has a sensible default."""

    ladder: tuple[TierSpec, ...] = DEFAULT_LADDER
    limits: Limits = field(default_factory=Limits)
    policy: EscalationPolicy = field(default_factory=EscalationPolicy)
    prices: PriceTable = field(default_factory=PriceTable.default)
    review: Literal["all", "none"] = "all"
    run_root: Path = Path(".orchestrator/runs")
    stream_plan: bool = True
    """Start tasks while a streaming planner is still writing the plan (LLMCompiler's win)."""
    planner_tier: str | None = None
    """Tier whose model plans, reviews and synthesizes; None means the top of the ladder."""
    latency_history: bool = True
    """Order ready tasks by what the same tasks took in earlier runs when the plan gives no
    estimate (critical-path-first); accepted attempts' durations are recorded either way."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    """How transport faults are retried (backoff, server delays, the shared outage pause)."""
    rate_limits: Mapping[str, RateLimit] = field(default_factory=lambda: {})
    """Per model id: requests / tokens per minute to stay under (else learned from the
    server's `x-ratelimit-limit-*` headers)."""
    journal_durability: Durability = "process"
    """process: the journal survives a killed process; machine: power loss too (fsync/commit)."""
    isolation: bool = True
    """Writing tasks (apply_patch, shell) work in their own copy of the workspace, merged into it
    when accepted; off: every task edits the main tree (apply_patch still never loses an edit)."""
    journal_verify: bool = False
    """Fold the journal back at every commit and compare it with the live state (for tests)."""
