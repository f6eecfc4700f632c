"""OpenTelemetry spans from a run's events: run → plan → task → attempt → model / tool call.

The `otel` extra (`pip install 'orchestrator-agents[otel]'`); nothing else in orchestrator/ imports
this module, and importing it without the extra raises `ConfigError` naming that command. Pass
the sink like any other, `Orchestrator(sinks=[OTelSink()])` or `Engine(..., sinks=[OTelSink()])`.
It uses the given `TracerProvider`, else the global one, and sets up no exporter, so spans leave
the machine only through one you configure::

    provider = TracerProvider()  # opentelemetry.sdk.trace
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    orch = Orchestrator(sinks=[OTelSink(tracer_provider=provider)])

Spans take the events' own times (`at`; a call starts `duration_ms` before its event) and follow
the GenAI semantic conventions where there is one; our attributes are under `orchestrator.`:

    invoke_agent orchestrator   the run (a child of the span current when it starts); totals
      plan planner              until the first valid plan, with the planner's calls
      task <id>                 task_ready (or task_planned) → its terminal event; outcome, tier
        invoke_agent worker     task_started → attempt_finished; outcome, and the escalation or
                                retry reason that led to this attempt
          chat <model>          CLIENT; gen_ai.usage.*, orchestrator.cost_usd / tier / wasted
          execute_tool <name>   gen_ai.tool.name, gen_ai.tool.call.id
      chat <model>              reviewer and synthesizer calls

Failed tasks, attempts not ending `done`, failed calls, tool errors and failed runs get status
ERROR and `error.type`. The sink never raises into the engine: a failing exporter or processor
is logged once (`otel_sink_failed`) and the run goes on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog

from .errors import ConfigError
from .events import (
    AttemptFinished,
    EscalationDecided,
    Event,
    GraphReplanned,
    ModelCalled,
    ModelCallFailed,
    ModelCallRetried,
    PatchApplied,
    PlanRejected,
    PlanValidated,
    ReviewDecided,
    ReviewFailed,
    RunFinished,
    RunResumed,
    RunStarted,
    TaskFailed,
    TaskPlanned,
    TaskReady,
    TaskRetried,
    TaskSkipped,
    TaskStarted,
    TaskSucceeded,
    TaskUnreviewed,
    ToolCalled,
)

try:
    from opentelemetry import trace
    from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider
    from opentelemetry.util.types import AttributeValue
except ImportError as exc:  # the extra is missing (tests hide the package)
    raise ConfigError(
        f"orchestrator.otel needs OpenTelemetry: pip install 'orchestrator-agents[otel]' ({exc})"
    ) from exc

_log = structlog.get_logger(__name__)

Attrs = dict[str, AttributeValue]

_ERROR_DETAIL_CHARS = 500
"""Status descriptions are for a glance; the journal keeps the whole message."""


@dataclass(slots=True)
class _Task:
    opened_at: float
    """Where the task span starts: task_ready, else task_planned (a task skipped unstarted)."""
    tier: str = ""
    span: Span | None = None
    attempt: Span | None = None
    next_attempt: Attrs = field(default_factory=lambda: {})
    """Why the next attempt runs (an escalation or a retry), set on its span when it starts."""


@dataclass(slots=True)
class _Run:
    span: Span
    started_at: float
    plan: Span | None = None
    is_planned: bool = False
    tasks: dict[str, _Task] = field(default_factory=lambda: {})


class OTelSink:
    """An `EventSink` that turns each run's events into OpenTelemetry spans; it never raises."""

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        self._tracer = trace.get_tracer("orchestrator", tracer_provider=tracer_provider)
        self._runs: dict[str, _Run] = {}
        self._has_failed = False

    def emit(self, event: Event) -> None:
        try:
            self._handle(event)
        except Exception as exc:  # tracing is best effort: a broken exporter must not stop a run
            if not self._has_failed:
                self._has_failed = True
                _log.warning(
                    "otel_sink_failed",
                    kind=event.kind,
                    error_type=type(exc).__name__,
                    error=str(exc),
                )

    def _handle(self, event: Event) -> None:
        if isinstance(event, RunStarted | RunResumed):
            self._open_run(event)
            return
        run = self._runs.get(event.run_id)
        if run is None:  # the sink was not there when the run started
            return
        match event:
            case PlanRejected() | PlanValidated() | GraphReplanned():
                self._on_plan(run, event)
            case TaskPlanned() | TaskReady() | TaskStarted() | AttemptFinished():
                self._on_attempt(run, event)
            case EscalationDecided() | TaskRetried() | ReviewDecided() | PatchApplied():
                self._on_progress(run, event)
            case TaskSucceeded() | TaskFailed() | TaskSkipped() | TaskUnreviewed():
                self._on_task_end(run, event)
            case ModelCalled() | ModelCallFailed() | ModelCallRetried() | ToolCalled():
                self._on_call(run, event)
            case RunFinished():
                self._close_run(run, event)
            case ReviewFailed():
                for tid in event.task_ids:
                    _add_event(self._mark_span(run, tid), event, failure=event.failure)
            case _:  # dispatch_stopped, answer_written, merges: marks on the run's timeline
                _add_event(run.span, event, **_reason(event))

    # run and plan

    def _open_run(self, event: RunStarted | RunResumed) -> None:
        if (known := self._runs.get(event.run_id)) is not None:
            _add_event(known.span, event)
            return
        attrs: Attrs = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": "orchestrator",
            "orchestrator.run.id": event.run_id,
        }
        if isinstance(event, RunStarted):
            attrs["orchestrator.ladder"] = list(event.ladder)
        else:
            attrs["orchestrator.resumed"] = True
        # No context given: the run joins whatever trace is current where it was started.
        span = self._tracer.start_span(
            "invoke_agent orchestrator", attributes=attrs, start_time=_ns(event.at)
        )
        self._runs[event.run_id] = _Run(span=span, started_at=event.at)

    def _plan_span(self, run: _Run) -> Span:
        if run.plan is None:
            attrs: Attrs = {"gen_ai.operation.name": "plan", "gen_ai.agent.name": "planner"}
            run.plan = self._child(run.span, "plan planner", run.started_at, attrs)
        return run.plan

    def _on_plan(self, run: _Run, event: PlanRejected | PlanValidated | GraphReplanned) -> None:
        match event:
            case PlanRejected():
                _add_event(
                    self._plan_span(run),
                    event,
                    **{"orchestrator.attempt": event.attempt, "orchestrator.error": event.error},
                )
            case PlanValidated() if not event.replan and not run.is_planned:
                span = self._plan_span(run)
                span.set_attribute("orchestrator.plan.tasks", len(event.task_ids))
                span.end(_ns(event.at))
                run.is_planned = True
            case PlanValidated():
                _add_event(run.span, event, **{"orchestrator.replan": event.replan})
            case _:  # GraphReplanned
                _add_event(run.span, event, **{"orchestrator.replaced": list(event.replaced)})
                for tid in event.replaced:
                    self._end_task(run, tid, event.at, {"orchestrator.outcome": "replaced"})

    def _close_run(self, run: _Run, event: RunFinished) -> None:
        del self._runs[event.run_id]
        for tid in [tid for tid, task in run.tasks.items() if task.span is not None]:
            self._end_task(run, tid, event.at, {"orchestrator.outcome": "unfinished"})
        if run.plan is not None and not run.is_planned:
            if event.status == "failed":
                _fail(run.plan, "_OTHER", "no valid plan")
            run.plan.end(_ns(event.at))
        attrs: Attrs = {
            "orchestrator.status": event.status,
            "orchestrator.cost_usd": event.cost_usd,
            "orchestrator.wasted_cost_usd": event.wasted_cost_usd,
            "gen_ai.usage.input_tokens": event.tokens_in,
            "gen_ai.usage.cache_read.input_tokens": event.tokens_cached,
            "gen_ai.usage.output_tokens": event.tokens_out,
            "orchestrator.tasks.succeeded": event.succeeded,
            "orchestrator.tasks.failed": event.failed,
            "orchestrator.tasks.skipped": event.skipped,
            "orchestrator.tasks.unreviewed": event.unreviewed,
            "orchestrator.escalations": event.escalations,
            "orchestrator.model_retries": event.model_retries,
        }
        if event.stop_reason:
            attrs["orchestrator.stop_reason"] = event.stop_reason
        run.span.set_attributes(attrs)
        if event.status == "failed":
            _fail(run.span, "_OTHER", "the run failed")
        run.span.end(_ns(event.at))

    # tasks and attempts

    def _task(self, run: _Run, tid: str, at: float) -> _Task:
        if (task := run.tasks.get(tid)) is None:
            task = run.tasks[tid] = _Task(opened_at=at)
        return task

    def _task_span(self, run: _Run, tid: str, at: float) -> Span:
        task = self._task(run, tid, at)
        if task.span is None:
            attrs: Attrs = {"orchestrator.task.id": tid}
            if task.tier:
                attrs["orchestrator.tier"] = task.tier
            task.span = self._child(run.span, f"task {tid}", task.opened_at, attrs)
        return task.span

    def _mark_span(self, run: _Run, tid: str) -> Span:
        """Where a task's marks go: its open span, else (before ready, after its end) the run's."""
        task = run.tasks.get(tid)
        return task.span if task is not None and task.span is not None else run.span

    def _on_attempt(
        self, run: _Run, event: TaskPlanned | TaskReady | TaskStarted | AttemptFinished
    ) -> None:
        match event:
            case TaskPlanned():
                known = run.tasks.get(event.spec.id)
                if known is None or known.span is None:  # a fresh record, unless it is running
                    run.tasks[event.spec.id] = _Task(opened_at=event.at, tier=event.tier)
            case TaskReady():
                task = self._task(run, event.task_id, event.at)
                if task.span is None:
                    task.opened_at = event.at
                    self._task_span(run, event.task_id, event.at)
            case TaskStarted():
                self._start_attempt(run, event)
            case _:  # AttemptFinished
                task = self._task(run, event.task_id, event.at)
                if task.attempt is None:
                    return
                task.attempt.set_attributes(
                    {"orchestrator.outcome": event.outcome, "orchestrator.turns": event.turns}
                )
                if event.outcome != "done":
                    _fail(task.attempt, event.outcome, event.detail)
                task.attempt.end(_ns(event.at))
                task.attempt = None

    def _start_attempt(self, run: _Run, event: TaskStarted) -> None:
        parent = self._task_span(run, event.task_id, event.at)
        task = run.tasks[event.task_id]
        if task.attempt is not None:  # its end was never reported (a resumed run)
            task.attempt.end(_ns(event.at))
        attrs: Attrs = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": "worker",
            "gen_ai.request.model": event.model,
            "orchestrator.task.id": event.task_id,
            "orchestrator.attempt": event.attempt,
            "orchestrator.tier": event.tier,
            **task.next_attempt,
        }
        task.next_attempt = {}
        task.attempt = self._child(parent, "invoke_agent worker", event.at, attrs)

    def _on_progress(
        self, run: _Run, event: EscalationDecided | TaskRetried | ReviewDecided | PatchApplied
    ) -> None:
        span = self._mark_span(run, event.task_id)
        task = self._task(run, event.task_id, event.at)
        match event:
            case EscalationDecided():
                reason: Attrs = {
                    "orchestrator.escalation.reason": event.trigger,
                    "orchestrator.escalation.from_tier": event.from_tier,
                }
                _add_event(span, event, **reason, **{"orchestrator.tier": event.to_tier or ""})
                task.next_attempt = reason
            case TaskRetried():
                reason = {"orchestrator.retry.reason": event.trigger}
                _add_event(span, event, **reason)
                task.next_attempt = reason
            case ReviewDecided():
                _add_event(span, event, **{"orchestrator.review.verdict": event.verdict})
            case _:  # PatchApplied
                files = [change.path for change in event.files]
                _add_event(task.attempt or span, event, **{"orchestrator.files": files})

    def _on_task_end(
        self, run: _Run, event: TaskSucceeded | TaskFailed | TaskSkipped | TaskUnreviewed
    ) -> None:
        attrs: Attrs = {"orchestrator.outcome": event.kind.removeprefix("task_")}
        error: tuple[str, str] | None = None
        match event:
            case TaskSucceeded():
                attrs |= {"orchestrator.tier": event.tier, "orchestrator.attempts": event.attempts}
            case TaskFailed():
                attrs |= {"orchestrator.tier": event.tier, "orchestrator.attempts": event.attempts}
                attrs["orchestrator.reason"] = event.reason
                error = (event.error_type, event.message)
            case TaskSkipped():
                attrs |= {
                    "orchestrator.skip.cause": event.cause,
                    "orchestrator.reason": event.reason,
                }
                if event.blocked_by is not None:
                    attrs["orchestrator.blocked_by"] = event.blocked_by
            case _:  # TaskUnreviewed
                attrs["orchestrator.reason"] = event.reason
        self._end_task(run, event.task_id, event.at, attrs, error=error)

    def _end_task(
        self, run: _Run, tid: str, at: float, attrs: Attrs, *, error: tuple[str, str] | None = None
    ) -> None:
        span = self._task_span(run, tid, at)
        task = run.tasks[tid]
        if task.attempt is not None:
            task.attempt.set_attribute("orchestrator.outcome", "unfinished")
            task.attempt.end(_ns(at))
            task.attempt = None
        span.set_attributes(attrs)
        if error is not None:
            _fail(span, *error)
        span.end(_ns(at))
        task.span = None
        task.opened_at = at

    # calls

    def _call_parent(self, run: _Run, task_id: str | None, role: str) -> Span:
        if task_id is not None and (task := run.tasks.get(task_id)) is not None:
            if task.attempt is not None:
                return task.attempt
            if task.span is not None:
                return task.span
        if role == "planner" and not run.is_planned:
            return self._plan_span(run)
        return run.span

    def _on_call(
        self, run: _Run, event: ModelCalled | ModelCallFailed | ModelCallRetried | ToolCalled
    ) -> None:
        role = "worker" if isinstance(event, ToolCalled) else event.role
        parent = self._call_parent(run, event.task_id, role)
        match event:
            case ModelCalled():
                model = event.request_model or event.model
                span = self._child(
                    parent,
                    f"chat {model}",
                    event.at - event.duration_ms / 1000,
                    _call_attrs(event),
                    kind=SpanKind.CLIENT,
                )
                span.end(_ns(event.at))
            case ModelCallFailed():  # no duration is reported: a mark at the moment it gave up
                attrs: Attrs = {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": event.model,
                    "orchestrator.role": event.role,
                    "orchestrator.tries": event.tries,
                    "orchestrator.retryable": event.retryable,
                }
                span = self._child(
                    parent, f"chat {event.model}", event.at, attrs, kind=SpanKind.CLIENT
                )
                _fail(span, event.error_type, event.message)
                span.end(_ns(event.at))
            case ModelCallRetried():
                retried: Attrs = {
                    "orchestrator.try": event.try_number,
                    "error.type": event.error_type,
                    "orchestrator.delay_s": event.delay_s,
                }
                if event.status_code is not None:
                    retried["http.response.status_code"] = event.status_code
                _add_event(parent, event, **retried)
            case _:  # ToolCalled
                attrs = {
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": event.tool,
                    "gen_ai.tool.call.id": event.call_id,
                    "gen_ai.tool.type": "function",
                    "orchestrator.task.id": event.task_id,
                }
                start = event.at - event.duration_ms / 1000
                span = self._child(parent, f"execute_tool {event.tool}", start, attrs)
                if event.is_error:
                    _fail(span, "tool_error", f"{event.tool} returned an error to the model")
                span.end(_ns(event.at))

    def _child(
        self,
        parent: Span,
        name: str,
        start: float,
        attrs: Attrs,
        *,
        kind: SpanKind | None = None,
    ) -> Span:
        return self._tracer.start_span(
            name,
            context=trace.set_span_in_context(parent),
            kind=kind or SpanKind.INTERNAL,
            attributes=attrs,
            start_time=_ns(start),
        )


