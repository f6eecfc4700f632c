"""Which fault a request gets: seeded per-request draws, time windows and per-role failures.

Pure and thread-safe: the server passes in the monotonic time and the request; nothing here
touches a socket or sleeps.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, get_args

from .fault_openai import ApiCall

FaultKind = Literal[
    "429",
    "500",
    "503",
    "reset",
    "truncated",
    "hang",
    "stream_cut",
    "stream_no_terminator",
    "echo_auth_400",
]
ALL_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)
STREAM_ONLY: frozenset[FaultKind] = frozenset({"stream_cut", "stream_no_terminator"})
PLAIN_ONLY: frozenset[FaultKind] = frozenset({"truncated"})
"""A cut JSON body only exists outside streams; a cut stream is `stream_cut`."""
Mode = Literal["rate_limit", "outage", "fail_role"]
"""Why a request is refused by a window or a role failure instead of a random draw."""
RoleOf = Callable[[ApiCall], str | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultPlan:
    """Random faults: each request is faulted with probability `rate`, its kind drawn uniformly
    from `kinds` (among those that apply to it: stream kinds need a streamed request)."""

    rate: float = 0.0
    kinds: tuple[FaultKind, ...] = ALL_KINDS
    retry_after_s: float = 1.0
    """The `Retry-After` (and `retry-after-ms`) a random 429 carries."""
    hang_s: float = 60.0
    """How long a `hang` holds the request at most (released early when the client hangs up
    or the server closes)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """What to do with one request."""

    fault: FaultKind | Mode | None
    status: int | None = None
    """The error status to send for refusals and status faults."""
    retry_after_s: float | None = None
    cut: float = 0.5
    """Where a cutting fault cuts, as a fraction of the body or of the stream's events."""


@dataclass(slots=True, kw_only=True)
class Window:
    """A stretch of time in which every request is refused the same way."""

    mode: Literal["rate_limit", "outage"]
    seconds: float
    retry_after_s: float | None = None
    after_requests: int = 0
    """Starts when this many requests have arrived (0: at once)."""
    start: float | None = None
    """Monotonic start, once it has started."""

    @property
    def end(self) -> float | None:
        return None if self.start is None else self.start + self.seconds

    def is_active(self, now: float) -> bool:
        return self.start is not None and self.start <= now < self.start + self.seconds


@dataclass(slots=True, kw_only=True)
class RoleFailure:
    """A role's requests answered with `status`, `times` times or for `seconds` from `start`."""

    role: str
    status: int
    times: int | None
    seconds: float | None
    start: float
    retry_after_s: float | None = None
    served: int = 0

    def applies(self, now: float) -> bool:
        if self.times is not None and self.served >= self.times:
            return False
        return self.seconds is None or now < self.start + self.seconds


@dataclass(slots=True)
class FaultPolicy:
    """Decides the fault of each request; every decision is seeded by (seed, call key, nth
    arrival of that key), so a run's faults do not depend on how concurrent requests interleave."""

    plan: FaultPlan
    seed: int
    windows: list[Window] = field(default_factory=lambda: [])
    role_failures: list[RoleFailure] = field(default_factory=lambda: [])
    arrivals: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add_window(self, window: Window, now: float) -> Window:
        with self._lock:
            if window.after_requests <= self.arrivals:
                window.start = now
            self.windows.append(window)
        return window

    def add_role_failure(self, failure: RoleFailure) -> None:
        with self._lock:
            self.role_failures.append(failure)

    def outage_until(self, now: float) -> float | None:
        """The end of the outage in force at `now`, if any."""
        with self._lock:
            ends = [w.end for w in self.windows if w.mode == "outage" and w.is_active(now)]
        return max((e for e in ends if e is not None), default=None)

    def decide(
        self, call: ApiCall | None, *, key: str, nth: int, now: float, role: str | None = None
    ) -> Decision:
        """The decision for a request; `call` is None when the body did not decode."""
        with self._lock:
            self.arrivals += 1
            for window in self.windows:
                if window.start is None and self.arrivals >= window.after_requests:
                    window.start = now
            refusal = self._refusal(role, now)
        if refusal is not None:
            return refusal
        rng = random.Random(f"{self.seed}:{key}:{nth}")
        if rng.random() >= self.plan.rate:
            return Decision(fault=None)
        stream = call is not None and call.stream
        kinds: list[FaultKind] = [k for k in self.plan.kinds if _applies(k, stream=stream)]
        if not kinds:
            return Decision(fault=None)
        kind: FaultKind = kinds[rng.randrange(len(kinds))]
        return Decision(
            fault=kind,
            status=_STATUS.get(kind),
            retry_after_s=self.plan.retry_after_s if kind == "429" else None,
            cut=rng.uniform(0.2, 0.8),
        )

    def _refusal(self, role: str | None, now: float) -> Decision | None:
        for window in self.windows:
            if window.is_active(now):
                if window.mode == "outage":
                    return Decision(fault="outage")
                return Decision(fault="rate_limit", status=429, retry_after_s=window.retry_after_s)
        for failure in self.role_failures:
            if failure.role == role and failure.applies(now):
                failure.served += 1
                return Decision(
                    fault="fail_role", status=failure.status, retry_after_s=failure.retry_after_s
                )
        return None


_STATUS: dict[FaultKind, int] = {"429": 429, "500": 500, "503": 503, "echo_auth_400": 400}


def _applies(kind: FaultKind, *, stream: bool) -> bool:
    if kind in STREAM_ONLY:
        return stream
    if kind in PLAIN_ONLY:
        return not stream
    return True
