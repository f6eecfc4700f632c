"""The HTML run report: timeline and critical path from scripted journals, escaping, totals, and
a real run's report loaded in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Literal

import anyio
import pytest

from orchestrator.agents.reviewer import ReviewOut, VerdictOut
from orchestrator.events import (
    AttemptFinished,
    EscalationDecided,
    Event,
    GraphReplanned,
    ModelCalled,
    PlanValidated,
    ReviewDecided,
    RunFinished,
    RunResumed,
    RunStarted,
    TaskFailed,
    TaskPlanned,
    TaskRetried,
    TaskSkipped,
    TaskStarted,
    TaskSucceeded,
)
from orchestrator.fold import fold
from orchestrator.journal import read_state
from orchestrator.llm import ModelReply, ModelRequest
from orchestrator.models import RunId, RunResult, TaskId, TaskSpec, TokenUsage
from orchestrator.report_html import render_report, write_report
from orchestrator.testing import Responder, ScriptedModel
from orchestrator.timeline import build_timeline, critical_path, depths, layered_layout

from .helpers import answer, engine, leaf, plan, task, verdict

RUN = RunId("r1")
T0 = 1_000.0
A, B, C, D, E = (TaskId(t) for t in "abcde")
HOSTILE = '<script>document.body.dataset.pwned="1"</script><img src=x onerror="alert(1)">'


# -- event builders: times are seconds after T0 --------------------------------------------------
def run_started(goal: str = "g") -> RunStarted:
    return RunStarted(
        run_id=RUN, at=T0, goal=goal, ladder=("m-mini", "m-base"), tiers=("mini", "base")
    )


def planned(tid: TaskId, *deps: TaskId, instruction: str = "") -> TaskPlanned:
    spec = TaskSpec(id=tid, instruction=instruction or f"do {tid}", deps=deps)
    return TaskPlanned(run_id=RUN, at=T0, spec=spec, tier="mini")


def validated(*tids: TaskId) -> PlanValidated:
    return PlanValidated(run_id=RUN, at=T0, task_ids=tids, edges=())


def started(tid: TaskId, attempt: int, at: float, tier: str = "mini") -> TaskStarted:
    return TaskStarted(
        run_id=RUN, at=T0 + at, task_id=tid, attempt=attempt, tier=tier, model=f"m-{tier}"
    )


def finished(
    tid: TaskId,
    attempt: int,
    at: float,
    outcome: str = "done",
    tier: str = "mini",
    detail: str = "",
) -> AttemptFinished:
    return AttemptFinished(
        run_id=RUN,
        at=T0 + at,
        task_id=tid,
        attempt=attempt,
        tier=tier,
        outcome=outcome,
        turns=1,
        duration_ms=1.0,
        detail=detail,
        summary="ok" if outcome == "done" else "",
    )


def reviewed(tid: TaskId, at: float, kind: str = "accept", feedback: str = "") -> ReviewDecided:
    return ReviewDecided(run_id=RUN, at=T0 + at, task_id=tid, verdict=kind, feedback=feedback)


def retried(tid: TaskId, at: float, note: str = "again") -> TaskRetried:
    return TaskRetried(
        run_id=RUN,
        at=T0 + at,
        task_id=tid,
        tier="mini",
        attempt=1,
        trigger="review_rejected",
        feedback="fb",
        note=note,
    )


def escalated(tid: TaskId, at: float, note: str = "climb") -> EscalationDecided:
    return EscalationDecided(
        run_id=RUN,
        at=T0 + at,
        task_id=tid,
        trigger="ambiguous",
        from_tier="mini",
        to_tier="base",
        note=note,
    )


def succeeded(tid: TaskId, at: float, tier: str = "mini") -> TaskSucceeded:
    return TaskSucceeded(run_id=RUN, at=T0 + at, task_id=tid, tier=tier, attempts=1, summary="ok")


def called(
    tid: TaskId | None, at: float, *, role: str = "worker", tier: str = "mini", cost: float = 0.1
) -> ModelCalled:
    return ModelCalled(
        run_id=RUN,
        at=T0 + at,
        role=role,
        model=f"m-{tier}",
        tier=tier,
        task_id=tid,
        tokens_in=1000,
        tokens_cached=100,
        tokens_out=50,
        tokens_reasoning=7,
        cost_usd=cost,
        duration_ms=5.0,
        requests=1,
    )


def diamond(goal: str = "g", feedback: str = "cite the source", note: str = "climb") -> list[Event]:
    """a → (b, c) → d, plus e alone; b escalates mini → base, c is retried after review and ends
    last of d's dependencies, so the critical path is a → c → d."""
    return [
        run_started(goal),
        *(planned(t, *deps) for t, deps in ((A, ()), (B, (A,)), (C, (A,)), (D, (B, C)), (E, ()))),
        validated(A, B, C, D, E),
        called(None, 0.5, role="planner", tier="base", cost=0.3),
        started(A, 1, 0.0),
        started(E, 1, 0.0),
        finished(E, 1, 1.0),
        succeeded(E, 1.2),
        finished(A, 1, 2.0),
        called(A, 1.9),
        succeeded(A, 2.0),
        started(B, 1, 2.0),
        started(C, 1, 2.0),
        finished(C, 1, 3.0),
        called(C, 2.9),
        reviewed(C, 3.5, "retry", feedback),
        retried(C, 3.5),
        started(C, 2, 3.5),
        finished(B, 1, 4.0, "ambiguous", detail="which format?"),
        escalated(B, 4.0, note),
        started(B, 2, 4.0, tier="base"),
        finished(B, 2, 6.0, tier="base"),
        called(B, 5.9, tier="base", cost=0.7),
        reviewed(B, 6.5),
        succeeded(B, 6.5, tier="base"),
        finished(C, 2, 8.0),
        called(C, 7.9),
        reviewed(C, 8.5),
        succeeded(C, 8.5),
        started(D, 1, 8.5),
        finished(D, 1, 10.0),
        called(D, 9.9),
        reviewed(D, 10.5),
        succeeded(D, 10.5),
        called(None, 10.6, role="synthesizer", tier="base", cost=0.2),
    ]


