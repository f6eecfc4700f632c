"""Role adapters that fill each request's unset generation options from config before the
engine's gateway sees it, so the budgets reserve the output cap the call really has."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import cast

from .engine_options import RoleOptions
from .generation import Generation, GenOptions
from .llm import (
    ModelCapabilities,
    ModelClient,
    ModelReply,
    ModelRequest,
    Role,
    StreamEvent,
    StreamingModelClient,
)
from .models import Plan, TaskSpec, TierSpec
from .roles import (
    Planner,
    PlanRequest,
    Reviewer,
    ReviewRequest,
    StreamingPlanner,
    SynthesisRequest,
    Synthesizer,
    Verdict,
    Worker,
    WorkOutcome,
    WorkRequest,
)

Resolve = Callable[[Role, str], GenOptions]
"""The options a call of a role on a tier gets (see `Generation.for_call`)."""
Roles = tuple[Planner, Worker, Reviewer, Synthesizer]


class GenerationClient:
    """A role's client whose requests get the configured options where they set none.

    A value the role put on its request wins; then the configured one; for the output cap,
    last the server's `default_max_output_tokens`. Requests without a tier (planner side) are
    resolved for `tier`, the tier that serves them.
    """

    def __init__(self, client: ModelClient, resolve: Resolve, *, tier: str) -> None:
        self._client = client
        self._resolve = resolve
        self._tier = tier

    @property
    def capabilities(self) -> ModelCapabilities:
        return self._client.capabilities

    def filled(self, request: ModelRequest) -> ModelRequest:
        """`request` with its unset options filled in."""
        own = GenOptions(
            temperature=request.temperature,
            max_output_tokens=request.max_output_tokens,
            reasoning_effort=request.reasoning_effort,
        )
        options = own.over(self._resolve(request.role, request.tier or self._tier))
        cap = options.max_output_tokens or self.capabilities.default_max_output_tokens
        return replace(
            request,
            temperature=options.temperature,
            max_output_tokens=cap,
            reasoning_effort=options.reasoning_effort,
        )

    async def complete(self, request: ModelRequest) -> ModelReply:
        return await self._client.complete(self.filled(request))

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        # What the engine hands roles (its gateway, tier tags) always streams.
        client = cast(StreamingModelClient, self._client)
        async for event in client.stream(self.filled(request)):
            yield event


@dataclass(frozen=True, slots=True)
class _Filler:
    resolve: Resolve
    top: str
    """The tier planner, reviewer and synthesizer calls run on."""

    def __call__(self, client: ModelClient) -> GenerationClient:
        return GenerationClient(client, self.resolve, tier=self.top)


class _Planner:
    def __init__(self, inner: Planner, fill: _Filler) -> None:
        self._inner, self._fill = inner, fill

    async def plan(self, request: PlanRequest, client: ModelClient) -> Plan:
        return await self._inner.plan(request, self._fill(client))


class _StreamingPlanner(_Planner):
    def __init__(self, inner: StreamingPlanner, fill: _Filler) -> None:
        super().__init__(inner, fill)
        self._streaming = inner

    def plan_stream(
        self, request: PlanRequest, client: ModelClient
    ) -> AsyncIterator[TaskSpec | Plan]:
        return self._streaming.plan_stream(request, self._fill(client))


class _Worker:
    def __init__(self, inner: Worker, fill: _Filler) -> None:
        self._inner, self._fill = inner, fill

    async def work(self, request: WorkRequest, client: ModelClient) -> WorkOutcome:
        return await self._inner.work(request, self._fill(client))


class _Reviewer:
    def __init__(self, inner: Reviewer, fill: _Filler) -> None:
        self._inner, self._fill = inner, fill

    async def review(self, request: ReviewRequest, client: ModelClient) -> tuple[Verdict, ...]:
        return await self._inner.review(request, self._fill(client))


class _Synthesizer:
    def __init__(self, inner: Synthesizer, fill: _Filler) -> None:
        self._inner, self._fill = inner, fill

    async def synthesize(self, request: SynthesisRequest, client: ModelClient) -> str:
        return await self._inner.synthesize(request, self._fill(client))


def with_generation(
    roles: Roles,
    generation: Generation,
    *,
    base: RoleOptions,
    ladder: tuple[TierSpec, ...],
    planner_tier: str | None,
) -> Roles:
    """The roles, each calling the model through a `GenerationClient`: `generation` over the
    backend's `base` options, the planner side resolved for the planner tier (else the top).

    Raises:
        ConfigError: `generation` names a tier `ladder` does not have.
    """
    names = [tier.name for tier in ladder]
    generation.check_tiers(names)
    defaults = GenOptions(temperature=base.temperature, max_output_tokens=base.max_output_tokens)

    def resolve(role: Role, tier: str) -> GenOptions:
        return generation.for_call(role, tier).over(defaults)

    planner, worker, reviewer, synthesizer = roles
    fill = _Filler(resolve, planner_tier if planner_tier in names else names[-1])
    wrapped: Planner = (
        _StreamingPlanner(planner, fill)
        if isinstance(planner, StreamingPlanner)
        else _Planner(planner, fill)
    )
    return (
        wrapped,
        _Worker(worker, fill),
        _Reviewer(reviewer, fill),
        _Synthesizer(synthesizer, fill),
    )
