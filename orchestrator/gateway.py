"""The run's view of the model: the one retry owner, budgets before each call, usage priced, events.

A transport fault (429, 5xx, a cut connection, a timeout, an undecodable body) is retried here, as
the same request: the attempt above never sees it, so it never counts as an attempt, never
escalates and never re-runs a tool. Waits are shared per model through the engine's `Throttle`.
Past `Limits.outage_grace_s` of failures the call ends in `ModelOutageError`.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable, Generator
from contextlib import AbstractAsyncContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace

import anyio

from .budget import Hold, Reservations
from .errors import (
    ModelAPIError,
    ModelBehaviorError,
    ModelError,
    ModelOutageError,
    ModelTimeoutError,
)
from .events import EventSink, ModelCalled, ModelCallFailed, ModelCallRetried
from .ledger import Ledger
from .llm import (
    ModelCapabilities,
    ModelClient,
    ModelReply,
    ModelRequest,
    ReplyDone,
    StreamEvent,
    StreamingModelClient,
    estimate_input_tokens,
    estimate_usage,
)
from .models import Limits, RunId, TokenUsage
from .pricing import PriceTable
from .retry import RetryPolicy, is_transport, outage_message, retry_delay_s
from .throttle import Throttle

_MIN_ANSWER_TOKENS = 256
"""The smallest output cap the final answer is shrunk to when the held-back share is tight."""

_ATTEMPT_SCOPE: ContextVar[anyio.CancelScope | None] = ContextVar("attempt_scope", default=None)
"""The deadline scope of the attempt a model call belongs to, if any (see `waits_excluded`)."""


@contextmanager
def waits_excluded(scope: anyio.CancelScope) -> Generator[None]:
    """Time the gateway spends waiting out transport faults inside this block moves `scope`'s
    deadline by as much: an outage must not use up an attempt's time budget."""
    token = _ATTEMPT_SCOPE.set(scope)
    try:
        yield
    finally:
        _ATTEMPT_SCOPE.reset(token)


@contextmanager
def _paused() -> Generator[None]:
    """Stop the attempt's clock (if there is one) while the block waits on the API's account."""
    scope = _ATTEMPT_SCOPE.get()
    if scope is None:
        yield
        return
    saved, started = scope.deadline, anyio.current_time()
    scope.deadline = math.inf
    try:
        yield
    finally:
        scope.deadline = saved + (anyio.current_time() - started)


async def _wait(delay: float) -> None:
    """Sleep out a backoff with the attempt's clock stopped."""
    with _paused():
        await anyio.sleep(delay)


