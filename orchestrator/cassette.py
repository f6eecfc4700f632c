"""Cassettes: a run's model calls as readable JSON Lines, and `RecordingClient`, which writes them.

Line one is a header (format, version, the backend's capabilities, ladder and role options); each
further line is one call: who asked (role, task, tier, turn), a compact view of the request and
the full reply or error. Lines are appended per call, so a crashed recording still reads.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, JsonValue, ValidationError, model_validator

from .engine_options import RoleOptions
from .errors import (
    ConfigError,
    ModelAPIError,
    ModelBehaviorError,
    ModelError,
    ModelOutageError,
    ModelTimeoutError,
)
from .llm import (
    AssistantMessage,
    Message,
    ModelCapabilities,
    ModelClient,
    ModelReply,
    ModelRequest,
    ReplyDone,
    Role,
    StreamEvent,
    StreamingModelClient,
    SystemMessage,
    ToolCall,
    ToolResultMessage,
    whole_reply_stream,
)
from .models import DEFAULT_LADDER, TierSpec, TokenUsage

FORMAT = "orchestrator-cassette"
VERSION = 1
"""The cassette format this module writes and reads; a newer one is refused, not guessed at."""
_CLIP_CHARS = 400
"""Request texts are cut to this: the view is for people, matching never reads it."""
_REVIEWED = re.compile(r"^### (\S+) \(tier [^,\n]*, attempt (\d+)\)", flags=re.MULTILINE)
"""How the default reviewer's prompt heads each task under review."""


class CassetteError(ConfigError):
    """A cassette cannot be read or written: missing, not a cassette, corrupt, or too new."""

    def __init__(self, message: str, *, path: Path) -> None:
        super().__init__(message)
        self.path = path
        """The cassette file."""


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CassetteHeader(_Record):
    """The first line: what the engine must see again to take the same paths on replay."""

    format: Literal["orchestrator-cassette"] = FORMAT
    version: int = VERSION
    capabilities: ModelCapabilities
    ladder: tuple[TierSpec, ...]
    """Tiers bottom first, as the recorded run used them."""
    role_options: RoleOptions | None = None


class ReviewedItem(_Record):
    """One task attempt a reviewer call judged."""

    task: str
    attempt: int


class RequestView(_Record):
    """What was asked, cut short for reading; replay never matches on it."""

    messages: tuple[dict[str, JsonValue], ...]
    tools: tuple[str, ...] = ()
    output_type: str | None = None
    tool_choice: str = "auto"


class ReplyData(_Record):
    """A reply in full: text, structured output as JSON, tool calls and usage."""

    text: str = ""
    parsed: JsonValue = None
    tool_calls: tuple[ToolCall, ...] = ()
    usage: TokenUsage = TokenUsage()
    model: str = ""
    finish_reason: str = "stop"


ErrorType = Literal[
    "ModelAPIError", "ModelOutageError", "ModelTimeoutError", "ModelBehaviorError", "ModelError"
]


class ErrorData(_Record):
    """A call that failed, with what it takes to raise the same error again."""

    type: ErrorType
    message: str
    status_code: int | None = None
    retryable: bool = False
    retry_after_s: float | None = None
    timeout_s: float | None = None
    outage_s: float = 0.0
    usage: TokenUsage | None = None
    model: str = ""


class CallRecord(_Record):
    """One model call: its key (role, task, tier, turn), the request's view, the outcome."""

    seq: int
    """Order of completion in the recorded run, from 1."""
    role: Role
    task: str | None
    tier: str
    turn: int
    """1 for the first call with this role, task and tier; counted as calls start."""
    model: str
    reviews: tuple[ReviewedItem, ...] = ()
    """For the default reviewer: the task attempts under review, as its prompt heads them."""
    request: RequestView
    reply: ReplyData | None = None
    error: ErrorData | None = None

    @model_validator(mode="after")
    def _one_outcome(self) -> Self:
        if (self.reply is None) == (self.error is None):
            raise ValueError("a call holds exactly one of reply and error")
        return self


