"""Record / replay: a scripted multi-role run recorded to a cassette replays to the same result."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from orchestrator import (
    CassetteError,
    ConfigError,
    ModelAPIError,
    ModelBehaviorError,
    ModelError,
    ModelOutageError,
    ModelTimeoutError,
    Orchestrator,
    RecordingClient,
    ReplayMismatchError,
    ReplayModel,
    RunAbortedError,
    RunResult,
    Settings,
    TokenUsage,
    tool,
)
from orchestrator.agents.reviewer import ReviewOut
from orchestrator.agents.worker import LeafReportOut
from orchestrator.cassette import (
    VERSION,
    CallRecord,
    error_data,
    read_cassette,
    rebuilt_error,
)
from orchestrator.llm import (
    ModelCapabilities,
    ModelReply,
    ModelRequest,
    ReplyDone,
    StreamEvent,
    TextDelta,
    UserMessage,
)
from orchestrator.models import DEFAULT_LADDER, TaskId, TierSpec
from orchestrator.testing import (
    ScriptedModel,
    answer,
    leaf_report,
    plan_reply,
    review_reply,
    task,
    tool_call,
    verdict,
)

PATCH = "*** Begin Patch\n*** Add File: hello.txt\n+hello world\n*** End Patch\n"
_ITEM = re.compile(r"^### (\S+) \(tier [^,]*, attempt (\d+)\)", re.MULTILINE)


@tool
def count(text: str) -> int:
    """Count the words of a text."""
    return len(text.split())


def _worker(request: ModelRequest) -> ModelReply:
    results = [m.content for m in request.messages if m.role == "tool"]
    match request.task_id, results:
        case "write", []:
            return tool_call("apply_patch", {"patch": PATCH}, call_id="p1")
        case "count", []:
            return tool_call("count", {"text": "to be or not"}, call_id="c1")
        case "count", [words, *_]:
            return ModelReply(text=leaf_report("counted", words=words).model_dump_json())
        case _:
            return ModelReply(text=leaf_report(f"did {request.task_id}").model_dump_json())


def _reviewer(request: ModelRequest) -> ModelReply:
    """Retries the first attempt of `count`, accepts everything else, whatever the batch."""
    text = "\n".join(m.content for m in request.messages if m.role == "user")
    verdicts = [
        verdict(tid, "retry", "count again")
        if (tid, n) == ("count", "1")
        else verdict(tid, "accept")
        for tid, n in _ITEM.findall(text)
    ]
    return ModelReply(text=review_reply(*verdicts).model_dump_json())


def _scripted() -> ScriptedModel:
    plan = plan_reply(
        task("write", tools=["apply_patch"], check="test -f hello.txt"),
        task("count", tools=["count"]),
        task("sum", "write", "count"),
    )
    return (
        ScriptedModel()
        .script("planner", plan)
        .respond("worker", _worker)
        .respond("reviewer", _reviewer)
        .script("synthesizer", answer("all done"))
    )


def _orchestrator(work: Path, *, client: Any = None, **settings: Any) -> Orchestrator:
    work.mkdir(exist_ok=True)
    return Orchestrator(
        client=client,
        workdir=work,
        tools=[count],
        settings=Settings(plugins=False, shell_sandbox="off", **settings),
    )


def _outcome(result: RunResult) -> dict[str, Any]:
    """What a replay must reproduce: statuses, outputs, attempts, answer, tokens and cost."""
    return {
        "status": result.status,
        "answer": result.answer,
        "results": {
            tid: (r.kind, getattr(r, "outputs", None), getattr(r, "attempts", None))
            for tid, r in result.results.items()
        },
        "tokens": result.usage.tokens,
        "by_role": {role: u.tokens for role, u in result.usage_by_role.items()},
        "by_task": {tid: u.tokens for tid, u in result.usage_by_task.items()},
        "cost": pytest.approx(result.usage.cost_usd, rel=1e-12),  # sums in completion order
        "escalations": result.escalations,
    }


@pytest.fixture
async def recorded(tmp_path: Path) -> tuple[Path, RunResult]:
    """A run recorded through `Settings.record` around a scripted model."""
    cassette = tmp_path / "run.cassette.jsonl"
    model = _scripted()
    orch = _orchestrator(tmp_path / "first", client=model, record=cassette)
    result = await orch.run("write hello.txt, count words, then sum up")
    model.assert_complete()
    assert result.status == "completed"
    assert result.usage.cost_usd > 0
    return cassette, result


async def test_cassette_replay_reproduces_statuses_outputs_usage_and_cost(
    tmp_path: Path, recorded: tuple[Path, RunResult]
) -> None:
    cassette, first = recorded
    replay = ReplayModel.load(cassette)
    again = await _orchestrator(tmp_path / "second", client=replay).run(
        "any goal: replay ignores it"
    )

    assert _outcome(again) == _outcome(first)
    assert first.results[TaskId("count")].attempts == 2  # type: ignore[union-attr]
    assert (tmp_path / "second" / "hello.txt").read_text() == "hello world\n"
    assert replay.unused() == ()


async def test_cassette_replay_from_settings_opens_no_backend(
    tmp_path: Path, recorded: tuple[Path, RunResult]
) -> None:
    """ORCH_REPLAY alone (no client, no key, no server) runs the recorded run again."""
    cassette, first = recorded
    again = await _orchestrator(tmp_path / "third", replay=cassette).run("g")

    assert _outcome(again) == _outcome(first)


async def test_cassette_lines_say_who_asked_and_hold_the_full_reply(
    recorded: tuple[Path, RunResult],
) -> None:
    cassette, _ = recorded
    header = json.loads(cassette.read_text().splitlines()[0])
    _, calls = read_cassette(cassette)

    assert (header["format"], header["version"]) == ("orchestrator-cassette", VERSION)
    assert [t["model"] for t in header["ladder"]] == [t.model for t in DEFAULT_LADDER]
    assert header["capabilities"]["streaming"] is True
    keys = {(c.role, c.task, c.turn) for c in calls}
    assert {("planner", None, 1), ("synthesizer", None, 1)} <= keys
    assert {("worker", "count", 1), ("worker", "count", 2), ("worker", "count", 4)} <= keys
    patch = next(c for c in calls if c.role == "worker" and c.task == "write" and c.turn == 1)
    assert patch.reply is not None
    assert [(t.name, json.loads(t.arguments)) for t in patch.reply.tool_calls] == [
        ("apply_patch", {"patch": PATCH})
    ]
    assert patch.request.tools == ("apply_patch",)
    report = next(c for c in calls if c.role == "worker" and c.task == "write" and c.turn == 2)
    assert report.reply is not None and report.reply.parsed is not None
    assert report.request.output_type == "LeafReportOut"
    assert report.reply.usage.requests == 1
    reviewed = [(r.task, r.attempt) for c in calls for r in c.reviews]
    assert sorted(reviewed) == [("count", 1), ("count", 2), ("sum", 1), ("write", 1)]


async def test_cassette_replay_fails_loudly_on_a_call_it_does_not_hold(
    tmp_path: Path, recorded: tuple[Path, RunResult]
) -> None:
    """A cassette without the synthesizer's call stops the replayed run with a typed error."""
    cassette, _ = recorded
    lines = cassette.read_text().splitlines(keepends=True)
    cut = tmp_path / "cut.jsonl"
    cut.write_text("".join(line for line in lines if '"role":"synthesizer"' not in line))

    with pytest.raises(RunAbortedError) as caught:
        await _orchestrator(tmp_path / "fourth", replay=cut).run("g")
    error = caught.value.__cause__
    assert isinstance(error, ReplayMismatchError)
    assert {r.kind for r in caught.value.result.results.values()} == {"succeeded"}
    assert (error.role, error.task_id, error.turn) == ("synthesizer", None, 1)
    assert "holds no such call (no synthesizer call)" in str(error)


