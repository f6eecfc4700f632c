"""Time to first dispatch of a streamed plan, through the real `Engine` and `DagPlanner`.

A scripted planner streams its JSON reply in 16-character deltas, sleeping between them so the
whole reply takes `generation_s`; an event sink notes when the first `task_started` arrives.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter

import anyio

from orchestrator.agents.plan_stream import TaskStreamParser
from orchestrator.agents.planner import DagPlanner, PlanOut
from orchestrator.agents.reviewer import BatchReviewer, ReviewOut
from orchestrator.agents.schemas import TaskOut
from orchestrator.agents.synthesizer import AnswerSynthesizer
from orchestrator.agents.worker import ExecutorWorker, LeafReportOut
from orchestrator.events import Event
from orchestrator.llm import (
    ModelCapabilities,
    ModelReply,
    ModelRequest,
    ReplyDone,
    StreamEvent,
    TextDelta,
)
from orchestrator.models import Limits, TierSpec
from orchestrator.run import Engine, EngineConfig
from orchestrator.testing import ScriptedModel

from .loop import run as precise_run
from .trace import BenchCheckError

_LADDER = (TierSpec(name="mini", model="gpt-5.4-mini"), TierSpec(name="top", model="gpt-5.5"))
_CHUNK_CHARS = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamResult:
    """When the first task started, against the planner's whole generation time."""

    first_dispatch_s: float
    """From the first byte the planner sends to the first `task_started` event."""
    generation_s: float
    """From the first byte to the last, as measured."""
    earliest_fraction: float
    """The part of the reply written when the first task's JSON is complete: no engine can start
    a task sooner."""
    tasks: int
    plan_chars: int

    @property
    def fraction(self) -> float:
        return self.first_dispatch_s / self.generation_s


class PacedModel:
    """A `ScriptedModel` whose planner stream takes `generation_s`, as a real model's would."""

    def __init__(self, inner: ScriptedModel, *, generation_s: float) -> None:
        self._inner = inner
        self._generation_s = generation_s
        self.stream_started: float | None = None
        self.stream_finished: float | None = None

    @property
    def capabilities(self) -> ModelCapabilities:
        return self._inner.capabilities

    async def complete(self, request: ModelRequest) -> ModelReply:
        return await self._inner.complete(request)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        reply = await self._inner.complete(request)
        text = reply.text
        chunks = [text[i : i + _CHUNK_CHARS] for i in range(0, len(text), _CHUNK_CHARS)]
        pause = self._generation_s / max(1, len(chunks))
        self.stream_started = perf_counter()
        for chunk in chunks:
            await anyio.sleep(pause)  # the model writes this chunk
            if chunk is chunks[-1]:
                self.stream_finished = perf_counter()
            yield TextDelta(text=chunk)
        yield ReplyDone(reply=reply)


@dataclass(slots=True)
class TimingSink:
    """An `EventSink` that notes when each task started."""

    started: dict[str, float] = field(default_factory=lambda: {})
    starts: int = 0

    def emit(self, event: Event) -> None:
        if event.kind == "task_started":
            self.starts += 1
            self.started.setdefault(getattr(event, "task_id", ""), perf_counter())


def planner_reply() -> PlanOut:
    """A plan shaped like a planner's: six independent reads, then analyses, then a report."""
    areas = ("config", "cli", "scheduler", "executor", "storage", "network")
    tasks = [
        _task(f"read_{a}", f"Read the {a} modules and list their public functions, the files "
              f"they touch and every TODO or FIXME, with file and line numbers.", ())
        for a in areas
    ]
    for first, second in zip(areas[::2], areas[1::2], strict=True):
        tasks.append(_task(
            f"check_{first}_{second}",
            f"Using the listings of {first} and {second}, find calls between them that pass "
            f"unchecked values, and write each as file:line with a one-line explanation.",
            (f"read_{first}", f"read_{second}"),
        ))
    checks = tuple(t.id for t in tasks[len(areas):])
    tasks.append(_task("rank_findings", "Merge the findings, drop duplicates and rank them by "
                       "severity with a short justification for each.", checks))
    tasks.append(_task("write_report", "Write the audit report in markdown: summary, ranked "
                       "findings, and the three fixes to make first.", ("rank_findings",)))
    return PlanOut(
        rationale="Read each area in parallel, check the boundaries between pairs, then rank "
        "and report.",
        tasks=tasks,
    )


def _task(tid: str, instruction: str, deps: tuple[str, ...]) -> TaskOut:
    return TaskOut(id=tid, instruction=instruction, deps=list(deps), tools=[],
                   produces=f"the {tid.replace('_', ' ')} result", check_command=None,
                   tier=None, est_seconds=None)


def _worker_reply(request: ModelRequest) -> ModelReply:
    done = LeafReportOut(status="done", summary=f"{request.task_id} done", outputs=[],
                         confidence=0.9)
    return ModelReply(text=done.model_dump_json())


async def measure_streaming(*, generation_s: float = 1.0) -> StreamResult:
    """Run one goal through the engine with a paced streaming planner.

    Raises:
        BenchCheckError: the run did not complete, a task started twice, or no task started
            before the plan was fully written.
    """
    plan = planner_reply()
    scripted = (
        ScriptedModel()
        .script("planner", plan)
        .respond("worker", _worker_reply)
        .respond("reviewer", lambda _: ModelReply(text=ReviewOut(verdicts=[]).model_dump_json()))
        .respond("synthesizer", lambda _: ModelReply(text="report"))
    )
    model = PacedModel(scripted, generation_s=generation_s)
    sink = TimingSink()
    with tempfile.TemporaryDirectory() as root:
        engine = Engine(
            model, planner=DagPlanner(), worker=ExecutorWorker(), reviewer=BatchReviewer(),
            synthesizer=AnswerSynthesizer(), sinks=[sink],
            config=EngineConfig(ladder=_LADDER, limits=Limits(max_parallel=16),
                                run_root=Path(root), review="none"),
        )
        result = await engine.run("audit the package")
    return _check(result.status, plan, model, sink)


def _check(status: str, plan: PlanOut, model: PacedModel, sink: TimingSink) -> StreamResult:
    tasks = len(plan.tasks)
    if status != "completed" or sink.starts != tasks or len(sink.started) != sink.starts:
        raise BenchCheckError(f"streamed run {status}: {sink.starts} starts, {tasks} tasks")
    begin, end = model.stream_started, model.stream_finished
    assert begin is not None
    assert end is not None
    first = min(sink.started.values())
    if first >= end:
        raise BenchCheckError("no task started before the planner finished writing")
    return StreamResult(first_dispatch_s=first - begin, generation_s=end - begin,
                        earliest_fraction=_earliest_fraction(plan.model_dump_json()),
                        tasks=len(plan.tasks), plan_chars=len(plan.model_dump_json()))


def _earliest_fraction(text: str) -> float:
    parser = TaskStreamParser()
    chunks = range(0, len(text), _CHUNK_CHARS)
    for index, start in enumerate(chunks):
        if parser.feed(text[start : start + _CHUNK_CHARS]):
            return (index + 1) / len(chunks)
    return 1.0


def measure_streaming_sync(*, generation_s: float = 1.0) -> StreamResult:
    return precise_run(_measure_kw, generation_s)


async def _measure_kw(generation_s: float) -> StreamResult:
    return await measure_streaming(generation_s=generation_s)
