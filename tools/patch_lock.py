"""The per-workspace lock apply_patch holds from reading its files to replacing them, so that two
patches (from two threads or two processes) never both write over the state they read."""

from __future__ import annotations

import fcntl
import hashlib
import os
import stat
import tempfile
import threading
import time
import weakref
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path

from orchestrator.errors import PatchError

LOCK_TIMEOUT_S = 60.0
"""How long a patch waits for another one on the same workspace before it gives up."""

# flock excludes by open file description, and is emulated with per-process fcntl locks on some
# file systems (NFS), where threads of one process would not exclude each other: threads of one
# process therefore first queue on a process-local lock per workspace. This registry is the one
# piece of module state; its values are dropped once no patch holds them.
_registry_guard = threading.Lock()
_local_locks: weakref.WeakValueDictionary[str, threading.Lock] = weakref.WeakValueDictionary()


def lock_path(root: Path) -> Path:
    """The lock file of a workspace: outside it (tools must not see it), keyed by its real path."""
    key = hashlib.sha256(os.fsencode(os.path.realpath(root))).hexdigest()
    return _lock_dir() / f"{key}.lock"


@contextmanager
def workspace_lock(root: Path, *, timeout_s: float = LOCK_TIMEOUT_S) -> Generator[None]:
    """Hold the workspace's patch lock: one holder at a time across threads and processes.

    Raises:
        PatchError: The lock is still held by someone else after `timeout_s`, or its file
            cannot be used; nothing was written.
    """
    path = lock_path(root)
    local = _local_lock(path.name)
    deadline = time.monotonic() + timeout_s
    if not local.acquire(timeout=timeout_s):
        raise _busy(timeout_s)
    try:
        fd = _lock_file(path, deadline, timeout_s)
        try:
            yield
        finally:
            # Removed while still held, so lock files do not pile up (one per workspace copy);
            # a waiter locked on this inode sees it is no longer the path's and opens afresh.
            path.unlink(missing_ok=True)
            os.close(fd)
    finally:
        local.release()


def _local_lock(key: str) -> threading.Lock:
    with _registry_guard:
        lock = _local_locks.get(key)
        if lock is None:
            lock = threading.Lock()
            _local_locks[key] = lock
        return lock


def _lock_dir() -> Path:
    """A folder only this user can write to, so no one else can plant or hold our lock files."""
    folder = Path(tempfile.gettempdir()) / f"orchestrator-locks-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        info = os.lstat(folder)
    except OSError as exc:
        raise PatchError(
            f"Cannot create the patch lock folder {folder}: {exc.strerror or exc}"
        ) from exc
    unsafe = info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if not stat.S_ISDIR(info.st_mode) or unsafe:
        raise PatchError(
            f"The patch lock folder {folder} is not a private folder of this user; nothing was "
            "written. Remove it so it can be recreated."
        )
    return folder


def _open(path: Path) -> int:
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    try:
        return os.open(path, flags, 0o600)
    except OSError as exc:
        raise PatchError(f"Cannot open the patch lock {path}: {exc.strerror or exc}") from exc


def _lock_file(path: Path, deadline: float, timeout_s: float) -> int:
    """Open and lock the lock file, again if its holder removed it while this one waited."""
    while True:
        fd = _open(path)
        try:
            _flock(fd, deadline, timeout_s)
            if _is_current(fd, path):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _is_current(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.lstat(path))
    except FileNotFoundError:
        return False


def _flock(fd: int, deadline: float, timeout_s: float) -> None:
    """Take the exclusive lock, polling so a stuck holder costs an error, not a hung thread."""
    delay = 0.001
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise _busy(timeout_s) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.05)


def _busy(timeout_s: float) -> PatchError:
    return PatchError(
        f"Another patch on this workspace has held its lock for over {timeout_s:g} s; nothing "
        "was written. Retry the patch."
    )