def _call_attrs(event: ModelCalled) -> Attrs:
    attrs: Attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": event.request_model or event.model,
        "gen_ai.response.model": event.model,
        "gen_ai.usage.input_tokens": event.tokens_in,
        "gen_ai.usage.output_tokens": event.tokens_out,
        "gen_ai.usage.cache_read.input_tokens": event.tokens_cached,
        "gen_ai.usage.reasoning.output_tokens": event.tokens_reasoning,
        "orchestrator.role": event.role,
        "orchestrator.tier": event.tier,
        "orchestrator.cost_usd": event.cost_usd,
        "orchestrator.tries": event.tries,
        "orchestrator.wasted": event.wasted,
    }
    if event.task_id is not None:
        attrs["orchestrator.task.id"] = event.task_id
    if event.unpriced:
        attrs["orchestrator.unpriced"] = True
    if event.tokens_estimated:
        attrs["orchestrator.tokens_estimated"] = event.tokens_estimated
    if not event.final:
        attrs["orchestrator.final"] = False
    return attrs


def _reason(event: Event) -> Attrs:
    reason = getattr(event, "reason", None)
    return {"orchestrator.reason": reason} if isinstance(reason, str) else {}


def _add_event(span: Span, event: Event, **attrs: AttributeValue) -> None:
    span.add_event(event.kind, attributes=attrs, timestamp=_ns(event.at))


def _fail(span: Span, error_type: str, detail: str) -> None:
    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR, detail[:_ERROR_DETAIL_CHARS]))


def _ns(at: float) -> int:
    """Event seconds → OpenTelemetry nanoseconds."""
    return round(at * 1e9)
