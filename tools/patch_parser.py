"""Parsing the `*** Begin Patch` envelope into typed file operations, with Codex's leniencies.

Line numbers in errors count from 1 at the `*** Begin Patch` line, as Codex does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from orchestrator.errors import PatchError

from .patch_match import WHITE_SPACE

BEGIN_PATCH = "*** Begin Patch"
END_PATCH = "*** End Patch"
ADD_FILE = "*** Add File: "
DELETE_FILE = "*** Delete File: "
UPDATE_FILE = "*** Update File: "
MOVE_TO = "*** Move to: "
END_OF_FILE = "*** End of File"
ENVIRONMENT_ID = "*** Environment ID:"
_HEADERS = (ADD_FILE, DELETE_FILE, UPDATE_FILE)
_HEREDOC_OPENERS = frozenset({"<<EOF", "<<'EOF'", '<<"EOF"'})
_VALID_HEADERS = (
    "Valid hunk headers: '*** Add File: {path}', '*** Delete File: {path}', "
    "'*** Update File: {path}'"
)
# `@@ -12,3 +12,4 @@` is a unified-diff header: models write it out of habit. Its numbers say
# nothing this format can use, so it is read as a bare `@@`.
_UNIFIED_HEADER = re.compile(r"^@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@")

HunkLineKind = Literal[" ", "-", "+"]


@dataclass(frozen=True, slots=True, kw_only=True)
class HunkLine:
    """One body line of an update chunk."""

    kind: HunkLineKind
    """' ' context (kept), '-' removed, '+' added."""
    text: str
    lineno: int
    """Its line number in the patch, for error messages."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Chunk:
    """One `@@` section of an Update: where it goes and how it changes the file."""

    anchors: tuple[str, ...] = ()
    """The `@@` lines in order, outermost first: the text after `@@ `, or "" for a bare `@@`."""
    lines: tuple[HunkLine, ...]
    is_end_of_file: bool = False
    """`*** End of File` closed the chunk: its old lines must be the file's last lines."""
    lineno: int
    """Line number of the chunk's first line in the patch."""

    @property
    def old_lines(self) -> tuple[str, ...]:
        """The lines the chunk expects in the file (context and removed lines)."""
        return tuple(line.text for line in self.lines if line.kind != "+")

    @property
    def new_lines(self) -> tuple[str, ...]:
        """The lines the chunk leaves in their place (context and added lines)."""
        return tuple(line.text for line in self.lines if line.kind != "-")


@dataclass(frozen=True, slots=True, kw_only=True)
class AddFile:
    """Create (or overwrite) a file with `contents`."""

    path: str
    contents: str
    """Every `+` line followed by a newline."""
    lineno: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteFile:
    """Remove an existing file."""

    path: str
    lineno: int


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateFile:
    """Change an existing file by chunks, optionally moving it."""

    path: str
    move_to: str | None = None
    chunks: tuple[Chunk, ...]
    lineno: int


FileOperation = AddFile | DeleteFile | UpdateFile


@dataclass(frozen=True, slots=True, kw_only=True)
class Patch:
    """A parsed envelope: its file operations in order."""

    operations: tuple[FileOperation, ...]
    environment_id: str | None = None
    """The optional `*** Environment ID:` (remote routing upstream; validated, then ignored)."""


def parse_patch(text: str) -> Patch:
    """Parse an envelope patch; raise `PatchError` saying which line is wrong and why."""
    return _Parser(_envelope_body(text)).parse()


def _envelope_body(text: str) -> list[str]:
    """The lines between the markers, after Codex's trimming and heredoc leniency."""
    lines = _split_patch_lines(text.strip(WHITE_SPACE))
    try:
        return _strip_markers(lines)
    except PatchError:
        # Lenient heredoc mode: `<<'EOF'` ... `EOF` around the patch, as a shell would carry it.
        if len(lines) >= 4 and lines[0] in _HEREDOC_OPENERS and lines[-1].endswith("EOF"):
            return _strip_markers(lines[1:-1])
        raise


