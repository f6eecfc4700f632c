"""The fault server's time windows (rate limit, outage), per-role failures, request log keys and
lifecycle, through the real `openai.AsyncOpenAI` client."""

from __future__ import annotations

import threading
import time

import anyio
import anyio.to_thread
import httpx2
import openai
import pytest

from .fault_client import ask, respond, sdk
from .fault_openai import ApiCall, Reply
from .fault_server import FaultServer

# -- windows, roles, lifecycle ---------------------------------------------------------------


async def test_fault_server_rate_limit_window_answers_429_after_n_requests() -> None:
    """`rate_limit_window(..., after_requests=2)`: the second request on gets 429 + Retry-After."""
    with FaultServer(respond) as srv:
        srv.rate_limit_window(60, 2.0, after_requests=2)
        async with sdk(srv) as client:
            await ask(client, "chat", stream=False)
            with pytest.raises(openai.RateLimitError) as caught:
                await ask(client, "responses", stream=True)
    assert caught.value.response.headers["retry-after"] == "2"
    assert [(r.fault, r.retry_after_s) for r in srv.records] == [(None, None), ("rate_limit", 2.0)]


async def test_fault_server_outage_refuses_then_recovers() -> None:
    """During `outage()` a pooled connection is reset (`APIConnectionError` ← `httpx2.ReadError`)
    and new ones are refused (← `httpx2.ConnectError`); after the window the same port serves."""
    with FaultServer(respond) as srv:
        async with sdk(srv) as client:
            await ask(client, "chat", stream=False)
            window = srv.outage(0.3)
            causes: list[type[BaseException]] = []
            for _ in range(2):
                with pytest.raises(openai.APIConnectionError) as caught:
                    await ask(client, "chat", stream=False)
                cause = caught.value.__cause__
                assert cause is not None
                causes.append(type(cause))
            assert await anyio.to_thread.run_sync(srv.wait_until_up)
            assert window.end is not None
            assert time.monotonic() >= window.end
            seen = await ask(client, "chat", stream=False)
    assert causes == [httpx2.ReadError, httpx2.ConnectError]
    assert seen.finish == "stop"
    assert [r.fault for r in srv.records] == [None, "outage", None]


async def test_fault_server_outage_can_start_after_n_requests() -> None:
    """`outage(after_requests=2)`: the second request is cut, the third refused; then it serves."""
    with FaultServer(respond) as srv:
        srv.outage(0.3, after_requests=2)
        async with sdk(srv) as client:
            await ask(client, "chat", stream=False)
            for cause in (httpx2.ReadError, httpx2.ConnectError):
                with pytest.raises(openai.APIConnectionError) as caught:
                    await ask(client, "chat", stream=False)
                assert isinstance(caught.value.__cause__, cause)
            assert await anyio.to_thread.run_sync(srv.wait_until_up)
            await ask(client, "chat", stream=False)
    assert [r.fault for r in srv.records] == [None, "outage", None]


async def test_fault_server_outage_in_reset_mode_resets_every_request() -> None:
    with FaultServer(respond, outage_mode="reset") as srv:
        srv.outage(0.3)
        async with sdk(srv) as client:
            for _ in range(2):
                with pytest.raises(openai.APIConnectionError) as caught:
                    await ask(client, "responses", stream=True)
                assert isinstance(caught.value.__cause__, httpx2.ReadError)
            assert await anyio.to_thread.run_sync(srv.wait_until_up)
            await ask(client, "responses", stream=True)
    assert [r.fault for r in srv.records] == ["outage", "outage", None]


async def test_fault_server_fail_role_fails_that_role_n_times() -> None:
    def role_of(call: ApiCall) -> str | None:
        return "reviewer" if call.api == "responses" else "worker"

    with FaultServer(respond, role_of=role_of) as srv:
        srv.fail_role("reviewer", times=2, status=503)
        async with sdk(srv) as client:
            for _ in range(2):
                with pytest.raises(openai.InternalServerError):
                    await ask(client, "responses", stream=False)
            await ask(client, "chat", stream=False)
            await ask(client, "responses", stream=False)
    assert [(r.role, r.fault, r.status) for r in srv.records] == [
        ("reviewer", "fail_role", 503),
        ("reviewer", "fail_role", 503),
        ("worker", None, 200),
        ("reviewer", None, 200),
    ]
    assert [r.nth for r in srv.records] == [1, 2, 1, 3]


async def test_fault_server_retries_share_a_key_across_stream_flags() -> None:
    with FaultServer(respond) as srv:
        async with sdk(srv) as client:
            await ask(client, "chat", stream=True)
            await ask(client, "chat", stream=False)
    first, second = srv.records
    assert first.key == second.key
    assert first.body_hash != second.body_hash


async def test_fault_server_closes_fast_with_an_idle_pooled_connection() -> None:
    """A keep-alive connection the client still holds does not keep a thread alive."""
    with FaultServer(respond) as srv:
        async with sdk(srv) as client:
            await ask(client, "chat", stream=False)
            started = time.monotonic()
            srv.close()
            assert time.monotonic() - started < 1
    assert not [t for t in threading.enumerate() if t.name.startswith("fault-")]


async def test_fault_server_responder_error_is_a_500_and_raised_at_close() -> None:
    def broken(call: ApiCall) -> Reply:
        raise KeyError("bug")

    with FaultServer(broken) as srv:
        async with sdk(srv) as client:
            with pytest.raises(openai.InternalServerError):
                await ask(client, "chat", stream=False)
        with pytest.raises(RuntimeError, match="responder raised") as caught:
            srv.close()
    assert isinstance(caught.value.__cause__, KeyError)
