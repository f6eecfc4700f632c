"""The fault server through the real `openai.AsyncOpenAI` client (max_retries=0): clean replies
parse in both APIs, streamed and not, and each fault surfaces as the SDK exception (or stream
behaviour) recorded in its test's docstring."""

from __future__ import annotations

import contextlib
import json
import time

import anyio
import anyio.to_thread
import httpx2
import openai
import pytest

from .fault_client import APIS, KEY, Api, Seen, ask, only, respond, root_cause, sdk
from .fault_openai import ApiCall
from .fault_plan import ALL_KINDS, FaultKind, FaultPlan
from .fault_server import FaultServer

# -- clean path ------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("api", APIS)
async def test_fault_server_text_reply_parses(api: Api, stream: bool) -> None:
    with FaultServer(respond) as srv:
        async with sdk(srv) as client:
            seen = await ask(client, api, stream=stream)
    (record,) = srv.records
    assert seen.text == respond(ApiCall(api=api, body={}, model="m", stream=False)).text
    assert seen.finish == ("stop" if api == "chat" else "completed")
    assert seen.usage is not None
    assert seen.usage[0] > 0
    assert seen.usage[1] == len(seen.text) // 4
    assert (record.api, record.stream, record.fault, record.status) == (api, stream, None, 200)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("api", APIS)
async def test_fault_server_tool_call_parses(api: Api, stream: bool) -> None:
    with FaultServer(respond) as srv:
        async with sdk(srv) as client:
            seen = await ask(client, api, stream=stream, tools=True)
    assert seen.calls == [("wc", '{"text": "a b c"}', "call_1")]
    assert seen.finish == ("tool_calls" if api == "chat" else "completed")
    assert seen.usage is not None


# -- faults ----------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("api", APIS)
async def test_fault_server_429_raises_rate_limit_error(api: Api, stream: bool) -> None:
    """429 → `openai.RateLimitError` (status 429) before any stream starts; the response
    carries `Retry-After` and `retry-after-ms` for a retry owner to honour."""
    with FaultServer(respond, faults=only("429", retry_after_s=1.5)) as srv:
        async with sdk(srv) as client:
            with pytest.raises(openai.RateLimitError) as caught:
                await ask(client, api, stream=stream)
    headers = caught.value.response.headers
    assert (headers["retry-after"], headers["retry-after-ms"]) == ("1.5", "1500")
    assert srv.records[0].retry_after_s == 1.5


@pytest.mark.parametrize("kind", ["500", "503"])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("api", APIS)
async def test_fault_server_5xx_raises_internal_server_error(
    api: Api, stream: bool, kind: FaultKind
) -> None:
    """500 and 503 → `openai.InternalServerError` with that `status_code`."""
    with FaultServer(respond, faults=only(kind)) as srv:
        async with sdk(srv) as client:
            with pytest.raises(openai.InternalServerError) as caught:
                await ask(client, api, stream=stream)
    assert caught.value.status_code == int(kind)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("api", APIS)
async def test_fault_server_reset_raises_connection_error(api: Api, stream: bool) -> None:
    """Reset mid-body (headers and part of the body, then RST) → `openai.APIConnectionError`
    (not its `APITimeoutError` subclass) from `httpx2.ReadError` ← `ConnectionResetError`;
    streamed, it is raised while iterating (the SDK wraps it, no raw httpx2 error escapes)."""
    with FaultServer(respond, faults=only("reset")) as srv:
        async with sdk(srv) as client:
            with pytest.raises(openai.APIConnectionError) as caught:
                await ask(client, api, stream=stream)
    assert not isinstance(caught.value, openai.APITimeoutError)
    assert isinstance(caught.value.__cause__, httpx2.ReadError)
    assert isinstance(root_cause(caught.value), ConnectionResetError)
    assert srv.records[0].status == 200


@pytest.mark.parametrize("api", APIS)
async def test_fault_server_truncated_body_raises_raw_json_decode_error(api: Api) -> None:
    """A 200 whose JSON is cut (Content-Length fits the cut) → a bare `json.JSONDecodeError`
    from `response.json()`: NOT an `openai.APIError`, so nothing maps it unless caught."""
    with FaultServer(respond, faults=only("truncated")) as srv:
        async with sdk(srv) as client:
            with pytest.raises(json.JSONDecodeError) as caught:
                await ask(client, api, stream=False)
    assert not isinstance(caught.value, openai.APIError)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("api", APIS)
