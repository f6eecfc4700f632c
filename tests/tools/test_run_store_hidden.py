"""The run store inside a workspace is off limits to the tools: not listed, not read, not written.

The store sits at `<workspace>/.orchestrator/runs` by default, or wherever `run_root` puts it. The
file tools and apply_patch refuse paths into it; the shell sandbox masks it (empty, read-only).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.llm import ToolCall
from orchestrator.models import RunId, TaskId
from orchestrator.store import RunStore
from orchestrator.toolkit import Tool, ToolContext, ToolOutput
from orchestrator.tools.apply_patch import ApplyPatchTool
from orchestrator.tools.files import list_dir, read_file, search_text
from orchestrator.tools.sandbox import Sandbox
from orchestrator.tools.shell import ShellTool, run_acceptance_check
from orchestrator.tools.workspace import RUN_STORE_INDEX, RunStoreGuard, run_store_mounts

RESULT = '{"status": "completed", "needle": "store-secret"}\n'


def open_store(root: Path) -> Iterator[Path]:
    """A real run store at `root` with run `r1` (holding a result.json); yields r1's folder."""
    store = RunStore(root)
    run_dir = store.run_dir(RunId("r1"))
    (run_dir / "result.json").write_text(RESULT)
    store.run_dir(RunId("r2"))
    yield run_dir
    store.close()


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "src" / "main.py").write_text("needle = 'store-secret'\n")
    (root / "notes.txt").write_text("one\n")
    return root


@pytest.fixture
def default_run(workspace: Path) -> Iterator[Path]:
    """The default layout: the run store at `<workspace>/.orchestrator/runs`."""
    yield from open_store(workspace / ".orchestrator" / "runs")


@pytest.fixture
def elsewhere_run(workspace: Path) -> Iterator[Path]:
    """`run_root` configured to another folder inside the workspace: `<workspace>/state/runs`."""
    yield from open_store(workspace / "state" / "runs")


def context(workspace: Path, run_dir: Path, call_id: str = "c") -> ToolContext:
    return ToolContext(
        workdir=workspace, run_dir=run_dir, run_id=RunId("r1"), task_id=TaskId("t"), call_id=call_id
    )


async def call(target: Tool, ctx: ToolContext, **arguments: Any) -> ToolOutput:
    return await target(
        ToolCall(call_id="c", name=target.name, arguments=json.dumps(arguments)), ctx
    )


def patch_call(body: str) -> ToolCall:
    patch = f"*** Begin Patch\n{body}*** End Patch\n"
    return ToolCall(call_id="c", name="apply_patch", arguments=json.dumps({"patch": patch}))


def assert_refused(output: ToolOutput) -> None:
    assert output.is_error
    assert "run store" in output.content
    assert "store-secret" not in output.content


# --- file tools ------------------------------------------------------------------------------


async def test_list_dir_of_the_root_does_not_show_the_run_store(
    workspace: Path, default_run: Path
) -> None:
    ctx = context(workspace, default_run)

    flat = await call(list_dir, ctx)
    deep = await call(list_dir, ctx, recursive=True)

    assert flat.content.splitlines() == ["notes.txt", "src/"]
    assert deep.content.splitlines() == ["notes.txt", "src/", "src/main.py"]


async def test_list_dir_hides_a_run_root_configured_elsewhere(
    workspace: Path, elsewhere_run: Path
) -> None:
    output = await call(list_dir, context(workspace, elsewhere_run), recursive=True)

    assert output.content.splitlines() == ["notes.txt", "src/", "src/main.py", "state/"]


async def test_search_text_skips_the_run_store(
    workspace: Path, default_run: Path, elsewhere_run: Path
) -> None:
    output = await call(search_text, context(workspace, default_run), pattern="store-secret")

    assert output.content == "src/main.py:1: needle = 'store-secret'"


