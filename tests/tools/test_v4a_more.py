"""`apply_diff` on section boundaries and malformed V4A diffs: what applies, and the error words."""

from __future__ import annotations

from typing import Any, cast

import pytest

from orchestrator.tools.v4a import DiffError, apply_diff


@pytest.mark.parametrize(
    ("diff", "expected"),
    [
        ("@@\n a\n-b\n+B\n*** End Patch\n", "a\nB\nc\nd\n"),
        ("@@\n c\n-d\n+D\n*** End of File\n", "a\nb\nc\nD\n"),
        ("@@\n a\n-b\n+B\n***\n@@\n c\n-d\n+D\n", "a\nB\nc\nD\n"),
    ],
    ids=["copied_end_patch_marker", "end_of_file_marker", "bare_stars_end_a_section"],
)
def test_apply_diff_section_boundaries(diff: str, expected: str) -> None:
    assert apply_diff("a\nb\nc\nd\n", diff) == expected


@pytest.mark.parametrize(
    ("diff", "message"),
    [
        (
            "@@\n a\n-b\n+B\n*** End of File\n c\n",
            "Invalid Line 6: ' c'. A section after the first starts with '@@' or "
            "'@@ <a line of the file>'",
        ),
        ("@@\n", "Nothing in this section (diff line 2: '(end of diff)')"),
        ("@@\n@@ a\n", "Nothing in this section (diff line 3: '(end of diff)')"),
        ("@@\n***\n", "Nothing in this section (diff line 3: '(end of diff)')"),
        (
            "@@\n a\n*** Update File: other.txt\n",
            "Invalid Line 3: '*** Update File: other.txt'. One update_file diff changes one "
            "file; send one operation per file",
        ),
        (
            "@@\n a\nb\n",
            "Invalid Line 3: 'b'. Every line starts with ' ' (context), '-' (removed) or '+' "
            "(added)",
        ),
        (
            "@@\n a\n*** End Patch\n-b\n",
            "Invalid Line 3: '*** End Patch'. Every line starts with ' ' (context), '-' "
            "(removed) or '+' (added)",
        ),
    ],
    ids=[
        "section_without_anchor",
        "empty_section",
        "stacked_anchors_only",
        "empty_before_bare_stars",
        "another_file",
        "no_prefix",
        "end_patch_mid_diff",
    ],
)
def test_apply_diff_rejects_a_malformed_diff(diff: str, message: str) -> None:
    with pytest.raises(DiffError) as caught:
        apply_diff("a\nb\nc\nd\n", diff)

    assert str(caught.value) == message


def test_apply_diff_rejects_an_unknown_mode() -> None:
    mode = cast("Any", "delete")  # a caller past the type checker, e.g. from JSON

    with pytest.raises(DiffError, match=r"^unknown diff mode 'delete': use 'default' or 'create'$"):
        apply_diff("a\n", "+b\n", mode)


def test_apply_diff_error_is_a_value_error() -> None:
    """Callers of the Agents SDK helper catch ValueError."""
    with pytest.raises(ValueError, match="Invalid Add File Line 1"):
        apply_diff("", "b\n", "create")