async def test_replay_names_what_the_cassette_holds_for_a_task(
    recorded: tuple[Path, RunResult],
) -> None:
    replay = ReplayModel.load(recorded[0])
    request = _request("worker", task_id="count", tier="mini")
    for _ in range(4):  # count's two attempts: a tool call and a report each
        await replay.complete(request)

    with pytest.raises(ReplayMismatchError, match=r"worker count calls at tier mini turns 1-4"):
        await replay.complete(request)


async def test_record_and_replay_together_is_a_config_error(tmp_path: Path) -> None:
    orch = _orchestrator(tmp_path / "w", record=tmp_path / "a", replay=tmp_path / "b")

    with pytest.raises(ConfigError, match="record and replay are both set"):
        await orch.run("g")


# -- the reviewer: batching depends on timing, verdicts and totals do not -------------------------


def _request(
    role: Any, *, task_id: str | None = None, tier: str = "frontier", text: str = "", **kw: Any
) -> ModelRequest:
    return ModelRequest(
        role=role,
        model="m",
        messages=(UserMessage(content=text),),
        tier=tier,
        task_id=TaskId(task_id) if task_id else None,
        **kw,
    )


def _review_request(*tasks: str) -> ModelRequest:
    text = "\n\n".join(f"### {t} (tier mini, attempt 1)\nStatus: done" for t in tasks)
    return _request("reviewer", text=f"Tasks under review:\n\n{text}", output_type=ReviewOut)


