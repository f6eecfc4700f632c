"""The built-in read-only file tools: read_file, list_dir and search_text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.llm import ToolCall
from orchestrator.models import RunId, TaskId
from orchestrator.toolkit import Tool, ToolContext, ToolOutput
from orchestrator.tools import files
from orchestrator.tools.files import file_tools, list_dir, read_file, search_text


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A workspace next to an `outside` folder that symbolic links point into."""
    root = tmp_path / "ws"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "main.py").write_text("import os\n\ndef main():\n    return os.getcwd()\n")
    (root / "src" / "pkg" / "util.py").write_text("def helper():\n    return 1\n")
    (root / "README.md").write_text("# Demo\nSee src/main.py\n")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("def main(): password\n")
    (root / "link_out").symlink_to(outside, target_is_directory=True)
    (root / "secret_link.txt").symlink_to(outside / "secret.txt")
    (root / "readme_link").symlink_to(root / "README.md")
    return root


async def run(target: Tool, workspace: Path, **arguments: Any) -> ToolOutput:
    ctx = ToolContext(
        workdir=workspace,
        run_dir=workspace.parent,
        run_id=RunId("run"),
        task_id=TaskId("task"),
        call_id="call",
    )
    call = ToolCall(call_id="call", name=target.name, arguments=json.dumps(arguments))
    return await target(call, ctx)


def test_file_tools_are_the_three_read_only_tools() -> None:
    assert [item.name for item in file_tools()] == ["read_file", "list_dir", "search_text"]
    assert all(isinstance(item, Tool) for item in file_tools())


# --- read_file -------------------------------------------------------------------------------


async def test_read_file_numbers_every_line(workspace: Path) -> None:
    output = await run(read_file, workspace, path="src/main.py")

    assert output == ToolOutput(
        content="     1\timport os\n     2\t\n     3\tdef main():\n     4\t    return os.getcwd()"
    )


@pytest.mark.parametrize(
    ("start_line", "end_line", "numbers"),
    [(2, 3, [2, 3]), (3, None, [3, 4]), (None, 1, [1]), (4, 99, [4]), (1, 1, [1])],
    ids=["middle", "to-end", "from-top", "past-end", "single"],
)
async def test_read_file_line_ranges(
    start_line: int | None, end_line: int | None, numbers: list[int], workspace: Path
) -> None:
    output = await run(
        read_file, workspace, path="src/main.py", start_line=start_line, end_line=end_line
    )

    assert [int(line.split("\t")[0]) for line in output.content.splitlines()] == numbers


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"start_line": 3, "end_line": 2}, "end_line 2 is before start_line 3"),
        ({"start_line": 9}, "start_line 9 is past the end of 'src/main.py' (4 lines)"),
        ({"start_line": 0}, "- start_line: Input should be greater than or equal to 1"),
    ],
    ids=["end-before-start", "start-past-end", "zero"],
)
async def test_read_file_bad_range_error(
    arguments: dict[str, Any], expected: str, workspace: Path
) -> None:
    output = await run(read_file, workspace, path="src/main.py", **arguments)

    assert output.is_error
    assert expected in output.content


async def test_read_file_line_cap_says_how_to_continue(workspace: Path) -> None:
    (workspace / "long.txt").write_text("".join(f"line {n}\n" for n in range(1, 3001)))

    lines = (await run(read_file, workspace, path="long.txt")).content.splitlines()

    assert len(lines) == files.MAX_READ_LINES + 1
    assert lines[-2] == "  2000\tline 2000"
    assert lines[-1].endswith("call read_file with start_line=2001 to continue")


async def test_read_file_byte_cap(workspace: Path) -> None:
    (workspace / "wide.txt").write_text(("x" * 1499 + "\n") * 400)  # 600 KB

    lines = (await run(read_file, workspace, path="wide.txt")).content.splitlines()

    shown = len(lines) - 1
    assert shown == files.MAX_READ_BYTES // 1500
    assert lines[-1].endswith(f"start_line={shown + 1} to continue")


async def test_read_file_cuts_overlong_lines(workspace: Path) -> None:
    (workspace / "min.js").write_text("a" * 5000 + "\nnext\n")

    lines = (await run(read_file, workspace, path="min.js")).content.splitlines()

    assert lines[0] == "     1\t" + "a" * files.MAX_LINE_BYTES + " … [cut at 2000 bytes]"
    assert lines[1] == "     2\tnext"