async def test_fault_server_hang_raises_timeout_error(api: Api, stream: bool) -> None:
    """A hang past the client's timeout → `openai.APITimeoutError` (from `httpx2.ReadTimeout`);
    the server's handler ends when the client hangs up."""
    with FaultServer(respond, faults=only("hang")) as srv:
        async with sdk(srv, timeout_s=0.3) as client:
            with pytest.raises(openai.APITimeoutError) as caught:
                await ask(client, api, stream=stream)
    assert isinstance(caught.value.__cause__, httpx2.ReadTimeout)
    assert srv.records[0].status is None


async def test_fault_server_close_releases_a_hanging_request() -> None:
    """Closing the server while a request hangs ends it at once: the client sees the
    connection close with no response → `openai.APIConnectionError` (`RemoteProtocolError`)."""
    errors: list[BaseException] = []

    async def call(client: openai.AsyncOpenAI) -> None:
        try:
            await ask(client, "chat", stream=False)
        except openai.APIError as exc:
            errors.append(exc)

    with FaultServer(respond, faults=only("hang", hang_s=60)) as srv:
        async with sdk(srv, timeout_s=30) as client, anyio.create_task_group() as tg:
            tg.start_soon(call, client)
            assert await anyio.to_thread.run_sync(srv.log.wait_for, 1)
            started = time.monotonic()
            srv.close()
            assert time.monotonic() - started < 2
    (error,) = errors
    assert type(error) is openai.APIConnectionError
    assert isinstance(error.__cause__, httpx2.RemoteProtocolError)


@pytest.mark.parametrize("api", APIS)
async def test_fault_server_stream_cut_raises_connection_error_mid_iteration(api: Api) -> None:
    """A stream closed mid-event without its final chunk → `openai.APIConnectionError` from
    `httpx2.RemoteProtocolError` ("incomplete chunked read"), raised by the iteration after
    some events were delivered (the SDK wraps it; no raw httpx2 error escapes)."""
    seen = Seen()
    with FaultServer(respond, faults=only("stream_cut")) as srv:
        async with sdk(srv) as client:
            with pytest.raises(openai.APIConnectionError) as caught:
                await ask(client, api, stream=True, seen=seen)
    assert isinstance(caught.value.__cause__, httpx2.RemoteProtocolError)
    assert seen.events > 0


@pytest.mark.parametrize("api", APIS)
async def test_fault_server_stream_without_terminator_ends_quietly(api: Api) -> None:
    """All content, then a clean end with no terminator → the SDK raises nothing. Chat: no
    finish_reason, no usage chunk, and `[DONE]` is invisible to callers anyway, so a missing
    finish_reason is the only sign. Responses: no `response.completed` event arrives."""
    with FaultServer(respond, faults=only("stream_no_terminator")) as srv:
        async with sdk(srv) as client:
            seen = await ask(client, api, stream=True)
    assert seen.text == respond(ApiCall(api=api, body={}, model="m", stream=True)).text
    assert seen.finish is None
    assert seen.usage is None


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("api", APIS)
async def test_fault_server_echo_auth_400_leaks_the_key(api: Api, stream: bool) -> None:
    """A 400 echoing the Authorization header → `openai.BadRequestError` whose message and
    `body["message"]` hold `Bearer <key>` verbatim."""
    with FaultServer(respond, faults=only("echo_auth_400")) as srv:
        async with sdk(srv) as client:
            with pytest.raises(openai.BadRequestError) as caught:
                await ask(client, api, stream=stream)
    assert f"Bearer {KEY}" in str(caught.value)
    assert srv.records[0].status == 400


async def test_fault_server_stream_kinds_fall_back_on_plain_requests() -> None:
    with FaultServer(respond, faults=FaultPlan(rate=1.0, kinds=("stream_cut", "500"))) as srv:
        async with sdk(srv) as client:
            for _ in range(3):
                with pytest.raises(openai.InternalServerError):
                    await ask(client, "chat", stream=False)
    assert [r.fault for r in srv.records] == ["500", "500", "500"]


@pytest.mark.parametrize("kind", ALL_KINDS)
async def test_fault_server_every_kind_is_logged(kind: FaultKind) -> None:
    stream = kind != "truncated"
    with FaultServer(respond, faults=only(kind)) as srv:
        async with sdk(srv, timeout_s=0.3) as client:
            with contextlib.suppress(openai.APIError, json.JSONDecodeError):
                await ask(client, "chat", stream=stream)
    (record,) = srv.records
    assert (record.fault, record.stream, record.nth) == (kind, stream, 1)
