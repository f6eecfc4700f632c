"""Locating chunks: fuzzy passes, stacked anchors, the cursor, ambiguity and error messages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestrator.errors import PatchError
from orchestrator.tools.apply_patch import apply_patch
from orchestrator.tools.patch_match import WHITE_SPACE, LineIndex
from orchestrator.tools.patch_parser import UpdateFile, parse_patch
from orchestrator.tools.patch_update import split_lines, update_text
from orchestrator.tools.v4a import apply_diff

TWO_CLASSES = (
    "class A:\n    def f(self):\n        return 1\n\nclass B:\n    def f(self):\n        return 1\n"
)


def envelope(*lines: str) -> str:
    return "\n".join(["*** Begin Patch", *lines, "*** End Patch"]) + "\n"


def update(text: str, *body: str) -> str:
    """Apply one Update File body to `text` (no disk involved)."""
    (operation,) = parse_patch(envelope("*** Update File: f.py", *body)).operations
    assert isinstance(operation, UpdateFile)
    return update_text(text, operation.chunks, path="f.py")


def test_update_refuses_context_that_matches_twice() -> None:
    with pytest.raises(
        PatchError, match=r"Ambiguous hunk in f\.py .*line 3 and at line 7"
    ) as caught:
        update(TWO_CLASSES, "@@", "-        return 1", "+        return 2")
    assert caught.value.hunk == 1
    assert "@@ <line>" in str(caught.value)


def test_update_anchor_disambiguates() -> None:
    result = update(TWO_CLASSES, "@@ class B:", "-        return 1", "+        return 2")
    assert result == TWO_CLASSES.replace("return 1\n", "return 2\n").replace(
        "return 2\n\n", "return 1\n\n"
    )


def test_update_refuses_an_anchor_that_is_itself_ambiguous() -> None:
    """`def f` leads to a match in A and, from its next occurrence, to one in B."""
    with pytest.raises(PatchError, match="Ambiguous hunk"):
        update(TWO_CLASSES, "@@     def f(self):", "-        return 1", "+        return 2")


def test_update_stacked_anchors_narrow_the_search() -> None:
    result = update(
        TWO_CLASSES, "@@ class A:", "@@     def f(self):", "-        return 1", "+        return 2"
    )
    assert result.splitlines()[2] == "        return 2"
    assert result.splitlines()[6] == "        return 1"


def test_update_cursor_disambiguates_later_chunks() -> None:
    """After the first chunk, only lines after it count, so the second `return 1` is unique."""
    result = update(
        TWO_CLASSES,
        "@@ class A:",
        "-        return 1",
        "+        return 10",
        "@@",
        "-        return 1",
        "+        return 20",
    )
    assert "return 10" in result.splitlines()[2]
    assert "return 20" in result.splitlines()[6]


def test_update_anchor_may_be_reused_by_the_next_chunk() -> None:
    text = "class T:\n    def a(self):\n        pass\n\n    def b(self):\n        pass\n"
    result = update(
        text,
        "@@ class T:",
        "@@     def a(self):",
        "-        pass",
        "+        return 1",
        "@@ class T:",
        "@@     def b(self):",
        "-        pass",
        "+        return 2",
    )
    assert result == text.replace("pass", "return 1", 1).replace("pass", "return 2", 1)


def test_update_unmatched_anchor_is_an_error() -> None:
    with pytest.raises(PatchError, match=re.escape("Failed to find context 'class C:' in f.py")):
        update(TWO_CLASSES, "@@ class C:", "-        return 1", "+        return 2")


def test_update_exact_match_wins_over_fuzzy_ones() -> None:
    """Ambiguity is judged within the winning pass: one exact match is enough."""
    text = "x = 1   \nx = 1\n"
    assert update(text, "@@", "-x = 1", "+x = 2") == "x = 1   \nx = 2\n"


@pytest.mark.parametrize(
    ("file_line", "patch_line"),
    [
        ("    value = 1  ", "    value = 1"),
        ("\tvalue = 1", "    value = 1"),
        ("value \u2013 1 \u201cq\u201d \u2018s\u2019", "value - 1 \"q\" 's'"),
        ("a\u00a0b\u3000", "a b"),
    ],
    ids=["trailing-space", "indent", "punctuation", "unicode-spaces"],
)
def test_update_fuzzy_passes_keep_the_file_bytes_of_context(
    file_line: str, patch_line: str
) -> None:
    text = f"{file_line}\nnext\n"
    assert update(text, "@@", f" {patch_line}", "-next", "+NEXT") == f"{file_line}\nNEXT\n"


def test_update_does_not_strip_python_only_whitespace() -> None:
    """U+001C..U+001F are not Unicode White_Space: Python's strip() would wrongly match them."""
    assert "\x1c" not in WHITE_SPACE
    with pytest.raises(PatchError, match="Failed to find expected lines"):
        update("\x1cvalue\n", "@@", "-value", "+other")


def test_update_keeps_crlf_and_lone_cr_line_endings() -> None:
    text = "a\r\nb\r\nc\rd\ne\r\n"
    assert update(text, "@@", " b", "-c", "+C", "+C2") == "a\r\nb\r\nC\r\nC2\r\nd\ne\r\n"


