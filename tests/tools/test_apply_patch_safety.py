"""apply_patch against a wrong or hostile model: confinement, links, binary files, atomicity."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.errors import PatchError, PathEscapeError, ToolError
from orchestrator.tools import patch_commit
from orchestrator.tools.apply_patch import apply_operations, apply_patch
from orchestrator.tools.patch_commit import Change, commit, snapshot


def envelope(*lines: str) -> str:
    return "\n".join(["*** Begin Patch", *lines, "*** End Patch"]) + "\n"


def tree(root: Path) -> dict[str, bytes | str]:
    """Every entry under `root`: file bytes, `dir`, or `-> target` for a symbolic link."""
    entries: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        name = path.relative_to(root).as_posix()
        if path.is_symlink():
            entries[name] = f"-> {os.readlink(path)}"
        elif path.is_dir():
            entries[name] = "dir"
        else:
            entries[name] = path.read_bytes()
    return entries


@pytest.fixture
def root(tmp_path: Path) -> Path:
    workspace = tmp_path / "ws"
    (workspace / "src").mkdir(parents=True)
    (workspace / "src" / "a.py").write_text("def a():\n    return 1\n")
    (workspace / "notes.txt").write_text("one\ntwo\n")
    return workspace


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("secret\n")
    return folder


HOSTILE_PATHS = [
    "../escape.txt",
    "a/../../escape.txt",
    "./../escape.txt",
    "a\\..\\..\\escape.txt",
    "/etc/passwd",
    "/tmp/escape.txt",
    "a\x00b.txt",
    ".git/config",
    ".GIT/config",
    "sub/.git/hooks/pre-commit",
]


def _operations(path: str) -> dict[str, str]:
    return {
        "add": envelope(f"*** Add File: {path}", "+pwned"),
        "update": envelope(f"*** Update File: {path}", "@@", "-x", "+pwned"),
        "delete": envelope(f"*** Delete File: {path}"),
        "move": envelope("*** Update File: notes.txt", f"*** Move to: {path}", "@@", " one"),
    }


@pytest.mark.parametrize("path", HOSTILE_PATHS)
@pytest.mark.parametrize("operation", ["add", "update", "delete", "move"])
def test_apply_patch_refuses_paths_leaving_the_workspace(
    root: Path, outside: Path, path: str, operation: str
) -> None:
    before, outside_before = tree(root), tree(outside.parent)
    with pytest.raises(PathEscapeError) as caught:
        apply_patch(_operations(path)[operation], root)
    assert caught.value.path == path
    assert tree(root) == before
    assert tree(outside.parent) == outside_before


def test_apply_patch_refuses_empty_path_header(root: Path) -> None:
    """`*** Add File: ` with no path is not a header at all (Codex trims it away)."""
    with pytest.raises(PatchError, match="no path"):
        apply_patch(envelope("*** Add File: ", "+x"), root)


def test_apply_patch_refuses_update_through_symlink_to_outside(root: Path, outside: Path) -> None:
    (root / "link.txt").symlink_to(outside / "secret.txt")
    with pytest.raises(PathEscapeError, match="symbolic link"):
        apply_patch(envelope("*** Update File: link.txt", "@@", "-secret", "+pwned"), root)
    assert (outside / "secret.txt").read_text() == "secret\n"


def test_apply_patch_refuses_directory_symlink_in_the_middle(root: Path, outside: Path) -> None:
    (root / "src" / "vendor").symlink_to(outside)
    with pytest.raises(PathEscapeError, match="'src/vendor' is a symbolic link"):
        apply_patch(envelope("*** Add File: src/vendor/new.txt", "+pwned"), root)
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


@pytest.mark.parametrize("target", ["outside", "inside", "dangling"])
def test_apply_patch_refuses_add_onto_a_symlink(root: Path, outside: Path, target: str) -> None:
    destinations = {
        "outside": outside / "secret.txt",
        "inside": root / "notes.txt",
        "dangling": outside / "created.txt",
    }
    (root / "planted.txt").symlink_to(destinations[target])
    before, outside_before = tree(root), tree(outside)
    with pytest.raises(PathEscapeError):
        apply_patch(envelope("*** Add File: planted.txt", "+pwned"), root)
    assert tree(root) == before
    assert tree(outside) == outside_before


def test_apply_patch_refuses_hard_link_to_outside(root: Path, outside: Path) -> None:
    os.link(outside / "secret.txt", root / "hard.txt")
    with pytest.raises(PathEscapeError, match="hard link"):
        apply_patch(envelope("*** Update File: hard.txt", "@@", "-secret", "+pwned"), root)
    with pytest.raises(PathEscapeError, match="hard link"):
        apply_patch(envelope("*** Delete File: hard.txt"), root)
    assert (outside / "secret.txt").read_text() == "secret\n"
    assert (root / "hard.txt").exists()


@pytest.mark.parametrize("destination", ["../moved.txt", "/tmp/moved.txt", ".", "./", "src/.."])
def test_apply_patch_refuses_moves_out_of_or_onto_the_workspace(
    root: Path, destination: str
) -> None:
    before = tree(root)
    with pytest.raises(PathEscapeError):
        apply_patch(
            envelope("*** Update File: notes.txt", f"*** Move to: {destination}", " one"), root
        )
    assert tree(root) == before


@pytest.mark.parametrize("destination", ["notes.txt", "./notes.txt", "alias/../notes.txt"])
def test_apply_patch_move_onto_itself_keeps_the_file(root: Path, destination: str) -> None:
    """Codex would write the destination and then delete the source: the same file."""
    patch = envelope(
        "*** Update File: notes.txt", f"*** Move to: {destination}", "@@", "-one", "+ONE"
    )
    if ".." in destination:
        with pytest.raises(PathEscapeError):
            apply_patch(patch, root)
        assert (root / "notes.txt").read_text() == "one\ntwo\n"
        return
    report = apply_patch(patch, root)
    assert (root / "notes.txt").read_text() == "ONE\ntwo\n"
    assert report.deleted == ()
    assert any("same file" in note for note in report.notes)


def test_apply_patch_move_onto_itself_through_a_symlinked_folder(root: Path) -> None:
    (root / "alias").symlink_to(root / "src")
    report = apply_patch(
        envelope(
            "*** Update File: src/a.py",
            "*** Move to: alias/a.py",
            "@@",
            "-    return 1",
            "+    return 2",
        ),
        root,
    )
    assert (root / "src" / "a.py").read_text() == "def a():\n    return 2\n"
    assert any("same file" in note for note in report.notes)


def test_apply_patch_refuses_updating_a_binary_file(root: Path) -> None:
    data = b"\x89PNG\r\n\x1a\n\x00\x00one\n"
    (root / "image.png").write_bytes(data)
    with pytest.raises(PatchError, match="not a UTF-8 text file"):
        apply_patch(envelope("*** Update File: image.png", "@@", "-one", "+two"), root)
    assert (root / "image.png").read_bytes() == data


def test_apply_patch_refuses_updating_a_non_utf8_file(root: Path) -> None:
    data = "caf\u00e9\n".encode("latin-1")
    (root / "latin.txt").write_bytes(data)
    with pytest.raises(PatchError, match="not a UTF-8 text file") as caught:
        apply_patch(envelope("*** Update File: latin.txt", "@@", "-caf\u00e9", "+tea"), root)
    assert caught.value.path == "latin.txt"
    assert (root / "latin.txt").read_bytes() == data


def test_apply_patch_refuses_overwriting_a_binary_file_by_add_or_move(root: Path) -> None:
    (root / "blob.bin").write_bytes(b"\x00\x01\x02")
    with pytest.raises(PatchError, match="not a UTF-8 text file"):
        apply_patch(envelope("*** Add File: blob.bin", "+text"), root)
    with pytest.raises(PatchError, match="not a UTF-8 text file"):
        apply_patch(envelope("*** Update File: notes.txt", "*** Move to: blob.bin", " one"), root)
    assert (root / "blob.bin").read_bytes() == b"\x00\x01\x02"


def test_apply_patch_may_delete_a_binary_file(root: Path) -> None:
    """Deleting does not rewrite bytes, and the original is kept in memory for a rollback."""
    (root / "blob.bin").write_bytes(b"\x00\x01\x02")
    apply_patch(envelope("*** Delete File: blob.bin"), root)
    assert not (root / "blob.bin").exists()


def test_apply_patch_refuses_files_over_the_size_limit(root: Path) -> None:
    with pytest.raises(PatchError, match="larger than 4 bytes"):
        apply_patch(
            envelope("*** Update File: notes.txt", "@@", "-one", "+1"), root, max_file_bytes=4
        )
    assert (root / "notes.txt").read_text() == "one\ntwo\n"


@pytest.mark.parametrize(
    "patch",
    [
        envelope("*** Delete File: src"),
        envelope("*** Add File: src", "+x"),
        envelope("*** Update File: src", "@@", "-x", "+y"),
    ],
    ids=["delete", "add", "update"],
)
def test_apply_patch_refuses_directories(root: Path, patch: str) -> None:
    before = tree(root)
    with pytest.raises(PatchError, match="is a directory"):
        apply_patch(patch, root)
    assert tree(root) == before


def test_apply_patch_refuses_a_file_where_a_folder_is_needed(root: Path) -> None:
    before = tree(root)
    with pytest.raises(PatchError, match=r"notes\.txt is a file, not a folder"):
        apply_patch(envelope("*** Add File: notes.txt/inner.txt", "+x"), root)
    with pytest.raises(PatchError, match=r"new\.txt is a file, not a folder"):
        apply_patch(
            envelope("*** Add File: new.txt", "+x", "*** Add File: new.txt/inner.txt", "+y"), root
        )
    assert tree(root) == before


def test_apply_patch_errors_are_tool_errors(root: Path) -> None:
    """The Tool adapter and the executor rely on both errors being ToolErrors."""
    with pytest.raises(ToolError):
        apply_patch(envelope("*** Delete File: missing.txt"), root)
    with pytest.raises(ToolError):
        apply_patch(envelope("*** Delete File: ../x"), root)


def test_apply_patch_is_all_or_nothing_across_files(root: Path) -> None:
    """A later file fails: earlier files, the added file and its folders stay as they were."""
    before = tree(root)
    patch = envelope(
        "*** Update File: notes.txt",
        "@@",
        "-one",
        "+ONE",
        "*** Add File: new/deep/file.txt",
        "+created",
        "*** Delete File: src/a.py",
        "*** Update File: src/a.py",
        "@@",
        "-nothing like this",
        "+x",
    )
    with pytest.raises(PatchError, match="deleted earlier in this patch"):
        apply_patch(patch, root)
    assert tree(root) == before


def test_apply_patch_rolls_back_when_a_write_fails_midway(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The third replace fails: replaced files are restored from memory, new ones removed."""
    (root / "src" / "run.sh").write_text("echo hi\n")
    (root / "src" / "run.sh").chmod(0o755)
    before = tree(root)
    real_replace = os.replace
    calls: list[str] = []

    def flaky_replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        calls.append(os.fspath(dst))
        if len(calls) == 3:
            raise OSError(28, "No space left on device", os.fspath(dst))
        real_replace(src, dst)

    patch = envelope(
        "*** Update File: src/run.sh",
        "@@",
        "-echo hi",
        "+echo bye",
        "*** Add File: fresh/dir/new.txt",
        "+new",
        "*** Delete File: notes.txt",
        "*** Update File: src/a.py",
        "@@",
        "-    return 1",
        "+    return 2",
    )
    with monkeypatch.context() as patched:
        patched.setattr(patch_commit.os, "replace", flaky_replace)
        with pytest.raises(PatchError, match=r"No space.*rolled back"):
            apply_patch(patch, root)
    assert tree(root) == before
    assert os.stat(root / "src" / "run.sh").st_mode & 0o777 == 0o755
    assert len(calls) > 3  # the rollback restored through replace as well


