"""Applying an Update's chunks to one file's text.

Each line keeps its own terminator (CRLF, LF or a lone CR); new lines take the file's first
terminator, and the result always ends with one (Codex's preserve mode, conformance 014/023/024).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from orchestrator.errors import PatchError

from .patch_diagnosis import ENVELOPE_WORDING, describe_failure
from .patch_match import (
    ChunkQuery,
    ContextMissing,
    LineIndex,
    Located,
    Outcome,
    SeekPolicy,
    locate,
)
from .patch_parser import Chunk, HunkLine

ENVELOPE_POLICY = SeekPolicy()
"""Codex rules, made strict: unmatched anchors and ambiguous context are errors."""

_LINE_END = re.compile(r"(\r\n|\r|\n)")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Edit:
    start: int
    end: int
    lines: tuple[HunkLine, ...]


def split_lines(text: str) -> tuple[list[str], list[str]]:
    """Split text into lines and their terminators; a final unterminated line gets ""."""
    pieces = _LINE_END.split(text)
    lines, ends = pieces[0::2], pieces[1::2]
    if lines[-1] == "":
        lines.pop()
    else:
        ends.append("")
    return lines, ends


FailureFactory = Callable[[LineIndex, Chunk, Outcome, int], PatchError]
"""Builds the error for a chunk that does not fit: (index, chunk, outcome, 1-based hunk)."""


def update_text(text: str, chunks: Sequence[Chunk], *, path: str) -> str:
    """Apply an envelope Update's chunks; raise `PatchError` naming the chunk that does not fit."""

    def fail(index: LineIndex, chunk: Chunk, outcome: Outcome, hunk: int) -> PatchError:
        where = f"{path} (hunk {hunk}, patch line {chunk.lineno})"
        message = describe_failure(index, chunk, outcome, where=where, wording=ENVELOPE_WORDING)
        return PatchError(message, path=path, hunk=hunk)

    return apply_chunks(text, chunks, policy=ENVELOPE_POLICY, fail=fail)


def apply_chunks(
    text: str,
    chunks: Sequence[Chunk],
    *,
    policy: SeekPolicy,
    fail: FailureFactory,
    force_final_newline: bool = True,
    default_newline: str = "\n",
) -> str:
    """Locate every chunk (forward only), then rebuild the text keeping untouched lines' bytes.

    Args:
        text: The file's current text.
        chunks: The chunks in file order.
        policy: How anchors, EOF, pure additions and ambiguity are treated.
        fail: Builds the error raised for the first chunk that does not fit.
        force_final_newline: End the result with a newline (Codex), or keep the input's
            final-newline state (Agents SDK).
        default_newline: Terminator for new lines when the text has none of its own.
    """
    lines, ends = split_lines(text)
    index = LineIndex(lines, passes=policy.passes)
    edits: list[_Edit] = []
    cursor = scope = 0
    for number, chunk in enumerate(chunks, 1):
        body, located = _locate_chunk(index, chunk, cursor, scope, policy=policy)
        if not isinstance(located, Located):
            raise fail(index, chunk, located, number)
        removed = sum(1 for line in body if line.kind != "+")
        edits.append(_Edit(start=located.start, end=located.start + removed, lines=body))
        cursor, scope = located.cursor, located.scope
    had_final_newline = not ends or ends[-1] != ""
    newline = next((end for end in ends if end), default_newline)
    result = _render(lines, ends, edits, newline=newline)
    if not force_final_newline and not had_final_newline and result.endswith(newline):
        result = result[: -len(newline)]
    return result


def _old(body: Sequence[HunkLine]) -> tuple[str, ...]:
    return tuple(line.text for line in body if line.kind != "+")


def _locate_chunk(
    index: LineIndex, chunk: Chunk, cursor: int, scope: int, *, policy: SeekPolicy
) -> tuple[tuple[HunkLine, ...], Outcome]:
    """Locate a chunk, retrying without a trailing blank old line as Codex does.

    A failure is reported for the chunk as written, not for the retried form.
    """
    body = chunk.lines
    first_failure: Outcome | None = None
    while True:
        old = _old(body)
        query = ChunkQuery(anchors=chunk.anchors, expected=old, at_end=chunk.is_end_of_file)
        outcome = locate(index, query, cursor=cursor, scope=scope, policy=policy)
        if isinstance(outcome, Located):
            return body, outcome
        first_failure = first_failure or outcome
        if not (isinstance(outcome, ContextMissing) and old and old[-1] == ""):
            return chunk.lines, first_failure
        body = _drop_trailing_blank(body)


def _drop_trailing_blank(body: tuple[HunkLine, ...]) -> tuple[HunkLine, ...]:
    """Drop the last old line (it is ""), and a trailing "" of the new lines with it."""
    lines = list(body)
    last_old = max(i for i, line in enumerate(lines) if line.kind != "+")
    if lines[last_old].kind == "-":
        del lines[last_old]
    else:
        lines[last_old] = replace(lines[last_old], kind="+")
    kept = [i for i, line in enumerate(lines) if line.kind != "-"]
    if kept and lines[kept[-1]].text == "":
        if lines[kept[-1]].kind == "+":
            del lines[kept[-1]]
        else:
            lines[kept[-1]] = replace(lines[kept[-1]], kind="-")
    return tuple(lines)


def _render(lines: list[str], ends: list[str], edits: list[_Edit], *, newline: str) -> str:
    if ends and not ends[-1]:
        ends[-1] = newline  # the old last line is no longer last, or the result needs a newline
    out: list[str] = []
    done = 0
    for edit in sorted(edits, key=lambda edit: edit.start):
        assert edit.start >= done, "chunks are located forward only, so edits never overlap"
        out.extend(map(str.__add__, lines[done : edit.start], ends[done : edit.start]))
        at = edit.start
        for line in edit.lines:
            if line.kind == "+":
                out.append(line.text + newline)
                continue
            if line.kind == " ":
                out.append(lines[at] + ends[at])  # context keeps the file's own bytes
            at += 1
        done = edit.end
    out.extend(map(str.__add__, lines[done:], ends[done:]))
    return "".join(out)
