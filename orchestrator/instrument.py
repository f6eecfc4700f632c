"""Adapters the engine puts between roles and the gateway: per-tier accounting tags and tool-call
events. They satisfy the same Protocols as what they wrap, so roles never see them."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

from .events import EventSink, ToolCalled
from .gateway import Gateway
from .llm import (
    ModelCapabilities,
    ModelClient,
    ModelReply,
    ModelRequest,
    StreamEvent,
    ToolCall,
    ToolDefinition,
    ToolKind,
)
from .models import RunId
from .roles import Reviewer, ReviewRequest, Verdict
from .toolkit import Tool, ToolContext, ToolOutput


class TierTag:
    """Tags planner-side requests with the tier that serves them, for per-tier accounting."""

    def __init__(self, client: Gateway, tier: str) -> None:
        self._client = client
        self._tier = tier

    @property
    def capabilities(self) -> ModelCapabilities:
        return self._client.capabilities

    async def complete(self, request: ModelRequest) -> ModelReply:
        return await self._client.complete(self._tag(request))

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        async for event in self._client.stream(self._tag(request)):
            yield event

    def _tag(self, request: ModelRequest) -> ModelRequest:
        return request if request.tier else replace(request, tier=self._tier)


def tiered(gateway: Gateway, tier: str) -> TierTag:
    return TierTag(gateway, tier)


class TopReviewer:
    """Runs the reviewer role on the top tier's accounting tag."""

    def __init__(self, reviewer: Reviewer, tier: str) -> None:
        self._reviewer = reviewer
        self._tier = tier

    async def review(self, request: ReviewRequest, client: ModelClient) -> tuple[Verdict, ...]:
        assert isinstance(client, Gateway)
        return await self._reviewer.review(request, tiered(client, self._tier))


class Instrumented:
    """Wraps a tool so every call becomes a `tool_called` event with its duration."""

    def __init__(
        self, tool: Tool, sink: EventSink, run_id: RunId, clock: Callable[[], float]
    ) -> None:
        self._tool, self._sink, self._run_id, self._clock = tool, sink, run_id, clock

    @property
    def name(self) -> str:
        return self._tool.name

    def definition(self, *, native: frozenset[ToolKind]) -> ToolDefinition:
        return self._tool.definition(native=native)

    async def __call__(self, call: ToolCall, ctx: ToolContext) -> ToolOutput:
        started = time.perf_counter()
        is_error = True
        try:
            output = await self._tool(call, ctx)
            is_error = output.is_error
            return output
        finally:
            self._sink.emit(
                ToolCalled(
                    run_id=self._run_id,
                    at=self._clock(),
                    task_id=ctx.task_id,
                    tool=call.name,
                    call_id=call.call_id,
                    is_error=is_error,
                    duration_ms=(time.perf_counter() - started) * 1000,
                )
            )
