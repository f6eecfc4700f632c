"""Explaining why a chunk did not fit: which line failed first and the nearest line the file has.

Only the error path runs this, and its scans are bounded so a hostile patch cannot make it slow.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

from .patch_match import WHITE_SPACE, AnchorMissing, ContextMissing, LineIndex, Located, Outcome
from .patch_parser import Chunk, HunkLine


@dataclass(frozen=True, slots=True, kw_only=True)
class Wording:
    """The words of one format's errors; `{anchor}` and `{where}` are filled in."""

    anchor_missing: str
    context_missing: str
    eof_context_missing: str
    ambiguous: str
    line_label: str
    """What a line of the model's text is called: "patch line" or "diff line"."""


ENVELOPE_WORDING = Wording(
    anchor_missing="Failed to find context '{anchor}' in {where}.",
    context_missing="Failed to find expected lines in {where}:",
    eof_context_missing="Failed to find expected lines at the end of {where}:",
    ambiguous="Ambiguous hunk in {where}",
    line_label="patch line",
)


def describe_failure(
    index: LineIndex, chunk: Chunk, outcome: Outcome, *, where: str, wording: Wording
) -> str:
    """Say which chunk and line failed, and the nearest line the file does have."""
    if isinstance(outcome, AnchorMissing):
        anchor = chunk.anchors[outcome.anchor_index]
        message = wording.anchor_missing.format(anchor=anchor, where=where)
        return message + describe_mismatch(index, (anchor,), outcome.search_from)
    if isinstance(outcome, ContextMissing):
        old = [line for line in chunk.lines if line.kind != "+"]
        expected = tuple(line.text for line in old)
        heading = wording.eof_context_missing if chunk.is_end_of_file else wording.context_missing
        message = heading.format(where=where) + "\n" + "\n".join(expected)
        if chunk.is_end_of_file and index.find(expected, outcome.search_from) is not None:
            return message + "\nThey occur, but not as the last lines of the file (End of File)."
        return message + describe_mismatch(
            index, expected, outcome.search_from, old, label=wording.line_label
        )
    assert not isinstance(outcome, Located)
    return wording.ambiguous.format(where=where) + (
        f": its lines match at line {outcome.first + 1} and at line {outcome.second + 1}. "
        "Add context lines, or an '@@ <line>' anchor such as the enclosing class or function "
        "line, so that only one place fits."
    )


def describe_mismatch(
    index: LineIndex,
    expected: Sequence[str],
    search_from: int,
    old: Sequence[HunkLine] | None = None,
    *,
    label: str = "patch line",
) -> str:
    """Explain why `expected` was not found: out of order, or which line differs from what."""
    if search_from > 0:
        earlier = index.find(expected, 0, stop=search_from)
        if earlier is not None:
            return (
                f"\nThis text occurs at line {earlier.positions[0] + 1}, before line "
                f"{search_from + 1} where the search started (after the previous hunk or the @@ "
                "line): hunks of one file must be in file order, each after its @@ lines."
            )
    mismatch = explain_mismatch(index, expected, search_from)
    failed = expected[mismatch.expected_index]
    if old is None:
        hint = ""  # a single anchor line: only the nearest candidate says something new
    else:
        where = f"{label} {old[mismatch.expected_index].lineno}"
        hint = f"\nFirst line that did not match ({where}): {failed!r}."
    line = mismatch.file_line
    if mismatch.matched_prefix_at is not None:
        hint += f" The lines before it match at line {mismatch.matched_prefix_at + 1}"
        if line is None:
            return hint + ", and then the file ends."
        return hint + f", but line {line + 1} is {index.line(line)!r}."
    if line is None:
        return hint + "\nNo similar line was found in the file."
    return hint + (
        f"\nNearest line in the file: line {line + 1}: {index.line(line)!r} "
        f"(similarity {mismatch.ratio})."
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Mismatch:
    """Why expected lines were not found: the first one that failed and the closest file line."""

    expected_index: int
    """0-based index, into the expected lines, of the first line that could not be matched."""
    file_line: int | None
    """0-based line of the file closest to that expected line, if any line is close."""
    matched_prefix_at: int | None
    """Where the lines before it matched (0-based), when at least one did."""
    ratio: float | None
    """Similarity (0..1) of `file_line` to the expected line, when found by similarity."""


_NEAREST_WINDOW = 4000
"""Lines scanned by similarity when nothing matches, so the error path stays bounded."""


def explain_mismatch(index: LineIndex, expected: Sequence[str], start: int) -> Mismatch:
    """Find the first expected line that cannot be matched, and the nearest file line to it."""
    loosest = index.pass_count - 1
    # The longest prefix that still matches somewhere: matching is monotone in prefix length.
    lo, hi = 0, len(expected)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if index.find_in_pass(expected[:mid], start, loosest):
            lo = mid
        else:
            hi = mid - 1
    matches: Sequence[int] = []
    if lo:
        matches = index.find_in_pass(expected[:lo], start, loosest, limit=2)
    # A one-line prefix found in several places (a blank line, a lone brace) says little about
    # where the model meant; then look for the failing line by similarity instead.
    if lo > 1 or len(matches) == 1:
        at = matches[0]
        line = at + lo if at + lo < len(index) else None
        return Mismatch(expected_index=lo, file_line=line, matched_prefix_at=at, ratio=None)
    line, ratio = _nearest_line(index, expected[lo], start)
    return Mismatch(expected_index=lo, file_line=line, matched_prefix_at=None, ratio=ratio)


def _nearest_line(index: LineIndex, wanted: str, start: int) -> tuple[int | None, float | None]:
    """The most similar line from `start` on (within a bounded window), by difflib ratio."""
    target = _stripped(wanted)
    matcher = difflib.SequenceMatcher(autojunk=False)
    matcher.set_seq2(target)
    best: tuple[int | None, float] = (None, 0.0)
    first = min(start, len(index))
    for number in range(first, min(len(index), first + _NEAREST_WINDOW)):
        matcher.set_seq1(_stripped(index.line(number)))
        if matcher.real_quick_ratio() <= best[1] or matcher.quick_ratio() <= best[1]:
            continue
        ratio = matcher.ratio()
        if ratio > best[1]:
            best = (number, ratio)
    if best[0] is None or best[1] < 0.5:
        return None, None
    return best[0], round(best[1], 2)


def _stripped(line: str) -> str:
    return line.strip(WHITE_SPACE)
