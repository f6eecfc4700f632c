"""Per-task copies of a workspace for writing tasks, merged back three-way on accept.

A private bare git store per run (`<store>/git`) snapshots the main tree and backs every copy, so
any folder works, and a user's own repository (its .git, index, branches, HEAD) is never touched.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio

from .errors import WorkspaceError
from .settings import process_environment, secret_variables

_GIT_CONFIG = (
    *("-c", "user.name=orchestrator", "-c", "user.email=orchestrator@localhost"),
    *("-c", "core.autocrlf=false", "-c", "core.safecrlf=false", "-c", "core.fsmonitor=false"),
    *("-c", "core.hooksPath=/dev/null", "-c", "gc.auto=0", "-c", "advice.addEmbeddedRepo=false"),
    *("-c", "merge.directoryRenames=false"),
)
"""Every git call: an identity (commits work without a git config), no hooks, never a gc, and
no directory-rename guessing in merges (it would move files main added)."""

_ATTRIBUTES = "* -text -filter -ident -working-tree-encoding merge=text\n"
"""`info/attributes` beats the workspace's .gitattributes: bytes are copied as they are (no EOL
conversion, no LFS or other filters), and merges use git's own text merge."""

_FIXED_DATE = "@1 +0000"
"""Commit dates are fixed, so the same tree on the same parent is the same commit id."""

