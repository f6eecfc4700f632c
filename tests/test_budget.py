"""Budgets reserved before spending: concurrent calls cannot all pass the check and then overshoot."""

from __future__ import annotations

import random
from pathlib import Path

import anyio
import pytest

from orchestrator.budget import Hold, Reservations, held_back
from orchestrator.errors import BudgetExceededError, ConfigError
from orchestrator.gateway import Gateway
from orchestrator.ledger import Ledger
from orchestrator.llm import ModelReply, ModelRequest, UserMessage
from orchestrator.models import Budget, Limits, RunId, TokenUsage
from orchestrator.pricing import PriceTable
from orchestrator.retry import RetryPolicy
from orchestrator.testing import RecordingSink, ScriptedModel
from orchestrator.throttle import Throttle

from .helpers import engine

PRICES = PriceTable.default()
MODEL = "gpt-5.4-mini"


def _reserved(*, calls: int = 0, tokens: int = 0, cost_usd: float = 0.0) -> Reservations:
    reserved = Reservations()
    reserved.take(Hold(calls=calls, tokens=tokens, cost_usd=cost_usd))
    return reserved


def _no_share(**caps: float) -> Limits:
    return Limits(answer_share=0.0, **caps)  # pyright: ignore[reportArgumentType]


@pytest.mark.parametrize(
    ("limits", "reserved", "hold", "refused"),
    [
        (_no_share(max_model_calls=2), _reserved(calls=1), Hold(tokens=1, cost_usd=0), False),
        (_no_share(max_model_calls=2), _reserved(calls=2), Hold(tokens=1, cost_usd=0), True),
        (_no_share(max_total_tokens=100), _reserved(tokens=60), Hold(tokens=40, cost_usd=0), False),
        (_no_share(max_total_tokens=100), _reserved(tokens=61), Hold(tokens=40, cost_usd=0), True),
        (_no_share(max_cost_usd=1.0), _reserved(cost_usd=0.5), Hold(tokens=1, cost_usd=0.5), False),
        (_no_share(max_cost_usd=1.0), _reserved(cost_usd=0.6), Hold(tokens=1, cost_usd=0.5), True),
        # 10 % held back for the answer: work may use $0.90; the answer's call may use it all.
        (Limits(max_cost_usd=1.0), _reserved(cost_usd=0.5), Hold(tokens=1, cost_usd=0.45), True),
        (
            Limits(max_cost_usd=1.0),
            _reserved(cost_usd=0.5),
            Hold(tokens=1, cost_usd=0.45, answer=True),
            False,
        ),
        (Limits(max_model_calls=10), _reserved(calls=9), Hold(tokens=1, cost_usd=0), True),
        (
            Limits(max_model_calls=10),
            _reserved(calls=9),
            Hold(tokens=1, cost_usd=0, answer=True),
            False,
        ),
    ],
    ids=[
        "calls-fit",
        "calls-full",
        "tokens-fit",
        "tokens-full",
        "cost-fit",
        "cost-full",
        "cost-share-work",
        "cost-share-answer",
        "calls-share-work",
        "calls-share-answer",
    ],
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
            work_calls = held_back(
                Budget(max_model_calls=limits.max_model_calls), limits.answer_share
            ).max_model_calls
            assert ledger.calls == min(64, work_calls or 0)  # exact: all that fit ran
    if limits.max_cost_usd is not None:
        assert ledger.total.cost_usd <= limits.max_cost_usd + 1e-12
    if limits.max_total_tokens is not None:
        assert ledger.total.tokens.total_tokens <= limits.max_total_tokens


@pytest.mark.timeout(60)  # 1,000 runs: a few seconds alone, longer on a loaded 2-core machine
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


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        (Limits(tier_budgets={"fronteir": Budget(max_model_calls=3)}), r"unknown tier.*fronteir"),
        (Limits(answer_share=1.0), r"answer_share must be in \[0, 1\)"),
        (Limits(tier_budgets={"frontier": Budget(max_cost_usd=1.0)}), r"gpt-5\.5 has no price"),
        (Limits(task_budget=Budget(max_cost_usd=0.1)), r"gpt-5\.5 has no price"),
    ],
    ids=["unknown-tier", "share", "tier-cost-unpriced", "task-cost-unpriced"],
)
async def test_budgets_that_cannot_hold_fail_at_start(
    tmp_path: Path, limits: Limits, message: str
) -> None:
    model = ScriptedModel()
    with pytest.raises(ConfigError, match=message):
        await engine(model, tmp_path, limits=limits).run("g")
    assert model.calls == []


def test_a_tier_cost_cap_on_priced_tiers_only_needs_those_priced() -> None:
    from orchestrator.budget import check_budgets
    from orchestrator.models import DEFAULT_LADDER

    check_budgets(Limits(tier_budgets={"mini": Budget(max_cost_usd=1.0)}), DEFAULT_LADDER, PRICES)