def _split_patch_lines(text: str) -> list[str]:
    # Split on LF and drop the CRs before it (two, as newer Codex does), so CRLF patches parse.
    return [line.removesuffix("\r").removesuffix("\r") for line in text.split("\n")]


def _strip_markers(lines: list[str]) -> list[str]:
    if not lines or lines[0].strip(WHITE_SPACE) != BEGIN_PATCH:
        raise PatchError("invalid patch: The first line of the patch must be '*** Begin Patch'")
    if len(lines) < 2 or lines[-1].strip(WHITE_SPACE) != END_PATCH:
        raise PatchError("invalid patch: The last line of the patch must be '*** End Patch'")
    return lines[1:-1]


def _ends_update(raw: str) -> bool:
    """Whether a line closes an Update block (it is the next header, or any other `*` line)."""
    line = raw.strip(WHITE_SPACE)
    if line.startswith(_HEADERS) or line == END_PATCH:
        return True
    return raw.startswith("*") and raw.rstrip(WHITE_SPACE) != END_OF_FILE


class _Parser:
    """A cursor over the envelope body; each method consumes one construct."""

    __slots__ = ("_lines", "_pos")

    def __init__(self, lines: list[str]) -> None:
        self._lines = lines
        self._pos = 0

    def parse(self) -> Patch:
        environment_id = self._environment_id()
        operations: list[FileOperation] = []
        while self._pos < len(self._lines):
            if not self._lines[self._pos].strip(WHITE_SPACE):
                self._pos += 1  # blank lines between operations carry nothing
                continue
            operations.append(self._operation())
        return Patch(operations=tuple(operations), environment_id=environment_id)

    def _lineno(self, pos: int) -> int:
        return pos + 2  # line 1 is `*** Begin Patch`

    def _error(
        self, pos: int, message: str, *, path: str | None = None, hunk: int | None = None
    ) -> PatchError:
        return PatchError(
            f"Invalid patch hunk on line {self._lineno(pos)}: {message}", path=path, hunk=hunk
        )

    def _environment_id(self) -> str | None:
        found: str | None = None
        while self._pos < len(self._lines):
            line = self._lines[self._pos].strip(WHITE_SPACE)
            if not line.startswith(ENVIRONMENT_ID):
                break
            if found is not None:
                raise self._error(
                    self._pos, "apply_patch environment_id cannot be specified more than once"
                )
            found = line[len(ENVIRONMENT_ID) :].strip(WHITE_SPACE)
            if not found:
                raise self._error(self._pos, "apply_patch environment_id cannot be empty")
            self._pos += 1
        return found

    def _operation(self) -> FileOperation:
        start = self._pos
        line = self._lines[start].strip(WHITE_SPACE)
        self._pos += 1
        if line.startswith(ADD_FILE):
            return self._add(line[len(ADD_FILE) :], start)
        if line.startswith(DELETE_FILE):
            return DeleteFile(path=line[len(DELETE_FILE) :], lineno=self._lineno(start))
        if line.startswith(UPDATE_FILE):
            return self._update(line[len(UPDATE_FILE) :], start)
        hint = ""
        if line.rstrip(":") + ": " in _HEADERS:
            hint = " The header has no path after it."
        elif line.startswith(MOVE_TO.strip()):
            hint = " '*** Move to:' must directly follow its '*** Update File:' line."
        raise self._error(start, f"'{line}' is not a valid hunk header. {_VALID_HEADERS}.{hint}")

    def _add(self, path: str, start: int) -> AddFile:
        contents: list[str] = []
        while self._pos < len(self._lines) and self._lines[self._pos].startswith("+"):
            contents.append(self._lines[self._pos][1:] + "\n")
            self._pos += 1
        return AddFile(path=path, contents="".join(contents), lineno=self._lineno(start))

    def _update(self, path: str, start: int) -> UpdateFile:
        move_to = self._move_to(path)
        chunks: list[Chunk] = []
        while self._pos < len(self._lines):
            raw = self._lines[self._pos]
            if _ends_update(raw):
                break
            if not raw.strip(WHITE_SPACE):
                self._pos += 1  # whitespace-only lines between chunks are skipped
                continue
            chunks.append(self._chunk(path, first=not chunks, hunk=len(chunks) + 1))
        if not chunks:
            raise self._error(start, f"Update file hunk for path '{path}' is empty", path=path)
        return UpdateFile(
            path=path, move_to=move_to, chunks=tuple(chunks), lineno=self._lineno(start)
        )

    def _move_to(self, path: str) -> str | None:
        move_to: str | None = None
        while self._pos < len(self._lines):
            line = self._lines[self._pos].strip(WHITE_SPACE)
            if not line.startswith(MOVE_TO):
                break
            if move_to is not None:
                raise self._error(
                    self._pos, f"Update of '{path}' has more than one '*** Move to:'", path=path
                )
            move_to = line[len(MOVE_TO) :]
            self._pos += 1
        return move_to

    def _chunk(self, path: str, *, first: bool, hunk: int) -> Chunk:
        start = self._pos
        anchors = self._anchors(path, hunk)
        if self._pos == start and not first:
            raise self._error(
                start,
                "Expected update hunk to start with a @@ context marker, got: "
                f"'{self._lines[start]}'. Every line of a hunk starts with ' ' (context), "
                "'-' (removed) or '+' (added)",
                path=path,
                hunk=hunk,
            )
        lines, at_end = self._body(path, hunk)
        return Chunk(
            anchors=anchors, lines=lines, is_end_of_file=at_end, lineno=self._lineno(start)
        )

    def _anchors(self, path: str, hunk: int) -> tuple[str, ...]:
        """Read stacked `@@` lines; each names a line that narrows where the chunk applies."""
        anchors: list[str] = []
        while self._pos < len(self._lines) and self._lines[self._pos].startswith("@@"):
            raw = self._lines[self._pos]
            if raw.strip(WHITE_SPACE) == "@@" or _UNIFIED_HEADER.match(raw):
                anchors.append("")
            elif raw.startswith("@@ "):
                anchors.append(raw[3:])
            else:
                raise self._error(
                    self._pos,
                    f"'{raw}' is not a valid context marker: write '@@' or '@@ ' followed by "
                    "a line of the file",
                    path=path,
                    hunk=hunk,
                )
            self._pos += 1
        return tuple(anchors)

    def _body(self, path: str, hunk: int) -> tuple[tuple[HunkLine, ...], bool]:
        lines: list[HunkLine] = []
        while self._pos < len(self._lines):
            raw = self._lines[self._pos]
            if raw.rstrip(WHITE_SPACE) == END_OF_FILE:
                if not lines:
                    break
                self._pos += 1
                return tuple(lines), True
            if raw.startswith("@@") or _ends_update(raw):
                break
            if raw == "":
                lines.append(HunkLine(kind=" ", text="", lineno=self._lineno(self._pos)))
            elif raw[0] in " -+":
                kind: HunkLineKind = " " if raw[0] == " " else "-" if raw[0] == "-" else "+"
                lines.append(HunkLine(kind=kind, text=raw[1:], lineno=self._lineno(self._pos)))
            elif not lines:
                raise self._error(
                    self._pos,
                    f"Unexpected line found in update hunk: '{raw}'. Every line should start "
                    "with ' ' (context line), '+' (added line), or '-' (removed line)",
                    path=path,
                    hunk=hunk,
                )
            else:
                break
            self._pos += 1
        if not lines:
            raise self._error(
                self._pos, "Update hunk does not contain any lines", path=path, hunk=hunk
            )
        return tuple(lines), False
