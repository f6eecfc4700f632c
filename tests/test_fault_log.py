"""Figures read from the fault server's request log: attempts per call and Retry-After checks."""

from __future__ import annotations

import pytest

from .fault_log import (
    RequestLog,
    RequestRecord,
    attempts_ratio,
    early_requests,
    early_retries,
    logical_calls,
    max_attempts,
    request_rate,
)


def rec(at: float, key: str, retry_after_s: float | None = None) -> RequestRecord:
    status = 429 if retry_after_s is not None else 200
    return RequestRecord(
        at=at,
        path="/v1/chat/completions",
        api="chat",
        model="m",
        role=None,
        stream=False,
        fault="429" if retry_after_s is not None else None,
        status=status,
        body_hash=key,
        key=key,
        nth=1,
        retry_after_s=retry_after_s,
    )


def test_fault_log_attempts_per_logical_call() -> None:
    records = [rec(0, "a", 1.0), rec(1, "a", 1.0), rec(2, "a"), rec(0, "b"), rec(0, "c")]
    assert logical_calls(records) == 3
    assert attempts_ratio(records) == pytest.approx(5 / 3)
    assert max_attempts(records) == 3
    assert (attempts_ratio([]), max_attempts([])) == (0.0, 0)


@pytest.mark.parametrize(
    ("retry_at", "slack_s", "is_early"),
    [(1.9, 0.0, True), (2.0, 0.0, False), (1.95, 0.1, False)],
    ids=["before", "on-time", "within-slack"],
)
def test_fault_log_early_retries_per_call(retry_at: float, slack_s: float, is_early: bool) -> None:
    records = [rec(0.0, "a", 2.0), rec(retry_at, "a"), rec(0.5, "b")]
    assert [r.at for r in early_retries(records, slack_s=slack_s)] == (
        [retry_at] if is_early else []
    )


def test_fault_log_early_requests_spans_every_call() -> None:
    """After a 429 with Retry-After 2 s, another call's request at 1 s is early; one already under
    way (within the slack) and one after the wait are not."""
    records = [rec(0.0, "a", 2.0), rec(0.01, "b"), rec(1.0, "c"), rec(2.5, "d")]
    assert [r.key for r in early_requests(records, slack_s=0.05)] == ["c"]


def test_fault_log_request_rate_counts_a_half_open_span() -> None:
    records = [rec(t, f"k{t}") for t in (0.0, 0.5, 1.0, 1.5, 2.0)]
    assert request_rate(records, 0.0, 2.0) == 2.0
    assert request_rate(records, 1.0, 1.0) == 0.0


def test_fault_log_counts_arrivals_per_key() -> None:
    log = RequestLog()
    assert [log.next_nth("a"), log.next_nth("b"), log.next_nth("a")] == [1, 1, 2]
    log.add(rec(0.0, "a"))
    assert log.wait_for(1, timeout_s=0.0)
    assert not log.wait_for(2, timeout_s=0.0)
