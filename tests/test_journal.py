"""The journal: event encoding, the schema, commit groups, the verifying recorder, patch effects."""

from __future__ import annotations

import dataclasses
import inspect
import sqlite3
import typing
from pathlib import Path

import pytest

from orchestrator import events as events_module
from orchestrator.errors import JournalError, JournalMismatchError
from orchestrator.events import (
    AnswerWritten,
    AttemptFinished,
    DispatchStopped,
    EscalationDecided,
    Event,
    GraphReplanned,
    MergeStarted,
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
    WorkspaceMerged,
)
from orchestrator.fold import RunState, fold
from orchestrator.journal import (
    JOURNAL_FILE,
    SCHEMA_VERSION,
    Journal,
    JournalEffects,
    Recorder,
    decode,
    encode,
    read_events,
    read_state,
)
from orchestrator.models import (
    AcceptanceCheck,
    FileChange,
    PatchRecord,
    RunId,
    TaskId,
    TaskSpec,
)
from orchestrator.secrets import MARKER
from orchestrator.testing import RecordingSink

RUN = RunId("run-1")
A, B = TaskId("a"), TaskId("b")
KEY = "sk-proj-abcdefghijklmnop0123456789"
"""Looks like an OpenAI key to the redaction patterns."""
SPEC = TaskSpec(
    id=A,
    instruction="do a",
    deps=(B,),
    tools=("read", "write"),
    produces="a file",
    check=AcceptanceCheck(command="pytest -q", timeout_s=5.0),
    tier_hint="base",
    est_latency_s=3.5,
)
FILES = (
    FileChange(path="new.py", before_sha256=None, after_sha256="b" * 64),
    FileChange(path="gone.py", before_sha256="c" * 64, after_sha256=None),
)

SAMPLES: tuple[Event, ...] = (
    RunStarted(
        run_id=RUN,
        at=1.5,
        goal="g",
        ladder=("m1", "m2"),
        tiers=("mini", "base"),
        workdir="/w",
        context="ctx",
    ),
    RunResumed(run_id=RUN, at=2.5, pid=4242),
    PlanRejected(run_id=RUN, at=3.0, attempt=2, error="cycle a → b", task_ids=("a", "b")),
    PlanValidated(
        run_id=RUN,
        at=3.5,
        task_ids=("b", "a"),
        edges=(("b", "a"),),
        replan=True,
        rationale="split it",
    ),
    TaskPlanned(run_id=RUN, at=4.0, spec=SPEC, tier="base"),
    TaskReady(run_id=RUN, at=4.5, task_id=A),
    TaskStarted(run_id=RUN, at=5.0, task_id=A, attempt=2, tier="base", model="m2"),
    ToolCalled(
        run_id=RUN, at=5.5, task_id=A, tool="read", call_id="c1", is_error=True, duration_ms=2.5
    ),
    ModelCalled(
        run_id=RUN,
        at=6.0,
        role="worker",
        model="m2-2026",
        tier="base",
        task_id=A,
        tokens_in=100,
        tokens_cached=20,
        tokens_out=30,
        tokens_reasoning=7,
        cost_usd=0.125,
        duration_ms=250.0,
        tries=3,
        wasted=True,
        tokens_estimated=11,
        requests=2,
        unpriced=True,
        final=False,
        request_model="m2",
    ),
    ModelCallFailed(
        run_id=RUN,
        at=6.5,
        role="reviewer",
        model="m2",
        task_id=None,
        error_type="ModelAPIError",
        message="bad request",
        retryable=True,
        tries=2,
    ),
    ModelCallRetried(
        run_id=RUN,
        at=7.0,
        role="worker",
        model="m1",
        task_id=A,
        try_number=2,
        error_type="ModelAPIError",
        status_code=503,
        message="overloaded",
        delay_s=0.5,
        cooldown_s=1.5,
    ),
    AttemptFinished(
        run_id=RUN,
        at=7.5,
        task_id=A,
        attempt=2,
        tier="base",
        outcome="done",
        turns=4,
        duration_ms=1234.5,
        detail="fine",
        summary="did a",
        outputs={"file": "a.py", "note": "ünïcode"},
        check_output="1 passed",
    ),
    TaskSucceeded(
        run_id=RUN, at=8.0, task_id=A, tier="base", attempts=2, summary="did a", cost_usd=0.01
    ),
    TaskFailed(
        run_id=RUN,
        at=8.5,
        task_id=B,
        tier="frontier",
        attempts=5,
        error_type="ReviewRejected",
        message="wrong",
        retryable=True,
        reason="too many review rejections",
        cost_usd=0.02,
    ),
    TaskSkipped(run_id=RUN, at=9.0, task_id=A, reason="budget", blocked_by=B, cause="budget"),
    TaskUnreviewed(run_id=RUN, at=9.5, task_id=A, reason="outage", resumable=True),
    TaskRetried(
        run_id=RUN,
        at=10.0,
        task_id=A,
        tier="mini",
        attempt=1,
        trigger="review_rejected",
        feedback="cite it",
        note="attempt 1 (review_rejected): cite it",
    ),
    ReviewDecided(run_id=RUN, at=10.5, task_id=A, verdict="retry", feedback="cite it"),
    ReviewFailed(run_id=RUN, at=11.0, task_ids=(A, B), failure="outage", error="503"),
    EscalationDecided(
        run_id=RUN,
        at=11.5,
        task_id=A,
        trigger="ambiguous",
        from_tier="mini",
        to_tier="base",
        note="climb",
    ),
    GraphReplanned(
        run_id=RUN,
        at=12.0,
        replaced=(A,),
        added=(TaskId("a1"), TaskId("a2")),
        rewired={B: (TaskId("a2"),)},
    ),
    PatchApplied(run_id=RUN, at=12.5, task_id=A, key="k" * 64, files=FILES),
    MergeStarted(run_id=RUN, at=12.6, task_id=A, commit="c" * 40, base="b" * 40),
    WorkspaceMerged(
        run_id=RUN,
        at=12.7,
        task_id=A,
        commit="c" * 40,
        merged=("x.py",),
        conflicts=("y.py",),
        resolve=TaskId("a-resolve1"),
        rewired={TaskId("b"): (A, TaskId("a-resolve1"))},
    ),
    DispatchStopped(run_id=RUN, at=13.0, reason="cancelled", detail="Ctrl-C"),
    AnswerWritten(run_id=RUN, at=13.5, answer="42"),
    RunFinished(
        run_id=RUN,
        at=14.0,
        status="partial",
        succeeded=1,
        failed=1,
        skipped=1,
        escalations=2,
        escalation_rate=0.5,
        unreviewed=1,
        model_retries=3,
        wasted_cost_usd=0.25,
        cost_usd=1.75,
        tokens_in=1000,
        tokens_cached=200,
        tokens_out=300,
        duration_ms=5000.0,
        stop_reason="budget: cost",
        stop_detail="run cost limit reached",
    ),
)


