"""Planning a patch against a virtual view of the workspace, so nothing is written until every
operation is known to succeed. Later operations see the results of earlier ones."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from orchestrator.errors import PatchError

from .patch_commit import Change, Snapshot, snapshot
from .workspace import MAX_TEXT_BYTES, is_text, resolve_in_workspace, workspace_root


@dataclass(frozen=True, slots=True, kw_only=True)
class PatchReport:
    """What an applied patch changed, with paths as the model wrote them."""

    added: tuple[str, ...] = ()
    modified: tuple[str, ...] = ()
    """Updated files, and the destinations of moves."""
    deleted: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    """What the model may not expect: overwritten files, moves, moves onto the same file."""
    replay: Literal["already_applied", "completed"] | None = None
    """Set when an earlier attempt of the same task had journaled this patch: it was already
    applied (nothing was written), or it was interrupted and this call wrote the rest."""

    @property
    def summary(self) -> str:
        """Codex's success text (`A`/`M`/`D` lines), then the notes."""
        lines = ["Success. Updated the following files:"]
        lines += [f"A {path}" for path in self.added]
        lines += [f"M {path}" for path in self.modified]
        lines += [f"D {path}" for path in self.deleted]
        lines += [f"Note: {note}" for note in self.notes]
        return "\n".join(lines)