_GITLINK = "160000"
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Conflict:
    """A path both sides changed incompatibly; the main tree keeps its version."""

    path: str
    """Relative to the workspace root, `/`-separated."""
    base: str | None
    """The text at the copy's base (None: absent)."""
    ours: str | None
    """The text in the main tree now."""
    theirs: str | None
    """The text in the task's copy."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MergeOutcome:
    """What merging one task's commit did to the main tree."""

    commit: str
    """The task's commit that was merged."""
    merged: tuple[str, ...]
    """Paths changed in the main tree by this merge (the clean parts, deletions included)."""
    conflicts: tuple[Conflict, ...]
    """Paths not applied because both sides changed them incompatibly."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Copy:
    path: Path
    admin: Path  # the copy's git dir in the store (`<G>/worktrees/<name>`): its index and HEAD
    base: str


@dataclass(frozen=True, slots=True, kw_only=True)
class _Change:
    path: str
    is_deletion: bool


class Workspaces:
    """Per-task copies of `main` kept in a private git store at `<store>/git`.

    Snapshots take what `git add -A` takes: files the workspace's own .gitignore files ignore
    (a .venv, build output) are not copied, nor are empty directories, `.git`, `.orchestrator/`,
    the store and the `hidden` paths. Nested repositories (submodules) stay out of merges.
    A copy holds a `.git` file pointing into the store, so git run inside a copy never finds
    the user's repository.

    Writing a copy's every file costs far more than a task's own edits, so up to `spares` removed
    copies are parked in `<store>/spares` and recycled: reset to the new base (only the files
    that differ are rewritten) and cleaned of everything else, which equals a fresh checkout.
    `spares=0` makes every copy with `git worktree add` and deletes it on `remove`.
    """

    def __init__(
        self, main: Path, store: Path, *, hidden: Sequence[Path] = (), spares: int = 8
    ) -> None:
        self._main = main.resolve()
        self._store = store.resolve()
        self._git_dir = self._store / "git"
        self._main_index = self._git_dir / "main.index"
        self._hidden = (self._store, *(path.resolve() for path in hidden))
        self._env = _git_environment()
        self._lock = anyio.Lock()  # the main tree and its index: snapshots and merges
        self._metadata = anyio.Lock()  # `worktree add` reads every copy's git dir: none may change
        self._is_ready = False
        self._copies: dict[str, _Copy] = {}
        self._spares: list[_Copy] = []
        self._max_spares = spares
        self._commits: dict[tuple[str, str | None, str], str] = {}  # commit-tree is deterministic
        self._made: dict[str, tuple[str, str | None]] = {}  # commit → (tree, parent), for merge

    async def isolate(self, task_id: str) -> Path:
        """A fresh copy of the main tree as it is now, for one attempt of a writing task.

        It is at `<store>/tasks/<task_id>`; an older copy of the same task is discarded first.
        """
        path = self._store / "tasks" / _dirname(task_id)
        await self.remove(task_id)
        async with self._lock:
            await self._ensure_store()
            _, base = await self._snapshot()
        admin = await self._recycle(path, base)
        if admin is None:
            async with self._metadata:
                add = ("worktree", "add", "--detach", "--no-checkout", "--quiet", str(path), base)
                await self._git(*add)
                admin = await anyio.to_thread.run_sync(_admin_dir, path)
            checkout = ("checkout", "--detach", "--force", "--quiet", base)
            await self._git(*checkout, git_dir=admin, work_tree=path)
        self._copies[task_id] = _Copy(path=path, admin=admin, base=base)
        return path

    def base_of(self, task_id: str) -> str | None:
        """The commit the task's current copy was made from, if it has one."""
        copy = self._copies.get(task_id)
        return copy.base if copy else None

    async def commit(self, task_id: str) -> str:
        """Commit the copy as it is now (parent: its base); the same content gives the same id."""
        copy = self._copies.get(task_id)
        if copy is None:
            raise WorkspaceError(
                f"no copy for task {task_id!r}", command=(), stderr="isolate it first"
            )
        tree = await self._write_tree(work_tree=copy.path, git_dir=copy.admin)
        return await self._commit_tree(tree, parent=copy.base, message=f"task {task_id}")

    async def merge(self, task_id: str, commit: str, *, base: str) -> MergeOutcome:
        """Three-way merge of `commit` (made from `base`) into the main tree.

        Clean changes are written to the main tree; paths both sides changed incompatibly are left
        as they are in main and reported. Merging a commit main already holds changes nothing.
        """
        async with self._lock:
            await self._ensure_store()
            ours = await self._write_tree(work_tree=self._main, index=self._main_index)
            theirs, base_tree, base, parents = await self._trees(commit, base)
            if theirs in (base_tree, ours):
                return MergeOutcome(commit=commit, merged=(), conflicts=())
            if ours == base_tree:  # main has not moved since the copy was made
                changes = await self._diff(ours, theirs)
                result, conflicted = theirs, frozenset[str]()
            else:
                head = commit
                if parents != (base,):
                    head = await self._commit_tree(theirs, parent=base, message=f"task {task_id}")
                result, conflicted = await self._merge_tree(ours, head, base=base)
                # Only paths the task changed, and none at, under or above a conflict: a merge
                # never moves main's own files (renames) nor writes around a conflict.
                touched = {c.path for c in await self._diff(base_tree, theirs)}
                changes = [
                    c
                    for c in await self._diff(ours, result)
                    if c.path in touched and not _overlaps(c.path, conflicted)
                ]
            await self._apply(result, changes)
            conflicts = await self._conflicts(sorted(conflicted), base_tree, ours, theirs)
        return MergeOutcome(
            commit=commit, merged=tuple(c.path for c in changes), conflicts=conflicts
        )

    async def remove(self, task_id: str) -> None:
        """Remove the task's copy: park it as a spare, or delete it and its worktree metadata."""
        path = self._store / "tasks" / _dirname(task_id)
        copy = self._copies.pop(task_id, None)
        async with self._metadata:
            if copy is not None and len(self._spares) < self._max_spares:
                spare = self._store / "spares" / copy.admin.name
                if await anyio.to_thread.run_sync(_park, copy.path, spare, copy.admin):
                    self._spares.append(_Copy(path=spare, admin=copy.admin, base=copy.base))
                    return
            await anyio.to_thread.run_sync(_discard, path, self._git_dir)

    async def close(self) -> None:
        """Remove every copy left in the store."""
        async with self._lock:
            self._copies.clear()
            self._spares.clear()
            await Workspaces.gc(self._store)

    @staticmethod
    async def gc(store: Path) -> int:
        """Remove the copies and worktree metadata a crashed run left in `store`; the count."""
        git_dir = store / "git"
        removed = await anyio.to_thread.run_sync(_remove_copies, store, git_dir)
        if await anyio.Path(git_dir / "HEAD").is_file():
            await _run_git(git_dir, ("worktree", "prune"), env=_git_environment())
        return removed

    async def _ensure_store(self) -> None:
        if not self._is_ready:
            if not await anyio.Path(self._git_dir / "HEAD").is_file():
                await _run_git(
                    None,
                    ("init", "--bare", "--quiet", "--template=", str(self._git_dir)),
                    env=self._env,
                )
            excluded = _excluded(self._main, self._hidden)
            await anyio.to_thread.run_sync(_write_info, self._git_dir, excluded)
            self._is_ready = True

    async def _recycle(self, path: Path, base: str) -> Path | None:
        """Turn a spare into a fresh copy of `base` at `path`: its git dir, or None (no spare)."""
        while self._spares:
            spare = self._spares.pop()
            try:
                async with self._metadata:
                    await anyio.to_thread.run_sync(_move, spare.path, path, spare.admin)
                reset = ("checkout", "--detach", "--force", "--quiet", base)
                await self._git(*reset, git_dir=spare.admin, work_tree=path)
                # Untracked and ignored files too, nested repositories included.
                await self._git("clean", "-ffdxq", git_dir=spare.admin, work_tree=path)
            except (WorkspaceError, OSError):  # a task left something git cannot reset: drop it
                async with self._metadata:
                    await anyio.to_thread.run_sync(_discard, spare.path, self._git_dir)
                    await anyio.to_thread.run_sync(_discard, path, self._git_dir)
                continue
            return spare.admin
        return None

    async def _snapshot(self) -> tuple[str, str]:
        """(tree, commit) of the main tree now; the private index keeps git's stat cache warm."""
        tree = await self._write_tree(work_tree=self._main, index=self._main_index)
        return tree, await self._commit_tree(tree, parent=None, message="main")

    async def _write_tree(
        self, *, work_tree: Path, git_dir: Path | None = None, index: Path | None = None
    ) -> str:
        await self._git("add", "--all", git_dir=git_dir, work_tree=work_tree, index=index)
        out = await self._git("write-tree", git_dir=git_dir, work_tree=work_tree, index=index)
        return out.decode().strip()

    async def _commit_tree(self, tree: str, *, parent: str | None, message: str) -> str:
        key = (tree, parent, message)
        if key not in self._commits:
            parents = ("-p", parent) if parent else ()
            commit = (
                (await self._git("commit-tree", tree, *parents, "-m", message)).decode().strip()
            )
            self._commits[key] = commit
            self._made[commit] = (tree, parent)
        return self._commits[key]

    async def _trees(self, commit: str, base: str) -> tuple[str, str, str, tuple[str, ...]]:
        """The trees of `commit` and `base`, `base` in full, and the parents of `commit`."""
        if commit in self._made and base in self._made:  # both made here: no need to ask git
            (tree, parent), (base_tree, _) = self._made[commit], self._made[base]
            return tree, base_tree, base, (parent,) if parent else ()
        revs = (f"{commit}^{{tree}}", f"{base}^{{tree}}", f"{base}^{{commit}}", f"{commit}^@")
        tree, base_tree, base, *parents = _decode(await self._git("rev-parse", *revs)).split()
        return tree, base_tree, base, tuple(parents)

    async def _merge_tree(
        self, ours_tree: str, theirs: str, *, base: str
    ) -> tuple[str, frozenset[str]]:
        """The merged tree and the conflicted paths (as they are in main and in the task)."""
        # git 2.39 has no `merge-tree --merge-base`: ours becomes a child of `base` so that the
        # merge base of the two commits is exactly `base`.
        ours = await self._commit_tree(ours_tree, parent=base, message="main")
        args = ("merge-tree", "--write-tree", "--name-only", "--no-messages", "-z", ours, theirs)
        out = await self._git(*args, codes=(0, 1))
        tree, *paths = _decode(out).split("\0")
        # A file/directory conflict puts the file aside at `<path>~<commit>`: report `<path>`.
        aside = re.compile(rf"~(?:{ours}|{theirs})(?:_\d+)?$")
        return tree.strip(), frozenset(aside.sub("", path) for path in paths if path)

    async def _diff(self, old: str, new: str) -> list[_Change]:
        out = await self._git("diff-tree", "-r", "-z", "--no-renames", "--raw", old, new)
        fields = _decode(out).split("\0")
        changes: list[_Change] = []
        for meta, path in zip(fields[0::2], fields[1::2], strict=False):
            old_mode, new_mode = meta.lstrip(":").split(" ")[:2]
            if _GITLINK not in (old_mode, new_mode):  # nested repositories are not ours to write
                changes.append(_Change(path=path, is_deletion=new_mode == "000000"))
        return changes

    async def _apply(self, tree: str, changes: Sequence[_Change]) -> None:
        # Deletions first, so a file can replace a directory and the reverse.
        deleted = [c.path for c in changes if c.is_deletion]
        await anyio.to_thread.run_sync(_delete, self._main, deleted)
        written = [c.path for c in changes if not c.is_deletion]
        if written:
            spec = "\0".join(written).encode(errors="surrogateescape")
            args = ("checkout", tree, "--pathspec-from-file=-", "--pathspec-file-nul")
            await self._git(*args, work_tree=self._main, index=self._main_index, stdin=spec)

    async def _conflicts(
        self, paths: Sequence[str], base: str, ours: str, theirs: str
    ) -> tuple[Conflict, ...]:
        if not paths:
            return ()
        in_base, in_ours, in_theirs = [
            await self._blobs(tree, paths) for tree in (base, ours, theirs)
        ]
        texts = await self._texts({*in_base.values(), *in_ours.values(), *in_theirs.values()})

        def text(blobs: dict[str, str], path: str) -> str | None:
            return texts[blobs[path]] if path in blobs else None

        return tuple(
            Conflict(
                path=path,
                base=text(in_base, path),
                ours=text(in_ours, path),
                theirs=text(in_theirs, path),
            )
            for path in paths
        )

    async def _blobs(self, tree: str, paths: Sequence[str]) -> dict[str, str]:
        """path → blob id in `tree`, for those of `paths` that are files there."""
        out = await self._git("ls-tree", "-r", "-z", "--full-tree", tree, "--", *paths)
        wanted = set(paths)
        blobs: dict[str, str] = {}
        for record in filter(None, _decode(out).split("\0")):
            meta, path = record.split("\t", 1)
            _, kind, oid = meta.split(" ")
            if kind == "blob" and path in wanted:
                blobs[path] = oid
        return blobs

    async def _texts(self, oids: Iterable[str]) -> dict[str, str]:
        ordered = sorted(oids)
        if not ordered:
            return {}
        out = await self._git(
            "cat-file", "--batch", stdin="".join(f"{o}\n" for o in ordered).encode()
        )
        texts: dict[str, str] = {}
        at = 0
        for oid in ordered:
            header_end = out.index(b"\n", at)
            size = int(out[at:header_end].split()[2])
            texts[oid] = out[header_end + 1 : header_end + 1 + size].decode(errors="replace")
            at = header_end + 1 + size + 1
        return texts

    async def _git(
        self,
        *args: str,
        git_dir: Path | None = None,
        work_tree: Path | None = None,
        index: Path | None = None,
        stdin: bytes | None = None,
        codes: tuple[int, ...] = (0,),
    ) -> bytes:
        env = self._env if index is None else {**self._env, "GIT_INDEX_FILE": str(index)}
        where = (f"--git-dir={git_dir or self._git_dir}",)
        if work_tree is not None:
            where = (*where, f"--work-tree={work_tree}")
        cwd = work_tree or self._git_dir
        return await _run_git(cwd, (*where, *args), env=env, stdin=stdin, codes=codes)