def reviewed_items(request: ModelRequest) -> tuple[ReviewedItem, ...]:
    """The task attempts a default reviewer request judges; () for any other request."""
    if request.role != "reviewer":
        return ()
    text = "\n".join(m.content for m in request.messages if m.role == "user")
    return tuple(ReviewedItem(task=t, attempt=int(a)) for t, a in _REVIEWED.findall(text))


def reply_data(reply: ModelReply) -> ReplyData:
    parsed = None if reply.parsed is None else reply.parsed.model_dump(mode="json")
    return ReplyData(
        text=reply.text,
        parsed=parsed,
        tool_calls=reply.tool_calls,
        usage=reply.usage,
        model=reply.model,
        finish_reason=reply.finish_reason,
    )


def error_data(exc: ModelError) -> ErrorData:
    name: ErrorType = "ModelError"
    if isinstance(exc, ModelOutageError):  # before its base class
        name = "ModelOutageError"
    elif isinstance(exc, ModelAPIError):
        name = "ModelAPIError"
    elif isinstance(exc, ModelTimeoutError):
        name = "ModelTimeoutError"
    elif isinstance(exc, ModelBehaviorError):
        name = "ModelBehaviorError"
    return ErrorData(
        type=name,
        message=str(exc),
        status_code=getattr(exc, "status_code", None),
        retryable=getattr(exc, "retryable", False),
        retry_after_s=getattr(exc, "retry_after_s", None),
        timeout_s=getattr(exc, "timeout_s", None),
        outage_s=getattr(exc, "outage_s", 0.0),
        usage=getattr(exc, "usage", None),
        model=getattr(exc, "model", ""),
    )


def rebuilt_error(data: ErrorData) -> ModelError:
    """The recorded error, as the recorded client raised it."""
    match data.type:
        case "ModelOutageError":
            return ModelOutageError(
                data.message, status_code=data.status_code, outage_s=data.outage_s
            )
        case "ModelAPIError":
            return ModelAPIError(
                data.message,
                status_code=data.status_code,
                retryable=data.retryable,
                retry_after_s=data.retry_after_s,
            )
        case "ModelTimeoutError":
            return ModelTimeoutError(data.message, timeout_s=data.timeout_s)
        case "ModelBehaviorError":
            return ModelBehaviorError(data.message, usage=data.usage, model=data.model)
        case "ModelError":
            return ModelError(data.message)


def request_view(request: ModelRequest) -> RequestView:
    return RequestView(
        messages=tuple(_message_view(m) for m in request.messages),
        tools=tuple(t.name for t in request.tools),
        output_type=None if request.output_type is None else request.output_type.__name__,
        tool_choice=request.tool_choice,
    )


def _message_view(message: Message) -> dict[str, JsonValue]:
    if isinstance(message, SystemMessage):  # the same long prompt each time: its size is enough
        return {"role": "system", "chars": len(message.content)}
    view: dict[str, JsonValue] = {"role": message.role, "content": _clip(message.content)}
    if isinstance(message, AssistantMessage) and message.tool_calls:
        view["tool_calls"] = [call.name for call in message.tool_calls]
    if isinstance(message, ToolResultMessage):
        view["name"] = message.name
        view["is_error"] = message.is_error
    return view


def _clip(text: str) -> str:
    if len(text) <= _CLIP_CHARS:
        return text
    return f"{text[:_CLIP_CHARS]}… [{len(text) - _CLIP_CHARS} more characters]"