@dataclass(slots=True)
class _Call:
    """One logical call's progress across its HTTP tries."""

    request: ModelRequest
    started: float = field(default_factory=time.perf_counter)
    tries: int = 0
    failures: int = 0
    text: list[str] = field(default_factory=lambda: [])
    """Text of the current try already handed to a stream's consumer (for cost estimates)."""
    delivered: bool = False
    """Some text reached the stream's consumer: a retry must come back whole."""
    in_flight: bool = False
    """A request is out: if the caller stops now, it is abandoned (and may be billed)."""
    settled: bool = False
    """Ended as a reply or a final failure."""


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
        throttle: Throttle | None = None,
        clock: Callable[[], float] = time.time,
        ledger: Ledger | None = None,
    ) -> None:
        self._client = client
        self._run_id = run_id
        self.sink = sink
        self._prices = prices
        self._limits = limits
        self._clock = clock
        parallel = max(1, client.capabilities.parallel_requests)
        self._throttle = throttle or Throttle(RetryPolicy(), ceiling=parallel)
        self._limiter = anyio.CapacityLimiter(parallel)
        self.ledger = ledger or Ledger()
        """What the budgets are checked against (a resumed run's starts from its journal)."""
        self._reserved = Reservations()
        """Worst cases of the calls in flight, held against the budgets until they end."""
        self._room: anyio.Event | None = None
        """Set when a call ends: calls waiting for its hold to be released look again."""

    @property
    def capabilities(self) -> ModelCapabilities:
        return self._client.capabilities

    def _hold(self, request: ModelRequest) -> Hold:
        tokens_in = estimate_input_tokens(request)
        tokens_out = request.max_output_tokens or self._limits.reserve_output_tokens
        worst = TokenUsage(input_tokens=tokens_in, output_tokens=tokens_out)
        return Hold(
            tokens=tokens_in + tokens_out,
            cost_usd=self._prices.cost(request.model, worst).cost_usd,
            tier=request.tier or "",
            task=request.task_id,
            answer=request.role == "synthesizer",
        )

    async def _reserve(self, request: ModelRequest) -> tuple[Hold, ModelRequest]:
        """Hold the call's worst case against every budget that applies, or refuse to start it.

        A call that fits only once calls in flight have ended (their holds are worst cases) waits
        for them, with its attempt's clock stopped. The final answer's call may shrink its output
        cap to what the held-back share still covers.

        Raises:
            BudgetExceededError: what is spent plus this call's worst case passes a budget (or
                passes it with what the calls in flight hold, and none is left to end).
        """
        while True:
            hold = self._hold(request)
            refusal = self._reserved.refusal(self._limits, self.ledger, hold)
            if refusal is None:
                return self._take(hold), request
            smaller = self._shrunk(request) if hold.answer else None
            if smaller is not None:
                return self._take(self._hold(smaller)), smaller
            if not self._reserved.busy or (
                self._reserved.refusal(self._limits, self.ledger, hold, spent_only=True)
            ):
                raise refusal.error()
            if self._room is None:
                self._room = anyio.Event()
            with _paused():
                await self._room.wait()

    def _take(self, hold: Hold) -> Hold:
        self._reserved.take(hold)
        return hold

    def _shrunk(self, request: ModelRequest) -> ModelRequest | None:
        """The answer's request with the largest output cap (halving, down to 256 tokens) that
        fits what the run has left, if any does."""
        cap = (request.max_output_tokens or self._limits.reserve_output_tokens) // 2
        while cap >= _MIN_ANSWER_TOKENS:
            smaller = replace(request, max_output_tokens=cap)
            if self._reserved.refusal(self._limits, self.ledger, self._hold(smaller)) is None:
                return smaller
            cap //= 2
        return None

    def _free(self, hold: Hold) -> None:
        """A call ended: its hold is released and calls waiting for room look again."""
        self._reserved.release(hold)
        if self._room is not None:
            self._room.set()
            self._room = None

    async def complete(self, request: ModelRequest) -> ModelReply:
        hold, request = await self._reserve(request)
        call = _Call(request=request)
        try:
            return await self._complete(call)
        finally:
            self._abandoned(call)
            self._free(hold)

    async def _complete(self, call: _Call) -> ModelReply:
        request = call.request
        while True:
            async with self._slot(request):
                call.tries += 1
                call.in_flight = True
                try:
                    reply = await self._client.complete(request)
                except ModelError as exc:
                    call.in_flight = False
                    delay = self._failed(call, exc)
                else:
                    call.in_flight = False
                    self._replied(call, reply)
                    return reply
            await _wait(delay)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        """Stream when the backend can, else one `ReplyDone` after a plain call.

        A fault before any text reached the consumer retries the stream; after some did, the
        reply is fetched again whole and handed over as one `ReplyDone` (the consumer treats the
        final reply as the authority).
        """
        if not (isinstance(self._client, StreamingModelClient) and self.capabilities.streaming):
            yield ReplyDone(reply=await self.complete(request))
            return
        hold, request = await self._reserve(request)
        call = _Call(request=request)
        try:
            while not call.settled:
                delay = 0.0
                async with self._slot(request):
                    call.tries += 1
                    call.in_flight = True
                    try:
                        async for event in self._client.stream(request):
                            if isinstance(event, ReplyDone):
                                call.in_flight = False
                                self._replied(call, event.reply)
                            else:
                                call.text.append(event.text)
                                call.delivered = True
                            yield event
                    except ModelError as exc:
                        call.in_flight = False
                        delay = self._failed(call, exc)
                if call.delivered and not call.settled:
                    yield ReplyDone(reply=await self._complete(call))
                    return
                await _wait(delay)
        finally:
            self._abandoned(call)
            self._free(hold)

    def _slot(self, request: ModelRequest) -> _Slot:
        return _Slot(self._throttle, self._limiter, request)

    # -- outcomes -----------------------------------------------------------------------------
    def _replied(self, call: _Call, reply: ModelReply) -> None:
        call.settled = True
        self._throttle.succeeded(call.request.model, reply.rate_limits)
        tokens = reply.usage
        if tokens.input_tokens == 0 and tokens.output_tokens == 0:
            text = reply.text + "".join(c.arguments for c in reply.tool_calls)
            tokens = estimate_usage(call.request, text)
        self._record(call, tokens, model=reply.model or call.request.model)

    def _failed(self, call: _Call, exc: ModelError) -> float:
        """Settle a failed try: return how long to wait before the next, or raise."""
        request = call.request
        if isinstance(exc, ModelBehaviorError):
            call.settled = True
            if exc.usage is not None:
                self._record(call, exc.usage, model=exc.model or request.model, wasted=True)
            self._emit_failed(call, exc)
            raise exc
        if not is_transport(exc):
            call.settled = True
            self._emit_failed(call, exc)
            raise exc
        if _was_processed(exc) or call.text:
            self._record(call, _estimate(call), model=request.model, wasted=True, final=False)
            call.text.clear()
        call.failures += 1
        cooldown, failing_for = self._throttle.failed(request.model, exc)
        if failing_for >= self._limits.outage_grace_s:
            call.settled = True
            outage = ModelOutageError(
                outage_message(request.role, request.model, failing_for, exc),
                status_code=_status(exc),
                outage_s=failing_for,
            )
            self._emit_failed(call, outage)
            raise outage from exc
        delay = retry_delay_s(self._throttle.policy, exc, call.failures, self._throttle.draw())
        self.ledger.retries += 1
        self.sink.emit(
            ModelCallRetried(
                run_id=self._run_id,
                at=self._clock(),
                role=request.role,
                model=request.model,
                task_id=request.task_id,
                try_number=call.tries,
                error_type=type(exc).__name__,
                status_code=_status(exc),
                message=str(exc)[:300],
                delay_s=round(delay, 4),
                cooldown_s=round(cooldown, 4),
            )
        )
        return delay

    def _abandoned(self, call: _Call) -> None:
        """The caller stopped (cancel, an early close) with a request in flight: count it."""
        if call.in_flight and not call.settled:
            call.settled = True
            self._record(call, _estimate(call), model=call.request.model, wasted=True)

    def _record(
        self,
        call: _Call,
        tokens: TokenUsage,
        *,
        model: str,
        wasted: bool = False,
        final: bool = True,
    ) -> None:
        request = call.request
        usage = self._prices.cost(model, tokens)
        event = ModelCalled(
            run_id=self._run_id,
            at=self._clock(),
            role=request.role,
            model=model,
            tier=request.tier,
            task_id=request.task_id,
            tokens_in=tokens.input_tokens,
            tokens_cached=tokens.cached_input_tokens,
            tokens_out=tokens.output_tokens,
            tokens_reasoning=tokens.reasoning_tokens,
            cost_usd=usage.cost_usd,
            duration_ms=(time.perf_counter() - call.started) * 1000,
            tries=call.tries,
            wasted=wasted,
            tokens_estimated=tokens.estimated_tokens,
            requests=tokens.requests,
            unpriced=bool(usage.unpriced_models),
            final=final,
            request_model="" if model == request.model else request.model,
        )
        self.ledger.add(event)
        self.sink.emit(event)

    def _emit_failed(self, call: _Call, exc: ModelError) -> None:
        request = call.request
        self.sink.emit(
            ModelCallFailed(
                run_id=self._run_id,
                at=self._clock(),
                role=request.role,
                model=request.model,
                task_id=request.task_id,
                error_type=type(exc).__name__,
                message=str(exc)[:500],
                retryable=is_transport(exc),
                tries=call.tries,
            )
        )