async def _run_git(
    cwd: Path | None,
    args: Sequence[str],
    *,
    env: dict[str, str],
    stdin: bytes | None = None,
    codes: tuple[int, ...] = (0,),
) -> bytes:
    command = ("git", *_GIT_CONFIG, *args)
    done = await anyio.run_process(command, input=stdin, cwd=cwd, env=env, check=False)
    if done.returncode not in codes:
        raise WorkspaceError(
            f"git {args[-1] if args else ''} failed",
            command=args,
            stderr=done.stderr.decode(errors="replace"),
        )
    return done.stdout


def _overlaps(path: str, conflicted: Iterable[str]) -> bool:
    """Whether `path` is a conflicted path, or lies under or above one."""
    return any(
        path == c or path.startswith(f"{c}/") or c.startswith(f"{path}/") for c in conflicted
    )


def _decode(out: bytes) -> str:
    """git's output, paths included, as `Path` decodes file names (undecodable bytes survive)."""
    return out.decode(errors="surrogateescape")


def _git_environment() -> dict[str, str]:
    """The parent's environment minus GIT_* (no GIT_DIR leaks in), credentials and user config."""
    env = process_environment()
    secret = secret_variables(env)
    kept = {k: v for k, v in env.items() if not k.startswith("GIT_") and k not in secret}
    return kept | {
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_LITERAL_PATHSPECS": "1",
        "GIT_AUTHOR_DATE": _FIXED_DATE,
        "GIT_COMMITTER_DATE": _FIXED_DATE,
        "LC_ALL": "C",
    }


