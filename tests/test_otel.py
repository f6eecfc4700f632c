"""OTelSink: the spans of a real engine run, read back through the SDK's in-memory exporter."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import anyio
import pytest
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util.types import AttributeValue
from structlog.testing import capture_logs

from orchestrator.agents.reviewer import ReviewOut
from orchestrator.errors import ConfigError, ModelAPIError
from orchestrator.events import Event, ModelCalled
from orchestrator.llm import ModelReply
from orchestrator.models import RunId, RunResult
from orchestrator.otel import OTelSink
from orchestrator.run import Engine
from orchestrator.settings import Settings
from orchestrator.testing import RecordingSink, ScriptedModel, tool_call
from orchestrator.toolkit import Tool
from orchestrator.tools.base import tool

from .helpers import accept_all, answer, engine, leaf, plan, task, tool_then_leaf, verdict


class Spans:
    """The finished spans of one run, navigable by name and parent."""

    def __init__(self, spans: Sequence[ReadableSpan]) -> None:
        self.all = tuple(spans)
        self._by_id = {_sid(s): s for s in self.all}

    def named(self, name: str) -> list[ReadableSpan]:
        return sorted((s for s in self.all if s.name == name), key=_start)

    def one(self, name: str) -> ReadableSpan:
        (span,) = self.named(name)
        return span

    def parent(self, span: ReadableSpan) -> ReadableSpan | None:
        return None if span.parent is None else self._by_id[span.parent.span_id]

    def children(self, span: ReadableSpan, name: str | None = None) -> list[ReadableSpan]:
        kids = [s for s in self.all if s.parent is not None and s.parent.span_id == _sid(span)]
        return sorted((s for s in kids if name is None or s.name == name), key=_start)

    def calls(self) -> list[ReadableSpan]:
        return [s for s in self.all if attr(s, "gen_ai.operation.name") == "chat"]


def _sid(span: ReadableSpan) -> int:
    context = span.get_span_context()
    assert context is not None
    return context.span_id


def _start(span: ReadableSpan) -> int:
    return span.start_time or 0


def attr(span: ReadableSpan, key: str) -> AttributeValue | None:
    return (span.attributes or {}).get(key)


def text(span: ReadableSpan, key: str) -> str | None:
    value = attr(span, key)
    return value if isinstance(value, str) else None


def trace_ids(spans: Spans) -> set[int]:
    return {_trace_id(s) for s in spans.all}


def _trace_id(span: ReadableSpan) -> int:
    context = span.get_span_context()
    assert context is not None
    return context.trace_id


def provider(*processors: SpanProcessor) -> TracerProvider:
    traces = TracerProvider()
    for processor in processors:
        traces.add_span_processor(processor)
    return traces


def lookup_tool() -> Tool:
    @tool
    def lookup(key: str) -> str:
        """Look a key up."""
        return f"value of {key}"

    return lookup


async def run_dag(
    scripted: ScriptedModel, tmp_path: Path, *sinks: OTelSink | RecordingSink
) -> RunResult:
    """a → (b, c): b calls a tool, c is ambiguous at mini and escalates to base."""
    scripted.script("planner", plan(task("a"), task("b", "a", tools=["lookup"]), task("c", "a")))
    scripted.script("worker", leaf("a done"), task="a")
    scripted.script(
        "worker", tool_then_leaf("lookup", {"key": "k"}), tool_then_leaf("lookup"), task="b"
    )
    scripted.script("worker", leaf("unclear", status="ambiguous"), leaf("c done"), task="c")
    scripted.respond("reviewer", accept_all).respond("synthesizer", answer)
    return await engine(scripted, tmp_path, tools=[lookup_tool()], sinks=sinks).run("g")


async def traced_dag(scripted: ScriptedModel, tmp_path: Path) -> tuple[Spans, RunResult]:
    exporter = InMemorySpanExporter()
    result = await run_dag(
        scripted, tmp_path, OTelSink(tracer_provider=provider(SimpleSpanProcessor(exporter)))
    )
    return Spans(exporter.get_finished_spans()), result


async def test_otel_sink_builds_the_run_plan_task_attempt_call_tree(
    scripted: ScriptedModel, tmp_path: Path
) -> None:
    spans, result = await traced_dag(scripted, tmp_path)
    assert result.status == "completed"
    run = spans.one("invoke_agent orchestrator")
    assert spans.parent(run) is None
    assert trace_ids(spans) == {_trace_id(run)}
    assert attr(run, "gen_ai.operation.name") == "invoke_agent"
    assert attr(run, "orchestrator.run.id") == result.run_id
    plan_span = spans.one("plan planner")
    assert spans.parent(plan_span) is run and attr(plan_span, "gen_ai.operation.name") == "plan"
    assert [attr(s, "orchestrator.role") for s in spans.children(plan_span)] == ["planner"]
    tasks = {
        text(s, "orchestrator.task.id") or "": s
        for s in spans.children(run)
        if s.name.startswith("task ")
    }
    assert sorted(tasks) == ["a", "b", "c"]
    attempts = {tid: spans.children(t, "invoke_agent worker") for tid, t in tasks.items()}
    assert {tid: len(a) for tid, a in attempts.items()} == {"a": 1, "b": 1, "c": 2}
    for tid, task_span in tasks.items():
        assert attr(task_span, "orchestrator.outcome") == "succeeded"
        for attempt in attempts[tid]:
            assert attr(attempt, "orchestrator.task.id") == tid
            assert (task_span.start_time or 0) <= (attempt.start_time or 0)
            assert (attempt.end_time or 0) <= (task_span.end_time or 0)
            assert {text(c, "orchestrator.role") for c in spans.children(attempt, None)} <= {
                "worker",
                None,  # tool spans
            }
    (b_attempt,) = attempts["b"]
    (tool_span,) = spans.children(b_attempt, "execute_tool lookup")
    assert attr(tool_span, "gen_ai.operation.name") == "execute_tool"
    assert attr(tool_span, "gen_ai.tool.name") == "lookup"
    assert attr(tool_span, "gen_ai.tool.call.id") == "call_b"
    assert len(spans.children(b_attempt, "chat gpt-5.4-mini")) == 2
    top_level_roles = {
        text(s, "orchestrator.role") for s in spans.children(run) if s.name.startswith("chat ")
    }
    assert top_level_roles == {"reviewer", "synthesizer"}


async def test_otel_sink_marks_the_escalated_attempt_with_its_reason(
    scripted: ScriptedModel, tmp_path: Path
) -> None:
    spans, _ = await traced_dag(scripted, tmp_path)
    task_c = spans.one("task c")
    first, second = spans.children(task_c, "invoke_agent worker")
    assert (attr(first, "orchestrator.tier"), attr(second, "orchestrator.tier")) == ("mini", "base")
    assert attr(first, "orchestrator.outcome") == "ambiguous"
    assert first.status.status_code is StatusCode.ERROR and attr(first, "error.type") == "ambiguous"
    assert attr(first, "orchestrator.escalation.reason") is None
    assert attr(second, "orchestrator.escalation.reason") == "ambiguous"
    assert attr(second, "orchestrator.escalation.from_tier") == "mini"
    assert attr(second, "gen_ai.request.model") == "gpt-5.4"
    assert second.status.status_code is StatusCode.UNSET
    assert [e.name for e in task_c.events if e.name == "escalation_decided"] == [
        "escalation_decided"
    ]
    assert (
        attr(task_c, "orchestrator.tier") == "base" and attr(task_c, "orchestrator.attempts") == 2
    )


async def test_otel_sink_model_spans_carry_each_model_called_event(
    scripted: ScriptedModel, sink: RecordingSink, tmp_path: Path
) -> None:
    exporter = InMemorySpanExporter()
    traces = provider(SimpleSpanProcessor(exporter))
    await run_dag(scripted, tmp_path, OTelSink(tracer_provider=traces), sink)
    spans = Spans(exporter.get_finished_spans())
    events = [e for e in sink.events if isinstance(e, ModelCalled)]

    def from_event(e: ModelCalled) -> tuple[object, ...]:
        start = round((e.at - e.duration_ms / 1000) * 1e9)
        return (
            e.role,
            e.task_id,
            e.model,
            e.tier,
            e.tokens_in,
            e.tokens_cached,
            e.tokens_out,
            e.cost_usd,
            e.wasted,
            start,
            round(e.at * 1e9),
        )

    def from_span(s: ReadableSpan) -> tuple[object, ...]:
        return (
            attr(s, "orchestrator.role"),
            attr(s, "orchestrator.task.id"),
            attr(s, "gen_ai.request.model"),
            attr(s, "orchestrator.tier"),
            attr(s, "gen_ai.usage.input_tokens"),
            attr(s, "gen_ai.usage.cache_read.input_tokens"),
            attr(s, "gen_ai.usage.output_tokens"),
            attr(s, "orchestrator.cost_usd"),
            attr(s, "orchestrator.wasted"),
            s.start_time,
            s.end_time,
        )

    calls = spans.calls()
    assert len(calls) == len(events) >= 7
    assert sorted(map(from_span, calls), key=repr) == sorted(map(from_event, events), key=repr)
    for call in calls:
        assert call.kind is SpanKind.CLIENT
        assert call.name == f"chat {attr(call, 'gen_ai.request.model')}"
        assert attr(call, "gen_ai.response.model") == attr(call, "gen_ai.request.model")


async def test_otel_sink_costs_sum_to_the_run_cost(scripted: ScriptedModel, tmp_path: Path) -> None:
    spans, result = await traced_dag(scripted, tmp_path)
    costs = [attr(s, "orchestrator.cost_usd") for s in spans.calls()]
    assert sum(c for c in costs if isinstance(c, float)) == pytest.approx(result.usage.cost_usd)
    assert result.usage.cost_usd > 0
    run = spans.one("invoke_agent orchestrator")
    assert attr(run, "orchestrator.cost_usd") == pytest.approx(result.usage.cost_usd)
    assert attr(run, "gen_ai.usage.input_tokens") == result.usage.tokens.input_tokens
    assert attr(run, "orchestrator.escalations") == 1
    assert attr(run, "orchestrator.status") == "completed"
    assert run.status.status_code is StatusCode.UNSET


async def test_otel_sink_failed_task_has_error_status_and_skipped_dependent(
    scripted: ScriptedModel, tmp_path: Path
) -> None:
    exporter = InMemorySpanExporter()
    scripted.script("planner", plan(task("a"), task("b", "a"), task("x")))
    scripted.script(
        "worker", ModelAPIError("bad request", status_code=400, retryable=False), task="a"
    )
    scripted.script("worker", leaf("x ok"), task="x")
    scripted.respond("reviewer", accept_all).respond("synthesizer", answer)
    traces = provider(SimpleSpanProcessor(exporter))
    result = await engine(scripted, tmp_path, sinks=[OTelSink(tracer_provider=traces)]).run("g")
    assert result.status == "partial"
    spans = Spans(exporter.get_finished_spans())
    failed = spans.one("task a")
    assert failed.status.status_code is StatusCode.ERROR
    assert "bad request" in (failed.status.description or "")
    assert attr(failed, "orchestrator.outcome") == "failed"
    assert attr(failed, "error.type") == "ModelAPIError"
    (attempt,) = spans.children(failed, "invoke_agent worker")
    assert attempt.status.status_code is StatusCode.ERROR
    failed_calls = [s for s in spans.children(attempt) if s.status.status_code is StatusCode.ERROR]
    assert [attr(s, "error.type") for s in failed_calls] == ["ModelAPIError"]
    skipped = spans.one("task b")
    assert attr(skipped, "orchestrator.outcome") == "skipped"
    assert attr(skipped, "orchestrator.blocked_by") == "a"
    assert skipped.status.status_code is StatusCode.UNSET
    assert spans.one("task x").status.status_code is StatusCode.UNSET
    run = spans.one("invoke_agent orchestrator")
    assert (
        attr(run, "orchestrator.tasks.failed") == 1 and attr(run, "orchestrator.tasks.skipped") == 1
    )


class _BrokenExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        raise ConnectionError("collector unreachable")


class _BrokenProcessor(SpanProcessor):
    def on_end(self, span: ReadableSpan) -> None:
        raise RuntimeError("processor bug")


async def test_otel_sink_exporter_that_raises_does_not_break_the_run(
    scripted: ScriptedModel, tmp_path: Path
) -> None:
    traces = provider(SimpleSpanProcessor(_BrokenExporter()))
    result = await run_dag(scripted, tmp_path, OTelSink(tracer_provider=traces))
    assert result.status == "completed" and len(result.succeeded) == 3


async def test_otel_sink_processor_that_raises_is_logged_once_and_the_run_goes_on(
    scripted: ScriptedModel, tmp_path: Path
) -> None:
    exporter = InMemorySpanExporter()
    traces = provider(_BrokenProcessor(), SimpleSpanProcessor(exporter))
    with capture_logs() as logs:
        result = await run_dag(scripted, tmp_path, OTelSink(tracer_provider=traces))
    assert result.status == "completed" and len(result.succeeded) == 3
    failures = [entry for entry in logs if entry["event"] == "otel_sink_failed"]
    assert len(failures) == 1
    assert failures[0]["error_type"] == "RuntimeError" and failures[0]["log_level"] == "warning"


async def test_otel_sink_run_span_joins_the_callers_trace(
    scripted: ScriptedModel, tmp_path: Path
) -> None:
    exporter = InMemorySpanExporter()
    traces = provider(SimpleSpanProcessor(exporter))
    with traces.get_tracer("app").start_as_current_span("request") as outer:
        await run_dag(scripted, tmp_path, OTelSink(tracer_provider=traces))
    spans = Spans(exporter.get_finished_spans())
    run = spans.one("invoke_agent orchestrator")
    assert spans.parent(run) is spans.one("request")
    assert trace_ids(spans) == {outer.get_span_context().trace_id}


def test_otel_sink_ignores_events_of_a_run_it_did_not_see_start() -> None:
    exporter = InMemorySpanExporter()
    sink = OTelSink(tracer_provider=provider(SimpleSpanProcessor(exporter)))
    late: Event = ModelCalled(
        run_id=RunId("r1"),
        at=1.0,
        role="worker",
        model="m",
        tier="mini",
        task_id=None,
        tokens_in=1,
        tokens_cached=0,
        tokens_out=1,
        tokens_reasoning=0,
        cost_usd=0.0,
        duration_ms=1.0,
    )
    sink.emit(late)
    assert exporter.get_finished_spans() == ()


def test_otel_module_without_the_extra_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # type: ignore[arg-type]
    monkeypatch.delitem(sys.modules, "orchestrator.otel")
    with pytest.raises(ConfigError, match=r"pip install 'orchestrator-agents\[otel\]'"):
        importlib.import_module("orchestrator.otel")


@pytest.mark.parametrize(
    ("environ", "expected"),
    [({}, False), ({"ORCH_OTEL": "1"}, True), ({"ORCH_OTEL": "0"}, False)],
    ids=["unset", "on", "off"],
)
def test_settings_reads_orch_otel(environ: dict[str, str], expected: bool) -> None:
    assert Settings.from_env(environ).otel is expected


def traced(
    scripted: ScriptedModel, tmp_path: Path, *, tools: Iterable[Tool] = ()
) -> tuple[Engine, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    sink = OTelSink(tracer_provider=provider(SimpleSpanProcessor(exporter)))
    return engine(scripted, tmp_path, tools=tools, sinks=[sink]), exporter


async def test_otel_sink_keeps_plan_repairs_in_the_plan_span(
    scripted: ScriptedModel, tmp_path: Path
) -> None:
    scripted.script(
        "planner", plan(task("a", "b"), task("b", "a")), plan(task("a"), task("b", "a"))
    )
    scripted.respond("worker", lambda r: ModelReply(text=leaf().model_dump_json()))
    scripted.respond("reviewer", accept_all).respond("synthesizer", answer)
    eng, exporter = traced(scripted, tmp_path)
    await eng.run("g")
    spans = Spans(exporter.get_finished_spans())
    plan_span = spans.one("plan planner")
    assert [e.name for e in plan_span.events] == ["plan_rejected"]
    assert [text(s, "orchestrator.role") for s in spans.children(plan_span)] == ["planner"] * 2
    assert attr(plan_span, "orchestrator.plan.tasks") == 2


async def test_otel_sink_marks_a_reviewer_retry_on_the_next_attempt(
    scripted: ScriptedModel, tmp_path: Path
) -> None:
    scripted.script("planner", plan(task("a")))
    scripted.script("worker", leaf("first try"), leaf("second try"), task="a")
    scripted.script("reviewer", ReviewOut(verdicts=[verdict("a", "retry", "cite the source")]))
    scripted.respond("reviewer", accept_all).respond("synthesizer", answer)
    eng, exporter = traced(scripted, tmp_path)
    await eng.run("g")
    spans = Spans(exporter.get_finished_spans())
    task_a = spans.one("task a")
    first, second = spans.children(task_a, "invoke_agent worker")
    assert attr(first, "orchestrator.retry.reason") is None
    assert attr(second, "orchestrator.retry.reason") == "review_rejected"
    verdicts = [e.attributes for e in task_a.events if e.name == "review_decided"]
    assert [(v or {}).get("orchestrator.review.verdict") for v in verdicts] == ["retry", "accept"]


async def test_otel_sink_transport_retries_are_events_on_the_attempt(
    scripted: ScriptedModel, tmp_path: Path
) -> None:
    err = ModelAPIError("overloaded", status_code=503, retryable=True)
    scripted.script("planner", plan(task("a")))
    scripted.script("worker", err, err, leaf("ok on mini"), task="a")
    scripted.respond("reviewer", accept_all).respond("synthesizer", answer)
    eng, exporter = traced(scripted, tmp_path)
    await eng.run("g")
    spans = Spans(exporter.get_finished_spans())
    (attempt,) = spans.children(spans.one("task a"), "invoke_agent worker")
    retried = [e.attributes or {} for e in attempt.events if e.name == "model_call_retried"]
    assert [(r.get("orchestrator.try"), r.get("http.response.status_code")) for r in retried] == [
        (1, 503),
        (2, 503),
    ]
    (call,) = spans.children(attempt)
    assert attr(call, "orchestrator.tries") == 3


async def test_otel_sink_cancelled_run_ends_every_span(
    scripted: ScriptedModel, tmp_path: Path
) -> None:
    entered = anyio.Event()

    @tool
    async def forever() -> str:
        """Never returns."""
        entered.set()
        await anyio.sleep_forever()
        return "unreachable"

    scripted.script(
        "planner", plan(task("done"), task("stuck", tools=["forever"]), task("after", "stuck"))
    )
    scripted.script("worker", leaf("fine"), task="done")
    scripted.script("worker", tool_call("forever"), task="stuck")
    scripted.respond("reviewer", accept_all).respond("synthesizer", answer)
    eng, exporter = traced(scripted, tmp_path, tools=[forever])
    result: RunResult | None = None
    async with anyio.create_task_group() as tg:

        async def cancel_when_stuck() -> None:
            await entered.wait()
            await anyio.wait_all_tasks_blocked()
            eng.cancel()

        tg.start_soon(cancel_when_stuck)
        with anyio.fail_after(5):
            result = await eng.run("g")
    assert result is not None and result.status == "cancelled"
    spans = Spans(exporter.get_finished_spans())
    run = spans.one("invoke_agent orchestrator")
    assert attr(run, "orchestrator.status") == "cancelled"
    assert attr(run, "orchestrator.stop_reason") == result.stop_reason
    stuck = spans.one("task stuck")
    assert attr(stuck, "orchestrator.outcome") == "skipped"
    assert attr(stuck, "orchestrator.skip.cause") == "cancelled"
    (attempt,) = spans.children(stuck, "invoke_agent worker")
    assert attr(attempt, "orchestrator.outcome") == "unfinished"
    assert attempt.end_time is not None and attempt.end_time <= (run.end_time or 0)
    assert all(s.end_time is not None for s in spans.all)