class Elements(HTMLParser):
    """Every element's tag and attributes, and the text of elements by id."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str]]] = []
        self.text: dict[str, str] = {}
        self._open: list[str | None] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        self.found.append((tag, values))
        if tag not in ("meta", "br", "img", "input", "link"):
            self._open.append(values.get("id"))

    def handle_endtag(self, tag: str) -> None:
        if self._open:
            self._open.pop()

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        for owner in self._open:
            if owner is not None:
                self.text[owner] = self.text.get(owner, "") + data

    def having(self, attr: str, css: str = "") -> list[dict[str, str]]:
        return [
            a for _, a in self.found if attr in a and (not css or css in a.get("class", "").split())
        ]

    def by_id(self, element_id: str) -> dict[str, str]:
        return next(a for _, a in self.found if a.get("id") == element_id)


def tasks_in(page: Elements, css: str) -> list[str]:
    return [a["data-task-id"] for a in page.having("data-task-id", css)]


def critical_in(page: Elements, css: str) -> set[str]:
    return {
        a["data-task-id"]
        for a in page.having("data-task-id", css)
        if "critical" in a["class"].split()
    }


# -- timeline and layout (pure) -------------------------------------------------------------------
def test_timeline_spans_each_attempt_from_start_to_finish() -> None:
    events = diamond()
    timeline = build_timeline(events, fold(events))
    spans = [
        (a.task_id, a.attempt, a.tier, a.start, a.end, a.outcome)
        for a in timeline.attempts
        if a.task_id in (B, C)
    ]
    assert spans == [
        (B, 1, "mini", 2.0, 4.0, "ambiguous"),
        (C, 1, "mini", 2.0, 3.0, "done"),
        (C, 2, "mini", 3.5, 8.0, "done"),
        (B, 2, "base", 4.0, 6.0, "done"),
    ]
    assert timeline.span_s == pytest.approx(10.6)
    assert timeline.ends == pytest.approx({E: 1.2, A: 2.0, B: 6.5, C: 8.5, D: 10.5})
    assert timeline.rows == (A, B, C, D, E)


def test_timeline_marks_verdicts_retries_and_escalations_with_their_reason() -> None:
    events = diamond(feedback="needs sources", note="a mini-tier attempt was ambiguous")
    marks = build_timeline(events, fold(events)).marks
    assert [(m.task_id, m.kind, m.label, m.reason) for m in marks if m.task_id in (B, C)] == [
        (C, "review", "retry", "needs sources"),
        (C, "retry", "review_rejected", "again"),
        (B, "escalation", "mini → base", "ambiguous: a mini-tier attempt was ambiguous"),
        (B, "review", "accept", ""),
        (C, "review", "accept", ""),
    ]


def test_timeline_closes_an_interrupted_attempt_at_the_last_event_before_the_resume() -> None:
    events: list[Event] = [
        run_started(),
        planned(A),
        validated(A),
        started(A, 1, 1.0),
        called(A, 3.0),
        RunResumed(run_id=RUN, at=T0 + 50.0, pid=1),
        started(A, 2, 51.0),
        finished(A, 2, 52.0),
        succeeded(A, 52.5),
    ]
    timeline = build_timeline(events, fold(events))
    assert [(a.attempt, a.start, a.end, a.outcome) for a in timeline.attempts] == [
        (1, 1.0, 3.0, "interrupted"),
        (2, 51.0, 52.0, "done"),
    ]


@pytest.mark.parametrize(
    ("deps", "ends", "path"),
    [
        ({A: (), B: (A,), C: (A,), D: (B, C)}, {A: 2, B: 6, C: 8, D: 10}, (A, C, D)),
        ({A: (), B: (A,), C: (A,), D: (B, C)}, {A: 2, B: 9, C: 8, D: 10}, (A, B, D)),
        ({A: (), B: ()}, {A: 5, B: 3}, (A,)),
        ({A: (), B: (), C: (A, B)}, {A: 4, B: 4, C: 6}, (A, C)),
        ({A: (), B: (A,), C: ()}, {A: 1, B: 2, C: 7}, (C,)),
        ({A: (), B: (A,), C: (B,)}, {A: 1}, (A,)),
        ({A: (), B: (A,)}, {}, ()),
    ],
    ids=[
        "diamond-right",
        "diamond-left",
        "independent",
        "tie-first",
        "lone-last",
        "skipped-tail",
        "nothing-ran",
    ],
)
def test_critical_path_follows_the_dependency_that_ended_last(
    deps: dict[TaskId, tuple[TaskId, ...]], ends: dict[TaskId, float], path: tuple[TaskId, ...]
) -> None:
    assert critical_path(deps, ends) == path


def test_layout_puts_tasks_in_columns_by_topological_depth() -> None:
    deps = {A: (), B: (A,), C: (A,), D: (B, C), E: (), TaskId("f"): (D, E)}
    assert depths(deps) == {A: 0, B: 1, C: 1, D: 2, E: 0, TaskId("f"): 3}
    layout = layered_layout(deps)
    assert layout.columns == 4 and layout.slots == 2
    assert {layout.slot[B], layout.slot[C]} == {0, 1}
    assert len({(layout.column[t], layout.slot[t]) for t in deps}) == len(deps)  # no overlap


def test_layout_orders_a_column_by_the_mean_slot_of_dependencies() -> None:
    x, y = TaskId("x"), TaskId("y")
    deps = {A: (), B: (), x: (B,), y: (A,)}
    layout = layered_layout(deps)
    assert (layout.slot[y], layout.slot[x]) == (0, 1)  # y under a, x under b: no crossing


# -- the page -------------------------------------------------------------------------------------
def test_report_draws_every_task_in_the_dag_and_the_gantt() -> None:
    events = diamond()
    page = Elements(render_report(events, fold(events)))
    assert tasks_in(page, "node") == ["a", "b", "c", "d", "e"]
    assert tasks_in(page, "row") == ["a", "b", "c", "d", "e"]
    bars = [
        (a["data-task-id"], a["data-attempt"], a["data-tier"]) for a in page.having("data-attempt")
    ]
    assert sorted(bars) == sorted(
        [
            ("a", "1", "mini"),
            ("e", "1", "mini"),
            ("b", "1", "mini"),
            ("b", "2", "base"),
            ("c", "1", "mini"),
            ("c", "2", "mini"),
            ("d", "1", "mini"),
        ]
    )
    assert {a["data-label"] for a in page.having("data-label", "mark-escalation")} == {
        "mini → base"
    }


def test_report_marks_the_critical_path_in_the_dag_and_the_gantt() -> None:
    events = diamond()
    page = Elements(render_report(events, fold(events)))
    assert critical_in(page, "node") == critical_in(page, "row") == {"a", "c", "d"}
    assert critical_in(page, "bar") == {"a", "c", "d"}
    edges = {
        (a["data-from"], a["data-to"])
        for a in page.having("data-from")
        if "critical" in a["class"].split()
    }
    assert edges == {("a", "c"), ("c", "d")}
    assert "a → c → d" in page.text["critical-path"]


def test_report_totals_equal_the_ledger() -> None:
    events = diamond()
    state = fold(events)
    page = Elements(render_report(events, state))
    totals = page.by_id("totals")
    total = state.ledger.total
    assert float(totals["data-cost-usd"]) == total.cost_usd == pytest.approx(1.6)
    assert int(totals["data-tokens-in"]) == total.tokens.input_tokens == 7000
    assert int(totals["data-tokens-cached"]) == total.tokens.cached_input_tokens
    assert int(totals["data-tokens-out"]) == total.tokens.output_tokens
    assert int(totals["data-tokens-reasoning"]) == total.tokens.reasoning_tokens
    assert int(totals["data-requests"]) == total.tokens.requests == 7
    for table in ("cost-by-task", "cost-by-tier", "cost-by-role"):
        rows = re.search(rf'<table id="{table}">.*?</table>', render_report(events, state))
        assert rows is not None
        part = Elements(rows.group(0))
        body = [
            a for a in part.having("data-cost-usd") if "total" not in a.get("class", "").split()
        ]
        assert sum(float(a["data-cost-usd"]) for a in body) == pytest.approx(total.cost_usd)
        assert sum(int(a["data-requests"]) for a in body) == total.tokens.requests
        (foot,) = part.having("data-cost-usd", "total")
        assert float(foot["data-cost-usd"]) == total.cost_usd


def test_report_colours_outcomes_and_keeps_a_replaced_task_in_the_gantt_only() -> None:
    """a fails, so b is skipped; c ran, then a replan put d in its place."""
    events: list[Event] = [
        run_started(),
        planned(A),
        planned(B, A),
        planned(C),
        validated(A, B, C),
        started(A, 1, 0.0),
        started(C, 1, 0.0),
        finished(A, 1, 1.0, "error", detail="HTTP 400"),
        TaskFailed(
            run_id=RUN,
            at=T0 + 1.0,
            task_id=A,
            tier="mini",
            attempts=1,
            error_type="ModelAPIError",
            message="HTTP 400",
        ),
        TaskSkipped(
            run_id=RUN, at=T0 + 1.0, task_id=B, reason="dependency a did not succeed", blocked_by=A
        ),
        finished(C, 1, 2.0),
        reviewed(C, 2.5, "replan", "split c"),
        planned(D),
        GraphReplanned(run_id=RUN, at=T0 + 2.5, replaced=(C,), added=(D,)),
        validated(A, B, D),
        started(D, 1, 2.5),
    ]
    page = Elements(render_report(events, fold(events)))
    nodes = {a["data-task-id"]: a["data-outcome"] for a in page.having("data-task-id", "node")}
    assert nodes == {"a": "failed", "b": "skipped", "d": "unfinished"}
    rows = {a["data-task-id"]: a["data-outcome"] for a in page.having("data-task-id", "row")}
    assert rows == {**nodes, "c": "replaced"}
    bars = {(a["data-task-id"], a["data-outcome"]) for a in page.having("data-attempt")}
    assert bars == {("a", "error"), ("c", "done"), ("d", "interrupted")}
    assert critical_in(page, "node") == {"d"}  # the one still running ends last


def test_report_escapes_hostile_run_text() -> None:
    """Goal, task ids, instructions and reasons are model text: none of it may become markup."""
    evil = TaskId('x"><script>alert(1)</script>')
    events = [
        *diamond(goal=HOSTILE, feedback=HOSTILE, note=HOSTILE),
        planned(evil, instruction=HOSTILE),
        validated(A, B, C, D, E, evil),
        started(evil, 1, 10.6),
        finished(evil, 1, 10.7, "failed", detail=HOSTILE),
        TaskSkipped(
            run_id=RUN,
            at=T0 + 10.8,
            task_id=evil,
            reason=HOSTILE,
            blocked_by=None,
            cause="cancelled",
        ),
        RunFinished(
            run_id=RUN,
            at=T0 + 11,
            status="partial",
            succeeded=5,
            failed=0,
            skipped=1,
            escalations=1,
            escalation_rate=0.2,
            cost_usd=1.6,
            tokens_in=7000,
            tokens_cached=700,
            tokens_out=350,
            duration_ms=11_000,
        ),
    ]
    state = fold(events)
    state.answer = HOSTILE
    out = render_report(events, state)
    assert "<script" not in out.lower() and "<img" not in out.lower()
    assert "&lt;script&gt;document.body.dataset.pwned=&quot;1&quot;&lt;/script&gt;" in out
    page = Elements(out)
    assert page.text["goal"] == HOSTILE and page.text["answer"] == HOSTILE
    assert evil in tasks_in(page, "node") and evil in tasks_in(page, "row")


def test_report_of_a_run_that_never_planned_still_renders() -> None:
    events: list[Event] = [run_started("an impossible goal")]
    page = Elements(render_report(events, fold(events)))
    assert page.having("data-task-id") == []
    assert page.text["critical-path"] == "Critical path: none (nothing ran)"
    assert float(page.by_id("totals")["data-cost-usd"]) == 0.0


def test_report_is_self_contained() -> None:
    events = diamond()
    out = render_report(events, fold(events))
    assert out.startswith("<!DOCTYPE html>")
    for banned in ("<script", "<link", "src=", "http:", "https:", "@import", "url(http"):
        assert banned not in out
    assert "Content-Security-Policy" in out


# -- a real run, end to end -------------------------------------------------------------------------
def worker_step(seconds: float, status: Literal["done", "ambiguous"] = "done") -> Responder:
    """An attempt that takes `seconds` (the durations the timeline shows) and reports `status`."""

    async def respond(request: ModelRequest) -> ModelReply:
        await anyio.sleep(seconds)  # the attempt's work time, not synchronisation
        report = leaf(f"{request.task_id} {status}", status=status)
        usage = TokenUsage(
            input_tokens=1200,
            cached_input_tokens=200,
            output_tokens=150,
            reasoning_tokens=30,
            requests=1,
        )
        return ModelReply(text=report.model_dump_json(), usage=usage)

    return respond


def reviewer() -> Responder:
    """Accept everything, except `stats` the first time: retry it, with hostile feedback."""
    seen: set[str] = set()

    def respond(request: ModelRequest) -> ModelReply:
        text = "\n".join(m.content for m in request.messages if m.role == "user")
        verdicts: list[VerdictOut] = []
        for tid in re.findall(r"^### (\S+) \(tier ", text, flags=re.MULTILINE):
            first = tid not in seen
            seen.add(tid)
            if tid == "stats" and first:
                verdicts.append(verdict(tid, "retry", f"add the median {HOSTILE}"))
            else:
                verdicts.append(verdict(tid, "accept"))
        return ModelReply(text=ReviewOut(verdicts=verdicts).model_dump_json())

    return respond


async def diamond_run(
    model: ScriptedModel, tmp_path: Path, goal: str = f"Summarise the data {HOSTILE}"
) -> RunResult:
    """fetch → (parse, stats) → summary, plus notes: parse escalates, stats is retried and slow."""
    model.script(
        "planner",
        plan(
            task("fetch"),
            task("parse", "fetch"),
            task("stats", "fetch"),
            task("summary", "parse", "stats"),
            task("notes"),
        ),
    )
    model.script("worker", worker_step(0.05), task="fetch")
    model.script("worker", worker_step(0.05, "ambiguous"), worker_step(0.05), task="parse")
    model.script("worker", worker_step(0.3), worker_step(0.3), task="stats")
    model.script("worker", worker_step(0.1), task="summary")
    model.script("worker", worker_step(0.05), task="notes")
    model.respond("reviewer", reviewer()).respond("synthesizer", answer)
    with anyio.fail_after(20):
        return await engine(model, tmp_path).run(goal)


def saved_usage(result: RunResult) -> dict[str, object]:
    return json.loads(Path(result.run_dir or "", "result.json").read_text())["usage"]


@pytest.mark.timeout(30)
async def test_write_report_of_a_real_run_defaults_to_the_run_dir(
    scripted: ScriptedModel, tmp_path: Path
) -> None:
    result = await diamond_run(scripted, tmp_path)
    run_dir = Path(result.run_dir or "")
    path = write_report(run_dir)
    assert path == run_dir / "report.html"
    page = Elements(path.read_text())
    assert float(page.by_id("totals")["data-cost-usd"]) == result.usage.cost_usd > 0
    other = write_report(run_dir, tmp_path / "elsewhere.html")
    assert other.read_text() == path.read_text()
    assert read_state(run_dir).ledger.total == result.usage


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if found := shutil.which(name):
            return found
    return None


CHROMIUM = find_chromium()


async def chromium(*args: str, profile: Path) -> str:
    assert CHROMIUM is not None
    flags = (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        f"--user-data-dir={profile}",
    )
    with anyio.fail_after(90):
        done = await anyio.run_process([CHROMIUM, *flags, *args], check=True)
    return done.stdout.decode()


@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="no chromium binary on PATH (apt-get install chromium); required when CI is set",
)
@pytest.mark.timeout(180)
async def test_report_of_a_real_run_in_headless_chromium(
    scripted: ScriptedModel, tmp_path: Path
) -> None:
    """The real run's report, as Chromium parses and lays it out: every task in the DAG and the
    Gantt, the critical path marked, the totals of result.json, and the hostile text inert."""
    if CHROMIUM is None:
        pytest.fail("CI is set but no chromium binary is on PATH: .ci/run installs it with apt-get")
    result = await diamond_run(scripted, tmp_path)
    assert result.status == "completed" and result.escalations == 1
    report = write_report(Path(result.run_dir or ""))
    dom = await chromium("--dump-dom", report.as_uri(), profile=tmp_path / "profile")
    page = Elements(dom)
    assert result.plan is not None
    ids = [t.id for t in result.plan.tasks]
    assert set(ids) == {"fetch", "parse", "stats", "summary", "notes"}
    assert tasks_in(page, "node") == ids and tasks_in(page, "row") == ids
    assert critical_in(page, "node") == critical_in(page, "row") == {"fetch", "stats", "summary"}
    assert critical_in(page, "bar") == {"fetch", "stats", "summary"}
    assert {(a["data-task-id"], a["data-tier"]) for a in page.having("data-attempt")} >= {
        ("parse", "mini"),
        ("parse", "base"),
    }
    assert len(page.having("data-attempt", "bar")) == 7
    assert {a["data-task-id"] for a in page.having("data-label", "mark-retry")} == {"stats"}
    totals = page.by_id("totals")
    usage = saved_usage(result)
    assert float(totals["data-cost-usd"]) == usage["cost_usd"] == result.usage.cost_usd
    tokens = usage["tokens"]
    assert isinstance(tokens, dict)
    assert int(totals["data-tokens-in"]) == tokens["input_tokens"]
    assert int(totals["data-tokens-out"]) == tokens["output_tokens"]
    assert int(totals["data-requests"]) == tokens["requests"]
    assert not any(tag in ("script", "img") for tag, _ in page.found)
    assert "data-pwned" not in dom  # the goal's script never ran
    assert HOSTILE in page.text["goal"]
    shot = tmp_path / "report.png"
    await chromium(
        f"--screenshot={shot}",
        "--window-size=1400,1000",
        report.as_uri(),
        profile=tmp_path / "profile",
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