def _dirname(task_id: str) -> str:
    """The task id when it is a safe directory name, else a slug of it plus a hash."""
    if _SAFE_NAME.fullmatch(task_id):
        return task_id
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", task_id).strip("-.")[:40] or "task"
    return f"{slug}-{hashlib.sha256(task_id.encode()).hexdigest()[:12]}"


def _excluded(main: Path, hidden: Iterable[Path]) -> list[str]:
    """`info/exclude` patterns: `.orchestrator/` and every hidden path inside `main`."""
    patterns = ["/.git", "/.orchestrator/"]
    for path in hidden:
        if path != main and path.is_relative_to(main):
            rel = path.relative_to(main).as_posix()
            patterns.append("/" + re.sub(r"([\\*?\[!# ])", r"\\\1", rel))
    return patterns


def _write_info(git_dir: Path, excluded: Sequence[str]) -> None:
    info = git_dir / "info"
    info.mkdir(exist_ok=True)
    (info / "exclude").write_text("".join(f"{p}\n" for p in excluded))
    (info / "attributes").write_text(_ATTRIBUTES)


def _admin_dir(copy: Path) -> Path:
    """The copy's git dir in the store, from the `.git` file `git worktree add` wrote."""
    pointer = (copy / ".git").read_text().strip()
    return (copy / pointer.removeprefix("gitdir:").strip()).resolve()