class _Slot:
    """The model's shared place (throttle) first, then the backend's parallel cap."""

    def __init__(self, throttle: Throttle, limiter: anyio.CapacityLimiter, request: ModelRequest):
        self._throttle = throttle
        self._limiter = limiter
        self._request = request
        self._place: AbstractAsyncContextManager[None] | None = None
        self._token = object()
        """Who holds the cap: this slot, not a task, since a stream left open may be closed by
        the event loop's finalizer in another task."""

    async def __aenter__(self) -> None:
        with _paused():
            await self._enter()

    async def _enter(self) -> None:
        model = self._request.model
        while True:
            self._place = self._throttle.slot(model, lambda: estimate_input_tokens(self._request))
            await self._place.__aenter__()
            try:
                await self._limiter.acquire_on_behalf_of(self._token)
            except BaseException:
                await self._place.__aexit__(None, None, None)
                raise
            if self._throttle.is_open(model):
                return
            # A 429 arrived while this call waited for the backend's cap: wait it out too.
            await self.__aexit__()

    async def __aexit__(self, *exc_info: object) -> None:
        self._limiter.release_on_behalf_of(self._token)
        assert self._place is not None
        await self._place.__aexit__(None, None, None)


def _status(exc: ModelError) -> int | None:
    return exc.status_code if isinstance(exc, ModelAPIError) else None


def _was_processed(exc: ModelError) -> bool:
    """The server may have billed the request: it timed out in flight or its 200 body was cut."""
    return isinstance(exc, ModelTimeoutError) or (
        isinstance(exc, ModelAPIError) and exc.status_code == 200
    )


def _estimate(call: _Call) -> TokenUsage:
    return estimate_usage(call.request, "".join(call.text))
