"""`ReplayModel`: answers a run's model calls from a cassette, so a recorded run runs again offline.

A call is matched by its key: role, task, tier and turn (the n-th call with that role, task and
tier; a task's calls are sequential, so turns do not depend on timing). Reviewer calls batch
whatever finished meanwhile, which does depend on timing, so the default reviewer's calls are
matched per task attempt instead: each attempt gets the verdict it was recorded with, and each
recorded call's usage is shared out over its attempts, so totals do not depend on the batching.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, fields
from pathlib import Path

import anyio
from pydantic import BaseModel, JsonValue, ValidationError

from .cassette import (
    CallRecord,
    ReplyData,
    read_cassette,
    rebuilt_error,
    reviewed_items,
)
from .engine_options import RoleOptions
from .errors import OrchestratorError
from .llm import ModelCapabilities, ModelReply, ModelRequest, ReplyDone, StreamEvent, TextDelta
from .models import TierSpec, TokenUsage

_Key = tuple[str, str | None, str, int]
"""(role, task id, tier, turn)."""
_Attempt = tuple[str, int, int]
"""(task id, attempt, how many times that attempt was reviewed before)."""


class ReplayMismatchError(OrchestratorError):
    """The run asked for a model call the cassette does not hold: it no longer replays."""

    def __init__(
        self, message: str, *, role: str, task_id: str | None, tier: str, turn: int
    ) -> None:
        super().__init__(message)
        self.role = role
        """The role that made the call."""
        self.task_id = task_id
        """The task of the call; None for the planner, reviewer and synthesizer."""
        self.tier = tier
        """The tier the call was made at."""
        self.turn = turn
        """1 for the first call with this role, task and tier."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Share:
    """One reviewed attempt's part of a recorded reviewer call."""

    record: CallRecord
    index: int
    """Its place among the call's reviewed attempts."""


class ReplayModel:
    """A `StreamingModelClient` that answers from a cassette and fails loudly on anything else.

    Its capabilities are the recorded backend's, so the engine takes the same paths; `ladder`
    and `role_options` are the recorded run's (an `Orchestrator` given a `ReplayModel` as its
    client uses them). Build it with `ReplayModel.load(path)`; it replays one run (turns keep
    counting), so load it again for another.
    """

    def __init__(
        self,
        calls: Iterable[CallRecord],
        *,
        capabilities: ModelCapabilities,
        ladder: tuple[TierSpec, ...],
        role_options: RoleOptions | None = None,
        stream_chunk_chars: int = 64,
    ) -> None:
        self.records: tuple[CallRecord, ...] = tuple(calls)
        """The recorded calls, as the cassette lists them."""
        self._capabilities = capabilities
        self.ladder = ladder
        """The tiers of the recorded run, bottom first."""
        self.role_options = role_options
        self.stream_chunk_chars = stream_chunk_chars
        self._by_key: dict[_Key, CallRecord] = {}
        self._by_attempt: dict[_Attempt, _Share] = {}
        seen: Counter[tuple[str, int]] = Counter()
        for record in sorted(self.records, key=lambda r: r.seq):  # reviews go one at a time
            self._by_key[(record.role, record.task, record.tier, record.turn)] = record
            for index, item in enumerate(record.reviews):
                nth = seen[(item.task, item.attempt)]
                seen[(item.task, item.attempt)] += 1
                share = _Share(record=record, index=index)
                self._by_attempt[(item.task, item.attempt, nth)] = share
        self._turns: Counter[tuple[str, str | None, str]] = Counter()
        self._reviews: Counter[tuple[str, int]] = Counter()
        self._used: set[int] = set()

    @classmethod
    def load(cls, path: str | Path) -> ReplayModel:
        """Read a cassette written by `RecordingClient` (`--record FILE`).

        Raises:
            CassetteError: the file is missing, is not a cassette, is corrupt or is too new.
        """
        header, calls = read_cassette(path)
        return cls(
            calls,
            capabilities=header.capabilities,
            ladder=header.ladder,
            role_options=header.role_options,
        )

    @property
    def capabilities(self) -> ModelCapabilities:
        return self._capabilities

    def unused(self) -> tuple[CallRecord, ...]:
        """The recorded calls no request has been answered from (yet)."""
        return tuple(r for r in self.records if r.seq not in self._used)

    async def complete(self, request: ModelRequest) -> ModelReply:
        await anyio.lowlevel.checkpoint()
        return self._answer(request)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        """The recorded reply's text in chunks, then the reply (the planner dispatches early)."""
        reply = self._answer(request)
        step = max(1, self.stream_chunk_chars)
        for start in range(0, len(reply.text), step):
            yield TextDelta(text=reply.text[start : start + step])
            await anyio.lowlevel.checkpoint()
        yield ReplyDone(reply=reply)

    def _answer(self, request: ModelRequest) -> ModelReply:
        turn_key = (request.role, request.task_id, request.tier)
        self._turns[turn_key] += 1
        key: _Key = (*turn_key, self._turns[turn_key])
        items = reviewed_items(request)
        if items and self._by_attempt:
            attempts: list[_Attempt] = []
            for item in items:
                attempt = (item.task, item.attempt)
                attempts.append((*attempt, self._reviews[attempt]))
                self._reviews[attempt] += 1
            return self._review(request, key, attempts)
        record = self._by_key.get(key)
        if record is None:
            raise _mismatch(key, f"the cassette holds no such call ({self._held(key)})")
        return self._replayed(record, request, key)

    def _replayed(self, record: CallRecord, request: ModelRequest, key: _Key) -> ModelReply:
        self._used.add(record.seq)
        if record.error is not None:
            raise rebuilt_error(record.error)
        assert record.reply is not None  # a record holds a reply or an error
        parsed = _parsed(request, record.reply.parsed, key)
        return _reply(record.reply, text=record.reply.text, parsed=parsed, usage=record.reply.usage)

    def _review(self, request: ModelRequest, key: _Key, attempts: list[_Attempt]) -> ModelReply:
        """The recorded verdicts on these attempts, however the recorded run batched them."""
        shares: list[_Share] = []
        for attempt in attempts:
            share = self._by_attempt.get(attempt)
            if share is None:
                task, number, nth = attempt
                again = f" (review {nth + 1} of it)" if nth else ""
                held = sorted({f"{t} attempt {a}" for t, a, _ in self._by_attempt})
                raise _mismatch(
                    key,
                    f"no recorded review of {task} attempt {number}{again} (the cassette "
                    f"reviews {', '.join(held)})",
                )
            shares.append(share)
        records = {s.record.seq: s.record for s in shares}
        if len(records) == 1:
            (record,) = records.values()
            if len(record.reviews) == len(shares):  # the batch was recorded as it is
                return self._replayed(record, request, key)
        self._used.update(records)
        for record in records.values():
            if record.error is not None:
                raise rebuilt_error(record.error)
        verdicts: list[JsonValue] = [v for s in shares if (v := _verdict(s)) is not None]
        usage = TokenUsage()
        for share in shares:
            usage += _usage_share(share)
        first = shares[0].record.reply
        assert first is not None  # checked above: no record here holds an error
        joined: JsonValue = {"verdicts": verdicts}
        parsed = _parsed(request, joined, key)
        text = json.dumps(joined) if parsed is None else parsed.model_dump_json()
        return _reply(first, text=text, parsed=parsed, usage=usage)

    def _held(self, key: _Key) -> str:
        role, task, _, _ = key
        turns = sorted((r.tier, r.turn) for r in self.records if r.role == role and r.task == task)
        who = role if task is None else f"{role} {task}"
        if not turns:
            return f"no {who} call"
        last: dict[str, int] = {}
        for tier, turn in turns:
            last[tier] = max(turn, last.get(tier, 0))
        at = ", ".join(f"tier {t or '-'} turns 1-{n}" for t, n in last.items())
        return f"{who} calls at {at}"


