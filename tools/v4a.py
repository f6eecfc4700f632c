"""The per-file V4A diff of Responses API `apply_patch_call` operations (Agents SDK semantics).

`create_file` diffs are `+` lines only; `update_file` diffs are `@@` sections. Differences from the
envelope: a lone unmatched anchor is advisory, no punctuation folding, and the input's final-newline
state is kept. Ambiguous context is refused here too, unless `allow_ambiguous` is set.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Literal

from orchestrator.errors import PatchError

from .patch_diagnosis import Wording, describe_failure
from .patch_match import V4A_PASSES, LineIndex, Outcome, SeekPolicy
from .patch_parser import END_OF_FILE, END_PATCH, Chunk, HunkLine, HunkLineKind
from .patch_update import apply_chunks

DiffMode = Literal["default", "create"]

V4A_POLICY = SeekPolicy(
    passes=V4A_PASSES,
    advisory_single_anchor=True,
    reuse_anchor_from_file_start=True,
    eof_fallback=True,
    pure_addition_at_cursor=True,
    anchor_passes=(0, 2),  # anchors match exactly, then with whitespace stripped
)
_WORDING = Wording(
    anchor_missing="Invalid Anchor '{anchor}' ({where}).",
    context_missing="Invalid Context ({where}):",
    eof_context_missing="Invalid EOF Context ({where}):",
    ambiguous="Ambiguous Context ({where})",
    line_label="diff line",
)
_LINE_BREAK = re.compile(r"\r?\n")
_OTHER_FILE = ("*** Update File:", "*** Delete File:", "*** Add File:", "*** Begin Patch")


class DiffError(PatchError, ValueError):
    """A V4A diff that does not apply; also a ValueError, as the Agents SDK helper raises."""


def apply_diff(
    input: str, diff: str, mode: DiffMode = "default", *, allow_ambiguous: bool = False
) -> str:
    """Apply one file's V4A diff to its text and return the new text.

    Args:
        input: The file's current text ("" for create mode).
        diff: The operation's `diff`.
        mode: "create" for `create_file`, "default" for `update_file`.
        allow_ambiguous: Take the first match when context fits in several places (SDK
            behaviour) instead of raising.

    Raises:
        DiffError: The diff is malformed or does not fit `input`; the message says where.
    """
    lines = [line.rstrip("\r") for line in _LINE_BREAK.split(diff)]
    if lines[-1] == "":
        lines.pop()
    diff_newline = "\r\n" if "\r\n" in diff else "\n"
    if mode == "create":
        return _create(lines, diff_newline)
    if mode != "default":
        raise DiffError(f"unknown diff mode {mode!r}: use 'default' or 'create'")
    policy = replace(V4A_POLICY, allow_ambiguous=True) if allow_ambiguous else V4A_POLICY
    return apply_chunks(
        input,
        _sections(lines),
        policy=policy,
        fail=_failure,
        force_final_newline=False,
        default_newline=diff_newline,
    )


def _create(lines: list[str], newline: str) -> str:
    """Create mode: every line is `+text`, joined, so no final newline unless a bare `+` ends it."""
    for number, line in enumerate(lines, 1):
        if not line.startswith("+"):
            raise DiffError(
                f"Invalid Add File Line {number}: {line!r}. Every line of a create_file diff "
                "starts with '+'"
            )
    return newline.join(line[1:] for line in lines)


def _sections(lines: list[str]) -> list[Chunk]:
    """Split an update diff into sections: stacked `@@` lines, then context/-/+ lines."""
    chunks: list[Chunk] = []
    pos = 0
    while pos < len(lines):
        if lines[pos] == END_PATCH and pos == len(lines) - 1:
            break  # a copied envelope end marker carries nothing
        start = pos
        anchors: list[str] = []
        while pos < len(lines) and (lines[pos] == "@@" or lines[pos].startswith("@@ ")):
            anchor = lines[pos][3:]
            anchors.append(anchor if anchor.strip() else "")
            pos += 1
        if not anchors and chunks:
            raise DiffError(
                f"Invalid Line {pos + 1}: {lines[pos]!r}. A section after the first starts "
                "with '@@' or '@@ <a line of the file>'"
            )
        body, at_end, pos = _section_body(lines, pos)
        if not body:
            shown = lines[pos] if pos < len(lines) else "(end of diff)"
            raise DiffError(f"Nothing in this section (diff line {pos + 1}: {shown!r})")
        chunks.append(
            Chunk(anchors=tuple(anchors), lines=body, is_end_of_file=at_end, lineno=start + 1)
        )
    return chunks


def _section_body(lines: list[str], pos: int) -> tuple[tuple[HunkLine, ...], bool, int]:
    body: list[HunkLine] = []
    while pos < len(lines):
        raw = lines[pos]
        if raw.startswith("@@") or (raw == END_PATCH and pos == len(lines) - 1):
            break
        if raw == END_OF_FILE:
            return tuple(body), True, pos + 1
        if raw == "***":
            return tuple(body), False, pos + 1
        if raw.startswith(_OTHER_FILE):
            raise DiffError(
                f"Invalid Line {pos + 1}: {raw!r}. One update_file diff changes one file; "
                "send one operation per file"
            )
        if raw.startswith("***") or (raw and raw[0] not in " -+"):
            raise DiffError(
                f"Invalid Line {pos + 1}: {raw!r}. Every line starts with ' ' (context), "
                "'-' (removed) or '+' (added)"
            )
        kind: HunkLineKind = "+" if raw[:1] == "+" else "-" if raw[:1] == "-" else " "
        body.append(HunkLine(kind=kind, text=raw[1:], lineno=pos + 1))
        pos += 1
    return tuple(body), False, pos


def _failure(index: LineIndex, chunk: Chunk, outcome: Outcome, hunk: int) -> PatchError:
    """The SDK's error words (`Invalid Anchor`, `Invalid Context`), plus what to fix."""
    where = f"section {hunk}, diff line {chunk.lineno}"
    message = describe_failure(index, chunk, outcome, where=where, wording=_WORDING)
    return DiffError(message, hunk=hunk)
