"""The retry policy and the shared per-model limits, as plain sync tables (time passed in)."""

from __future__ import annotations

import pytest

from orchestrator.errors import (
    ModelAPIError,
    ModelBehaviorError,
    ModelError,
    ModelOutageError,
    ModelTimeoutError,
)
from orchestrator.llm import RateLimitInfo
from orchestrator.llm_openai import rate_limits, retry_after_s
from orchestrator.retry import RetryPolicy, backoff_s, is_transport, retry_delay_s
from orchestrator.throttle import EndpointState, RateLimit

POLICY = RetryPolicy(
    base_delay_s=0.5, max_delay_s=8.0, herd_spread=0.1, outage_streak=3, concurrency_shrink=0.5
)
RATE_LIMITED = ModelAPIError("429", status_code=429, retryable=True, retry_after_s=2.0)
RATE_LIMITED_BARE = ModelAPIError("429", status_code=429, retryable=True)
UNAVAILABLE = ModelAPIError("503", status_code=503, retryable=True)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ModelTimeoutError("t", timeout_s=1), True),
        (UNAVAILABLE, True),
        (RATE_LIMITED, True),
        (ModelAPIError("400", status_code=400, retryable=False), False),
        (ModelBehaviorError("bad json"), False),
        (ModelOutageError("out", status_code=503, outage_s=300), False),
    ],
    ids=["timeout", "503", "429", "400", "invalid-reply", "outage"],
)
def test_retry_is_transport(exc: ModelError, expected: bool) -> None:
    assert is_transport(exc) is expected


@pytest.mark.parametrize(
    ("failures", "draw", "expected"),
    [(1, 0.0, 0.0), (1, 0.5, 0.25), (2, 1.0, 1.0), (3, 0.5, 1.0), (10, 1.0, 8.0)],
    ids=["zero-draw", "first", "second", "third", "capped"],
)
def test_retry_backoff_is_full_jitter_under_a_doubling_ceiling(
    failures: int, draw: float, expected: float
) -> None:
    assert backoff_s(POLICY, failures, draw) == pytest.approx(expected)


