"""The envelope parser: Codex's grammar, its leniencies, stacked anchors, and error line numbers."""

from __future__ import annotations

import pytest

from orchestrator.errors import PatchError
from orchestrator.tools.patch_parser import (
    AddFile,
    DeleteFile,
    HunkLine,
    UpdateFile,
    parse_patch,
)


def envelope(*lines: str) -> str:
    return "\n".join(["*** Begin Patch", *lines, "*** End Patch"]) + "\n"


def only_update(text: str) -> UpdateFile:
    (operation,) = parse_patch(text).operations
    assert isinstance(operation, UpdateFile)
    return operation


def test_parse_patch_reads_every_operation() -> None:
    patch = parse_patch(
        envelope(
            "*** Add File: new.txt",
            "+hello",
            "+",
            "*** Delete File: old.txt",
            "*** Update File: src/app.py",
            "*** Move to: src/main.py",
            "@@ def main():",
            " a",
            "-b",
            "+c",
            "*** End of File",
        )
    )
    add, delete, update = patch.operations
    assert add == AddFile(path="new.txt", contents="hello\n\n", lineno=2)
    assert delete == DeleteFile(path="old.txt", lineno=5)
    assert isinstance(update, UpdateFile)
    assert (update.path, update.move_to) == ("src/app.py", "src/main.py")
    (chunk,) = update.chunks
    assert chunk.anchors == ("def main():",)
    assert chunk.is_end_of_file
    assert chunk.lines == (
        HunkLine(kind=" ", text="a", lineno=9),
        HunkLine(kind="-", text="b", lineno=10),
        HunkLine(kind="+", text="c", lineno=11),
    )
    assert (chunk.old_lines, chunk.new_lines) == (("a", "b"), ("a", "c"))


def test_parse_patch_accepts_an_empty_add() -> None:
    (add,) = parse_patch(envelope("*** Add File: empty.txt")).operations
    assert add == AddFile(path="empty.txt", contents="", lineno=2)


def test_parse_patch_accepts_stacked_anchors() -> None:
    update = only_update(
        envelope("*** Update File: a.py", "@@ class A:", "@@     def f(self):", "-x", "+y")
    )
    assert update.chunks[0].anchors == ("class A:", "    def f(self):")


def test_parse_patch_reads_a_unified_diff_header_as_a_bare_marker() -> None:
    update = only_update(envelope("*** Update File: a.py", "@@ -3,2 +3,2 @@ def f():", "-x", "+y"))
    assert update.chunks[0].anchors == ("",)


def test_parse_patch_first_chunk_may_omit_the_marker() -> None:
    update = only_update(envelope("*** Update File: a.py", " keep", "-x", "+y", "@@", "-z"))
    assert [chunk.old_lines for chunk in update.chunks] == [("keep", "x"), ("z",)]


def test_parse_patch_empty_line_is_empty_context_and_blank_lines_between_chunks_skip() -> None:
    update = only_update(envelope("*** Update File: a.py", "", "   ", "@@", "-x", "", "  "))
    assert update.chunks[0].lines[1:] == (
        HunkLine(kind=" ", text="", lineno=7),
        HunkLine(kind=" ", text=" ", lineno=8),
    )


@pytest.mark.parametrize(
    "text",
    [
        envelope("*** Add File: a.txt", "+x").replace("\n", "\r\n"),
        "  \n" + envelope("*** Add File: a.txt", "+x") + "\n\n",
        " *** Begin Patch \n*** Add File: a.txt\n+x\n  *** End Patch  ",
        "<<'EOF'\n" + envelope("*** Add File: a.txt", "+x") + "EOF\n",
        '<<"EOF"\n' + envelope("*** Add File: a.txt", "+x") + "EOF",
        "<<EOF\n" + envelope("*** Add File: a.txt", "+x") + "EOF",
        envelope("   *** Add File: a.txt", "+x"),
        envelope("*** Environment ID: env-1", "*** Add File: a.txt", "+x"),
    ],
    ids=[
        "crlf",
        "outer-blank-lines",
        "padded-markers",
        "heredoc",
        "heredoc-double",
        "heredoc-bare",
        "padded-header",
        "environment-id",
    ],
)
def test_parse_patch_leniencies(text: str) -> None:
    (add,) = parse_patch(text).operations
    assert isinstance(add, AddFile)
    assert (add.path, add.contents) == ("a.txt", "x\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "The first line of the patch must be '*** Begin Patch'"),
        (
            "*** Begin Patch\n*** Add File: a\n+x\n",
            "The last line of the patch must be '*** End Patch'",
        ),
        (envelope("*** Add File: a", "+x") + "trailing\n", "The last line of the patch must be"),
        ("<<\"EOF'\n" + envelope("*** Add File: a", "+x") + "EOF", "The first line"),
        (
            envelope("*** Frobnicate File: foo"),
            "line 2: '*** Frobnicate File: foo' is not a valid hunk header",
        ),
        (
            envelope("*** Update File: foo.txt"),
            "line 2: Update file hunk for path 'foo.txt' is empty",
        ),
        (
            envelope("*** Update File: a", "*** Move to: b"),
            "Update file hunk for path 'a' is empty",
        ),
        (envelope("*** Update File: a", "*** Move to: b", "*** Move to: c", "-x"), "more than one"),
        (
            envelope("*** Update File: a", "@@", "-x", "oops"),
            "line 5: Expected update hunk to start with a @@",
        ),
        (
            envelope("*** Update File: a", "oops"),
            "line 3: Unexpected line found in update hunk: 'oops'",
        ),
        (
            envelope("*** Update File: a", "@@", "*** End of File"),
            "line 4: Update hunk does not contain any lines",
        ),
        (envelope("*** Update File: a", "@@"), "Update hunk does not contain any lines"),
        (
            envelope("*** Update File: a", "@@class A", "-x"),
            "'@@class A' is not a valid context marker",
        ),
        (envelope("*** Delete File: a", "-x"), "line 3: '-x' is not a valid hunk header"),
        (envelope("*** Add File: a", "x"), "line 3: 'x' is not a valid hunk header"),
        (envelope("*** Move to: b"), "must directly follow"),
        (envelope("*** Environment ID: ", "*** Add File: a"), "environment_id cannot be empty"),
        (envelope("*** Environment ID: a", "*** Environment ID: b"), "more than once"),
    ],
    ids=[
        "empty",
        "no-end",
        "text-after-end",
        "heredoc-mismatched-quotes",
        "bad-header",
        "empty-update",
        "hunkless-move",
        "two-moves",
        "no-marker",
        "bad-first-line",
        "eof-first",
        "marker-only",
        "marker-without-space",
        "delete-with-body",
        "add-without-plus",
        "stray-move",
        "empty-environment",
        "two-environments",
    ],
)
def test_parse_patch_errors(text: str, message: str) -> None:
    with pytest.raises(PatchError, match=message.replace("(", r"\(").replace("*", r"\*")):
        parse_patch(text)


def test_parse_patch_error_carries_path_and_hunk() -> None:
    with pytest.raises(PatchError) as caught:
        parse_patch(envelope("*** Update File: a.py", "@@", "-x", "@@", "*** End of File"))
    assert (caught.value.path, caught.value.hunk) == ("a.py", 2)


def test_parse_patch_accepts_an_envelope_without_operations() -> None:
    """It parses; applying it is what fails (Codex fixture 005)."""
    assert parse_patch("*** Begin Patch\n*** End Patch").operations == ()