def test_apply_patch_leaves_nothing_when_a_temp_write_fails(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = tree(root)

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    patch = envelope(
        "*** Add File: a/b/new.txt", "+x", "*** Update File: notes.txt", "@@", "-one", "+1"
    )
    with monkeypatch.context() as patched:
        patched.setattr(patch_commit.os, "fsync", failing_fsync)
        with pytest.raises(PatchError, match="Input/output error"):
            apply_patch(patch, root)
    assert tree(root) == before


def test_commit_refuses_a_file_changed_since_it_was_read(root: Path) -> None:
    """Another tool wrote the file between planning and writing: nothing is written."""
    target = root / "notes.txt"
    before = snapshot(target)
    target.write_text("changed by someone else, and longer\n")
    change = Change(target=target, shown="notes.txt", data=b"patched\n", before=before)
    with pytest.raises(PatchError, match="changed while the patch was being applied"):
        commit([change], root=root)
    assert target.read_text() == "changed by someone else, and longer\n"


def test_apply_patch_keeps_the_file_mode(root: Path) -> None:
    script = root / "run.sh"
    script.write_text("echo hi\n")
    script.chmod(0o750)
    apply_patch(envelope("*** Update File: run.sh", "@@", "-echo hi", "+echo bye"), root)
    assert script.read_text() == "echo bye\n"
    assert os.stat(script).st_mode & 0o777 == 0o750


def test_apply_patch_leaves_no_temp_files(root: Path) -> None:
    apply_patch(
        envelope("*** Update File: notes.txt", "@@", "-one", "+1", "*** Add File: x/y.txt", "+y"),
        root,
    )
    assert not [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def test_apply_patch_refuses_lone_surrogates(root: Path) -> None:
    with pytest.raises(PatchError, match="lone surrogate"):
        apply_patch(envelope("*** Add File: bad.txt", "+\ud800"), root)
    assert not (root / "bad.txt").exists()


def test_apply_operations_is_all_or_nothing(root: Path) -> None:
    before = tree(root)
    operations = [
        {"type": "create_file", "path": "made.txt", "diff": "+made\n"},
        {"type": "update_file", "path": "notes.txt", "diff": "@@\n-one\n+ONE\n"},
        {"type": "update_file", "path": "src/a.py", "diff": "@@\n-    return 42\n+    return 0\n"},
    ]
    with pytest.raises(PatchError, match=r"src/a.py: Invalid Context") as caught:
        apply_operations(operations, root)
    assert caught.value.path == "src/a.py"
    assert caught.value.hunk == 1
    assert tree(root) == before


@pytest.mark.parametrize("path", ["../x.txt", "/etc/passwd", ".git/config", "a\\..\\..\\x"])
def test_apply_operations_refuses_escaping_paths(root: Path, path: str) -> None:
    before = tree(root)
    for operation in (
        {"type": "create_file", "path": path, "diff": "+x\n"},
        {"type": "update_file", "path": path, "diff": "@@\n-x\n+y\n"},
        {"type": "delete_file", "path": path},
        {"type": "update_file", "path": "notes.txt", "diff": "@@\n one\n", "move_to": path},
    ):
        with pytest.raises(PathEscapeError):
            apply_operations([operation], root)
    assert tree(root) == before
