"""The gateway as the one retry owner: shared cooldowns, outage grace, abandoned calls counted."""

from __future__ import annotations

import anyio
import pytest

from orchestrator.errors import ModelAPIError, ModelOutageError
from orchestrator.events import Event
from orchestrator.gateway import Gateway
from orchestrator.llm import ModelReply, ModelRequest, UserMessage
from orchestrator.models import Limits, RunId, TokenUsage
from orchestrator.pricing import PriceTable
from orchestrator.retry import RetryPolicy
from orchestrator.testing import RecordingSink, ScriptedModel
from orchestrator.throttle import Throttle

POLICY = RetryPolicy(base_delay_s=0.001, max_delay_s=0.01)


def gateway(model: ScriptedModel, sink: RecordingSink, *, grace: float = 300.0) -> Gateway:
    return Gateway(
        model,
        run_id=RunId("r"),
        sink=sink,
        prices=PriceTable.default(),
        limits=Limits(outage_grace_s=grace),
        throttle=Throttle(POLICY, ceiling=64),
    )


def request(text: str = "hi") -> ModelRequest:
    return ModelRequest(role="worker", model="gpt-5.4-mini", messages=(UserMessage(content=text),))


async def test_gateway_one_429_holds_every_sibling_until_retry_after() -> None:
    sent: list[tuple[str, float]] = []
    limited = ModelAPIError("slow down", status_code=429, retryable=True, retry_after_s=0.2)
    state = {"first": True}

    def respond(req: ModelRequest) -> ModelReply:
        sent.append((req.messages[0].content, anyio.current_time()))
        if state["first"]:
            state["first"] = False
            raise limited
        return ModelReply(text="ok")

    retried = anyio.Event()

    class Signal(RecordingSink):
        def emit(self, event: Event) -> None:
            super().emit(event)
            if event.kind == "model_call_retried":
                retried.set()

    model = ScriptedModel().respond("worker", respond)
    gw = gateway(model, Signal())
    async with anyio.create_task_group() as tg:
        tg.start_soon(gw.complete, request("first"))
        await retried.wait()
        for i in range(5):
            tg.start_soon(gw.complete, request(f"sibling {i}"))
    assert len(sent) == 7 and gw.ledger.retries == 1
    assert all(at >= sent[0][1] + 0.2 for _, at in sent[1:])


async def test_gateway_gives_up_past_the_outage_grace_naming_it(sink: RecordingSink) -> None:
    def down(req: ModelRequest) -> ModelReply:
        raise ModelAPIError("bad gateway", status_code=502, retryable=True)

    gw = gateway(ScriptedModel().respond("worker", down), sink, grace=0.05)
    with pytest.raises(ModelOutageError, match="outage") as caught:
        await gw.complete(request())
    assert caught.value.outage_s >= 0.05 and caught.value.status_code == 502
    (failed,) = sink.of("model_call_failed")
    assert failed.error_type == "ModelOutageError"  # type: ignore[union-attr]
    assert len(sink.of("model_call_retried")) == failed.tries - 1  # type: ignore[union-attr]


async def test_gateway_counts_a_call_abandoned_at_cancel_as_wasted(sink: RecordingSink) -> None:
    started = anyio.Event()

    async def slow(req: ModelRequest) -> ModelReply:
        started.set()
        await anyio.sleep(10)
        return ModelReply(text="never")

    gw = gateway(ScriptedModel().respond("worker", slow), sink)
    async with anyio.create_task_group() as tg:
        tg.start_soon(gw.complete, request("x" * 400))
        await started.wait()
        tg.cancel_scope.cancel()
    wasted = gw.ledger.wasted.tokens
    assert wasted.input_tokens == 101 and wasted.estimated_tokens == 101
    assert gw.ledger.total.tokens.input_tokens == 101


async def test_gateway_estimates_usage_a_backend_did_not_report(sink: RecordingSink) -> None:
    """A stream without a usage chunk (llama.cpp) reports zeros; the gateway estimates them."""
    unreported = ModelReply(text="abcdefgh", usage=TokenUsage(requests=1))
    gw = gateway(ScriptedModel().respond("worker", lambda r: unreported), sink)
    await gw.complete(request("y" * 40))
    tokens = gw.ledger.total.tokens
    assert (tokens.input_tokens, tokens.output_tokens, tokens.estimated_tokens) == (11, 2, 13)
    (called,) = sink.of("model_called")
    assert called.tokens_estimated == 13  # type: ignore[union-attr]
