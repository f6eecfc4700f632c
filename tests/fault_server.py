"""A fault-injecting OpenAI-compatible server on 127.0.0.1, with real sockets, in a thread.

`with FaultServer(responder, faults=FaultPlan(rate=0.2), seed=1) as srv:` serves
`POST {srv.base_url}/chat/completions` and `/responses` (plain or streamed) from `responder`, and
faults requests by a seeded plan, by time windows (`rate_limit_window`, `outage`) and per role
(`fail_role`). Every request is logged in `srv.log` for attempt and `Retry-After` figures.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Literal

from .fault_http import BadRequestError, Connection, HttpRequest, listen_on
from .fault_log import RequestLog, RequestRecord
from .fault_openai import ApiCall, Reply, ToolCallOut, body_hash, call_key, decode_call
from .fault_plan import (
    ALL_KINDS,
    Decision,
    FaultKind,
    FaultPlan,
    FaultPolicy,
    RoleFailure,
    RoleOf,
    Window,
)
from .fault_replies import (
    CONTENT_FAULTS,
    send_error,
    send_plain,
    send_status,
    send_stream,
    status_of,
)

__all__ = (
    "ALL_KINDS",
    "ApiCall",
    "FaultKind",
    "FaultPlan",
    "FaultServer",
    "Reply",
    "RequestRecord",
    "Responder",
    "ToolCallOut",
)

Responder = Callable[[ApiCall], Reply]
RequestHook = Callable[[ApiCall, str | None], None]
"""Called with each decoded request and its role (see `role_of`) as it arrives."""
ChunkHook = Callable[[ApiCall, int, bytes], None]
"""Called after each event of a streamed reply is sent: (request, event index, event bytes)."""
_JOIN_TIMEOUT_S = 5.0
_REBIND_RETRY_S = 0.02


class FaultServer:
    """OpenAI-compatible HTTP/1.1 server whose faults are seeded; a context manager.

    Args:
        responder: Content for every request that is served (a pure function of the request,
            so a retried request gets the same answer).
        faults: Random faults; none by default.
        seed: Seeds every fault draw (with the request's logical-call key and attempt number).
        latency_s: Server-side pause before each reply with content.
        role_of: Names a request's role, for `fail_role` and the log.
        outage_mode: refuse: the listening socket is closed for the outage (connections are
            refused); reset: it stays open and every request is reset.
        reply_headers: Sent with every reply that has content (e.g. `x-ratelimit-limit-*`).
        on_request: Runs on the request's thread as each request arrives, before it is answered
            (so a hook that blocks holds that request back).
        on_chunk: Runs after each event of a streamed reply that is served whole is sent, before
            the reply's `chunk_delay_s` pause.
    """

    def __init__(
        self,
        responder: Responder,
        *,
        faults: FaultPlan | None = None,
        seed: int = 0,
        latency_s: float = 0.0,
        role_of: RoleOf | None = None,
        outage_mode: Literal["refuse", "reset"] = "refuse",
        reply_headers: Mapping[str, str] | None = None,
        on_request: RequestHook | None = None,
        on_chunk: ChunkHook | None = None,
    ) -> None:
        self._responder = responder
        self._on_request = on_request
        self._on_chunk = on_chunk
        self._reply_headers = tuple((reply_headers or {}).items())
        self.plan = faults or FaultPlan()
        self._policy = FaultPolicy(plan=self.plan, seed=seed)
        self._latency_s = latency_s
        self._role_of = role_of
        self._outage_mode = outage_mode
        self.log = RequestLog()
        self.responder_errors: list[BaseException] = []
        """Exceptions the responder or a hook raised (a responder's is answered with a 500);
        `close` re-raises one."""
        self._listener: socket.socket | None = None
        self._port = 0
        self._accept_thread: threading.Thread | None = None
        self._threads: dict[threading.Thread, Connection] = {}
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._halt_r, self._halt_w = os.pipe()
        """Readable once the server closes; never drained, so every waiter wakes."""
        self._ctl_r, self._ctl_w = os.pipe()
        """Wakes the accept loop to re-check outages."""
        self._served = 0
        self._listening = threading.Condition()
        """Notified whenever the accept loop closes or reopens the listening socket."""
        self._is_listening = False

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> FaultServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(raise_errors=exc is None)

    def start(self) -> None:
        listener = listen_on(0)
        self._port = int(listener.getsockname()[1])
        self._set_listener(listener)
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"fault-server-{self._port}", daemon=True
        )
        self._accept_thread.start()

    def close(self, *, raise_errors: bool = True) -> None:
        """Stop accepting, release hanging handlers, cut open connections, join every thread.

        Raises:
            RuntimeError: a thread did not stop, or (with `raise_errors`) the responder raised.
        """
        if self._halt.is_set():
            return
        self._halt.set()
        os.write(self._halt_w, b"x")
        os.write(self._ctl_w, b"x")
        if self._accept_thread is not None:
            self._accept_thread.join(_JOIN_TIMEOUT_S)
        with self._lock:
            threads = dict(self._threads)
        for conn in threads.values():
            with contextlib.suppress(OSError):  # already closed by its handler
                conn.sock.shutdown(socket.SHUT_RDWR)
        alive = [t.name for t in threads if (t.join(_JOIN_TIMEOUT_S), t.is_alive())[1]]
        if self._accept_thread is not None and self._accept_thread.is_alive():
            alive.append(self._accept_thread.name)
        for fd in (self._halt_r, self._halt_w, self._ctl_r, self._ctl_w):
            os.close(fd)
        if alive:
            raise RuntimeError(f"fault server threads did not stop: {alive}")
        if raise_errors and self.responder_errors:
            raise RuntimeError("the responder raised") from self.responder_errors[0]

    # -- public knobs ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        """The `/v1` URL to give the OpenAI client."""
        return f"http://127.0.0.1:{self._port}/v1"

    @property
    def records(self) -> tuple[RequestRecord, ...]:
        return self.log.records

    def rate_limit_window(
        self, seconds: float, retry_after_s: float, *, after_requests: int = 0
    ) -> Window:
        """Answer every request with 429 + `Retry-After` for `seconds`, starting now or once
        `after_requests` requests have arrived in total."""
        window = Window(
            mode="rate_limit",
            seconds=seconds,
            retry_after_s=retry_after_s,
            after_requests=after_requests,
        )
        return self._policy.add_window(window, time.monotonic())

    def outage(self, seconds: float, *, after_requests: int = 0) -> Window:
        """Be down for `seconds` (see `outage_mode`), starting now or after `after_requests`."""
        window = Window(mode="outage", seconds=seconds, after_requests=after_requests)
        self._policy.add_window(window, time.monotonic())
        if window.start is not None:
            self._go_down()
        return window

    def wait_until_up(self, timeout_s: float = 30.0) -> bool:
        """Block until the outage in force (if any) is over and the server accepts again."""
        now = time.monotonic()
        until = self._policy.outage_until(now)
        if self._outage_mode == "reset":
            return until is None or not self._halt.wait(until - now)
        with self._listening:
            return self._listening.wait_for(lambda: self._is_listening, timeout_s)

    def fail_role(
        self,
        role: str,
        *,
        times: int | None = None,
        seconds: float | None = None,
        status: int = 503,
        retry_after_s: float | None = None,
    ) -> None:
        """Answer `role`'s requests (as `role_of` names them) with `status`: the next `times`
        of them, or all of them for `seconds` from now, or (neither given) all of them."""
        if self._role_of is None:
            raise ValueError("fail_role needs a server built with role_of=...")
        failure = RoleFailure(
            role=role,
            status=status,
            times=times,
            seconds=seconds,
            start=time.monotonic(),
            retry_after_s=retry_after_s,
        )
        self._policy.add_role_failure(failure)

    # -- accepting ---------------------------------------------------------------------------

    def _wake_acceptor(self) -> None:
        if not self._halt.is_set():
            os.write(self._ctl_w, b"x")

    def _go_down(self) -> None:
        """Have the accept loop close the listening socket, and wait until it has, so that a
        request sent after this returns is refused (refuse mode)."""
        if self._outage_mode == "reset":
            return
        self._wake_acceptor()
        with self._listening:
            self._listening.wait_for(self._is_down, _JOIN_TIMEOUT_S)

    def _is_down(self) -> bool:
        over = self._policy.outage_until(time.monotonic()) is None
        return not self._is_listening or over or self._halt.is_set()

    def _set_listener(self, listener: socket.socket | None) -> None:
        if self._listener is not None:
            self._listener.close()
        self._listener = listener
        with self._listening:
            self._is_listening = listener is not None
            self._listening.notify_all()

    def _accept_loop(self) -> None:
        try:
            while not self._halt.is_set():
                timeout = self._sync_listener()
                with self._listening:
                    self._listening.notify_all()  # a pass is done: outage waiters re-check
                fds: list[Any] = [self._ctl_r]
                if self._listener is not None:
                    fds.append(self._listener)
                readable, _, _ = select.select(fds, [], [], timeout)
                if self._ctl_r in readable:
                    os.read(self._ctl_r, 4096)
                if self._listener is not None and self._listener in readable:
                    self._accept(self._listener)
        finally:
            self._set_listener(None)

    def _sync_listener(self) -> float | None:
        """Close or reopen the listening socket for outages; the time until the next change."""
        now = time.monotonic()
        until = self._policy.outage_until(now)
        if self._outage_mode == "reset":
            return None
        if until is not None:
            if self._listener is not None:
                self._set_listener(None)
            return until - now
        if self._listener is None:
            try:
                self._set_listener(listen_on(self._port))
            except OSError:
                return _REBIND_RETRY_S  # the port is briefly taken; try again shortly
        return None

    def _accept(self, listener: socket.socket) -> None:
        try:
            sock, _ = listener.accept()
        except OSError:
            return  # the client gave up before we got to it
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = Connection(sock)
        thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
        with self._lock:
            self._served += 1
            thread.name = f"fault-conn-{self._port}-{self._served}"
            self._threads[thread] = conn
        thread.start()

    # -- serving -----------------------------------------------------------------------------

    def _serve(self, conn: Connection) -> None:
        is_open = True
        try:
            while is_open and not self._halt.is_set():
                request = conn.read_request()
                if request is None:
                    break
                is_open = self._handle(conn, request) and request.keep_alive
        except (OSError, BadRequestError):
            pass  # the client (or close()) cut the connection: nothing left to answer
        finally:
            if is_open:
                conn.close()
            with self._lock:
                self._threads.pop(threading.current_thread(), None)

    def _handle(self, conn: Connection, request: HttpRequest) -> bool:
        """Answer one request; False when the connection was closed or reset doing so."""
        at = time.monotonic()
        call = _decode(request)
        key = call_key(call.body) if call is not None else body_hash(request.body)
        role = self._role_of(call) if call is not None and self._role_of is not None else None
        if call is not None and self._on_request is not None:
            self._run_hook(self._on_request, call, role)
        nth = self.log.next_nth(key)
        decision = self._policy.decide(call, key=key, nth=nth, now=at, role=role)
        reply = None
        if call is not None and decision.fault in CONTENT_FAULTS:
            reply = self._generate(call)
        index = self.log.add(
            RequestRecord(
                at=at,
                path=request.path,
                api=call.api if call is not None else "",
                model=call.model if call is not None else "",
                role=role,
                stream=call.stream if call is not None else False,
                fault=decision.fault,
                status=status_of(decision, call, reply),
                body_hash=body_hash(request.body),
                key=key,
                nth=nth,
                retry_after_s=decision.retry_after_s,
            )
        )
        try:
            return self._respond(conn, request, call, reply, decision, rid=f"{index:06d}")
        finally:
            self.log.finish(index, finished=time.monotonic())

    def _respond(
        self,
        conn: Connection,
        request: HttpRequest,
        call: ApiCall | None,
        reply: Reply | None,
        decision: Decision,
        *,
        rid: str,
    ) -> bool:
        fault = decision.fault
        if fault == "outage":
            self._go_down()
            conn.reset()
            return False
        if fault == "hang":
            conn.wait_for_hangup(self._halt_r, self.plan.hang_s)
            conn.close()
            return False
        if fault == "echo_auth_400":
            auth = request.headers.get("authorization", "")
            message = f"Invalid request: the credentials in {auth!r} were rejected."
            send_error(conn, 400, message, "invalid_request_error", rid=rid)
            return True
        if decision.status is not None:
            send_status(conn, decision, rid=rid)
            return True
        if call is None or reply is None:
            what = "the body is not a JSON request" if call is None else "the responder raised"
            send_error(conn, 400 if call is None else 500, what, "server_error", rid=rid)
            return True
        if self._latency_s > 0:
            self._halt.wait(self._latency_s)
        if not call.stream:
            extra = self._reply_headers
            return send_plain(conn, call, reply, fault, decision.cut, rid=rid, extra=extra)
        return send_stream(
            conn,
            call,
            reply,
            fault,
            decision.cut,
            rid=rid,
            extra=self._reply_headers,
            after_event=self._after_event(call, reply),
        )

    def _after_event(self, call: ApiCall, reply: Reply) -> Callable[[int, bytes], None] | None:
        hook, delay = self._on_chunk, reply.chunk_delay_s
        if hook is None and delay <= 0:
            return None

        def after(index: int, event: bytes) -> None:
            if hook is not None:
                self._run_hook(hook, call, index, event)
            if delay > 0:
                self._halt.wait(delay)

        return after

    def _run_hook(self, hook: Callable[..., None], *args: object) -> None:
        try:
            hook(*args)
        except Exception as exc:  # a test bug: kept for close() to re-raise
            with self._lock:
                self.responder_errors.append(exc)

    def _generate(self, call: ApiCall) -> Reply | None:
        try:
            return self._responder(call)
        except Exception as exc:  # a test bug: answered 500 here, re-raised by close()
            with self._lock:
                self.responder_errors.append(exc)
            return None


def _decode(request: HttpRequest) -> ApiCall | None:
    if request.method != "POST":
        return None
    try:
        return decode_call(request.path, request.body)
    except ValueError:
        return None