def test_update_end_of_file_chunk_must_be_last() -> None:
    text = "first\nsecond\nfirst\n"
    assert update(text, "@@", "-first", "+last", "*** End of File") == "first\nsecond\nlast\n"
    with pytest.raises(PatchError, match="not as the last lines"):
        update(text, "@@", "-second", "+2", "*** End of File")


def test_update_pure_addition_goes_to_the_end_even_with_an_anchor() -> None:
    """Spec §2.2: the anchor of a chunk with no old lines is checked, not used as the place."""
    text = "def f():\n    pass\n"
    assert update(text, "@@", "+# tail") == "def f():\n    pass\n# tail\n"
    assert update(text, "@@ def f():", "+# tail") == "def f():\n    pass\n# tail\n"
    assert update("a\n\n", "@@ a", "+new") == "a\n\nnew\n"
    with pytest.raises(PatchError, match="def g"):
        update(text, "@@ def g():", "+# tail")


def test_update_pure_additions_keep_their_order_and_their_anchor_moves_the_cursor() -> None:
    text = "def f():\n    pass\ndef g():\n    pass\n"
    two = update(text, "@@ def f():", "+# one", "@@", "+# two")
    assert two == text + "# one\n# two\n"
    # The anchor moved the cursor past `def g():`, so the next chunk's `pass` is g's one.
    moved = update(text, "@@ def g():", "+# tail", "@@", "-    pass", "+    return 2")
    assert moved == "def f():\n    pass\ndef g():\n    return 2\n# tail\n"


def test_update_retries_without_a_trailing_blank_context_line() -> None:
    assert update("a\nb\n", "@@", "-b", "+B", "") == "a\nB\n"


def test_update_error_names_first_mismatching_line_and_the_line_after_the_match() -> None:
    text = "def f():\n    x = 1\n    y = 2\n    return x + y\n"
    with pytest.raises(PatchError) as caught:
        update(text, "@@", " def f():", "     x = 1", "-    y = 3", "+    y = 4")
    message = str(caught.value)
    assert message.startswith("Failed to find expected lines in f.py (hunk 1, patch line 3):")
    assert "First line that did not match (patch line 6): '    y = 3'" in message
    assert "match at line 1, but line 3 is '    y = 2'" in message


def test_update_error_names_the_nearest_line_when_nothing_matches() -> None:
    text = "import os\n\ndef compute_total(items):\n    return sum(items)\n"
    with pytest.raises(PatchError) as caught:
        update(text, "@@", "-def compute_totals(items):", "+def total(items):")
    assert "Nearest line in the file: line 3: 'def compute_total(items):'" in str(caught.value)


def test_update_error_says_when_chunks_are_out_of_order() -> None:
    with pytest.raises(PatchError, match="hunks of one file must be in file order") as caught:
        update("a\nb\nc\n", "@@", "-c", "+C", "@@", "-a", "+A")
    assert caught.value.hunk == 2


def test_apply_patch_error_names_the_file_and_hunk(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("one\ntwo\nthree\n")
    patch = envelope("*** Update File: m.py", "@@", "-one", "+1", "@@", " two", "-tree", "+3")
    with pytest.raises(PatchError) as caught:
        apply_patch(patch, tmp_path)
    assert (caught.value.path, caught.value.hunk) == ("m.py", 2)
    assert "m.py (hunk 2, patch line 6)" in str(caught.value)
    assert "but line 3 is 'three'" in str(caught.value)
    assert (tmp_path / "m.py").read_text() == "one\ntwo\nthree\n"


def test_split_lines_keeps_every_terminator() -> None:
    assert split_lines("a\r\nb\rc\nd") == (["a", "b", "c", "d"], ["\r\n", "\r", "\n", ""])
    assert split_lines("") == ([], [])
    assert split_lines("\n") == ([""], ["\n"])


def test_line_index_limits_and_stops() -> None:
    index = LineIndex(["x", "y", "x", "y", "x"])
    assert index.find_in_pass(["x", "y"], 0, 0, limit=5) == (0, 2)
    assert index.find_in_pass(["x", "y"], 1, 0, limit=5) == (2,)
    assert index.find_in_pass(["x"], 0, 0, stop=2, limit=5) == (0,)
    assert index.find_at_end(["y", "x"], 0) is not None
    assert index.find_at_end(["x", "y"], 0) is None
    assert index.find_in_pass([], 3, 0) == (3,)
    assert index.find_in_pass(["x"] * 6, 0, 0) == ()


def test_update_error_ignores_a_common_first_line_when_pointing_at_the_nearest_line() -> None:
    """A blank first context line matches everywhere; the hint looks for the next line instead."""
    text = "a = 1\n\nb = 2\n\nc = 3\n"
    with pytest.raises(PatchError) as caught:
        update(text, "@@", " ", "-c = 4", "+c = 5")
    message = str(caught.value)
    assert "First line that did not match (patch line 5): 'c = 4'" in message
    assert "Nearest line in the file: line 5: 'c = 3'" in message


def test_apply_diff_refuses_ambiguity_unless_allowed() -> None:
    text = "x\ny\nx\n"
    with pytest.raises(ValueError, match="Ambiguous Context"):
        apply_diff(text, "@@\n-x\n+X\n")
    assert apply_diff(text, "@@\n-x\n+X\n", allow_ambiguous=True) == "X\ny\nx\n"
