"""HTTP/1.1 on a raw socket, just enough for the fault server: keep-alive requests with a
Content-Length body in, and replies out that may be cut, reset or left hanging on purpose."""

from __future__ import annotations

import contextlib
import select
import socket
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus

_MAX_HEAD = 64 * 1024
_RECV = 65536


class BadRequestError(Exception):
    """The bytes on the connection are not a request this server understands."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpRequest:
    method: str
    path: str
    headers: Mapping[str, str]
    """Names lower-cased."""
    body: bytes

    @property
    def keep_alive(self) -> bool:
        return self.headers.get("connection", "").lower() != "close"


class Connection:
    """One accepted socket; every method runs on the connection's own thread."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = b""

    def read_request(self) -> HttpRequest | None:
        """The next request, or None when the client closed the connection between requests.

        Raises:
            BadRequestError: malformed head, or a body without Content-Length.
            OSError: the socket failed (reset, or shut down by the server).
        """
        while b"\r\n\r\n" not in self._buffer:
            if len(self._buffer) > _MAX_HEAD:
                raise BadRequestError("request head too large")
            data = self.sock.recv(_RECV)
            if not data:
                if self._buffer:
                    raise BadRequestError("connection closed inside a request head")
                return None
            self._buffer += data
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        method, path, headers = _parse_head(head)
        length = headers.get("content-length")
        if length is None:
            if "transfer-encoding" in headers:
                raise BadRequestError("chunked request bodies are not supported")
            length = "0"
        body = self._read_exact(int(length))
        return HttpRequest(method=method, path=path, headers=headers, body=body)

    def _read_exact(self, size: int) -> bytes:
        while len(self._buffer) < size:
            data = self.sock.recv(_RECV)
            if not data:
                raise BadRequestError("connection closed inside a request body")
            self._buffer += data
        body, self._buffer = self._buffer[:size], self._buffer[size:]
        return body

    def send_head(self, status: int, headers: Sequence[tuple[str, str]]) -> None:
        lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"]
        lines.extend(f"{name}: {value}" for name, value in headers)
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_chunk(self, data: bytes) -> None:
        """One chunk of a `Transfer-Encoding: chunked` body."""
        if data:
            self.sock.sendall(b"%x\r\n%s\r\n" % (len(data), data))

    def end_chunks(self) -> None:
        self.sock.sendall(b"0\r\n\r\n")

    def reset(self) -> None:
        """Abort with a TCP RST (SO_LINGER 0), as a crashed proxy does."""
        # Already shut down by the server's close()? Then closing is all that is left.
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self) -> None:
        """Close with a FIN: the client sees a clean end of the byte stream."""
        with contextlib.suppress(OSError):  # the peer is gone already
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def wait_for_hangup(self, halt: int, seconds: float) -> None:
        """Block until the client hangs up, `halt` (a pipe fd) turns readable, or `seconds`."""
        readable, _, _ = select.select([self.sock, halt], [], [], seconds)
        if self.sock in readable:
            with contextlib.suppress(OSError):  # a reset is the hang-up we waited for too
                self.sock.recv(_RECV, socket.MSG_PEEK)


def listen_on(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:`port` (0: any free port), reusable after an outage."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequestError(f"bad request line {lines[0]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise BadRequestError(f"bad header line {line!r}")
        headers[name.strip().lower()] = value.strip()
    return parts[0], parts[1], headers
