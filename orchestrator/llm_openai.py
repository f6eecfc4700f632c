"""Plumbing shared by the OpenAI clients: SDK construction, error mapping, usage and parsing.

Only `llm_openai*.py` import `openai`, and no openai type leaves them. The clients live in
`llm_openai_responses.py` (`OpenAIResponsesClient`) and `llm_openai_chat.py` (`OpenAIChatClient`);
what both send for a request, given a server's capabilities, is in `llm_openai_shape.py`.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import math
import re
import time
from collections.abc import Generator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol, cast

import httpx2
import openai
from pydantic import BaseModel, ValidationError

from .errors import ModelAPIError, ModelBehaviorError, ModelTimeoutError
from .llm import JSONValue, ModelCapabilities, ModelRequest, RateLimitInfo, ToolKind
from .models import TokenUsage
from .schema import schema_name as schema_name
from .schema import strict_json_schema as strict_json_schema
from .secrets import redact

if TYPE_CHECKING:
    from typing import TypeAlias

    import httpx
    import httpx2

    AsyncHTTPClient: TypeAlias = httpx2.AsyncClient | httpx.AsyncClient
    """The HTTP clients the SDK accepts: its own httpx2 client, or a legacy httpx one."""


def _transport_errors() -> tuple[tuple[type[Exception], ...], tuple[type[Exception], ...]]:
    """(timeouts, other transport errors) of the HTTP clients the SDK may be given."""
    timeouts: list[type[Exception]] = [httpx2.TimeoutException]
    transport: list[type[Exception]] = [httpx2.RequestError, httpx2.StreamError]
    try:
        import httpx
    except ImportError:  # the legacy client is optional
        pass
    else:
        timeouts.append(httpx.TimeoutException)
        transport.extend((httpx.RequestError, httpx.StreamError))
    return tuple(timeouts), tuple(transport)


_TIMEOUTS, _TRANSPORT = _transport_errors()
_RETRYABLE_STATUS = frozenset({408, 409, 429})
"""Besides 5xx: request timeout, lock conflict, rate limit (the statuses OpenAI's SDK retries)."""
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
DEFAULT_BASE_URL = "https://api.openai.com/v1"
_NO_API_KEY = "no-key"
"""Sent when no key is given, so the SDK never falls back to reading the environment."""
_QUOTE_LIMIT = 400
EMPTY_PARAMETERS: Mapping[str, JSONValue] = {
    "type": "object",
    "properties": {},
    "required": [],
    "additionalProperties": False,
}
"""The arguments schema of a tool that takes none, in strict form."""


class RawResponse(Protocol):
    """What `with_raw_response` gives back: the headers (rate limits) and the parsed body."""

    @property
    def headers(self) -> Mapping[str, str]: ...

    def parse(self) -> object: ...


class OpenAIClientBase:
    """What both OpenAI clients share: one SDK client (safe between concurrent tasks), who owns its
    HTTP client, the per-request timeout and the declared capabilities."""

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None,
        http_client: AsyncHTTPClient | None,
        timeout_s: float,
        capabilities: ModelCapabilities,
    ) -> None:
        self._client = openai.AsyncOpenAI(
            api_key=api_key or _NO_API_KEY,
            base_url=base_url or DEFAULT_BASE_URL,
            timeout=timeout_s,
            max_retries=0,  # the engine owns retries (STYLE §3): two retry layers multiply
            http_client=cast(Any, http_client),
        )
        self._owns_http_client = http_client is None
        self._timeout_s = timeout_s
        self._capabilities = capabilities
        self._secrets: tuple[str, ...] = (api_key,) if api_key else ()
        """Redacted from every error message, wherever a server echoes it."""

    @property
    def capabilities(self) -> ModelCapabilities:
        return self._capabilities

    async def aclose(self) -> None:
        """Close the HTTP client, unless the caller passed one in (then it is theirs)."""
        if self._owns_http_client:
            await self._client.close()

    def _mapped_errors(self) -> contextlib.AbstractContextManager[None]:
        """`map_openai_errors` with this client's timeout and key."""
        return map_openai_errors(timeout_s=self._timeout_s, secrets=self._secrets)


