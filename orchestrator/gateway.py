"""The run's view of the model: budgets checked before every call, usage priced, calls as events."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import anyio

from .errors import BudgetExceededError, ModelAPIError, ModelError, ModelTimeoutError
from .events import EventSink, ModelCalled, ModelCallFailed
from .llm import (
    ModelCapabilities,
    ModelClient,
    ModelReply,
    ModelRequest,
    ReplyDone,
    StreamEvent,
    StreamingModelClient,
)
from .models import Limits, RunId, TaskId, Usage
from .pricing import PriceTable


@dataclass(slots=True)
class Ledger:
    """Usage totals of one run, by role, by tier and by task."""

    total: Usage = field(default_factory=Usage)
    by_role: dict[str, Usage] = field(default_factory=lambda: {})
    by_tier: dict[tuple[str, str], Usage] = field(default_factory=lambda: {})
    by_task: dict[TaskId, Usage] = field(default_factory=lambda: {})
    calls: int = 0

    def add(self, request: ModelRequest, usage: Usage) -> None:
        self.total += usage
        self.calls += 1
        self.by_role[request.role] = self.by_role.get(request.role, Usage()) + usage
        key = (request.tier, request.model)
        self.by_tier[key] = self.by_tier.get(key, Usage()) + usage
        if request.task_id is not None:
            self.by_task[request.task_id] = self.by_task.get(request.task_id, Usage()) + usage


class Gateway:
    """Wraps the backend for one run; satisfies `ModelClient` so roles never see the difference."""

    def __init__(
        self,
        client: ModelClient,
        *,
        run_id: RunId,
        sink: EventSink,
        prices: PriceTable,
        limits: Limits,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._run_id = run_id
        self.sink = sink
        self._prices = prices
        self._limits = limits
        self._clock = clock
        self._limiter = anyio.CapacityLimiter(max(1, client.capabilities.parallel_requests))
        self.ledger = Ledger()

    @property
    def capabilities(self) -> ModelCapabilities:
        return self._client.capabilities

    def _check_budget(self) -> None:
        limits, ledger = self._limits, self.ledger
        if limits.max_model_calls is not None and ledger.calls >= limits.max_model_calls:
            raise BudgetExceededError(f"model call limit reached ({limits.max_model_calls})")
        if limits.max_cost_usd is not None and ledger.total.cost_usd >= limits.max_cost_usd:
            raise BudgetExceededError(
                f"cost limit reached: ${ledger.total.cost_usd:.4f} of ${limits.max_cost_usd:.4f}"
            )
        tokens = ledger.total.tokens.total_tokens
        if limits.max_total_tokens is not None and tokens >= limits.max_total_tokens:
            raise BudgetExceededError(
                f"token limit reached ({tokens} of {limits.max_total_tokens})"
            )

    async def complete(self, request: ModelRequest) -> ModelReply:
        self._check_budget()
        async with self._limiter:
            started = time.perf_counter()
            try:
                reply = await self._client.complete(request)
            except ModelError as exc:
                self._failed(request, exc)
                raise
        self._record(request, reply, started)
        return reply

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        """Stream when the backend can, else one `ReplyDone` after a plain call."""
        if not (isinstance(self._client, StreamingModelClient) and self.capabilities.streaming):
            yield ReplyDone(reply=await self.complete(request))
            return
        self._check_budget()
        started = time.perf_counter()
        try:
            async with self._limiter:
                async for event in self._client.stream(request):
                    if isinstance(event, ReplyDone):
                        self._record(request, event.reply, started)
                    yield event
        except ModelError as exc:
            self._failed(request, exc)
            raise

    def _record(self, request: ModelRequest, reply: ModelReply, started: float) -> None:
        usage = self._prices.cost(reply.model or request.model, reply.usage)
        self.ledger.add(request, usage)
        tokens = reply.usage
        self.sink.emit(
            ModelCalled(
                run_id=self._run_id,
                at=self._clock(),
                role=request.role,
                model=reply.model or request.model,
                tier=request.tier,
                task_id=request.task_id,
                tokens_in=tokens.input_tokens,
                tokens_cached=tokens.cached_input_tokens,
                tokens_out=tokens.output_tokens,
                tokens_reasoning=tokens.reasoning_tokens,
                cost_usd=usage.cost_usd,
                duration_ms=(time.perf_counter() - started) * 1000,
            )
        )

    def _failed(self, request: ModelRequest, exc: ModelError) -> None:
        retryable = isinstance(exc, ModelTimeoutError) or (
            isinstance(exc, ModelAPIError) and exc.retryable
        )
        self.sink.emit(
            ModelCallFailed(
                run_id=self._run_id,
                at=self._clock(),
                role=request.role,
                model=request.model,
                task_id=request.task_id,
                error_type=type(exc).__name__,
                message=str(exc)[:500],
                retryable=retryable,
            )
        )