class RecordingClient:
    """A `ModelClient` that passes each call to `inner` and appends it to the cassette at `path`.

    `stream` passes a streaming client's events through and records the final reply; an inner
    client that cannot stream is announced as not streaming, so the engine takes its plain path.
    The file is started (truncated) here with its header.

    Raises:
        CassetteError: `path` cannot be written.
    """

    def __init__(
        self,
        inner: ModelClient,
        path: str | Path,
        *,
        ladder: Sequence[TierSpec] = DEFAULT_LADDER,
        role_options: RoleOptions | None = None,
    ) -> None:
        self.inner = inner
        self.path = Path(path)
        """The cassette being written."""
        caps = inner.capabilities
        self._capabilities = (
            caps if isinstance(inner, StreamingModelClient) else replace(caps, streaming=False)
        )
        self._turns: dict[tuple[str, str | None, str], int] = {}
        self._seq = 0
        header = CassetteHeader(
            capabilities=self._capabilities, ladder=tuple(ladder), role_options=role_options
        )
        self._write(header.model_dump_json(), mode="w")

    @property
    def capabilities(self) -> ModelCapabilities:
        return self._capabilities

    async def complete(self, request: ModelRequest) -> ModelReply:
        turn = self._next_turn(request)
        try:
            reply = await self.inner.complete(request)
        except ModelError as exc:
            self._append(request, turn, error=error_data(exc))
            raise
        self._append(request, turn, reply=reply_data(reply))
        return reply

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        """Stream from the inner client, recording its final reply (or its error)."""
        inner = self.inner
        if not isinstance(inner, StreamingModelClient):
            for event in whole_reply_stream(await self.complete(request)):
                yield event
            return
        turn = self._next_turn(request)
        try:
            async for event in inner.stream(request):
                if isinstance(event, ReplyDone):
                    self._append(request, turn, reply=reply_data(event.reply))
                yield event
        except ModelError as exc:
            self._append(request, turn, error=error_data(exc))
            raise

    def _next_turn(self, request: ModelRequest) -> int:
        key = (request.role, request.task_id, request.tier)
        self._turns[key] = turn = self._turns.get(key, 0) + 1
        return turn

    def _append(
        self,
        request: ModelRequest,
        turn: int,
        *,
        reply: ReplyData | None = None,
        error: ErrorData | None = None,
    ) -> None:
        self._seq += 1
        record = CallRecord(
            seq=self._seq,
            role=request.role,
            task=request.task_id,
            tier=request.tier,
            turn=turn,
            model=request.model,
            reviews=reviewed_items(request),
            request=request_view(request),
            reply=reply,
            error=error,
        )
        self._write(record.model_dump_json(exclude_defaults=True), mode="a")

    def _write(self, line: str, *, mode: Literal["w", "a"]) -> None:
        # One short line per call, written whole and closed: a crash loses at most this call.
        try:
            with self.path.open(mode, encoding="utf-8") as file:
                file.write(line + "\n")
        except OSError as exc:
            raise CassetteError(
                f"cannot write the cassette {self.path}: {exc.strerror or exc}", path=self.path
            ) from exc


def read_cassette(path: str | Path) -> tuple[CassetteHeader, tuple[CallRecord, ...]]:
    """The header and calls of a cassette; a last line cut short by a crash is left out.

    Raises:
        CassetteError: the file is missing, is not a cassette, is corrupt or is a newer format.
    """
    file = Path(path)
    try:
        lines = file.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CassetteError(f"cannot read the cassette {file}: {why}", path=file) from exc
    header = _header(file, lines[0])
    calls: list[CallRecord] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            calls.append(CallRecord.model_validate_json(line))
        except ValidationError as exc:
            if number == len(lines):  # no newline after it: the recording stopped mid-write
                break
            raise CassetteError(
                f"cassette {file} line {number} is not a recorded call: {_first_error(exc)}",
                path=file,
            ) from exc
    return header, tuple(calls)


def _header(file: Path, line: str) -> CassetteHeader:
    try:
        raw: object = json.loads(line)
    except json.JSONDecodeError:
        raw = None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:  # pyright: ignore[reportUnknownMemberType]
        raise CassetteError(f"{file} is not an orchestrator cassette (no header line)", path=file)
    version: object = raw.get("version")  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
    if isinstance(version, int) and version > VERSION:
        raise CassetteError(
            f"cassette {file} has format version {version}; this orchestrator reads up to "
            f"{VERSION} — upgrade orchestrator, or record the cassette again",
            path=file,
        )
    try:
        return CassetteHeader.model_validate(raw)
    except ValidationError as exc:
        raise CassetteError(
            f"cassette {file} has a bad header: {_first_error(exc)}", path=file
        ) from exc


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else first["msg"]