async def test_read_file_refuses_binary(workspace: Path) -> None:
    (workspace / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")

    output = await run(read_file, workspace, path="logo.png")

    assert output.is_error
    assert "'logo.png' is a binary file (16 bytes); read_file only reads text" in output.content


@pytest.mark.parametrize(
    ("path", "expected"),
    [("nope.txt", "'nope.txt' does not exist"), ("src", "'src' is a folder; use list_dir")],
    ids=["missing", "folder"],
)
async def test_read_file_wrong_kind_of_path(path: str, expected: str, workspace: Path) -> None:
    output = await run(read_file, workspace, path=path)

    assert output.is_error
    assert expected in output.content


async def test_read_file_empty_file(workspace: Path) -> None:
    (workspace / "empty.txt").write_text("")

    assert await run(read_file, workspace, path="empty.txt") == ToolOutput(
        content="(empty.txt is empty)"
    )


TRAVERSALS = [
    pytest.param("../outside/secret.txt", id="dot-dot"),
    pytest.param("src/../../outside/secret.txt", id="nested-dot-dot"),
    pytest.param("/etc/passwd", id="absolute"),
    pytest.param("link_out/secret.txt", id="symlinked-folder-out"),
    pytest.param("secret_link.txt", id="symlinked-file-out"),
]


@pytest.mark.parametrize("path", TRAVERSALS)
async def test_read_file_refuses_paths_outside_the_workspace(path: str, workspace: Path) -> None:
    output = await run(read_file, workspace, path=path)

    assert output.is_error
    assert output.content.startswith("PathEscapeError: ")
    assert "password" not in output.content


async def test_read_file_follows_links_that_stay_inside(workspace: Path) -> None:
    output = await run(read_file, workspace, path="readme_link")

    assert output.content == "     1\t# Demo\n     2\tSee src/main.py"


def test_read_file_callable_directly(workspace: Path) -> None:
    ctx = ToolContext(
        workdir=workspace, run_dir=workspace, run_id=RunId("r"), task_id=TaskId("t"), call_id="c"
    )

    assert read_file(ctx, "README.md", 2, None) == "     2\tSee src/main.py"


# --- list_dir --------------------------------------------------------------------------------


async def test_list_dir_marks_folders_hides_git_and_shows_links(workspace: Path) -> None:
    output = await run(list_dir, workspace)

    assert output.content.splitlines() == [
        "README.md",
        "link_out -> (outside the workspace; not followed)",
        "readme_link -> README.md",
        "secret_link.txt -> (outside the workspace; not followed)",
        "src/",
    ]


async def test_list_dir_recursive_is_depth_first_and_root_relative(workspace: Path) -> None:
    output = await run(list_dir, workspace, path="src", recursive=True)

    assert output.content.splitlines() == ["src/main.py", "src/pkg/", "src/pkg/util.py"]


async def test_list_dir_does_not_descend_into_links(workspace: Path) -> None:
    output = await run(list_dir, workspace, recursive=True)

    assert "secret" not in output.content.replace("secret_link.txt ->", "")
    assert ".git" not in output.content


async def test_list_dir_caps_entries_with_count_of_the_rest(workspace: Path) -> None:
    many = workspace / "many"
    many.mkdir()
    for n in range(files.MAX_LIST_ENTRIES + 7):
        (many / f"f{n:04}.txt").touch()

    lines = (await run(list_dir, workspace, path="many")).content.splitlines()

    assert len(lines) == files.MAX_LIST_ENTRIES + 1
    assert lines[0] == "many/f0000.txt"
    assert lines[-1] == "… 7 more entries not shown; list a subfolder to see them"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("README.md", "'README.md' is a file; use read_file"),
        ("gone", "'gone' does not exist"),
        ("link_out", "PathEscapeError: "),
        ("..", "PathEscapeError: "),
    ],
    ids=["file", "missing", "symlink-out", "parent"],
)
async def test_list_dir_refusals(path: str, expected: str, workspace: Path) -> None:
    output = await run(list_dir, workspace, path=path)

    assert output.is_error
    assert expected in output.content


async def test_list_dir_empty_folder(workspace: Path) -> None:
    (workspace / "empty").mkdir()

    assert await run(list_dir, workspace, path="empty") == ToolOutput(content="(empty is empty)")


# --- search_text -----------------------------------------------------------------------------


async def test_search_text_reports_path_line_and_text(workspace: Path) -> None:
    output = await run(search_text, workspace, pattern=r"def \w+\(")

    assert output.content.splitlines() == [
        "src/main.py:3: def main():",
        "src/pkg/util.py:1: def helper():",
    ]


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"glob": "*.md"}, ["README.md:2: See src/main.py"]),
        ({"path": "src/pkg"}, []),
        ({"path": "README.md"}, ["README.md:2: See src/main.py"]),
        ({"glob": "src/*.py"}, ["src/main.py:4: return os.getcwd()"]),
    ],
    ids=["name-glob", "folder", "single-file", "path-glob"],
)
async def test_search_text_scoping(
    arguments: dict[str, Any], expected: list[str], workspace: Path
) -> None:
    output = await run(search_text, workspace, pattern=r"main\.py|getcwd", **arguments)

    assert output.content.splitlines() == (expected or [output.content])
    if not expected:
        assert output.content.startswith("no matches for 'main\\\\.py|getcwd' in 'src/pkg'")


async def test_search_text_caps_results_with_count_of_the_rest(workspace: Path) -> None:
    (workspace / "todo.txt").write_text("TODO\n" * 30)

    lines = (await run(search_text, workspace, pattern="TODO", max_results=5)).content.splitlines()

    assert lines[:5] == [f"todo.txt:{n}: TODO" for n in range(1, 6)]
    assert lines[5:] == ["… 25 more matches not shown; narrow the search"]


async def test_search_text_invalid_regex_error(workspace: Path) -> None:
    output = await run(search_text, workspace, pattern="def (")

    assert output.is_error
    assert output.content.startswith("invalid regular expression 'def (': missing ), unterminated")


async def test_search_text_skips_binary_huge_git_and_links(workspace: Path) -> None:
    (workspace / "blob.bin").write_bytes(b"\x00\x01needle")
    (workspace / "huge.txt").write_text("needle\n" + "x" * files.MAX_SEARCH_FILE_BYTES)
    (workspace / ".git" / "needle").write_text("needle\n")
    (workspace.parent / "outside" / "out.txt").write_text("needle\n")
    (workspace / "small.txt").write_text("a needle\n")

    output = await run(search_text, workspace, pattern="needle")

    assert output.content == "small.txt:1: a needle"


async def test_search_text_refuses_paths_outside_the_workspace(workspace: Path) -> None:
    output = await run(search_text, workspace, pattern="password", path="../outside")

    assert output.is_error
    assert output.content.startswith("PathEscapeError: ")
