"""Budgets reserved before spending: concurrent calls cannot all pass the check and then overshoot."""

from __future__ import annotations

import random
from pathlib import Path

import anyio
import pytest

from orchestrator.budget import Hold, Reservations
from orchestrator.errors import BudgetExceededError, ConfigError
from orchestrator.gateway import Gateway
from orchestrator.ledger import Ledger
from orchestrator.llm import ModelReply, ModelRequest, UserMessage
from orchestrator.models import Limits, RunId, TokenUsage
from orchestrator.pricing import PriceTable
from orchestrator.retry import RetryPolicy
from orchestrator.testing import RecordingSink, ScriptedModel
from orchestrator.throttle import Throttle

from .helpers import engine

PRICES = PriceTable.default()
MODEL = "gpt-5.4-mini"


@pytest.mark.parametrize(
    ("limits", "reserved", "hold", "refused"),
    [
        (Limits(max_model_calls=2), Reservations(calls=1), Hold(tokens=1, cost_usd=0), False),
        (Limits(max_model_calls=2), Reservations(calls=2), Hold(tokens=1, cost_usd=0), True),
        (Limits(max_total_tokens=100), Reservations(tokens=60), Hold(tokens=40, cost_usd=0), False),
        (Limits(max_total_tokens=100), Reservations(tokens=61), Hold(tokens=40, cost_usd=0), True),
        (Limits(max_cost_usd=1.0), Reservations(cost_usd=0.5), Hold(tokens=1, cost_usd=0.5), False),
        (Limits(max_cost_usd=1.0), Reservations(cost_usd=0.6), Hold(tokens=1, cost_usd=0.5), True),
    ],
    ids=["calls-fit", "calls-full", "tokens-fit", "tokens-full", "cost-fit", "cost-full"],
)
def test_reservations_refuse_a_call_whose_worst_case_does_not_fit(
    limits: Limits, reserved: Reservations, hold: Hold, refused: bool
) -> None:
    assert (reserved.refusal(limits, Ledger(), hold) is not None) == refused


def _request(rng: random.Random) -> ModelRequest:
    return ModelRequest(
        role="worker",
        model=MODEL,
        messages=(UserMessage(content="x" * rng.randint(40, 4_000)),),
        max_output_tokens=rng.randint(50, 2_000),
    )


async def _one_run(seed: int) -> None:
    """64 callers at once against random budgets; the replies use at most what was reserved."""
    rng = random.Random(seed)
    limits = Limits(
        max_model_calls=rng.choice([None, rng.randint(1, 80)]),
        max_cost_usd=rng.choice([None, rng.uniform(0.0005, 0.05)]),
        max_total_tokens=rng.choice([None, rng.randint(500, 60_000)]),
    )

    def reply(request: ModelRequest) -> ModelReply:
        from orchestrator.llm import estimate_input_tokens

        cap = request.max_output_tokens or 1
        usage = TokenUsage(
            input_tokens=estimate_input_tokens(request),
            output_tokens=rng.randint(1, cap),
            requests=1,
        )
        return ModelReply(text="ok", usage=usage)

    model = ScriptedModel().respond("worker", reply)
    gateway = Gateway(
        model,
        run_id=RunId("r"),
        sink=RecordingSink(),
        prices=PRICES,
        limits=limits,
        throttle=Throttle(RetryPolicy(), ceiling=64),
    )
    requests = [_request(rng) for _ in range(64)]
    refused = 0

    async def call(request: ModelRequest) -> None:
        nonlocal refused
        try:
            await gateway.complete(request)
        except BudgetExceededError:
            refused += 1

    async with anyio.create_task_group() as tg:
        for request in requests:
            tg.start_soon(call, request)
    ledger = gateway.ledger
    assert ledger.calls + refused == 64
    if limits.max_model_calls is not None:
        assert ledger.calls <= limits.max_model_calls
        if limits.max_cost_usd is None and limits.max_total_tokens is None:
            assert ledger.calls == min(64, limits.max_model_calls)  # exact: all that fit ran
    if limits.max_cost_usd is not None:
        assert ledger.total.cost_usd <= limits.max_cost_usd + 1e-12
    if limits.max_total_tokens is not None:
        assert ledger.total.tokens.total_tokens <= limits.max_total_tokens


async def test_budget_never_overshoots_under_64_concurrent_calls() -> None:
    """1,000 seeded runs: with replies within their reservation, no budget is ever passed, and
    `max_model_calls=N` makes exactly min(64, N) calls."""
    for seed in range(1_000):
        await _one_run(seed)


async def test_a_cost_budget_with_an_unpriced_model_fails_at_start(tmp_path: Path) -> None:
    """gpt-5.5 (the default top tier) has no default price: its spend would count as $0."""
    model = ScriptedModel()
    eng = engine(model, tmp_path, limits=Limits(max_cost_usd=1.0))
    with pytest.raises(ConfigError, match=r"gpt-5\.5 has no price.*PriceTable\.default"):
        await eng.run("g")
    assert model.calls == []
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").glob("*/journal*"))
