"""Limits shared by the calls to one model: one cooldown after a 429, adaptive concurrency, buckets.

`EndpointState` is the pure bookkeeping (time is passed in); `Throttle` is the thin async edge that
makes callers wait on it. One `Throttle` serves every run of an engine, so concurrent runs against
the same model back off together instead of each hammering the API on its own.
"""

from __future__ import annotations

import math
import random
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio

from .errors import ModelError
from .llm import RateLimitInfo
from .retry import RetryPolicy, backoff_s, is_rate_limit, server_delay_s


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimit:
    """A model's published limits; the gateway keeps under them before the server has to say so."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None


@dataclass(slots=True)
class _Bucket:
    """A token bucket refilled continuously; holds five seconds' worth at most."""

    per_minute: float
    level: float
    at: float

    @classmethod
    def full(cls, per_minute: float, now: float, *, spent: float = 0.0) -> _Bucket:
        """A bucket that has already paid for `spent` (requests or tokens sent before it)."""
        return cls(per_minute=per_minute, level=cls.capacity_of(per_minute) - spent, at=now)

    @staticmethod
    def capacity_of(per_minute: float) -> float:
        return max(1.0, per_minute / 12)

    def wait_s(self, amount: float, now: float) -> float:
        self._refill(now)
        need = min(amount, self.capacity_of(self.per_minute))
        return 0.0 if self.level >= need else (need - self.level) / (self.per_minute / 60)

    def take(self, amount: float, now: float) -> None:
        self._refill(now)
        self.level -= min(amount, self.capacity_of(self.per_minute))

    def _refill(self, now: float) -> None:
        rate = self.per_minute / 60
        self.level = min(self.capacity_of(self.per_minute), self.level + (now - self.at) * rate)
        self.at = now


@dataclass(slots=True)
class EndpointState:
    """What one model's callers share: when they may send again and how many may be in flight."""

    ceiling: int
    """The most calls in flight the backend accepts (`capabilities.parallel_requests`)."""
    configured: RateLimit = field(default_factory=RateLimit)
    cooldown_until: float = 0.0
    """Nobody sends before this (after a 429, a reset header or a streak of faults)."""
    failing_since: float | None = None
    """When the current run of transport failures began; None after any success."""
    streak: int = 0
    """Transport failures in a row, of any caller."""
    rate_limited: int = 0
    """429s in a row, of any caller."""
    limit: int | None = None
    """Adaptive concurrency: None until the first 429, then cut on 429s and grown back."""
    in_flight: int = 0
    _sent: int = 0
    _sent_tokens: int = 0
    _good: int = 0
    _recover_to: int = 0
    """The concurrency the last cut began from: a lone 429 costs little, a window of them
    keeps cutting (there are no successes between its 429s to grow back on)."""
    _cut_guard: float = -math.inf
    _requests: _Bucket | None = None
    _tokens: _Bucket | None = None

    @property
    def counts_tokens(self) -> bool:
        return self._tokens is not None

    def wait_s(self, now: float, tokens: int) -> float | None:
        """0 when a call may go now; else seconds to wait, or None to wait for a call to end."""
        if now < self.cooldown_until:
            return self.cooldown_until - now
        if self.in_flight >= min(self.ceiling, self.limit or self.ceiling):
            return None
        waits = [b.wait_s(n, now) for b, n in ((self._requests, 1), (self._tokens, tokens)) if b]
        return max(waits, default=0.0)

    def sent(self, now: float, tokens: int) -> None:
        self.in_flight += 1
        self._sent += 1
        self._sent_tokens += tokens
        if self._requests is not None:
            self._requests.take(1, now)
        if self._tokens is not None:
            self._tokens.take(tokens, now)

    def ended(self) -> None:
        self.in_flight -= 1

    def succeeded(self, now: float, info: RateLimitInfo | None) -> None:
        """A reply arrived: the fault streak ends and concurrency grows back, one place per
        success up to where the last cut began, then one per window of successes beyond it."""
        self.streak = self.rate_limited = 0
        self.failing_since = None
        if self.limit is not None:
            self._good += 1
            if self.limit < self._recover_to or self._good >= self.limit:
                self._good = 0
                self.limit = None if self.limit + 1 >= self.ceiling else self.limit + 1
        if info is not None:
            self._learn(now, info)

    def failed(
        self, now: float, exc: ModelError, policy: RetryPolicy, draw: float
    ) -> tuple[float, float]:
        """A transport failure; returns (the endpoint's cooldown left, how long it has failed)."""
        self.streak += 1
        if self.failing_since is None:
            self.failing_since = now
        pause: float | None = None
        asked = server_delay_s(policy, exc)
        if is_rate_limit(exc):
            self.rate_limited += 1
            pause = asked if asked is not None else backoff_s(policy, self.rate_limited, draw)
            self._shrink(now, now + pause, policy.concurrency_shrink)
        elif asked is not None:
            pause = asked  # e.g. 503 + Retry-After: the server asks everyone, not one caller
        elif self.streak >= (threshold := max(policy.outage_streak, self.in_flight)):
            # More failures in a row than calls in flight: a whole round failed, not bad luck.
            pause = backoff_s(policy, self.streak - threshold + 1, draw)
        if pause is not None:
            self.cooldown_until = max(self.cooldown_until, now + pause)
        return max(0.0, self.cooldown_until - now), now - self.failing_since

    def _shrink(self, now: float, window_end: float, share: float) -> None:
        """Cut concurrency once per cooldown window (AIMD), from what was really in flight."""
        if now < self._cut_guard:
            return
        current = self.limit if self.limit is not None else max(1, self.in_flight)
        self.limit = max(1, int(current * share))
        self._recover_to = current
        self._good = 0
        self._cut_guard = window_end

    def _learn(self, now: float, info: RateLimitInfo) -> None:
        rpm = self.configured.requests_per_minute or info.limit_requests
        tpm = self.configured.tokens_per_minute or info.limit_tokens
        # A bucket learned late has already spent what went out before it (capped at a minute's).
        if rpm and (self._requests is None or self._requests.per_minute != rpm):
            self._requests = _Bucket.full(rpm, now, spent=min(self._sent, rpm))
        if tpm and (self._tokens is None or self._tokens.per_minute != tpm):
            self._tokens = _Bucket.full(tpm, now, spent=min(self._sent_tokens, tpm))
        if self._requests is not None and info.remaining_requests is not None:
            self._requests.level = min(self._requests.level, info.remaining_requests)
        if self._tokens is not None and info.remaining_tokens is not None:
            self._tokens.level = min(self._tokens.level, info.remaining_tokens)
        if info.reset_s is not None:
            self.cooldown_until = max(self.cooldown_until, now + info.reset_s)

    def configure(self, now: float) -> None:
        """Start the configured buckets; learned ones start with the first reply naming them."""
        self._learn(now, RateLimitInfo())