def test_retry_honours_the_servers_delay_and_spreads_the_herd_above_it() -> None:
    assert retry_delay_s(POLICY, RATE_LIMITED, 1, 0.0) == pytest.approx(2.0)
    assert retry_delay_s(POLICY, RATE_LIMITED, 1, 1.0) == pytest.approx(2.2)
    huge = ModelAPIError("429", status_code=429, retryable=True, retry_after_s=10_000)
    assert retry_delay_s(POLICY, huge, 1, 0.0) == POLICY.max_server_delay_s


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "2"}, 2.0),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"x-ratelimit-reset-requests": "6m0s", "x-ratelimit-reset-tokens": "20ms"}, 360.0),
        ({"x-ratelimit-reset-tokens": "1.5s"}, 1.5),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
    ids=["ms", "seconds", "ms-wins", "reset-later-of-two", "reset-fraction", "garbage", "none"],
)
def test_retry_after_header_parsing(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_s(headers) == (pytest.approx(expected) if expected is not None else None)


def test_retry_rate_limit_headers_are_read_when_present() -> None:
    info = rate_limits(
        {
            "x-ratelimit-limit-requests": "500",
            "x-ratelimit-limit-tokens": "200000",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-remaining-tokens": "1200",
            "x-ratelimit-reset-requests": "120ms",
        }
    )
    assert info == RateLimitInfo(
        limit_requests=500,
        limit_tokens=200_000,
        remaining_requests=0,
        remaining_tokens=1200,
        reset_s=pytest.approx(0.12),  # type: ignore[arg-type]
    )
    assert rate_limits({"content-type": "application/json"}) is None


def test_throttle_a_429_pauses_every_caller_until_retry_after() -> None:
    state = EndpointState(ceiling=64)
    state.sent(10.0, 0)
    cooldown, failing_for = state.failed(10.0, RATE_LIMITED, POLICY, 0.5)
    state.ended()
    assert cooldown == pytest.approx(2.0) and failing_for == 0.0
    assert state.wait_s(11.0, 0) == pytest.approx(1.0)
    assert state.wait_s(12.0, 0) == 0


def test_throttle_concurrency_halves_once_per_window_and_grows_back() -> None:
    state = EndpointState(ceiling=64)
    for _ in range(8):
        state.sent(0.0, 0)
    state.failed(0.0, RATE_LIMITED, POLICY, 0.0)
    assert state.limit == 4
    state.failed(0.5, RATE_LIMITED, POLICY, 0.0)  # same cooldown window: no second cut
    assert state.limit == 4
    for _ in range(8):
        state.ended()
    assert state.wait_s(3.0, 0) == 0
    for _ in range(4):
        state.sent(3.0, 0)
    assert state.wait_s(3.0, 0) is None  # the fifth waits for a place
    for _ in range(4):
        state.ended()
        state.succeeded(3.0, None)
    assert state.limit == 8  # back where the cut began, one place per success
    for _ in range(8):
        state.succeeded(3.0, None)
    assert state.limit == 9  # beyond it, one place per window of successes


def test_throttle_bare_429s_back_off_exponentially_for_everyone() -> None:
    state = EndpointState(ceiling=8)
    first, _ = state.failed(0.0, RATE_LIMITED_BARE, POLICY, 1.0)
    second, _ = state.failed(0.0, RATE_LIMITED_BARE, POLICY, 1.0)
    assert (first, second) == (pytest.approx(0.5), pytest.approx(1.0))


def test_throttle_a_streak_of_faults_pauses_the_endpoint_and_a_success_ends_it() -> None:
    state = EndpointState(ceiling=8)
    assert state.failed(0.0, UNAVAILABLE, POLICY, 1.0) == (0.0, 0.0)
    assert state.failed(1.0, UNAVAILABLE, POLICY, 1.0) == (0.0, 1.0)
    cooldown, failing_for = state.failed(2.0, UNAVAILABLE, POLICY, 1.0)
    assert cooldown == pytest.approx(0.5) and failing_for == 2.0
    state.succeeded(3.0, None)
    assert state.failing_since is None and state.streak == 0


def test_throttle_request_bucket_from_config_and_learned_from_headers() -> None:
    state = EndpointState(ceiling=64, configured=RateLimit(requests_per_minute=120))
    state.configure(0.0)
    for _ in range(10):  # a 5-second burst of 2/s
        assert state.wait_s(0.0, 0) == 0
        state.sent(0.0, 0)
        state.ended()
    assert state.wait_s(0.0, 0) == pytest.approx(0.5)
    learned = EndpointState(ceiling=64)
    learned.succeeded(0.0, RateLimitInfo(limit_requests=60, limit_tokens=6000))
    assert learned.counts_tokens
    learned.sent(0.0, 500)
    assert learned.wait_s(0.0, 500) == pytest.approx(5.0)


def test_throttle_an_exhausted_budget_header_pauses_until_its_reset() -> None:
    state = EndpointState(ceiling=64)
    state.succeeded(0.0, RateLimitInfo(remaining_requests=0, reset_s=0.75))
    assert state.wait_s(0.0, 0) == pytest.approx(0.75)


def test_throttle_random_faults_among_many_calls_in_flight_pause_nobody() -> None:
    """Three failures in a row with eight calls out is bad luck, not an outage."""
    state = EndpointState(ceiling=64)
    for _ in range(8):
        state.sent(0.0, 0)
    for _ in range(3):
        assert state.failed(0.0, UNAVAILABLE, POLICY, 1.0)[0] == 0.0
    cooldowns = [state.failed(0.0, UNAVAILABLE, POLICY, 1.0)[0] for _ in range(5)]
    assert cooldowns == [0.0] * 4 + [pytest.approx(0.5)]  # the eighth in a row: a round failed


def test_throttle_a_503_with_retry_after_pauses_everyone_without_cutting_concurrency() -> None:
    state = EndpointState(ceiling=64)
    busy = ModelAPIError("503", status_code=503, retryable=True, retry_after_s=1.5)
    cooldown, _ = state.failed(0.0, busy, POLICY, 0.0)
    assert cooldown == pytest.approx(1.5) and state.limit is None
