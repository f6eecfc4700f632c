"""Calls to the embedded model's one-at-a-time server wait their turn in the gateway, off the clock.

The server is `fake_llama_server.py` in mode `slow`, a real subprocess that answers one request at
a time. Eight workers call it at once: the queue lasts well past the HTTP client's timeout and each
attempt's deadline, yet no call times out, because both clocks start only when a call's turn comes.
"""

from __future__ import annotations

from pathlib import Path

import anyio

from orchestrator.errors import ModelTimeoutError
from orchestrator.gateway import Gateway, waits_excluded
from orchestrator.llm import ModelRequest, UserMessage
from orchestrator.llm_openai_chat import OpenAIChatClient
from orchestrator.local_model import (
    LLAMA_CPP_CAPABILITIES,
    LOCAL_MODEL_ID,
    LocalModelClient,
    LocalModelServer,
)
from orchestrator.models import Limits, RunId, TaskId
from orchestrator.pricing import PriceTable
from orchestrator.testing import RecordingSink

from .fake_llama_server import SLOW_S
from .local_fakes import fake_command

WORKERS = 8
TIMEOUT_S = 3 * SLOW_S
"""The HTTP client's timeout and each attempt's deadline: three requests' worth, of a queue of 8."""


def slow_server(tmp_path: Path) -> LocalModelServer:
    state = tmp_path / "state"
    state.mkdir()
    return LocalModelServer(
        tmp_path / "model.gguf",
        threads=1,
        log_dir=tmp_path / "logs",
        ready_timeout_s=8.0,
        command=fake_command(state, "slow"),
    )


def request(i: int) -> ModelRequest:
    return ModelRequest(
        role="worker",
        model=LOCAL_MODEL_ID,
        task_id=TaskId(f"task_{i}"),
        messages=(UserMessage(content=f"hi {i}"),),
    )


async def test_local_queue_eight_workers_wait_in_the_gateway_without_timing_out(
    tmp_path: Path, sink: RecordingSink
) -> None:
    assert LLAMA_CPP_CAPABILITIES.parallel_requests == 1
    finished: list[float] = []
    async with slow_server(tmp_path) as server:
        client = LocalModelClient(server, timeout_s=TIMEOUT_S)
        gateway = Gateway(
            client, run_id=RunId("r"), sink=sink, prices=PriceTable.default(), limits=Limits()
        )

        async def attempt(i: int) -> None:
            # As the executor wraps every attempt: a deadline whose clock stops while it queues.
            with anyio.fail_after(TIMEOUT_S) as deadline, waits_excluded(deadline):
                reply = await gateway.complete(request(i))
            assert reply.text == f"hello from {server.pid}"
            finished.append(anyio.current_time())

        started = anyio.current_time()
        try:
            async with anyio.create_task_group() as tg:
                for i in range(WORKERS):
                    tg.start_soon(attempt, i)
        finally:
            await client.aclose()
    assert len(finished) == WORKERS
    assert max(finished) - started >= WORKERS * SLOW_S > 2 * TIMEOUT_S
    calls = sink.of("model_called")
    assert len(calls) == WORKERS and all(c.tries == 1 for c in calls)  # type: ignore[union-attr]
    assert not sink.of("model_call_retried") and not sink.of("model_call_failed")


async def test_local_queue_the_same_calls_sent_at_once_time_out(tmp_path: Path) -> None:
    """The control: without the gateway's queue, the wait happens on the HTTP client's clock."""
    timeouts: list[ModelTimeoutError] = []
    async with slow_server(tmp_path) as server:
        client = OpenAIChatClient(
            base_url=f"{server.base_url}/v1",
            api_key="local",
            capabilities=LLAMA_CPP_CAPABILITIES,
            timeout_s=TIMEOUT_S,
        )

        async def call(i: int) -> None:
            try:
                await client.complete(request(i))
            except ModelTimeoutError as exc:
                timeouts.append(exc)

        try:
            async with anyio.create_task_group() as tg:
                for i in range(WORKERS):
                    tg.start_soon(call, i)
        finally:
            await client.aclose()
    assert timeouts, "a one-at-a-time server with 8 requests at once must time some out"