@contextmanager
def map_openai_errors(
    *, timeout_s: float | None, secrets: Sequence[str] = ()
) -> Generator[None, None, None]:
    """Turn SDK and transport errors raised inside the block into ours, most specific first.

    Every message is redacted of `secrets` and of anything shaped like a credential: servers echo
    request headers back in error bodies.

    Raises:
        ModelTimeoutError: the request (or a read inside a stream) timed out.
        ModelAPIError: retryable for connection faults, a cut or undecodable body, 408, 409, 429
            and 5xx (with the server's `retry_after_s` when it sent one); not retryable for any
            other status, with the server's message.
    """
    try:
        yield
    except (openai.APITimeoutError, *_TIMEOUTS) as exc:
        raise ModelTimeoutError(
            f"model call timed out after {timeout_s}s", timeout_s=timeout_s
        ) from exc
    except openai.APIConnectionError as exc:
        cause = exc.__cause__ or exc
        raise ModelAPIError(
            redact(f"could not reach the model API: {cause}", secrets),
            status_code=None,
            retryable=True,
        ) from exc
    except openai.APIStatusError as exc:
        status = exc.status_code
        what = "rate limit (429)" if status == 429 else f"answered {status}"
        raise ModelAPIError(
            redact(f"model API {what}: {server_message(exc)}", secrets),
            status_code=status,
            retryable=status in _RETRYABLE_STATUS or status >= 500,
            retry_after_s=retry_after_s(exc.response.headers),
        ) from exc
    except openai.APIError as exc:
        # An `error` event inside a stream: the server gave up mid-reply, after accepting it.
        raise ModelAPIError(
            redact(f"model API failed mid-stream: {exc.message}", secrets),
            status_code=None,
            retryable=True,
        ) from exc
    except json.JSONDecodeError as exc:
        # A 200 whose body was cut: the SDK decodes it without wrapping the error.
        raise ModelAPIError(
            f"the reply body did not decode as JSON ({exc.msg} at {exc.pos})",
            status_code=200,
            retryable=True,
        ) from exc
    except _TRANSPORT as exc:
        # Raised raw by the HTTP client while a stream is read: the connection was cut.
        raise ModelAPIError(
            redact(f"the connection broke mid-reply: {type(exc).__name__}: {exc}", secrets),
            status_code=None,
            retryable=True,
        ) from exc


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """The wait a response asks for: `retry-after-ms`, `retry-after` (seconds or a date), else the
    later of the `x-ratelimit-reset-*` durations."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            seconds = _http_date_delay(value)
        if seconds is not None and math.isfinite(seconds):
            return max(0.0, seconds)
    resets = [
        _duration_s(headers.get(f"x-ratelimit-reset-{kind}", "")) for kind in ("requests", "tokens")
    ]
    known = [r for r in resets if r is not None]
    return max(known) if known else None


def rate_limits(headers: Mapping[str, str]) -> RateLimitInfo | None:
    """The `x-ratelimit-*` headers of a reply, when the server sent any."""
    if not any(name.startswith("x-ratelimit-") for name in headers):
        return None
    remaining_requests = _int(headers.get("x-ratelimit-remaining-requests"))
    remaining_tokens = _int(headers.get("x-ratelimit-remaining-tokens"))
    resets = [
        _duration_s(headers.get("x-ratelimit-reset-requests", ""))
        if remaining_requests == 0
        else None,
        _duration_s(headers.get("x-ratelimit-reset-tokens", "")) if remaining_tokens == 0 else None,
    ]
    known = [r for r in resets if r is not None]
    return RateLimitInfo(
        limit_requests=_int(headers.get("x-ratelimit-limit-requests")),
        limit_tokens=_int(headers.get("x-ratelimit-limit-tokens")),
        remaining_requests=remaining_requests,
        remaining_tokens=remaining_tokens,
        reset_s=max(known) if known else None,
    )


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


def _http_date_delay(value: str) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when.timestamp() - time.time()


def _duration_s(value: str) -> float | None:
    """OpenAI's reset durations: `1s`, `6m0s`, `20ms`, `1h2m3.5s`; None when unreadable."""
    parts = _DURATION_PART.findall(value.strip())
    if not parts or "".join(f"{n}{u}" for n, u in parts) != value.strip():
        return None
    return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)