def _discard(copy: Path, git_dir: Path) -> None:
    """Remove a copy and its worktree metadata (found through its `.git` file), if they exist."""
    pointer = copy / ".git"
    if pointer.is_file() and not pointer.is_symlink():
        admin = _admin_dir(copy)
        if admin.parent == git_dir.resolve() / "worktrees":  # never follow a pointer a task rewrote
            shutil.rmtree(admin, ignore_errors=True)
    if copy.is_dir() and not copy.is_symlink():
        shutil.rmtree(copy)


def _park(copy: Path, spare: Path, admin: Path) -> bool:
    """Move a copy aside for reuse, unless a task broke its link to the store."""
    pointer = copy / ".git"
    if not pointer.is_file() or pointer.is_symlink() or _admin_dir(copy) != admin:
        return False
    _move(copy, spare, admin)
    return True


def _move(copy: Path, to: Path, admin: Path) -> None:
    """Rename a copy, and tell its worktree metadata where it went (as `git worktree move`)."""
    to.parent.mkdir(parents=True, exist_ok=True)
    copy.rename(to)
    (admin / "gitdir").write_text(f"{to / '.git'}\n")


def _remove_copies(store: Path, git_dir: Path) -> int:
    copies = [c for d in ("tasks", "spares") if (store / d).is_dir() for c in (store / d).iterdir()]
    for copy in copies:
        _discard(copy, git_dir)
    (git_dir / "main.index.lock").unlink(missing_ok=True)  # left by a run killed mid-snapshot
    return len(copies)


def _delete(root: Path, paths: Sequence[str]) -> None:
    """Unlink files (or symlinks) under `root`, then the directories that became empty."""
    for rel in paths:
        target = root / rel
        if target.is_symlink() or target.is_file():
            target.unlink()
        parent = target.parent
        while parent != root and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