@pytest.mark.parametrize(
    "path",
    [
        ".orchestrator/runs/r1/result.json",
        ".orchestrator/runs/runs.sqlite3",
        ".orchestrator",
        "./.orchestrator//runs/./r1/result.json",
        ".Orchestrator./runs/r1/result.json",
    ],
    ids=["result", "index", "folder", "dotted", "case-and-dot"],
)
async def test_read_file_refuses_the_default_run_store(
    path: str, workspace: Path, default_run: Path
) -> None:
    output = await call(read_file, context(workspace, default_run), path=path)

    assert_refused(output)


async def test_read_file_names_the_store_in_its_refusal(workspace: Path, default_run: Path) -> None:
    output = await call(
        read_file, context(workspace, default_run), path=".orchestrator/runs/r1/result.json"
    )

    assert output.content.startswith("PathEscapeError: path '.orchestrator/runs/r1/result.json'")
    assert_refused(output)


async def test_read_file_refuses_a_run_root_configured_elsewhere(
    workspace: Path, elsewhere_run: Path
) -> None:
    ctx = context(workspace, elsewhere_run)

    for path in ("state/runs/r1/result.json", "state/runs", "state/runs/r2"):
        assert_refused(await call(read_file, ctx, path=path))
        assert_refused(await call(list_dir, ctx, path=path))
        assert_refused(await call(search_text, ctx, pattern=".", path=path))


async def test_the_run_root_of_the_context_is_refused_without_a_store_index(
    workspace: Path,
) -> None:
    run_dir = workspace / "logs" / "runs" / "r1"
    run_dir.mkdir(parents=True)
    (run_dir / "result.json").write_text(RESULT)
    ctx = context(workspace, run_dir)

    assert_refused(await call(read_file, ctx, path="logs/runs/r1/result.json"))
    listing = await call(list_dir, ctx, recursive=True)
    assert "logs/runs" not in listing.content


async def test_symbolic_links_into_the_run_store_are_refused(
    workspace: Path, default_run: Path
) -> None:
    (workspace / "peek").symlink_to(workspace / ".orchestrator", target_is_directory=True)
    (workspace / "result.json").symlink_to(default_run / "result.json")
    ctx = context(workspace, default_run)

    assert_refused(await call(read_file, ctx, path="peek/runs/r1/result.json"))
    assert_refused(await call(read_file, ctx, path="result.json"))
    assert_refused(await call(list_dir, ctx, path="peek"))
    listing = (await call(list_dir, ctx)).content.splitlines()
    assert "peek -> (the orchestrator's run store; not followed)" in listing
    assert "result.json -> (the orchestrator's run store; not followed)" in listing


# --- apply_patch -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "*** Add File: .orchestrator/runs/x/result.json\n+{}\n",
        "*** Add File: .orchestrator/runs/evil\n+x\n",
        "*** Update File: .orchestrator/runs/r1/result.json\n@@\n-{RESULT}+{{}}\n",
        "*** Delete File: .orchestrator/runs/r1/result.json\n",
        "*** Update File: notes.txt\n*** Move to: .orchestrator/runs/r1/notes.txt\n@@\n-one\n+two\n",
        "*** Update File: notes.txt\n@@\n-one\n+two\n*** Add File: .orchestrator/x\n+x\n",
        "*** Update File: peek/runs/r1/result.json\n@@\n-{RESULT}+{{}}\n",
    ],
    ids=["add-new-run", "add-in-root", "update", "delete", "move-into", "second-op", "symlink"],
)
async def test_apply_patch_refuses_the_default_run_store(
    body: str, workspace: Path, default_run: Path
) -> None:
    (workspace / "peek").symlink_to(workspace / ".orchestrator", target_is_directory=True)
    before = snapshot(workspace)

    output = await ApplyPatchTool()(
        patch_call(body.replace("{RESULT}", RESULT)), context(workspace, default_run)
    )

    assert_refused(output)
    assert snapshot(workspace) == before