def server_message(exc: openai.APIError) -> str:
    """The server's own error message when the body carries one, else the SDK's."""
    body = exc.body
    if isinstance(body, Mapping):
        message = cast(Mapping[str, object], body).get("message")
        if isinstance(message, str) and message:
            return message
    if isinstance(body, str) and body:
        return quote(body)
    return exc.message


def quote(text: str, limit: int = _QUOTE_LIMIT) -> str:
    """`text`, cut to `limit` characters with a note of how long it was."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} chars)"


def token_usage(
    *, input_tokens: int, cached: int | None, output_tokens: int, reasoning: int | None
) -> TokenUsage:
    """One request's usage; absent details count as 0."""
    return TokenUsage(
        input_tokens=input_tokens,
        cached_input_tokens=cached or 0,
        output_tokens=output_tokens,
        reasoning_tokens=reasoning or 0,
        requests=1,
    )


def native_tool_name(request: ModelRequest, kind: ToolKind) -> str:
    """The name the engine registered for a native tool kind; the kind itself if none."""
    for tool in request.tools:
        if tool.kind == kind:
            return tool.name
    return kind


def parse_output(
    text: str,
    output_type: type[BaseModel],
    *,
    lenient: bool = False,
    usage: TokenUsage | None = None,
    model: str = "",
) -> BaseModel:
    """Validate a reply against `output_type`.

    Args:
        text: The model's reply text.
        output_type: The schema asked for.
        lenient: Also accept the first JSON object embedded in prose or a code fence.
        usage: What the reply cost; carried by the error so the tokens still count (wasted).
        model: The model that answered.

    Raises:
        ModelBehaviorError: the reply does not fit the schema; quotes a bounded part of it.
    """
    try:
        return output_type.model_validate_json(text)
    except ValidationError as exc:
        error = exc
    if lenient and (found := first_json_object(text)) is not None:
        try:
            return output_type.model_validate(found)
        except ValidationError as exc:
            error = exc
    first = error.errors()[0] if error.error_count() else None
    where = ".".join(str(part) for part in first["loc"]) if first else ""
    what = f"{first['msg']} at '{where}'" if first else str(error)
    raise ModelBehaviorError(
        f"reply does not fit {output_type.__name__} ({error.error_count()} errors, first: "
        f"{what}); reply was {quote(text)}",
        usage=usage,
        model=model,
    ) from error


def first_json_object(text: str) -> dict[str, JSONValue] | None:
    """The first `{...}` in `text` that decodes as a JSON object, if any."""
    decoder = json.JSONDecoder(strict=False)  # small models put raw newlines in strings
    start = text.find("{")
    attempts = 0
    while start != -1 and attempts < 64:
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, dict):
            return cast(dict[str, JSONValue], value)
        start = text.find("{", start + 1)
        attempts += 1
    return None


def decode_native(arguments: str, *, what: str) -> dict[str, JSONValue]:
    """The JSON object a native `ToolCall.arguments` carries (`operation` / `action`)."""
    value = json.loads(arguments)
    if not isinstance(value, dict):
        raise ValueError(f"{what} arguments must be a JSON object, got {quote(arguments)}")
    return cast(dict[str, JSONValue], value)
