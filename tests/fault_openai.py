"""Requests as the fault server's responders see them (`ApiCall`), what they answer (`Reply`),
and the keys that tie a retry to its logical call. Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

Api = Literal["chat", "responses"]
_VOLATILE = ("stream", "stream_options")
"""Body fields left out of the logical-call key: a streamed call and its plain retry are one call."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiCall:
    """One decoded request, as a responder sees it."""

    api: Api
    body: Mapping[str, Any]
    """The request's JSON body."""
    model: str
    stream: bool
    raw: bytes = b""
    """The body as sent; its length sets the reported input tokens."""

    @property
    def system_prompt(self) -> str:
        """The instructions (Responses) or the first system message (chat); "" if none."""
        if self.api == "responses":
            return str(self.body.get("instructions") or "")
        for message in _items(self.body.get("messages")):
            if message.get("role") == "system":
                return str(message.get("content") or "")
        return ""

    @property
    def schema_name(self) -> str | None:
        """The name of the requested JSON schema output, if any."""
        if self.api == "responses":
            text = _mapping(self.body.get("text"))
            name = _mapping(text.get("format")).get("name")
        else:
            format_ = _mapping(self.body.get("response_format"))
            name = _mapping(format_.get("json_schema")).get("name")
        return name if isinstance(name, str) else None

    @property
    def schema(self) -> Mapping[str, Any]:
        """The requested JSON schema ({} if none)."""
        if self.api == "responses":
            return _mapping(_mapping(_mapping(self.body.get("text")).get("format")).get("schema"))
        format_ = _mapping(self.body.get("response_format"))
        return _mapping(_mapping(format_.get("json_schema")).get("schema"))

    @property
    def user_text(self) -> str:
        """Every user message's text, joined."""
        key = "input" if self.api == "responses" else "messages"
        texts = [
            str(item.get("content") or "")
            for item in _items(self.body.get(key))
            if item.get("role") == "user"
        ]
        return "\n\n".join(texts)

    @property
    def tool_names(self) -> tuple[str, ...]:
        """Names of the function tools the request offers."""
        names: list[str] = []
        for tool in _items(self.body.get("tools")):
            function = _mapping(tool.get("function")) if self.api == "chat" else tool
            name = function.get("name")
            if isinstance(name, str):
                names.append(name)
        return tuple(names)

    @property
    def has_tool_result(self) -> bool:
        """Whether the conversation already holds a tool's answer."""
        if self.api == "responses":
            return any(
                item.get("type") == "function_call_output"
                for item in _items(self.body.get("input"))
            )
        return any(item.get("role") == "tool" for item in _items(self.body.get("messages")))

    @property
    def include_usage(self) -> bool:
        """Chat streams: whether a final usage chunk was asked for."""
        return bool(_mapping(self.body.get("stream_options")).get("include_usage"))


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCallOut:
    """A function call the model makes."""

    name: str
    arguments: str
    """JSON text."""
    call_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """What the model says: text, function calls, or both."""

    text: str = ""
    tool_calls: tuple[ToolCallOut, ...] = field(default_factory=lambda: ())
    chunk_delay_s: float = 0.0
    """Streamed: the server's pause after each event it sends (a slowly generated reply)."""

    @property
    def output_chars(self) -> int:
        return len(self.text) + sum(len(c.name) + len(c.arguments) for c in self.tool_calls)


def decode_call(path: str, raw: bytes) -> ApiCall:
    """The `ApiCall` of a POST body to `path`.

    Raises:
        ValueError: the path is neither endpoint or the body is not a JSON object.
    """
    if path.endswith("/chat/completions"):
        api: Api = "chat"
    elif path.endswith("/responses"):
        api = "responses"
    else:
        raise ValueError(f"unknown endpoint {path}")
    body: object = json.loads(raw)
    if not isinstance(body, dict):
        raise ValueError("the body is not a JSON object")
    decoded = cast(dict[str, Any], body)
    return ApiCall(
        api=api,
        body=decoded,
        model=str(decoded.get("model", "")),
        stream=bool(decoded.get("stream")),
        raw=raw,
    )


def body_hash(raw: bytes) -> str:
    """A stable short hash of the exact bytes."""
    return hashlib.sha256(raw).hexdigest()[:16]


def call_key(body: Mapping[str, Any]) -> str:
    """The logical call a request belongs to: its body without the stream flags, hashed."""
    stable = {k: v for k, v in body.items() if k not in _VOLATILE}
    text = json.dumps(stable, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _mapping(value: object) -> Mapping[str, Any]:
    return cast(Mapping[str, Any], value) if isinstance(value, Mapping) else {}


def _items(value: object) -> Iterator[Mapping[str, Any]]:
    if isinstance(value, list):
        for item in cast(list[object], value):
            if isinstance(item, Mapping):
                yield cast(Mapping[str, Any], item)