def _event_classes() -> set[type]:
    """Every event dataclass events.py defines (those with a `kind`)."""
    return {
        cls
        for _, cls in inspect.getmembers(events_module, inspect.isclass)
        if cls.__module__ == events_module.__name__
        and dataclasses.is_dataclass(cls)
        and "kind" in {f.name for f in dataclasses.fields(cls)}
    }


def test_event_union_covers_every_event_class() -> None:
    classes = _event_classes()
    assert set(typing.get_args(Event)) == classes
    assert {type(e) for e in SAMPLES} == classes
    assert len(SAMPLES) == len(classes)


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.kind)
def test_encode_decode_round_trip(event: Event) -> None:
    assert decode(encode(event)) == event
    assert decode(encode(event).encode()) == event


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.kind)
def test_round_trip_samples_set_every_defaulted_field(event: Event) -> None:
    """A sample left at a default would not prove that field survives the round trip."""
    for f in dataclasses.fields(event):
        if f.name == "kind":
            continue
        if f.default is not dataclasses.MISSING:
            assert getattr(event, f.name) != f.default, f.name
        elif f.default_factory is not dataclasses.MISSING:
            assert getattr(event, f.name) != f.default_factory(), f.name


def test_encode_redacts_credentials() -> None:
    event = AttemptFinished(
        run_id=RUN,
        at=1.0,
        task_id=A,
        attempt=1,
        tier="mini",
        outcome="done",
        turns=1,
        duration_ms=1.0,
        summary=f"the key is {KEY}",
        outputs={"env": f"OPENAI_API_KEY={KEY}"},
    )
    body = encode(event)
    assert KEY not in body
    back = decode(body)
    assert isinstance(back, AttemptFinished)
    assert back.summary == f"the key is {MARKER}"
    assert back.outputs == {"env": f"OPENAI_API_KEY={MARKER}"}


# -- the journal file -------------------------------------------------------------------------
def _connect(path: Path) -> sqlite3.Connection:
    """A second, independent reader of the journal file."""
    return sqlite3.connect(path, isolation_level=None)


def _count(path: Path) -> int:
    db = _connect(path)
    try:
        return int(db.execute("SELECT count(*) FROM events").fetchone()[0])
    finally:
        db.close()


