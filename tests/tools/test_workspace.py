"""Path confinement: every way a model-supplied path could lead outside the workspace is refused.

Decision recorded here: `.git` is matched case-insensitively and with trailing dots/spaces
stripped (`.GIT`, `.git.`), because case-insensitive filesystems map those onto the real `.git`.
Reads under `.git` stay allowed; only writes are refused.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.errors import ConfigError, PathEscapeError
from orchestrator.tools.workspace import (
    is_text,
    is_text_file,
    resolve_in_workspace,
    workspace_root,
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    workspace = tmp_path / "ws"
    (workspace / "src").mkdir(parents=True)
    (workspace / "src" / "a.py").write_text("print(1)\n")
    return workspace


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("secret\n")
    return folder


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("src/a.py", "src/a.py"),
        ("./src/a.py", "src/a.py"),
        ("src//a.py", "src/a.py"),
        ("src/./a.py", "src/a.py"),
        ("new/dir/file.txt", "new/dir/file.txt"),
        (".gitignore", ".gitignore"),
        ("dir.git/x", "dir.git/x"),
    ],
    ids=[
        "plain",
        "dot-prefix",
        "double-slash",
        "dot-component",
        "missing-parents",
        "gitignore",
        "git-suffix",
    ],
)
def test_resolve_in_workspace_accepts_relative_paths(root: Path, path: str, expected: str) -> None:
    resolved = resolve_in_workspace(root, path, for_write=True)
    assert resolved == root.resolve() / expected


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("", "empty path"),
        ("   ", "empty path"),
        ("../x", "'..'"),
        ("a/../../x", "'..'"),
        ("src/../a.py", "'..'"),
        ("./../x", "'..'"),
        ("..", "'..'"),
        ("/etc/passwd", "absolute path"),
        ("//etc/passwd", "absolute path"),
        ("C:/Windows/x", "absolute path"),
        ("a\\..\\..\\x", "backslash"),
        ("src\\a.py", "backslash"),
        ("a\x00b", "NUL byte"),
        ("a\nb", "control character"),
        ("~/x", "home-relative"),
    ],
    ids=[
        "empty",
        "blank",
        "parent",
        "nested-parent",
        "parent-back-inside",
        "dot-parent",
        "bare-parent",
        "absolute",
        "double-slash-absolute",
        "drive-letter",
        "backslash-traversal",
        "backslash",
        "nul",
        "newline",
        "home",
    ],
)
@pytest.mark.parametrize("for_write", [False, True], ids=["read", "write"])
def test_resolve_in_workspace_refuses_malformed_paths(
    root: Path, path: str, reason: str, for_write: bool
) -> None:
    with pytest.raises(PathEscapeError, match=reason) as caught:
        resolve_in_workspace(root, path, for_write=for_write)
    assert caught.value.path == path


def test_resolve_in_workspace_refuses_absolute_path_inside_root(root: Path) -> None:
    """Even an absolute path that names a file inside the root is refused, to keep one rule."""
    with pytest.raises(PathEscapeError, match="relative to the workspace root"):
        resolve_in_workspace(root, str(root / "src" / "a.py"))


@pytest.mark.parametrize(
    "path",
    [".git/config", "sub/.git/HEAD", ".GIT/config", ".Git/hooks/pre-commit", ".git./x", ".git"],
)
def test_resolve_in_workspace_refuses_writes_into_git(root: Path, path: str) -> None:
    with pytest.raises(PathEscapeError, match=r"\.git"):
        resolve_in_workspace(root, path, for_write=True)


def test_resolve_in_workspace_allows_reading_git(root: Path) -> None:
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    assert resolve_in_workspace(root, ".git/HEAD") == root.resolve() / ".git" / "HEAD"


def test_resolve_in_workspace_refuses_symlink_into_git(root: Path) -> None:
    (root / ".git").mkdir()
    (root / "meta").symlink_to(root / ".git")
    with pytest.raises(PathEscapeError, match=r"\.git"):
        resolve_in_workspace(root, "meta/config", for_write=True)


def test_resolve_in_workspace_refuses_the_root_as_write_target(root: Path) -> None:
    assert resolve_in_workspace(root, ".") == root.resolve()
    with pytest.raises(PathEscapeError, match="workspace root itself"):
        resolve_in_workspace(root, ".", for_write=True)
    (root / "self").symlink_to(root)
    with pytest.raises(PathEscapeError):
        resolve_in_workspace(root, "self", for_write=True)


@pytest.mark.parametrize("for_write", [False, True], ids=["read", "write"])
def test_resolve_in_workspace_refuses_file_symlink_outside(
    root: Path, outside: Path, for_write: bool
) -> None:
    (root / "link.txt").symlink_to(outside / "secret.txt")
    with pytest.raises(PathEscapeError, match=r"'link\.txt' is a symbolic link"):
        resolve_in_workspace(root, "link.txt", for_write=for_write)


@pytest.mark.parametrize("for_write", [False, True], ids=["read", "write"])
def test_resolve_in_workspace_refuses_directory_symlink_in_the_middle(
    root: Path, outside: Path, for_write: bool
) -> None:
    (root / "src" / "vendor").symlink_to(outside)
    with pytest.raises(PathEscapeError, match="'src/vendor' is a symbolic link"):
        resolve_in_workspace(root, "src/vendor/secret.txt", for_write=for_write)
    with pytest.raises(PathEscapeError):
        resolve_in_workspace(root, "src/vendor/new/file.txt", for_write=for_write)


def test_resolve_in_workspace_refuses_dangling_symlink_outside(root: Path, outside: Path) -> None:
    """A link to a file that does not exist yet would let a write create it outside."""
    (root / "new.txt").symlink_to(outside / "created-by-model.txt")
    with pytest.raises(PathEscapeError):
        resolve_in_workspace(root, "new.txt", for_write=True)
    assert not (outside / "created-by-model.txt").exists()


def test_resolve_in_workspace_follows_symlinked_folder_inside(root: Path) -> None:
    (root / "alias").symlink_to(root / "src")
    resolved = resolve_in_workspace(root, "alias/a.py", for_write=True)
    assert resolved == root.resolve() / "src" / "a.py"


def test_resolve_in_workspace_refuses_writing_through_a_file_symlink_inside(root: Path) -> None:
    """Writing through a link would hit a file under another name: the model must name it."""
    (root / "alias.py").symlink_to(root / "src" / "a.py")
    assert resolve_in_workspace(root, "alias.py") == root.resolve() / "src" / "a.py"
    with pytest.raises(PathEscapeError, match=r"symbolic link .*'src/a\.py'"):
        resolve_in_workspace(root, "alias.py", for_write=True)


def test_resolve_in_workspace_refuses_writing_a_hard_link(root: Path, outside: Path) -> None:
    os.link(outside / "secret.txt", root / "hard.txt")
    assert resolve_in_workspace(root, "hard.txt") == root.resolve() / "hard.txt"
    with pytest.raises(PathEscapeError, match="hard link"):
        resolve_in_workspace(root, "hard.txt", for_write=True)


def test_resolve_in_workspace_refuses_writing_a_fifo(root: Path) -> None:
    os.mkfifo(root / "pipe")
    with pytest.raises(PathEscapeError, match="not a regular file"):
        resolve_in_workspace(root, "pipe", for_write=True)


@pytest.mark.parametrize("path", ["a", "a/x"])
@pytest.mark.parametrize("for_write", [False, True], ids=["read", "write"])
def test_resolve_in_workspace_refuses_a_symlink_loop(
    root: Path, path: str, for_write: bool
) -> None:
    (root / "a").symlink_to(root / "b")
    (root / "b").symlink_to(root / "a")
    with pytest.raises(PathEscapeError, match="loop"):
        resolve_in_workspace(root, path, for_write=for_write)


def test_workspace_root_must_be_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        workspace_root(tmp_path / "missing")
    with pytest.raises(ConfigError):
        resolve_in_workspace(tmp_path / "missing", "a.txt")


def test_resolve_in_workspace_accepts_a_symlinked_root(tmp_path: Path, root: Path) -> None:
    alias = tmp_path / "alias-root"
    alias.symlink_to(root)
    assert resolve_in_workspace(alias, "src/a.py") == root.resolve() / "src" / "a.py"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"plain\n", True),
        ("caf\u00e9 \u2014 \u2705\n".encode(), True),
        (b"", True),
        (b"\x89PNG\r\n\x1a\n\x00\x00", False),
        ("caf\u00e9".encode("latin-1"), False),
        (b"text with a \x00 NUL", False),
    ],
    ids=["ascii", "utf8", "empty", "png", "latin1", "nul"],
)
def test_is_text(data: bytes, expected: bool) -> None:
    assert is_text(data) is expected


def test_is_text_file(root: Path) -> None:
    (root / "bin").write_bytes(b"\x00\x01")
    assert is_text_file(root / "src" / "a.py")
    assert not is_text_file(root / "bin")
    assert not is_text_file(root / "src")
    assert not is_text_file(root / "missing")
    assert not is_text_file(root / "src" / "a.py", max_bytes=3)
