"""Built-in read-only file tools, confined to the task's workspace: read_file, list_dir and
search_text. Every path goes through `resolve_in_workspace`; every output is capped. `.git` and
the orchestrator's run store (`workspace.RunStoreGuard`) are left out of listings and searches."""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Annotated, BinaryIO

import anyio.from_thread
from pydantic import Field

from orchestrator.toolkit import Tool, ToolContext, ToolRetry

from .base import tool
from .workspace import RunStoreGuard, resolve_in_workspace, workspace_root

MAX_READ_BYTES = 256 * 1024
"""Most bytes of file content one read_file call returns."""
MAX_READ_LINES = 2000
"""Most lines one read_file call returns."""
MAX_LINE_BYTES = 2000
"""Longer lines are cut (read_file) so one minified line cannot fill the reply."""
MAX_LIST_ENTRIES = 500
"""Most entries one list_dir call shows."""
MAX_COUNTED_ENTRIES = 100_000
"""list_dir stops counting the entries it does not show here."""
MAX_SEARCH_FILE_BYTES = 1024 * 1024
"""search_text skips bigger files."""
MAX_MATCH_CHARS = 300
"""A matching line is shown up to this many characters."""
_SNIFF_BYTES = 8192
_CANCEL_EVERY_LINES = 10_000


def _checkpoint() -> None:
    """Stop the worker thread promptly once the call's timeout or the run cancelled it."""
    try:
        anyio.from_thread.check_cancelled()
    except RuntimeError:  # NoEventLoopError: called directly (a unit test), not by a tool call
        return


def _is_binary(head: bytes) -> bool:
    # git's heuristic: a NUL byte near the start means binary.
    return b"\x00" in head


def _resolve_existing(ctx: ToolContext, path: str) -> tuple[RunStoreGuard, Path]:
    """The guard of the resolved workspace root and the existing target `path` names inside it."""
    root = workspace_root(ctx.workdir)
    target = resolve_in_workspace(root, path, run_dir=ctx.run_dir)
    if not target.exists():
        raise ToolRetry(f"{path!r} does not exist; use list_dir to see what is there")
    return RunStoreGuard.of(root, ctx.run_dir), target


