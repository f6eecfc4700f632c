"""Bounded output capture: head and tail kept, the middle counted, bytes decoded leniently."""

from __future__ import annotations

import pytest

from orchestrator.tools.shell_output import StreamCapture, split_budget

MARKER = "[{omitted} cut]"


def capture(text: str, *, limit: int, chunk: int = 7) -> StreamCapture:
    stream = StreamCapture(limit=limit)
    data = text.encode()
    for start in range(0, len(data), chunk):
        stream.feed(data[start : start + chunk])
    stream.feed(b"", final=True)
    return stream


def test_capture_keeps_short_text_whole() -> None:
    assert capture("hello world", limit=100).render(100, MARKER) == "hello world"


def test_capture_keeps_head_and_tail_of_long_text() -> None:
    text = "".join(chr(ord("a") + i % 26) for i in range(1000))

    rendered = capture(text, limit=100).render(10, MARKER)

    assert rendered == text[:5] + "[990 cut]" + text[-5:]


def test_capture_holds_bounded_text() -> None:
    stream = capture("x" * 100_000, limit=50, chunk=1000)

    assert stream.total == 100_000
    assert stream.held < 2 * 50 + 1000


def test_capture_decodes_characters_split_across_chunks() -> None:
    assert capture("é" * 10, limit=100, chunk=1).render(100, MARKER) == "é" * 10


def test_capture_replaces_invalid_utf8() -> None:
    stream = StreamCapture(limit=10)
    stream.feed(b"a\xffb")
    stream.feed(b"\xc3", final=True)  # a truncated two-byte sequence at the end

    assert stream.render(10, MARKER) == "a\ufffdb\ufffd"


def test_capture_marker_may_hold_braces() -> None:
    rendered = capture("0123456789", limit=10).render(4, "[{omitted} of {path}]")

    assert rendered == "01[6 of {path}]89"


@pytest.mark.parametrize(
    ("limit", "stdout", "stderr", "expected"),
    [
        (100, 30, 20, (30, 20)),
        (100, 500, 10, (90, 10)),
        (100, 10, 500, (10, 90)),
        (100, 500, 500, (50, 50)),
        (101, 500, 500, (51, 50)),
    ],
    ids=["both-fit", "short-stderr", "short-stdout", "both-long", "odd-limit"],
)
def test_split_budget_shares_limit(
    limit: int, stdout: int, stderr: int, expected: tuple[int, int]
) -> None:
    assert split_budget(limit, stdout, stderr) == expected
