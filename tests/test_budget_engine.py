"""Run budgets hold for the whole engine under 64-way concurrency (issue 12): in seeded runs of 64
concurrent scripted executors, spend never passes a cost or token budget by more than one call's
reservation, `max_model_calls=N` makes at most N calls, and a budget stop ends the run normally."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import anyio.lowlevel
import pytest

from orchestrator.agents.planner import DagPlanner
from orchestrator.agents.reviewer import BatchReviewer
from orchestrator.agents.synthesizer import AnswerSynthesizer
from orchestrator.agents.worker import ExecutorWorker
from orchestrator.llm import ModelReply, ModelRequest, estimate_input_tokens
from orchestrator.models import Limits, RunResult, TierSpec, TokenUsage
from orchestrator.pricing import PriceTable
from orchestrator.run import Engine, EngineConfig
from orchestrator.testing import ScriptedModel

from .helpers import FAST_RETRY, accept_all, leaf, plan, task

WIDTH = 64
SEEDS_PER_CHUNK = 25
CHUNKS = 8
"""200 seeded runs in all, in chunks so each test stays a few seconds long."""
LADDER = (
    TierSpec(name="mini", model="gpt-5.4-mini"),
    TierSpec(name="base", model="gpt-5.4"),
)
"""Both tiers priced: a cost budget with an unpriced tier is refused at start."""
PRICES = PriceTable.default()
RESERVE = Limits().reserve_output_tokens
PLAN = plan(*(task(f"t{i:02d}") for i in range(WIDTH))).model_dump_json()
DONE = leaf("done").model_dump_json()


@dataclasses.dataclass(slots=True)
class _Replies:
    """Every role answers at once with seeded usage: the input as estimated, an output up to
    the request's cap; workers take 20-60 checkpoints, so the 64 calls overlap."""

    seed: int
    in_flight: int = 0
    peak: int = 0
    billed_usd: float = 0.0
    """What the replies handed out cost, counted here rather than by the engine."""
    billed_tokens: int = 0
    _count: int = 0

    def _usage(self, request: ModelRequest) -> TokenUsage:
        self._count += 1
        rng = random.Random(f"{self.seed}/{request.role}/{request.task_id}/{self._count}")
        usage = TokenUsage(
            input_tokens=estimate_input_tokens(request),
            output_tokens=rng.randint(1, request.max_output_tokens or RESERVE),
            requests=1,
        )
        self.billed_usd += PRICES.cost(request.model, usage).cost_usd
        self.billed_tokens += usage.total_tokens
        return usage

    def planner(self, request: ModelRequest) -> ModelReply:
        return ModelReply(text=PLAN, usage=self._usage(request))

    async def worker(self, request: ModelRequest) -> ModelReply:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            for _ in range(random.Random(f"{self.seed}/{request.task_id}").randint(20, 60)):
                await anyio.lowlevel.checkpoint()
        finally:
            self.in_flight -= 1
        return ModelReply(text=DONE, usage=self._usage(request))

    def reviewer(self, request: ModelRequest) -> ModelReply:
        return dataclasses.replace(accept_all(request), usage=self._usage(request))

    def synthesizer(self, request: ModelRequest) -> ModelReply:
        return ModelReply(text="final answer", usage=self._usage(request))

    def model(self) -> ScriptedModel:
        model = (
            ScriptedModel()
            .respond("planner", self.planner)
            .respond("worker", self.worker)
            .respond("reviewer", self.reviewer)
            .respond("synthesizer", self.synthesizer)
        )
        model.stream_chunk_chars = 1 << 20  # the plan in one piece: all 64 tasks ready at once
        return model


async def _run(
    seed: int, limits: Limits, tmp_path: Path
) -> tuple[RunResult, ScriptedModel, _Replies]:
    replies = _Replies(seed)
    model = replies.model()
    engine = Engine(
        model,
        planner=DagPlanner(),
        worker=ExecutorWorker(),
        reviewer=BatchReviewer(),
        synthesizer=AnswerSynthesizer(),
        config=EngineConfig(
            ladder=LADDER,
            limits=limits,
            prices=PRICES,
            run_root=tmp_path / f"runs{seed}",
            latency_history=False,
            retry=FAST_RETRY,
            isolation=False,
        ),
    )
    result = await engine.run("summarise 64 parts", workdir=tmp_path)
    return result, model, replies


def _worst_case(request: ModelRequest) -> tuple[float, int]:
    """The hold one call takes: input as sent plus its whole output cap, no cache discount."""
    tokens_in = estimate_input_tokens(request)
    worst = TokenUsage(input_tokens=tokens_in, output_tokens=request.max_output_tokens or RESERVE)
    return PRICES.cost(request.model, worst).cost_usd, worst.total_tokens


def _limits(
    rng: random.Random, whole: RunResult, whole_calls: int, plan_hold: tuple[float, int]
) -> Limits:
    """Random budgets, at least one set, each between 1.5 x the planner's worst case (the plan
    always fits, even with a share held back for the answer) and a whole run's spend."""
    cost = tokens = calls = None
    while cost is None and tokens is None and calls is None:
        if rng.random() < 0.6:
            cost = rng.uniform(1.5 * plan_hold[0], whole.usage.cost_usd)
        if rng.random() < 0.6:
            tokens = rng.randint(int(1.5 * plan_hold[1]), whole.usage.tokens.total_tokens)
        if rng.random() < 0.6:
            calls = rng.randint(2, whole_calls)
    return Limits(
        max_parallel=WIDTH, max_cost_usd=cost, max_total_tokens=tokens, max_model_calls=calls
    )


@pytest.mark.timeout(60)
@pytest.mark.parametrize("chunk", range(CHUNKS), ids=lambda c: f"seeds{c * SEEDS_PER_CHUNK}+")
async def test_engine_budgets_hold_under_64_concurrent_executors(
    chunk: int, tmp_path: Path
) -> None:
    """Seeded runs of 64 independent tasks at max_parallel=64: cost and tokens end within one
    call's reservation of their budget, calls within the cap, and every run ends normally."""
    whole, model, replies = await _run(-1, Limits(max_parallel=WIDTH), tmp_path)
    assert whole.status == "completed"
    peak = replies.peak
    assert peak >= WIDTH // 2, f"only {peak} worker calls overlapped: the test lost its point"
    whole_calls, plan_hold = len(model.calls), _worst_case(model.calls[0].request)
    for seed in range(chunk * SEEDS_PER_CHUNK, (chunk + 1) * SEEDS_PER_CHUNK):
        limits = _limits(random.Random(seed), whole, whole_calls, plan_hold)
        result, model, replies = await _run(seed, limits, tmp_path)
        holds = [_worst_case(c.request) for c in model.calls]
        calls = len(model.calls)
        where = (
            f"seed {seed}: budgets (USD, tokens, calls) {limits.max_cost_usd}, "
            f"{limits.max_total_tokens}, {limits.max_model_calls}; spent "
            f"{result.usage.cost_usd:.4f}, {result.usage.tokens.total_tokens}, {calls}"
        )
        assert result.status in ("completed", "partial"), where
        if limits.max_cost_usd is not None:
            spent = max(result.usage.cost_usd, replies.billed_usd)
            assert spent <= limits.max_cost_usd + max(h[0] for h in holds) + 1e-12, where
        if limits.max_total_tokens is not None:
            used = max(result.usage.tokens.total_tokens, replies.billed_tokens)
            assert used <= limits.max_total_tokens + max(h[1] for h in holds), where
        if limits.max_model_calls is not None:
            assert calls <= limits.max_model_calls, where
