"""The fault server's request log and the figures tests read from it: attempts per logical call,
early retries after a `Retry-After`, request rates in a time span."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestRecord:
    """One HTTP request that reached the server."""

    at: float
    """Monotonic arrival time (after the body was read)."""
    path: str
    api: str
    """chat / responses / "" when the body did not decode."""
    model: str
    role: str | None
    """What the server's `role_of` said, if it has one."""
    stream: bool
    fault: str | None
    """A `FaultKind`, or rate_limit / outage / fail_role, or None when served cleanly."""
    status: int | None
    """The status line sent; None when the connection was cut before one."""
    body_hash: str
    """Hash of the exact body bytes."""
    key: str
    """The logical call: the body without its stream flags, hashed; retries share it."""
    nth: int
    """1 for the first request with this key, 2 for its first retry, ..."""
    retry_after_s: float | None = None
    """The `Retry-After` sent with a 429."""
    finished: float | None = None
    """Monotonic time the server was done with it (reply sent or connection cut)."""


@dataclass(slots=True)
class RequestLog:
    """Thread-safe, append-only; read a snapshot with `records`."""

    _records: list[RequestRecord] = field(default_factory=lambda: [])
    _counts: Counter[str] = field(default_factory=lambda: Counter[str]())
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _grown: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self._grown = threading.Condition(self._lock)

    def next_nth(self, key: str) -> int:
        """Count one more arrival of `key` and return its number."""
        with self._lock:
            self._counts[key] += 1
            return self._counts[key]

    def add(self, record: RequestRecord) -> int:
        with self._lock:
            self._records.append(record)
            self._grown.notify_all()
            return len(self._records) - 1

    def wait_for(self, count: int, timeout_s: float = 5.0) -> bool:
        """Block until `count` requests have arrived (for tests that act mid-request)."""
        with self._lock:
            return self._grown.wait_for(lambda: len(self._records) >= count, timeout_s)

    def finish(self, index: int, *, finished: float) -> None:
        with self._lock:
            self._records[index] = replace(self._records[index], finished=finished)

    @property
    def records(self) -> tuple[RequestRecord, ...]:
        with self._lock:
            return tuple(self._records)

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)


def logical_calls(records: Sequence[RequestRecord]) -> int:
    """How many distinct logical calls the records hold."""
    return len({r.key for r in records})


def attempts_ratio(records: Sequence[RequestRecord]) -> float:
    """HTTP requests per logical call (1.0 when nothing was retried)."""
    calls = logical_calls(records)
    return len(records) / calls if calls else 0.0


def max_attempts(records: Sequence[RequestRecord]) -> int:
    """The most requests any one logical call took."""
    counts = Counter(r.key for r in records)
    return max(counts.values(), default=0)


def early_retries(records: Sequence[RequestRecord], *, slack_s: float = 0.0) -> list[RequestRecord]:
    """Requests that repeat a call sooner than the `Retry-After` its previous 429 asked for.

    The wait counts from the 429's arrival (its reply left microseconds later, so this errs
    towards forgiving); `slack_s` forgives that much more.
    """
    last: dict[str, RequestRecord] = {}
    early: list[RequestRecord] = []
    for record in sorted(records, key=lambda r: r.at):
        before = last.get(record.key)
        wait = None if before is None else before.retry_after_s
        if before is not None and wait is not None and record.at + slack_s < before.at + wait:
            early.append(record)
        last[record.key] = record
    return early


def early_requests(
    records: Sequence[RequestRecord], *, slack_s: float = 0.05
) -> list[RequestRecord]:
    """Requests of any call that arrive while an earlier 429's `Retry-After` still runs.

    The wait counts from the 429's arrival; a request arriving within `slack_s` after it was
    already under way and is forgiven.
    """
    ordered = sorted(records, key=lambda r: r.at)
    early: list[RequestRecord] = []
    blocked_until = float("-inf")
    blocked_from = float("-inf")
    for record in ordered:
        if blocked_from + slack_s < record.at < blocked_until:
            early.append(record)
        if record.retry_after_s is not None and record.at + record.retry_after_s > blocked_until:
            blocked_from, blocked_until = record.at, record.at + record.retry_after_s
    return early


def request_rate(records: Sequence[RequestRecord], start: float, end: float) -> float:
    """Requests per second that arrived in [start, end)."""
    if end <= start:
        return 0.0
    return sum(1 for r in records if start <= r.at < end) / (end - start)
