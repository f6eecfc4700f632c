"""Capturing a command's output in bounded memory: head and tail kept, the rest streamed to a file.

A command may print gigabytes. Each stream keeps at most `limit` characters of head and of tail;
the raw bytes of both streams go, interleaved as they arrive, to an optional log file that stops at
a byte budget. Crossing the budget sets `exceeded`, and the runner then kills the command.
"""

from __future__ import annotations

import codecs
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from anyio.abc import ByteReceiveStream

_CHUNK = 65536


@dataclass(slots=True)
class StreamCapture:
    """One stream's text: the first `limit` characters, the last `limit` characters and a count."""

    limit: int
    total: int = 0
    """Characters seen, including those no longer held."""
    _head: list[str] = field(default_factory=lambda: [])
    _head_len: int = 0
    _tail: deque[str] = field(default_factory=lambda: deque[str]())
    _tail_len: int = 0
    _decoder: codecs.BufferedIncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace")
    )

    @property
    def held(self) -> int:
        """Characters held in memory now: never much more than twice `limit`."""
        return self._head_len + self._tail_len

    def feed(self, data: bytes, *, final: bool = False) -> None:
        """Decode more bytes (bad UTF-8 becomes U+FFFD) and keep what the limits allow."""
        text = self._decoder.decode(data, final)
        self.total += len(text)
        room = self.limit - self._head_len
        if room > 0:
            self._head.append(text[:room])
            self._head_len += min(room, len(text))
            text = text[room:]
        if not text:
            return
        self._tail.append(text)
        self._tail_len += len(text)
        while self._tail and self._tail_len - len(self._tail[0]) >= self.limit:
            self._tail_len -= len(self._tail.popleft())

    def render(self, budget: int, marker: str) -> str:
        """The text if it fits `budget` characters, else its head and tail around `marker`.

        `marker` may hold `{omitted}`, replaced by the number of characters left out.
        """
        head = "".join(self._head)
        if self.total <= budget:
            return head + "".join(self._tail)
        keep_tail = budget // 2
        keep_head = budget - keep_tail
        known = head + "".join(self._tail)
        if self.total == len(known):
            tail = known[len(known) - keep_tail :] if keep_tail else ""
        else:
            tail = "".join(self._tail)[self._tail_len - keep_tail :] if keep_tail else ""
        omitted = self.total - keep_head - keep_tail
        return head[:keep_head] + marker.replace("{omitted}", str(omitted)) + tail


def split_budget(limit: int, stdout_len: int, stderr_len: int) -> tuple[int, int]:
    """Share `limit` characters between stdout and stderr; a short stream yields its share."""
    if stdout_len + stderr_len <= limit:
        return stdout_len, stderr_len
    half = limit // 2
    if stdout_len <= half:
        return stdout_len, limit - stdout_len
    if stderr_len <= half:
        return limit - stderr_len, stderr_len
    return limit - half, half


@dataclass(slots=True)
class OutputSink:
    """Where both streams of one command go: two captures, an optional log and a byte budget."""

    stdout: StreamCapture
    stderr: StreamCapture
    byte_budget: int
    log: anyio.AsyncFile[bytes] | None = None
    log_path: Path | None = None
    bytes_seen: int = 0
    exceeded: anyio.Event = field(default_factory=anyio.Event)
    """Set once the command printed more than `byte_budget` bytes."""

    async def pump(self, stream: ByteReceiveStream, capture: StreamCapture) -> None:
        """Read `stream` to its end (or until cancelled), feeding `capture` and the log."""
        try:
            while True:
                try:
                    data = await stream.receive(_CHUNK)
                except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                    return
                await self._take(data, capture)
        finally:
            capture.feed(b"", final=True)

    async def _take(self, data: bytes, capture: StreamCapture) -> None:
        if self.exceeded.is_set():
            return  # the command is being killed; drain without keeping anything
        room = self.byte_budget - self.bytes_seen
        self.bytes_seen += len(data)
        capture.feed(data[: max(room, 0)])
        if self.log is not None:
            await self.log.write(data[: max(room, 0)])
        if self.bytes_seen > self.byte_budget:
            if self.log is not None:
                note = f"\n[output limit of {self.byte_budget} bytes reached; command killed]\n"
                await self.log.write(note.encode())
            self.exceeded.set()