@pytest.mark.parametrize(
    "body",
    [
        "*** Add File: state/runs/x/result.json\n+{}\n",
        "*** Update File: state/runs/r1/result.json\n@@\n-{RESULT}+{{}}\n",
        "*** Delete File: state/runs/runs.sqlite3\n",
    ],
    ids=["add", "update", "delete-index"],
)
async def test_apply_patch_refuses_a_run_root_configured_elsewhere(
    body: str, workspace: Path, elsewhere_run: Path
) -> None:
    before = snapshot(workspace)

    output = await ApplyPatchTool()(
        patch_call(body.replace("{RESULT}", RESULT)), context(workspace, elsewhere_run)
    )

    assert_refused(output)
    assert snapshot(workspace) == before


async def test_apply_patch_native_operation_into_the_store_is_refused(
    workspace: Path, default_run: Path
) -> None:
    operation = {"type": "create_file", "path": ".orchestrator/runs/evil", "diff": "+x\n"}
    call_ = ToolCall(
        call_id="c", name="apply_patch", arguments=json.dumps(operation), kind="apply_patch"
    )

    output = await ApplyPatchTool()(call_, context(workspace, default_run))

    assert_refused(output)
    assert not (workspace / ".orchestrator" / "runs" / "evil").exists()


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


# --- the guard -------------------------------------------------------------------------------


def test_the_store_index_name_is_the_one_the_run_store_writes(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs")
    store.close()

    assert (tmp_path / "runs" / RUN_STORE_INDEX).is_file()


def test_a_run_root_that_is_the_workspace_hides_only_the_run(workspace: Path) -> None:
    guard = RunStoreGuard.of(workspace.resolve(), workspace / "r1")

    assert guard.run_root == workspace.resolve() / "r1"
    assert guard.store_of(workspace.resolve() / "src" / "main.py") is None


def test_a_run_outside_the_workspace_hides_nothing_but_dot_orchestrator(workspace: Path) -> None:
    base = workspace.resolve()
    guard = RunStoreGuard.of(base, workspace.parent / "run")

    assert guard.run_root is None
    assert guard.store_of(base / "src") is None
    assert guard.store_of(base / ".orchestrator" / "x") == base / ".orchestrator"


def test_sandbox_masks_only_existing_outermost_store_folders(
    workspace: Path, default_run: Path, elsewhere_run: Path
) -> None:
    base = workspace.resolve()

    assert run_store_mounts(workspace, default_run) == (base / ".orchestrator",)
    assert run_store_mounts(workspace, elsewhere_run) == (
        base / ".orchestrator",
        base / "state" / "runs",
    )
    assert run_store_mounts(workspace / "missing", default_run) == ()


# --- the shell -------------------------------------------------------------------------------


@pytest.fixture
def sandbox() -> Sandbox:
    detected = Sandbox.detect()
    if not detected.is_available:
        pytest.skip(f"bubblewrap is unavailable here: {detected.status_message}")
    return detected


def shell_call(command: str, max_output_length: int | None = None) -> ToolCall:
    arguments = {"command": command, "timeout_ms": 5_000, "max_output_length": max_output_length}
    return ToolCall(call_id="c", name="shell", arguments=json.dumps(arguments))


@pytest.mark.sandbox
async def test_sandbox_shows_a_store_in_the_workspace_as_empty(
    workspace: Path, default_run: Path, sandbox: Sandbox, tmp_path: Path
) -> None:
    """The current run's store lies outside; one left in the workspace by another run is masked."""
    ctx = context(workspace, tmp_path / "elsewhere" / "r9")

    output = await ShellTool(sandbox=sandbox)(shell_call("ls -a .orchestrator"), ctx)

    assert output.content == ".\n..\n[exit code 0]"


@pytest.mark.sandbox
async def test_sandbox_shows_nothing_of_the_store_but_this_runs_shell_output(
    workspace: Path, default_run: Path, sandbox: Sandbox
) -> None:
    command = "find .orchestrator peek/ -not -path '*/shell/*' | sort"
    (workspace / "peek").symlink_to(workspace / ".orchestrator", target_is_directory=True)

    output = await ShellTool(sandbox=sandbox)(shell_call(command), context(workspace, default_run))

    assert output.content.splitlines() == [
        ".orchestrator",
        ".orchestrator/runs",
        ".orchestrator/runs/r1",
        ".orchestrator/runs/r1/shell",
        "peek/",
        "peek/runs",
        "peek/runs/r1",
        "peek/runs/r1/shell",
        "[exit code 0]",
    ]


@pytest.mark.sandbox
@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("echo x > .orchestrator/runs/evil", "Read-only file system"),
        ("echo x > .orchestrator/runs/r1/shell/evil", "Read-only file system"),
        ("mkdir .orchestrator/runs/r3", "Read-only file system"),
        ("echo x > peek/runs/evil", "Read-only file system"),
        ("rm .orchestrator/runs/runs.sqlite3", "No such file or directory"),
    ],
    ids=["new-file", "shell-output", "new-run", "through-symlink", "remove-index"],
)
async def test_sandbox_cannot_write_the_store(
    command: str, message: str, workspace: Path, default_run: Path, sandbox: Sandbox
) -> None:
    (workspace / "peek").symlink_to(workspace / ".orchestrator", target_is_directory=True)
    before = snapshot(workspace / ".orchestrator")

    output = await ShellTool(sandbox=sandbox)(shell_call(command), context(workspace, default_run))

    assert message in output.content
    assert snapshot(workspace / ".orchestrator") == before
    assert not (workspace / ".orchestrator" / "runs" / "evil").exists()