def _mismatch(key: _Key, detail: str) -> ReplayMismatchError:
    role, task, tier, turn = key
    who = role if task is None else f"{role} (task {task})"
    return ReplayMismatchError(
        f"replay: {who} call at tier {tier or '-'}, turn {turn}: {detail} — the run no "
        "longer matches its recording; record it again",
        role=role,
        task_id=task,
        tier=tier,
        turn=turn,
    )


def _verdict(share: _Share) -> dict[str, JsonValue] | None:
    """The attempt's verdict in its recorded call, by the default reviewer's reading of it."""
    record = share.record
    task = record.reviews[share.index].task
    reply = record.reply
    assert reply is not None
    parsed = reply.parsed if reply.parsed is not None else _json(reply.text)
    raw = parsed.get("verdicts") if isinstance(parsed, dict) else None
    verdicts = [v for v in raw if isinstance(v, dict)] if isinstance(raw, list) else []
    if len(record.reviews) == 1 and len(verdicts) == 1:  # the reviewer's own rule for one task
        return {**verdicts[0], "task_id": task}
    for verdict in verdicts:
        named = verdict.get("task_id")
        if isinstance(named, str) and named.strip() == task:
            return verdict
    return None


def _json(text: str) -> JsonValue:
    try:
        value: JsonValue = json.loads(text)
    except json.JSONDecodeError:
        return None
    return value


def _usage_share(share: _Share) -> TokenUsage:
    """An even, whole-token part of the call's usage; the parts add up to the call's usage."""
    record = share.record
    assert record.reply is not None
    count, index = len(record.reviews), share.index
    parts: dict[str, int] = {}
    for field in fields(TokenUsage):
        base, extra = divmod(getattr(record.reply.usage, field.name), count)
        parts[field.name] = base + (1 if index < extra else 0)
    return TokenUsage(**parts)


def _parsed(request: ModelRequest, parsed: JsonValue, key: _Key) -> BaseModel | None:
    """The recorded structured output, rebuilt in the schema the request asks for."""
    if request.output_type is None or parsed is None:
        return None
    try:
        return request.output_type.model_validate(parsed)
    except ValidationError as exc:
        name = request.output_type.__name__
        raise _mismatch(key, f"its recorded reply does not fit {name}") from exc


def _reply(
    data: ReplyData, *, text: str, parsed: BaseModel | None, usage: TokenUsage
) -> ModelReply:
    return ModelReply(
        text=text,
        parsed=parsed,
        tool_calls=data.tool_calls,
        usage=usage,
        model=data.model,
        finish_reason=data.finish_reason,
    )