async def _recorded_reviews(path: Path, *batches: tuple[str, ...]) -> ReplayModel:
    """A cassette of reviewer calls, one per batch, each accepting its tasks (usage 101 / 7)."""
    model = ScriptedModel()
    for batch in batches:
        reply = review_reply(*(verdict(t, "accept", f"ok {t}") for t in batch))
        usage = TokenUsage(input_tokens=101, cached_input_tokens=50, output_tokens=7, requests=1)
        model.script("reviewer", ModelReply(text=reply.model_dump_json(), usage=usage))
    client = RecordingClient(model, path)
    for batch in batches:
        await client.complete(_review_request(*batch))
    return ReplayModel.load(path)


def _accepted(reply: ModelReply) -> list[tuple[str, str]]:
    assert isinstance(reply.parsed, ReviewOut)
    return [(v.task_id, v.feedback) for v in reply.parsed.verdicts]


async def test_replay_splits_a_recorded_review_batch_and_its_usage(tmp_path: Path) -> None:
    replay = await _recorded_reviews(tmp_path / "c.jsonl", ("a", "b"))

    first = await replay.complete(_review_request("b"))
    second = await replay.complete(_review_request("a"))

    assert (_accepted(first), _accepted(second)) == ([("b", "ok b")], [("a", "ok a")])
    total = first.usage + second.usage
    assert total == TokenUsage(
        input_tokens=101, cached_input_tokens=50, output_tokens=7, requests=1
    )
    assert replay.unused() == ()


async def test_replay_joins_recorded_review_batches_and_their_usage(tmp_path: Path) -> None:
    replay = await _recorded_reviews(tmp_path / "c.jsonl", ("a",), ("b",))

    reply = await replay.complete(_review_request("a", "b"))

    assert _accepted(reply) == [("a", "ok a"), ("b", "ok b")]
    assert reply.usage == TokenUsage(
        input_tokens=202, cached_input_tokens=100, output_tokens=14, requests=2
    )


async def test_replay_gives_a_batch_recorded_as_is_its_reply_verbatim(tmp_path: Path) -> None:
    replay = await _recorded_reviews(tmp_path / "c.jsonl", ("a", "b"))

    reply = await replay.complete(_review_request("b", "a"))

    assert _accepted(reply) == [("a", "ok a"), ("b", "ok b")]
    assert reply.usage.input_tokens == 101


async def test_replay_refuses_a_review_of_an_attempt_never_recorded(tmp_path: Path) -> None:
    replay = await _recorded_reviews(tmp_path / "c.jsonl", ("a",))
    await replay.complete(_review_request("a"))

    with pytest.raises(ReplayMismatchError, match=r"no recorded review of a attempt 1 \(review 2"):
        await replay.complete(_review_request("a"))


async def test_replay_of_a_single_review_takes_its_verdict_whatever_id_it_names(
    tmp_path: Path,
) -> None:
    """The reviewer's own rule: one verdict on a batch of one is that task's."""
    path = tmp_path / "c.jsonl"
    misspelt = review_reply(verdict("A ", "retry", "again")).model_dump_json()
    model = ScriptedModel().script("reviewer", ModelReply(text=misspelt), review_reply())
    client = RecordingClient(model, path)
    await client.complete(_review_request("a"))
    await client.complete(_review_request("b"))
    replay = ReplayModel.load(path)

    reply = await replay.complete(_review_request("a", "b"))

    assert isinstance(reply.parsed, ReviewOut)
    assert [(v.task_id, v.verdict) for v in reply.parsed.verdicts] == [("a", "retry")]