def test_journal_stores_its_schema_version(tmp_path: Path) -> None:
    path = tmp_path / JOURNAL_FILE
    Journal(path).close()
    db = _connect(path)
    try:
        row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        db.close()
    assert (row, mode) == ((str(SCHEMA_VERSION),), "wal")
    Journal(path).close()  # opening it again keeps it


def test_journal_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / JOURNAL_FILE
    Journal(path).close()
    db = _connect(path)
    db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    db.close()
    with pytest.raises(JournalError, match=rf"journal schema {SCHEMA_VERSION + 1}.*upgrade"):
        Journal(path)


def test_journal_commit_makes_a_group_visible(tmp_path: Path) -> None:
    path = tmp_path / JOURNAL_FILE
    journal = Journal(path)
    try:
        for seq, event in enumerate(SAMPLES[:3], start=1):
            journal.append(seq, event.kind, encode(event))
        assert _count(path) == 0
        assert journal.events() == []
        journal.commit()
        assert _count(path) == 3
        assert journal.events() == list(SAMPLES[:3])
        assert journal.commits == 1
        journal.commit()  # nothing pending: no empty transaction
        assert journal.commits == 1
    finally:
        journal.close()


def test_journal_close_commits_what_is_pending(tmp_path: Path) -> None:
    journal = Journal(tmp_path / JOURNAL_FILE)
    journal.append(1, SAMPLES[0].kind, encode(SAMPLES[0]))
    journal.close()
    assert read_events(tmp_path) == [SAMPLES[0]]


def test_journal_rows_after_a_sequence_number(tmp_path: Path) -> None:
    journal = Journal(tmp_path / JOURNAL_FILE)
    try:
        for seq, event in enumerate(SAMPLES[:4], start=1):
            journal.append(seq, event.kind, encode(event))
        journal.commit()
        assert [seq for seq, _ in journal.rows(2)] == [3, 4]
        assert journal.events(2) == list(SAMPLES[2:4])
    finally:
        journal.close()


def test_journal_export_jsonl_is_one_event_a_line(tmp_path: Path) -> None:
    journal = Journal(tmp_path / JOURNAL_FILE)
    try:
        for seq, event in enumerate(SAMPLES, start=1):
            journal.append(seq, event.kind, encode(event))
        journal.commit()
        journal.export_jsonl(tmp_path / "events.jsonl")
    finally:
        journal.close()
    lines = (tmp_path / "events.jsonl").read_text(encoding="utf-8").splitlines()
    assert [decode(line) for line in lines] == list(SAMPLES)


def test_read_events_without_a_journal_raises(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="no journal at"):
        read_events(tmp_path / "missing")
    with pytest.raises(JournalError, match="no journal at"):
        read_state(tmp_path)


# -- the recorder -----------------------------------------------------------------------------
START = SAMPLES[0]
PLANNED = TaskPlanned(run_id=RUN, at=2.0, spec=TaskSpec(id=A, instruction="do a"), tier="mini")
STARTED = TaskStarted(run_id=RUN, at=3.0, task_id=A, attempt=1, tier="mini", model="m1")


def test_recorder_journals_applies_then_fans_out(tmp_path: Path) -> None:
    sink = RecordingSink()
    journal = Journal(tmp_path / JOURNAL_FILE)
    try:
        recorder = Recorder(journal, RunState(), [sink], verify=True)
        for event in (START, PLANNED, STARTED):
            recorder.emit(event)
        assert (recorder.state.seq, recorder.state.tasks[A].phase) == (3, "running")
        assert sink.events == [START, PLANNED, STARTED]
        recorder.commit()
    finally:
        journal.close()
    assert read_state(tmp_path) == fold([START, PLANNED, STARTED])


def test_recorder_verify_catches_a_tampered_live_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = Journal(tmp_path / JOURNAL_FILE)
    try:
        recorder = Recorder(journal, RunState(), verify=True)
        recorder.emit(START)
        recorder.emit(PLANNED)
        recorder.commit()
        recorder.state.tasks[A].feedback.append("changed behind the fold's back")
        recorder.emit(STARTED)
        with pytest.raises(JournalMismatchError, match="fold of 3 events differs"):
            recorder.commit()
    finally:
        journal.close()
    err = capsys.readouterr().err
    assert err.startswith("journal mismatch:")


