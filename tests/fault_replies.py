"""How the fault server puts each decision on the wire: error bodies with their headers, whole
JSON replies, SSE streams in chunked encoding, and the cut, truncated or unterminated variants."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from .fault_http import Connection
from .fault_openai import ApiCall, Reply
from .fault_payloads import completion_body, error_body, stream_events
from .fault_plan import Decision

CONTENT_FAULTS = frozenset({None, "reset", "truncated", "stream_cut", "stream_no_terminator"})
"""Decisions whose reply is generated first (the faulted ones are cut while being sent)."""
_MESSAGES: dict[int, tuple[str, str]] = {
    429: ("Rate limit reached for requests. Please try again later.", "requests"),
    500: ("The server had an error while processing your request.", "server_error"),
    503: ("The server is overloaded or not ready yet.", "server_error"),
}


def status_of(decision: Decision, call: ApiCall | None, reply: Reply | None) -> int | None:
    """The status line a decision sends; None when the connection is cut before one."""
    if decision.fault in ("outage", "hang"):
        return None
    if decision.fault == "echo_auth_400" or call is None:
        return 400
    if decision.status is not None:
        return decision.status
    return 200 if reply is not None else 500


def _headers(
    rid: str, content_type: str, extra: Sequence[tuple[str, str]] = ()
) -> list[tuple[str, str]]:
    return [("Content-Type", content_type), ("x-request-id", f"req_{rid}"), *extra]


def send_error(
    conn: Connection,
    status: int,
    message: str,
    type_: str,
    *,
    rid: str,
    extra: Sequence[tuple[str, str]] = (),
) -> None:
    data = json.dumps(error_body(message, type_=type_)).encode()
    headers = _headers(rid, "application/json", (("Content-Length", str(len(data))), *extra))
    conn.send_head(status, headers)
    conn.send(data)


def send_status(conn: Connection, decision: Decision, *, rid: str) -> None:
    status = decision.status or 500
    message, type_ = _MESSAGES.get(status, ("Request failed.", "server_error"))
    extra: list[tuple[str, str]] = []
    if decision.retry_after_s is not None:
        seconds = decision.retry_after_s
        extra.append(("Retry-After", f"{seconds:g}"))
        extra.append(("retry-after-ms", str(round(seconds * 1000))))
    send_error(conn, status, message, type_, rid=rid, extra=extra)


def send_plain(
    conn: Connection,
    call: ApiCall,
    reply: Reply,
    fault: str | None,
    cut: float,
    *,
    rid: str,
    extra: Sequence[tuple[str, str]] = (),
) -> bool:
    """A JSON reply; `reset` cuts it with an RST, `truncated` sends a cut body that fits its
    Content-Length. Returns whether the connection stays open."""
    data = json.dumps(completion_body(call, reply, rid=rid)).encode()
    part = data[: max(1, int(len(data) * cut))]
    length = len(part) if fault == "truncated" else len(data)
    head = _headers(rid, "application/json", (("Content-Length", str(length)), *extra))
    conn.send_head(200, head)
    if fault == "reset":
        conn.send(part)
        conn.reset()
        return False
    conn.send(part if fault == "truncated" else data)
    return True


def send_stream(
    conn: Connection,
    call: ApiCall,
    reply: Reply,
    fault: str | None,
    cut: float,
    *,
    rid: str,
    extra: Sequence[tuple[str, str]] = (),
    after_event: Callable[[int, bytes], None] | None = None,
) -> bool:
    """An SSE reply in chunked encoding; `reset` and `stream_cut` stop part-way (RST / FIN, no
    final chunk), `stream_no_terminator` ends cleanly without the stream's last events.
    `after_event(index, event)` runs after each whole event is sent (pacing, test hooks)."""
    terminated = fault != "stream_no_terminator"
    events = stream_events(call, reply, rid=rid, terminated=terminated)
    head = _headers(rid, "text/event-stream", (("Transfer-Encoding", "chunked"), *extra))
    conn.send_head(200, head)
    if fault in ("reset", "stream_cut"):
        count = max(1, int(len(events) * cut))
        for event in events[:count]:
            conn.send_chunk(event)
        if count < len(events):
            half = events[count][: len(events[count]) // 2]
            conn.send_chunk(half)  # stop inside an event, as a proxy cutting the stream does
        if fault == "reset":
            conn.reset()
        else:
            conn.close()
        return False
    for index, event in enumerate(events):
        conn.send_chunk(event)
        if after_event is not None:
            after_event(index, event)
    conn.end_chunks()
    if fault == "stream_no_terminator":
        conn.close()
        return False
    return True