class Throttle:
    """Makes callers of one model wait for its shared cooldown, concurrency and buckets."""

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        ceiling: int,
        rate_limits: Mapping[str, RateLimit] | None = None,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.policy = policy
        self._ceiling = max(1, ceiling)
        self._rate_limits = dict(rate_limits or {})
        self._draw = draw
        self._states: dict[str, EndpointState] = {}
        self._changed: anyio.Event | None = None
        """Set when any place frees or a limit changes; made lazily inside the event loop."""

    def state(self, model: str) -> EndpointState:
        state = self._states.get(model)
        if state is None:
            configured = self._rate_limits.get(model, RateLimit())
            state = self._states[model] = EndpointState(self._ceiling, configured=configured)
            state.configure(anyio.current_time())
        return state

    @asynccontextmanager
    async def slot(self, model: str, estimate: Callable[[], int]) -> AsyncGenerator[None]:
        """Wait until `model` may take one more call, hold its place while the call runs.

        `estimate` (the call's token estimate) is only computed when a TPM bucket needs it.
        """
        state = self.state(model)
        tokens = estimate() if state.counts_tokens else 0
        while (wait := state.wait_s(anyio.current_time(), tokens)) != 0:
            if self._changed is None:
                self._changed = anyio.Event()
            changed = self._changed
            with anyio.move_on_after(math.inf if wait is None else wait):
                await changed.wait()
        state.sent(anyio.current_time(), tokens)
        try:
            yield
        finally:
            state.ended()
            self._notify()

    def is_open(self, model: str) -> bool:
        """No cooldown holds `model` right now (checked again just before a request goes)."""
        return anyio.current_time() >= self.state(model).cooldown_until

    def succeeded(self, model: str, info: RateLimitInfo | None) -> None:
        self.state(model).succeeded(anyio.current_time(), info)
        self._notify()

    def failed(self, model: str, exc: ModelError) -> tuple[float, float]:
        """Record a transport failure; (cooldown left, seconds the endpoint has been failing)."""
        return self.state(model).failed(anyio.current_time(), exc, self.policy, self._draw())

    def draw(self) -> float:
        return self._draw()

    def _notify(self) -> None:
        """Wake every waiter to look again (a place freed, or the limits changed)."""
        if self._changed is not None:
            self._changed.set()
            self._changed = None