def _relative(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix() or "."


@tool(timeout_s=30)
def read_file(
    ctx: ToolContext,
    path: str,
    start_line: Annotated[int, Field(ge=1)] | None = None,
    end_line: Annotated[int, Field(ge=1)] | None = None,
) -> str:
    """Read a text file in the workspace; each line is prefixed with its line number.

    One call returns at most 2000 lines or 256 KiB; lines over 2000 bytes are cut. When the
    output stops early, it says which start_line continues it.

    Args:
        path: The file, relative to the workspace root.
        start_line: First line to return, counting from 1; null starts at the top.
        end_line: Last line to return (inclusive); null reads to the end.
    """
    _, target = _resolve_existing(ctx, path)
    if target.is_dir():
        raise ToolRetry(f"{path!r} is a folder; use list_dir to see what it holds")
    first = start_line or 1
    if end_line is not None and end_line < first:
        raise ToolRetry(f"end_line {end_line} is before start_line {first}")
    with target.open("rb") as handle:
        if _is_binary(handle.read(_SNIFF_BYTES)):
            size = target.stat().st_size
            raise ToolRetry(f"{path!r} is a binary file ({size} bytes); read_file only reads text")
        handle.seek(0)
        shown, line_count, more_from = _read_lines(handle, first, end_line)
    if line_count == 0:
        return f"({path} is empty)"
    if not shown:
        raise ToolRetry(f"start_line {first} is past the end of {path!r} ({line_count} lines)")
    if more_from is not None:
        shown.append(
            f"… output capped at {MAX_READ_LINES} lines / {MAX_READ_BYTES // 1024} KiB; "
            f"call read_file with start_line={more_from} to continue"
        )
    return "\n".join(shown)


def _read_lines(
    handle: BinaryIO, first: int, last: int | None
) -> tuple[list[str], int, int | None]:
    """Numbered lines first..last within the caps, lines seen, and where a capped read stopped."""
    shown: list[str] = []
    size = 0
    number = 0
    for number, (raw, is_cut) in enumerate(_raw_lines(handle), start=1):
        if number % _CANCEL_EVERY_LINES == 0:
            _checkpoint()
        if number < first:
            continue
        if last is not None and number > last:
            break
        if len(shown) == MAX_READ_LINES or size + len(raw) > MAX_READ_BYTES:
            return shown, number, number
        text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        cut = f" … [cut at {MAX_LINE_BYTES} bytes]" if is_cut else ""
        shown.append(f"{number:>6}\t{text}{cut}")
        size += len(raw)
    return shown, number, None


def _raw_lines(handle: BinaryIO) -> Iterator[tuple[bytes, bool]]:
    """Each line, at most `MAX_LINE_BYTES` long, and whether it was cut."""
    while line := handle.readline(MAX_LINE_BYTES):
        is_cut = len(line) == MAX_LINE_BYTES and not line.endswith(b"\n")
        rest = line
        while is_cut and rest and not rest.endswith(b"\n"):
            rest = handle.readline(MAX_LINE_BYTES)  # skip the remainder of an overlong line
        yield line, is_cut


@tool(timeout_s=30)
def list_dir(ctx: ToolContext, path: str = ".", recursive: bool = False) -> str:
    """List a folder in the workspace, one path per line, relative to the workspace root.

    Folders end with '/'. A symbolic link shows where it points and is never followed. `.git`
    and the orchestrator's own `.orchestrator` folder are hidden. At most 500 entries are shown;
    list a subfolder to see more.

    Args:
        path: The folder, relative to the workspace root; "." is the root.
        recursive: Also list everything below, depth first.
    """
    guard, target = _resolve_existing(ctx, path)
    root = guard.base
    if not target.is_dir():
        raise ToolRetry(f"{path!r} is a file; use read_file to read it")
    entries = _entries(guard, target, recursive=recursive)
    shown = list(islice(entries, MAX_LIST_ENTRIES))
    if not shown:
        return f"({_relative(root, target)} is empty)"
    hidden = sum(1 for _ in islice(entries, MAX_COUNTED_ENTRIES))
    if hidden:
        count = f"{hidden}" if hidden < MAX_COUNTED_ENTRIES else f"over {hidden}"
        shown.append(f"… {count} more entries not shown; list a subfolder to see them")
    return "\n".join(shown)


def _entries(guard: RunStoreGuard, folder: Path, *, recursive: bool) -> Iterator[str]:
    _checkpoint()
    root = guard.base
    try:
        children = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError as exc:
        yield f"{_relative(root, folder)}/ (unreadable: {exc.strerror})"
        return
    for entry in children:
        if entry.name == ".git":
            continue
        relative = _relative(root, Path(entry.path))
        if entry.is_symlink():
            yield f"{relative} -> {_link_target(guard, Path(entry.path))}"
        elif entry.is_dir(follow_symlinks=False):
            if guard.is_store(Path(entry.path)):
                continue
            yield f"{relative}/"
            if recursive:
                yield from _entries(guard, Path(entry.path), recursive=True)
        else:
            yield relative


def _link_target(guard: RunStoreGuard, link: Path) -> str:
    root = guard.base
    resolved = Path(os.path.realpath(link))
    if not resolved.is_relative_to(root):
        return "(outside the workspace; not followed)"
    if guard.store_of(resolved) is not None:
        return "(the orchestrator's run store; not followed)"
    if not resolved.exists():
        return "(missing target)"
    return _relative(root, resolved) + ("/" if resolved.is_dir() else "")


@tool(timeout_s=60)
def search_text(
    ctx: ToolContext,
    pattern: str,
    path: str = ".",
    glob: str | None = None,
    max_results: Annotated[int, Field(ge=1, le=1000)] = 100,
) -> str:
    """Search the workspace's text files for a regular expression, line by line.

    Prints `path:line: text` for each matching line (Python `re` syntax). Binary files, files
    over 1 MiB, `.git`, `.orchestrator` and symbolic links are skipped.

    Args:
        pattern: The regular expression, e.g. `def \\w+\\(`.
        path: A file or folder to search, relative to the workspace root.
        glob: Only search files whose name matches, e.g. `*.py`; a glob with '/' is matched
            against the path from the workspace root, e.g. `src/*.py`. Null searches all.
        max_results: Most matching lines to show.
    """
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise ToolRetry(f"invalid regular expression {pattern!r}: {exc}") from exc
    guard, target = _resolve_existing(ctx, path)
    root = guard.base
    files = [target] if target.is_file() else _files_under(guard, target)
    shown: list[str] = []
    total = 0
    for file in files:
        relative = _relative(root, file)
        if glob is not None and not _glob_matches(relative, glob):
            continue
        for number, line in _searchable_lines(file):
            if regex.search(line):
                total += 1
                if len(shown) < max_results:
                    shown.append(f"{relative}:{number}: {_clip(line)}")
    if not shown:
        where = f"{path!r}" + ("" if glob is None else f" (files matching {glob!r})")
        return f"no matches for {pattern!r} in {where}"
    if total > len(shown):
        shown.append(f"… {total - len(shown)} more matches not shown; narrow the search")
    return "\n".join(shown)


def _files_under(guard: RunStoreGuard, folder: Path) -> Iterator[Path]:
    for current, dirs, files in os.walk(folder):
        dirs[:] = sorted(
            name for name in dirs if name != ".git" and not guard.is_store(Path(current, name))
        )
        for name in sorted(files):
            _checkpoint()
            file = Path(current, name)
            if not file.is_symlink():
                yield file


def _glob_matches(relative: str, glob: str) -> bool:
    if "/" not in glob:
        return fnmatch.fnmatchcase(relative.rsplit("/", 1)[-1], glob)
    # fnmatch's `*` already crosses '/', so `**/` only needs to also match zero folders.
    return any(fnmatch.fnmatchcase(relative, g) for g in {glob, glob.replace("**/", "")})


def _searchable_lines(file: Path) -> Iterator[tuple[int, str]]:
    try:
        if file.stat().st_size > MAX_SEARCH_FILE_BYTES:
            return
        data = file.read_bytes()
    except OSError:
        return  # unreadable or gone since the walk: nothing to search
    if _is_binary(data[:_SNIFF_BYTES]):
        return
    yield from enumerate(data.decode("utf-8", errors="replace").splitlines(), start=1)


def _clip(line: str) -> str:
    line = line.strip()
    return line if len(line) <= MAX_MATCH_CHARS else line[: MAX_MATCH_CHARS - 1] + "…"


def file_tools() -> tuple[Tool, ...]:
    """The built-in read-only file tools: read_file, list_dir, search_text."""
    return (read_file, list_dir, search_text)