# -- recording: errors, streams, clients that cannot stream ---------------------------------------

_ERRORS: list[ModelError] = [
    ModelAPIError("429", status_code=429, retryable=True, retry_after_s=1.5),
    ModelOutageError("down", status_code=None, outage_s=30.0),
    ModelTimeoutError("slow", timeout_s=12.0),
    ModelBehaviorError("bad json", usage=TokenUsage(input_tokens=3, requests=1), model="m2"),
    ModelError("other"),
]


@pytest.mark.parametrize("error", _ERRORS, ids=lambda e: type(e).__name__)
def test_cassette_errors_come_back_as_they_were_raised(error: ModelError) -> None:
    again = rebuilt_error(error_data(error))

    assert type(again) is type(error)
    assert vars(again) == vars(error)
    assert str(again) == str(error)


async def test_recorded_error_is_raised_again_on_its_turn(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    error = ModelAPIError("boom", status_code=503, retryable=True)
    model = ScriptedModel().script("worker", error, leaf_report("ok"))
    client = RecordingClient(model, path)
    request = _request("worker", task_id="t", tier="mini", output_type=LeafReportOut)
    with pytest.raises(ModelAPIError):
        await client.complete(request)
    await client.complete(request)
    replay = ReplayModel.load(path)

    with pytest.raises(ModelAPIError) as caught:
        await replay.complete(request)
    reply = await replay.complete(request)

    assert (caught.value.status_code, caught.value.retryable) == (503, True)
    assert isinstance(reply.parsed, LeafReportOut) and reply.parsed.summary == "ok"


async def _events(stream: Any) -> list[StreamEvent]:
    return [event async for event in stream]


async def test_recording_a_stream_keeps_its_events_and_records_the_final_reply(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.jsonl"
    model = ScriptedModel(stream_chunk_chars=4).script("synthesizer", answer("a streamed answer"))
    events = await _events(RecordingClient(model, path).stream(_request("synthesizer")))

    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "a streamed answer"
    replay = ReplayModel.load(path)
    replay.stream_chunk_chars = 5
    again = await _events(replay.stream(_request("synthesizer")))
    assert [e.text for e in again if isinstance(e, TextDelta)] == ["a str", "eamed", " answ", "er"]
    assert isinstance(again[-1], ReplyDone) and again[-1].reply.text == "a streamed answer"


async def test_recording_a_failing_stream_records_its_error(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    model = ScriptedModel().script("planner", ModelTimeoutError("slow", timeout_s=1.0))
    with pytest.raises(ModelTimeoutError):
        await _events(RecordingClient(model, path).stream(_request("planner")))

    (call,) = read_cassette(path)[1]
    assert call.error is not None and call.error.type == "ModelTimeoutError"


class _CompleteOnly:
    """A backend that cannot stream: the scripted model's `complete` alone."""

    def __init__(self, model: ScriptedModel) -> None:
        self.capabilities = ModelCapabilities(parallel_requests=3)
        self.complete = model.complete


async def test_recording_a_client_that_cannot_stream_says_so(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    model = ScriptedModel().script("synthesizer", answer("whole"))
    client = RecordingClient(_CompleteOnly(model), path, ladder=(TierSpec(name="x", model="y"),))

    events = await _events(client.stream(_request("synthesizer")))

    assert client.capabilities.streaming is False
    assert [type(e).__name__ for e in events] == ["TextDelta", "ReplyDone"]
    replay = ReplayModel.load(path)
    assert (replay.capabilities.streaming, replay.capabilities.parallel_requests) == (False, 3)
    assert replay.ladder == (TierSpec(name="x", model="y"),)


# -- reading cassettes: every bad file is one clear error -----------------------------------------


def _write_cassette(path: Path, *lines: Mapping[str, Any] | str) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def _header(**over: Any) -> dict[str, Any]:
    caps: dict[str, Any] = {"streaming": False}
    ladder = [{"name": "mini", "model": "m"}]
    return (
        {"format": "orchestrator-cassette", "version": 1, "capabilities": caps}
        | {"ladder": ladder}
        | over
    )


_CALL: dict[str, Any] = {
    "seq": 1,
    "role": "synthesizer",
    "task": None,
    "tier": "mini",
    "turn": 1,
    "model": "m",
    "request": {"messages": []},
    "reply": {"text": "hi"},
}


def test_cassette_cut_short_by_a_crash_still_reads(tmp_path: Path) -> None:
    path = _write_cassette(tmp_path / "c.jsonl", _header(), _CALL)
    with path.open("a") as file:
        file.write('{"seq": 2, "role": "plan')  # the recording died mid-line

    header, calls = read_cassette(path)

    assert header.capabilities.streaming is False
    assert [c.seq for c in calls] == [1]


_BAD: list[Any] = [
    pytest.param(None, "cannot read the cassette", id="missing"),
    pytest.param(("hello",), "is not an orchestrator cassette", id="not-json"),
    pytest.param(({"format": "x"},), "is not an orchestrator cassette", id="other-json"),
    pytest.param(
        (_header(version=9),), "format version 9; this orchestrator reads up to 1", id="newer"
    ),
    pytest.param((_header(ladder="x"),), "has a bad header: ladder", id="bad-header"),
    pytest.param(
        (_header(), {**_CALL, "turn": "x"}, _CALL),
        "line 2 is not a recorded call: turn",
        id="bad-call",
    ),
    pytest.param(
        (_header(), {**_CALL, "error": {"type": "ModelError", "message": "m"}}, _CALL),
        "exactly one of reply and error",
        id="reply-and-error",
    ),
]


@pytest.mark.parametrize(("lines", "message"), _BAD)
def test_cassette_that_cannot_be_read_is_one_clear_error(
    tmp_path: Path, lines: tuple[Any, ...] | None, message: str
) -> None:
    path = tmp_path / "c.jsonl"
    if lines is not None:
        _write_cassette(path, *lines)

    with pytest.raises(CassetteError, match=re.escape(message)) as caught:
        ReplayModel.load(path)
    assert caught.value.path == path
    assert "\n" not in str(caught.value)


def test_cassette_that_cannot_be_written_is_a_cassette_error(tmp_path: Path) -> None:
    with pytest.raises(CassetteError, match="cannot write the cassette"):
        RecordingClient(ScriptedModel(), tmp_path / "no" / "such" / "dir.jsonl")


def test_cassette_call_record_reads_back_what_it_wrote() -> None:
    record = CallRecord.model_validate(_CALL)

    assert CallRecord.model_validate_json(record.model_dump_json()) == record


async def test_replay_of_a_joined_batch_raises_a_recorded_review_error(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    accept = review_reply(verdict("b", "accept"))
    model = ScriptedModel().script("reviewer", ModelBehaviorError("bad"), accept)
    client = RecordingClient(model, path)
    with pytest.raises(ModelBehaviorError):
        await client.complete(_review_request("a"))
    await client.complete(_review_request("b"))

    with pytest.raises(ModelBehaviorError, match="bad"):
        await ReplayModel.load(path).complete(_review_request("a", "b"))


async def test_replay_reads_verdicts_from_the_text_when_none_were_parsed(tmp_path: Path) -> None:
    """A client that left `parsed` unset: the reviewer reads the text, and so does the replay."""
    path = tmp_path / "c.jsonl"
    accept = review_reply(verdict("a", "accept", "fine")).model_dump_json()
    model = ScriptedModel().script("reviewer", ModelReply(text=accept), ModelReply(text="no json"))
    client = RecordingClient(model, path)
    for task_id in ("a", "b"):  # recorded without an output type: nothing parsed
        await client.complete(replace(_review_request(task_id), output_type=None))

    reply = await ReplayModel.load(path).complete(_review_request("a", "b"))

    assert _accepted(reply) == [("a", "fine")]


async def test_replay_refuses_a_recorded_reply_that_no_longer_fits_the_schema(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.jsonl"
    model = ScriptedModel().script("worker", leaf_report("ok"))
    request = _request("worker", task_id="t", tier="mini", output_type=LeafReportOut)
    await RecordingClient(model, path).complete(request)

    with pytest.raises(ReplayMismatchError, match="its recorded reply does not fit ReviewOut"):
        await ReplayModel.load(path).complete(replace(request, output_type=ReviewOut))
