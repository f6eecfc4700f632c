"""Retry policy for model calls: what is a transport fault, how long to wait, when it is an outage.

Pure: no clock, no randomness, no I/O. The gateway supplies `now` and a uniform draw in [0, 1), so
every decision here is a table-testable function.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ModelAPIError, ModelError, ModelOutageError, ModelTimeoutError


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How the gateway retries a model call that failed in transport (the only retry owner)."""

    base_delay_s: float = 0.2
    """The first backoff's ceiling; each further failure doubles it (full jitter below it)."""
    max_delay_s: float = 16.0
    """The ceiling of one backoff."""
    max_server_delay_s: float = 120.0
    """A server-sent `Retry-After` longer than this is capped to it."""
    herd_spread: float = 0.1
    """After a server-given delay, each caller waits up to this fraction more, so siblings
    released by one cooldown do not all arrive in the same millisecond."""
    concurrency_shrink: float = 0.75
    """On a 429, calls allowed in flight for that model become this share of what was in flight
    (once per cooldown window); each window of successes gives one back. Gentler than halving:
    a lone 429 should not cost a quarter of the throughput for the next minute."""
    outage_streak: int = 3
    """Transport failures in a row on one endpoint (no success between) that pause every caller
    of it, not only the failing one; never fewer than the calls in flight, so random faults
    among many concurrent calls do not pause the rest."""


def is_transport(exc: ModelError) -> bool:
    """A failure of delivery, not of the model: the same request may succeed later."""
    if isinstance(exc, ModelOutageError):
        return False
    return isinstance(exc, ModelTimeoutError) or (isinstance(exc, ModelAPIError) and exc.retryable)


def is_rate_limit(exc: ModelError) -> bool:
    return isinstance(exc, ModelAPIError) and exc.status_code == 429


def backoff_s(policy: RetryPolicy, failures: int, draw: float) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base · 2^(failures-1)))."""
    ceiling = min(policy.max_delay_s, policy.base_delay_s * 2.0 ** max(0, failures - 1))
    return draw * ceiling


def server_delay_s(policy: RetryPolicy, exc: ModelError) -> float | None:
    """The wait the server asked for, capped; None when it said nothing."""
    if isinstance(exc, ModelAPIError) and exc.retry_after_s is not None:
        return min(exc.retry_after_s, policy.max_server_delay_s)
    return None


def retry_delay_s(policy: RetryPolicy, exc: ModelError, failures: int, draw: float) -> float:
    """How long one caller waits before it sends the same request again."""
    asked = server_delay_s(policy, exc)
    if asked is not None:
        return asked * (1.0 + policy.herd_spread * draw)
    return backoff_s(policy, failures, draw)


def outage_message(role: str, model: str, outage_s: float, last: ModelError) -> str:
    """The reason a call gave up, naming the outage and its last error."""
    return (
        f"model API outage: every call of {role} to {model} failed for {outage_s:.0f}s "
        f"(past the outage grace); last error: {type(last).__name__}: {last}"
    )