class Planner:
    """Resolves paths, reads originals once, and records every file's final content in memory."""

    __slots__ = ("_after", "_before", "_dirs", "_max_bytes", "_report", "_shown", "root")

    def __init__(self, root: Path, *, max_file_bytes: int = MAX_TEXT_BYTES) -> None:
        self.root = workspace_root(root)
        self._max_bytes = max_file_bytes
        self._before: dict[Path, Snapshot | None] = {}
        self._after: dict[Path, bytes | None] = {}
        self._shown: dict[Path, str] = {}
        self._dirs: set[Path] = set()
        self._report: dict[str, list[str]] = {"A": [], "M": [], "D": [], "notes": []}

    def add(self, path: str, contents: str) -> None:
        """Plan a new file; an existing text file is overwritten (Codex), and the report says so."""
        target = resolve_in_workspace(self.root, path, for_write=True)
        self._check_parents(target, path)
        if self._exists(target, path, action="overwrite"):
            self._note(f"Add File {path} overwrote an existing file.")
        self._set(target, path, contents)
        self._list("A", path)

    def delete(self, path: str) -> None:
        """Plan removing an existing file (not a folder)."""
        target = resolve_in_workspace(self.root, path, for_write=True)
        if not self._exists(target, path, action="delete", binary_ok=True):
            raise PatchError(f"Failed to delete file {path}: no such file", path=path)
        self._remove(target, path)
        self._list("D", path)

    def update(self, path: str, edit: Callable[[str], str], *, move_to: str | None = None) -> None:
        """Plan rewriting an existing text file with `edit`, optionally moving it."""
        source = resolve_in_workspace(self.root, path, for_write=True)
        new_text = edit(self._text(source, path))
        if move_to is None:
            self._set(source, path, new_text)
            self._list("M", path)
            return
        dest = resolve_in_workspace(self.root, move_to, for_write=True)
        if self._same_file(source, dest):
            # Codex would write the destination, then delete the source: the file would be lost.
            self._set(source, path, new_text)
            self._list("M", path)
            self._note(f"Move to {move_to} names the same file as {path}: updated in place.")
            return
        self._check_parents(dest, move_to)
        if self._exists(dest, move_to, action="overwrite"):
            self._note(f"Move to {move_to} overwrote an existing file.")
        self._set(dest, move_to, new_text)
        self._remove(source, path)
        self._list("M", move_to)
        self._note(f"{path} was moved to {move_to}.")

    def changes(self) -> list[Change]:
        """The writes and removals that turn the disk into the planned state."""
        changes: list[Change] = []
        for target, data in self._after.items():
            before = self._before.get(target)
            if data is None and before is None:
                continue  # created and removed within this patch
            if before is not None and data == before.data:
                continue  # nothing to write; the file keeps its timestamps
            changes.append(
                Change(target=target, shown=self._shown[target], data=data, before=before)
            )
        return changes

    def report(self) -> PatchReport:
        """The report of everything planned so far."""
        return PatchReport(
            added=tuple(self._report["A"]),
            modified=tuple(self._report["M"]),
            deleted=tuple(self._report["D"]),
            notes=tuple(self._report["notes"]),
        )

    def _list(self, kind: str, path: str) -> None:
        if path not in self._report[kind]:
            self._report[kind].append(path)

    def _note(self, note: str) -> None:
        self._report["notes"].append(note)

    def _set(self, target: Path, shown: str, text: str) -> None:
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise PatchError(
                f"{shown}: the new content holds characters that are not valid Unicode "
                f"(e.g. a lone surrogate at index {exc.start}); nothing was written",
                path=shown,
            ) from exc
        self._after[target] = data
        self._shown.setdefault(target, shown)
        self._dirs.update(self._parents(target))

    def _remove(self, target: Path, shown: str) -> None:
        self._after[target] = None
        self._shown.setdefault(target, shown)

    def _text(self, source: Path, path: str) -> str:
        """The current text of a file to update: planned content first, then the disk."""
        if source in self._after:
            data = self._after[source]
            if data is None:
                raise PatchError(
                    f"Failed to read file to update {path}: it is deleted earlier in this patch",
                    path=path,
                )
            return data.decode("utf-8")
        if not self._exists(source, path, action="update"):
            raise PatchError(
                f"Failed to read file to update {path}: no such file. "
                "Use '*** Add File:' to create a file.",
                path=path,
            )
        before = self._before[source]
        assert before is not None
        return before.data.decode("utf-8")

    def _exists(self, target: Path, shown: str, *, action: str, binary_ok: bool = False) -> bool:
        """Whether a file is at `target` (as planned so far); refuse anything but a text file."""
        if target in self._after:
            return self._after[target] is not None
        if target in self._dirs:
            raise PatchError(
                f"Cannot {action} {shown}: this patch creates it as a folder", path=shown
            )
        before = self._load(target, shown, action=action)
        if before is not None and not binary_ok and not is_text(before.data):
            raise PatchError(
                f"Cannot {action} {shown}: it is not a UTF-8 text file (binary or another "
                "encoding); apply_patch does not rewrite such files",
                path=shown,
            )
        return before is not None

    def _load(self, target: Path, shown: str, *, action: str) -> Snapshot | None:
        """Read a target's original (for the update, the rollback and the race check).

        Once per target: every caller plans the target right after (or fails the patch), and
        `_exists` consults the plan before the disk.
        """
        try:
            info = os.lstat(target)
            if stat.S_ISDIR(info.st_mode):
                raise PatchError(f"Cannot {action} {shown}: it is a directory", path=shown)
            if not stat.S_ISREG(info.st_mode):
                raise PatchError(f"Cannot {action} {shown}: not a regular file", path=shown)
            if info.st_size > self._max_bytes:
                raise PatchError(
                    f"Cannot {action} {shown}: it is larger than {self._max_bytes} bytes",
                    path=shown,
                )
            before = snapshot(target)
        except (FileNotFoundError, NotADirectoryError):
            before = None
        except OSError as exc:
            raise PatchError(f"Cannot {action} {shown}: {exc.strerror or exc}", path=shown) from exc
        self._before[target] = before
        return before

    def _same_file(self, source: Path, dest: Path) -> bool:
        """Whether two paths name one file (equal, or one inode on a case-insensitive disk)."""
        if source == dest:
            return True
        try:
            return os.path.samestat(os.stat(source), os.stat(dest))
        except OSError:
            return False

    def _parents(self, target: Path) -> list[Path]:
        parents: list[Path] = []
        folder = target.parent
        while folder != self.root and folder.is_relative_to(self.root):
            parents.append(folder)
            folder = folder.parent
        return parents

    def _check_parents(self, target: Path, shown: str) -> None:
        """Refuse a file whose folder is a file, on disk or earlier in this patch."""
        for folder in self._parents(target):
            planned_file = self._after.get(folder) is not None
            if planned_file or (folder.exists() and not folder.is_dir()):
                where = folder.relative_to(self.root).as_posix()
                raise PatchError(
                    f"Cannot write {shown}: {where} is a file, not a folder", path=shown
                )