def test_recorder_verify_starts_from_the_existing_journal(tmp_path: Path) -> None:
    """A resumed run's recorder folds what is already journaled before checking new events."""
    journal = Journal(tmp_path / JOURNAL_FILE)
    try:
        first = Recorder(journal, RunState())
        first.emit(START)
        first.emit(PLANNED)
        first.commit()
        second = Recorder(journal, fold(journal.events()), verify=True)
        second.emit(STARTED)
        second.commit()
        assert second.state == fold([START, PLANNED, STARTED])
    finally:
        journal.close()


def test_recorder_without_verify_does_not_check(tmp_path: Path) -> None:
    journal = Journal(tmp_path / JOURNAL_FILE)
    try:
        recorder = Recorder(journal, RunState())
        recorder.emit(START)
        recorder.state.goal = "changed"
        recorder.commit()
    finally:
        journal.close()
    assert read_state(tmp_path).goal == "g"


# -- patch effects ----------------------------------------------------------------------------
def test_journal_effects_record_commits_at_once(tmp_path: Path) -> None:
    """A patch is durable before its files are written: another reader sees it immediately."""
    path = tmp_path / JOURNAL_FILE
    journal = Journal(path)
    try:
        recorder = Recorder(journal, RunState(), verify=True)
        recorder.emit(START)
        recorder.emit(PLANNED)  # buffered until the patch's commit
        effects = JournalEffects(recorder, RUN, clock=lambda: 99.0)
        patch = PatchRecord(task_id=A, key="k1", files=FILES)
        assert effects.find(A, "k1") is None
        effects.record(patch)
        assert _count(path) == 3
        assert effects.find(A, "k1") == patch
        assert effects.find(A, "k2") is None
        assert effects.find(B, "k1") is None
    finally:
        journal.close()
    assert read_events(tmp_path)[-1] == PatchApplied(
        run_id=RUN, at=99.0, task_id=A, key="k1", files=FILES
    )
    assert read_state(tmp_path).patches == {(A, "k1"): patch}


def test_recorder_stores_credentials_redacted(tmp_path: Path) -> None:
    path = tmp_path / JOURNAL_FILE
    journal = Journal(path)
    try:
        recorder = Recorder(journal, RunState())
        recorder.emit(dataclasses.replace(START, goal=f"use {KEY} to log in"))
        recorder.emit(
            DispatchStopped(run_id=RUN, at=2.0, reason=f"budget: Authorization: Bearer {KEY}")
        )
        recorder.commit()
    finally:
        journal.close()
    db = _connect(path)
    try:
        bodies = [str(row[0]) for row in db.execute("SELECT body FROM events ORDER BY seq")]
    finally:
        db.close()
    assert len(bodies) == 2
    assert all(KEY not in body and MARKER in body for body in bodies)
    assert read_state(tmp_path).goal == f"use {MARKER} to log in"


# -- product bugs, each as its smallest case --------------------------------------------------
def test_recorder_verify_passes_at_a_barrier_with_routine_events_buffered(tmp_path: Path) -> None:
    """Nothing tampers with the state, so verifying must pass at every barrier.

    Regression (1434ee9): `Recorder.barrier` verified even when `Journal.barrier` committed
    nothing (only routine events such as task_planned / task_ready buffered), so the fold of the
    committed rows was behind the live state and every `journal_verify=True` run aborted with
    `JournalMismatchError` at its first dispatch.
    """
    journal = Journal(tmp_path / JOURNAL_FILE)
    try:
        recorder = Recorder(journal, RunState(), verify=True)
        recorder.emit(START)
        recorder.barrier()
        recorder.emit(PLANNED)
        recorder.emit(TaskReady(run_id=RUN, at=2.5, task_id=A))
        recorder.barrier()
        recorder.commit()
    finally:
        journal.close()
    assert read_state(tmp_path).seq == 3


def test_recorder_verify_passes_with_a_credential_in_a_report(tmp_path: Path) -> None:
    """A worker's report that quotes a key is journaled redacted; the live state must agree.

    Fails today: `Recorder.emit` applies the original event to the live state but journals the
    redacted one, so fold(journal) != live state (verify raises `JournalMismatchError`), and a
    resumed run would see `[REDACTED]` where the live run saw the key.
    """
    journal = Journal(tmp_path / JOURNAL_FILE)
    try:
        recorder = Recorder(journal, RunState(), verify=True)
        for event in (START, PLANNED, STARTED):
            recorder.emit(event)
        recorder.emit(
            AttemptFinished(
                run_id=RUN,
                at=4.0,
                task_id=A,
                attempt=1,
                tier="mini",
                outcome="done",
                turns=1,
                duration_ms=10.0,
                summary=f"found the key {KEY}",
            )
        )
        recorder.commit()
        live = recorder.state
    finally:
        journal.close()
    assert read_state(tmp_path) == live