@pytest.mark.sandbox
async def test_sandbox_masks_a_run_root_configured_elsewhere(
    workspace: Path, elsewhere_run: Path, sandbox: Sandbox
) -> None:
    tool = ShellTool(sandbox=sandbox)
    ctx = context(workspace, elsewhere_run)

    listing = await tool(shell_call("find state -not -path '*/shell/*' | sort"), ctx)
    written = await tool(shell_call("echo x > state/runs/evil"), ctx)

    assert listing.content.splitlines() == [
        "state",
        "state/runs",
        "state/runs/r1",
        "state/runs/r1/shell",
        "[exit code 0]",
    ]
    assert "Read-only file system" in written.content
    assert not (workspace / "state" / "runs" / "evil").exists()


@pytest.mark.sandbox
async def test_full_output_files_still_work_in_the_sandbox(
    workspace: Path, default_run: Path, sandbox: Sandbox
) -> None:
    tool = ShellTool(sandbox=sandbox)
    ctx = context(workspace, default_run)

    long = await tool(shell_call("seq 1 5000", max_output_length=200), ctx)
    found = re.search(r"full output: (\S+?)\]", long.content)
    assert found is not None
    log = Path(found.group(1))
    tail = await tool(shell_call(f"tail -n 1 {log}"), context(workspace, default_run, "c2"))

    assert log.parent == default_run / "shell"
    assert log.read_text().splitlines()[-1] == "5000"
    assert tail.content == "5000\n[exit code 0]"


@pytest.mark.sandbox
async def test_acceptance_checks_get_the_same_mask(
    workspace: Path, default_run: Path, sandbox: Sandbox
) -> None:
    command = (
        "ls -A .orchestrator/runs; ls -A .orchestrator/runs/r1; echo x > .orchestrator/runs/evil"
    )

    result = await run_acceptance_check(command, workspace, 5, default_run, sandbox=sandbox)

    assert result.exit_code != 0
    assert result.stdout == "r1\nshell\n"
    assert "Read-only file system" in result.stderr
    assert not (workspace / ".orchestrator" / "runs" / "evil").exists()


async def test_unsandboxed_shell_can_reach_the_store_but_full_output_still_works(
    workspace: Path, default_run: Path
) -> None:
    """The documented limit: without bwrap nothing masks the store; our own output files work."""
    tool = ShellTool(sandbox=None)
    ctx = context(workspace, default_run)

    seen = await tool(shell_call("ls .orchestrator/runs"), ctx)
    long = await tool(shell_call("seq 1 5000", max_output_length=200), ctx)

    assert RUN_STORE_INDEX in seen.content
    assert list((default_run / "shell").glob("*.log"))
    assert "full output:" in long.content
