"""Locating patch chunks in a file: the 4-pass fuzzy seek, anchors, the cursor and ambiguity.

Lines are indexed by their normalised form per pass, so finding a chunk costs about the chunk's own
size plus the occurrences of its rarest line, never a rescan of the file per chunk.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass

WHITE_SPACE = (
    "\t\n\x0b\x0c\r\x20\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
"""The Unicode White_Space set (what Rust's `trim` removes). Python's default `strip()` also
removes U+001C..U+001F, which would match lines Codex does not."""

_FOLD = str.maketrans(
    {
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"),
        **dict.fromkeys("\u2018\u2019\u201a\u201b", "'"),
        **dict.fromkeys("\u201c\u201d\u201e\u201f", '"'),
        **dict.fromkeys("\u00a0\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a", " "),
        **dict.fromkeys("\u202f\u205f\u3000", " "),
    }
)


def _exact(line: str) -> str:
    return line


def _rstrip(line: str) -> str:
    return line.rstrip(WHITE_SPACE)


def _strip(line: str) -> str:
    return line.strip(WHITE_SPACE)


def _fold(line: str) -> str:
    return line.strip(WHITE_SPACE).translate(_FOLD)


ENVELOPE_PASSES: tuple[Callable[[str], str], ...] = (_exact, _rstrip, _strip, _fold)
"""Codex: exact, then trailing whitespace ignored, then both ends, then punctuation folded."""
V4A_PASSES: tuple[Callable[[str], str], ...] = (_exact, _rstrip, _strip)
"""The Agents SDK helper: the same without punctuation folding."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Hit:
    """Where a pattern matched: the strictest pass that matched and its first positions."""

    pass_no: int
    """0-based index into the index's passes."""
    positions: tuple[int, ...]
    """Ascending start lines (0-based), at most the `limit` asked for."""


class LineIndex:
    """A file's lines with, per pass, a map from normalised line to its ascending positions."""

    __slots__ = ("_keys", "_lines", "_passes", "_positions")

    def __init__(
        self, lines: Sequence[str], *, passes: Sequence[Callable[[str], str]] = ENVELOPE_PASSES
    ) -> None:
        self._lines = lines
        self._passes = tuple(passes)
        self._keys: list[list[str] | None] = [None] * len(self._passes)
        self._positions: list[dict[str, list[int]] | None] = [None] * len(self._passes)

    def __len__(self) -> int:
        return len(self._lines)

    def line(self, number: int) -> str:
        """The original text of line `number` (0-based)."""
        return self._lines[number]

    @property
    def pass_count(self) -> int:
        """How many passes, strictest first, this index tries."""
        return len(self._passes)

    def find(
        self,
        pattern: Sequence[str],
        start: int,
        *,
        stop: int | None = None,
        limit: int = 1,
        passes: Sequence[int] | None = None,
    ) -> Hit | None:
        """Find `pattern` starting in [start, stop), in the strictest pass that has any match."""
        for pass_no in range(self.pass_count) if passes is None else passes:
            found = self.find_in_pass(pattern, start, pass_no, stop=stop, limit=limit)
            if found:
                return Hit(pass_no=pass_no, positions=found)
        return None

    def find_at_end(self, pattern: Sequence[str], start: int) -> Hit | None:
        """Match `pattern` as the last lines of the file, not before `start`."""
        at = len(self._lines) - len(pattern)
        if at < start:
            return None
        return self.find(pattern, at, stop=at + 1)

    def find_in_pass(
        self,
        pattern: Sequence[str],
        start: int,
        pass_no: int,
        *,
        stop: int | None = None,
        limit: int = 1,
    ) -> tuple[int, ...]:
        """Ascending start positions in [start, stop) where `pattern` matches in one pass."""
        size = len(pattern)
        last = len(self._lines) - size if stop is None else min(stop - 1, len(self._lines) - size)
        if size == 0:
            return (start,) if start <= len(self._lines) else ()
        if last < start:
            return ()
        keys, positions = self._table(pass_no)
        normalise = self._passes[pass_no]
        wanted = [normalise(line) for line in pattern]
        # Verify only where the rarest line of the pattern occurs, so common lines like `}` or
        # blank lines do not make each chunk cost a scan of the file.
        pivot, lo, hi = self._rarest(wanted, positions, start, last)
        found: list[int] = []
        occurrences = positions.get(wanted[pivot], [])
        for index in range(lo, hi):
            begin = occurrences[index] - pivot
            if keys[begin : begin + size] == wanted:
                found.append(begin)
                if len(found) >= limit:
                    break
        return tuple(found)

    def _rarest(
        self, wanted: list[str], positions: dict[str, list[int]], start: int, last: int
    ) -> tuple[int, int, int]:
        """The pattern line with the fewest occurrences in range, with that occurrence slice."""
        best = (0, 0, 0)
        best_count = -1
        for offset, key in enumerate(wanted):
            occurrences = positions.get(key, [])
            lo = bisect_left(occurrences, start + offset)
            hi = bisect_left(occurrences, last + offset + 1)
            if best_count < 0 or hi - lo < best_count:
                best, best_count = (offset, lo, hi), hi - lo
                if best_count == 0:
                    break
        return best

    def _table(self, pass_no: int) -> tuple[list[str], dict[str, list[int]]]:
        keys = self._keys[pass_no]
        positions = self._positions[pass_no]
        if keys is None or positions is None:
            normalise = self._passes[pass_no]
            keys = [normalise(line) for line in self._lines]
            fresh: dict[str, list[int]] = {}
            for number, key in enumerate(keys):
                fresh.setdefault(key, []).append(number)
            positions = fresh
            self._keys[pass_no], self._positions[pass_no] = keys, positions
        return keys, positions


@dataclass(frozen=True, slots=True, kw_only=True)
class SeekPolicy:
    """The rules that differ between the Codex envelope and the Agents SDK per-file diff."""

    passes: tuple[Callable[[str], str], ...] = ENVELOPE_PASSES
    """How lines are compared, strictest first."""
    advisory_single_anchor: bool = False
    """A lone `@@ anchor` that is not found is ignored (SDK) instead of an error (Codex)."""
    reuse_anchor_from_file_start: bool = False
    """A first anchor found anywhere before the cursor counts (SDK); otherwise only since the
    previous chunk's anchor, so an out-of-order anchor is still an error."""
    eof_fallback: bool = False
    """An `*** End of File` chunk not at the end may match elsewhere (SDK)."""
    pure_addition_at_cursor: bool = False
    """A chunk with no old lines inserts at the cursor (SDK), not at the end of the file (Codex,
    even when it has an `@@` anchor: the anchor is checked and moves the cursor, no more)."""
    anchor_passes: tuple[int, ...] | None = None
    """Passes tried for anchors; None means every pass of the index."""
    allow_ambiguous: bool = False
    """Take the first of several equally good matches instead of refusing the chunk."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChunkQuery:
    """What one chunk asks for: its stacked anchors, the old lines it expects, and EOF."""

    anchors: tuple[str, ...] = ()
    """The `@@` lines in order, outermost first; a bare `@@` is an empty string."""
    expected: tuple[str, ...] = ()
    """The context and removed lines, in file order."""
    at_end: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Located:
    """The chunk's old lines start at `start` (or new lines are inserted there)."""

    start: int
    cursor: int
    """Where the next chunk's search starts: after the old lines, or where the anchors left it."""
    scope: int
    """Where the chunk's outermost anchor (or its old lines) is; later chunks may reuse it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AnchorMissing:
    """Anchor number `anchor_index` (0-based, in the stack) was not found from `search_from`."""

    anchor_index: int
    search_from: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ContextMissing:
    """The expected lines were not found from `search_from` on."""

    search_from: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Ambiguous:
    """The chunk matches at two starts, and nothing in the patch says which one is meant."""

    first: int
    second: int


Outcome = Located | AnchorMissing | ContextMissing | Ambiguous


@dataclass(frozen=True, slots=True, kw_only=True)
class _Anchored:
    """Where following the anchors left the cursor, and how the first anchor matched."""

    cursor: int
    anchor: str | None = None
    """The first non-empty anchor that was satisfied, if any."""
    anchor_at: int = 0
    anchor_pass: int = 0


def locate(
    index: LineIndex, query: ChunkQuery, *, cursor: int, scope: int, policy: SeekPolicy
) -> Outcome:
    """Find where one chunk applies, searching forward from `cursor`.

    A chunk whose old lines match in two places is ambiguous unless an anchor picks one: with an
    anchor the first match after it wins, but the anchor's next occurrence must not lead to a
    second match (then the anchor itself is ambiguous).
    """
    anchored = _follow_anchors(index, query.anchors, cursor, scope, policy)
    if isinstance(anchored, AnchorMissing):
        return anchored
    if not query.expected:
        start = anchored.cursor if policy.pure_addition_at_cursor else len(index)
        return Located(start=start, cursor=anchored.cursor, scope=_scope(anchored, scope))
    hit = _find_expected(index, query, anchored, policy)
    if hit is None:
        return ContextMissing(search_from=anchored.cursor)
    start = hit.positions[0]
    if not policy.allow_ambiguous:
        if len(hit.positions) > 1:
            return Ambiguous(first=start, second=hit.positions[1])
        if anchored.anchor is not None and not query.at_end:
            second = _repeat_from_next_anchor(index, query, anchored, start, hit.pass_no, policy)
            if second is not None:
                return Ambiguous(first=start, second=second)
    end = start + len(query.expected)
    return Located(start=start, cursor=end, scope=_scope(anchored, start))


def _scope(anchored: _Anchored, fallback: int) -> int:
    """Where the next chunk may still find a reused first anchor: this chunk's anchor line."""
    return anchored.anchor_at if anchored.anchor is not None else fallback


def _follow_anchors(
    index: LineIndex, anchors: Sequence[str], cursor: int, scope: int, policy: SeekPolicy
) -> _Anchored | AnchorMissing:
    """Narrow the search by each anchor in turn; an anchor moves the cursor past its line."""
    result = _Anchored(cursor=cursor)
    stacked = len(anchors) > 1
    for number, anchor in enumerate(anchors):
        if not anchor:
            continue
        hit = index.find((anchor,), result.cursor, passes=policy.anchor_passes)
        if hit is not None:
            at = hit.positions[0]
            result = _first_anchor(result, anchor, at, hit.pass_no, cursor=at + 1)
            continue
        if number == 0:
            floor = 0 if policy.reuse_anchor_from_file_start else scope
            seen = index.find((anchor,), floor, stop=result.cursor, passes=policy.anchor_passes)
            if seen is not None:
                # The chunk stays inside the block an earlier chunk already entered.
                at = seen.positions[0]
                result = _first_anchor(result, anchor, at, seen.pass_no, cursor=result.cursor)
                continue
        if stacked or not policy.advisory_single_anchor:
            return AnchorMissing(anchor_index=number, search_from=result.cursor)
    return result


def _first_anchor(
    current: _Anchored, anchor: str, at: int, pass_no: int, *, cursor: int
) -> _Anchored:
    """Move the cursor, remembering only the first anchor (the one ambiguity is judged by)."""
    if current.anchor is not None:
        return _Anchored(
            cursor=cursor,
            anchor=current.anchor,
            anchor_at=current.anchor_at,
            anchor_pass=current.anchor_pass,
        )
    return _Anchored(cursor=cursor, anchor=anchor, anchor_at=at, anchor_pass=pass_no)


def _find_expected(
    index: LineIndex, query: ChunkQuery, anchored: _Anchored, policy: SeekPolicy
) -> Hit | None:
    if query.at_end:
        hit = index.find_at_end(query.expected, anchored.cursor)
        if hit is not None or not policy.eof_fallback:
            return hit
    limit = 1 if anchored.anchor is not None else 2
    return index.find(query.expected, anchored.cursor, limit=limit)


def _repeat_from_next_anchor(
    index: LineIndex,
    query: ChunkQuery,
    anchored: _Anchored,
    start: int,
    pass_no: int,
    policy: SeekPolicy,
) -> int | None:
    """Where the chunk would land from the first anchor's next occurrence, if anywhere else."""
    assert anchored.anchor is not None
    again = index.find_in_pass((anchored.anchor,), start, anchored.anchor_pass)
    if not again:
        return None
    position = query.anchors.index(anchored.anchor)
    rest = ("",) * (position + 1) + query.anchors[position + 1 :]
    strict = SeekPolicy(passes=policy.passes, anchor_passes=policy.anchor_passes)
    inner = _follow_anchors(index, rest, again[0] + 1, again[0], strict)
    if isinstance(inner, AnchorMissing):
        return None
    found = index.find_in_pass(query.expected, inner.cursor, pass_no)
    return found[0] if found and found[0] != start else None
