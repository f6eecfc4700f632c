"""The `ApplyPatchTool` adapter (function and native forms) and the native operations path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.errors import PatchError
from orchestrator.llm import ToolCall
from orchestrator.models import RunId, TaskId
from orchestrator.toolkit import ApprovalRequest, Tool, ToolContext, ToolFailed
from orchestrator.tools.apply_patch import ApplyPatchTool, apply_operations

PATCH = "*** Begin Patch\n*** Update File: notes.txt\n@@\n-one\n+ONE\n*** End Patch\n"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "notes.txt").write_text("one\ntwo\n")
    return workspace


def context(
    root: Path, approvals: list[ApprovalRequest] | None = None, answer: bool = True
) -> ToolContext:
    async def approve(request: ApprovalRequest) -> bool:
        assert approvals is not None
        approvals.append(request)
        return answer

    return ToolContext(
        workdir=root,
        run_dir=root.parent / "run",
        run_id=RunId("r"),
        task_id=TaskId("t"),
        call_id="c",
        approve=approve if approvals is not None else None,
    )


def function_call(patch: str) -> ToolCall:
    return ToolCall(call_id="c", name="apply_patch", arguments=json.dumps({"patch": patch}))


def native_call(operation: dict[str, str]) -> ToolCall:
    return ToolCall(
        call_id="c", name="apply_patch", arguments=json.dumps(operation), kind="apply_patch"
    )


def test_tool_satisfies_the_protocol() -> None:
    tool = ApplyPatchTool()
    assert isinstance(tool, Tool)
    assert tool.name == "apply_patch"


def test_tool_definition_native() -> None:
    definition = ApplyPatchTool().definition(native=frozenset({"apply_patch", "shell"}))
    assert (definition.kind, definition.name) == ("apply_patch", "apply_patch")


def test_tool_definition_function_is_strict_and_teaches_the_format() -> None:
    definition = ApplyPatchTool().definition(native=frozenset({"shell"}))
    assert (definition.kind, definition.name, definition.strict) == (
        "function",
        "apply_patch",
        True,
    )
    assert definition.parameters == {
        "type": "object",
        "properties": {
            "patch": {
                "type": "string",
                "description": definition.parameters["properties"]["patch"]["description"],
            }
        },
        "required": ["patch"],
        "additionalProperties": False,
    }
    for needle in (
        "*** Begin Patch",
        "*** Update File:",
        "@@ class",
        "@@     def",
        "*** End of File",
    ):
        assert needle in definition.description


async def test_tool_function_call_applies_the_patch(root: Path) -> None:
    output = await ApplyPatchTool()(function_call(PATCH), context(root))
    assert not output.is_error
    assert output.native == {"status": "completed"}
    assert output.content == "Success. Updated the following files:\nM notes.txt"
    assert (root / "notes.txt").read_text() == "ONE\ntwo\n"


async def test_tool_accepts_a_bare_patch_instead_of_json(root: Path) -> None:
    call = ToolCall(call_id="c", name="apply_patch", arguments=PATCH)
    output = await ApplyPatchTool()(call, context(root))
    assert not output.is_error
    assert (root / "notes.txt").read_text() == "ONE\ntwo\n"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "must be a JSON object"),
        ('{"patch": 3}', '{"patch": "<the patch text>"}'),
        (
            json.dumps({"patch": PATCH.replace("-one", "-missing")}),
            "Failed to find expected lines in notes.txt",
        ),
        (json.dumps({"patch": "*** Begin Patch\n*** Add File: ../x\n+x\n*** End Patch"}), "'..'"),
        (json.dumps({"patch": "no envelope"}), "must be '*** Begin Patch'"),
    ],
    ids=["bad-json", "not-object", "patch-not-string", "no-match", "escape", "no-envelope"],
)
async def test_tool_reports_failures_to_the_model(root: Path, arguments: str, message: str) -> None:
    call = ToolCall(call_id="c", name="apply_patch", arguments=arguments)
    output = await ApplyPatchTool()(call, context(root))
    assert output.is_error
    assert output.native == {"status": "failed"}
    assert message in output.content
    assert (root / "notes.txt").read_text() == "one\ntwo\n"
    assert not (root.parent / "x").exists()


async def test_tool_native_operations(root: Path) -> None:
    tool = ApplyPatchTool()
    ctx = context(root)
    created = await tool(
        native_call({"type": "create_file", "path": "src/new.py", "diff": "+a\n+b\n"}), ctx
    )
    updated = await tool(
        native_call({"type": "update_file", "path": "notes.txt", "diff": "@@\n-two\n+TWO\n"}), ctx
    )
    deleted = await tool(native_call({"type": "delete_file", "path": "src/new.py"}), ctx)
    assert [o.native for o in (created, updated, deleted)] == [{"status": "completed"}] * 3
    assert created.content.endswith("A src/new.py")
    assert (root / "notes.txt").read_text() == "one\nTWO\n"
    assert not (root / "src" / "new.py").exists()


async def test_tool_native_failure_is_reported(root: Path) -> None:
    output = await ApplyPatchTool()(
        native_call({"type": "update_file", "path": "notes.txt", "diff": "@@ a\n@@ b\n-one\n+1\n"}),
        context(root),
    )
    assert output.is_error
    assert output.native == {"status": "failed"}
    assert "Invalid Anchor 'a'" in output.content


async def test_tool_needs_approval_without_approver_refuses(root: Path) -> None:
    output = await ApplyPatchTool(needs_approval=True)(function_call(PATCH), context(root))
    assert output.is_error
    assert "no approver" in output.content
    assert (root / "notes.txt").read_text() == "one\ntwo\n"


async def test_tool_needs_approval_rejected(root: Path) -> None:
    approvals: list[ApprovalRequest] = []
    output = await ApplyPatchTool(needs_approval=True)(
        function_call(PATCH), context(root, approvals, answer=False)
    )
    assert output.is_error
    assert output.native == {"status": "failed"}
    assert "not approved" in output.content
    assert (root / "notes.txt").read_text() == "one\ntwo\n"
    assert [(a.tool, a.summary, a.task_id) for a in approvals] == [
        ("apply_patch", "apply_patch: M notes.txt", "t")
    ]


async def test_tool_needs_approval_granted(root: Path) -> None:
    approvals: list[ApprovalRequest] = []
    tool = ApplyPatchTool(needs_approval=True)
    output = await tool(
        native_call({"type": "delete_file", "path": "notes.txt"}), context(root, approvals)
    )
    assert not output.is_error
    assert approvals[0].summary == "apply_patch: delete_file notes.txt"
    assert approvals[0].arguments == {"type": "delete_file", "path": "notes.txt"}
    assert not (root / "notes.txt").exists()


async def test_tool_parse_errors_need_no_approval(root: Path) -> None:
    approvals: list[ApprovalRequest] = []
    output = await ApplyPatchTool(needs_approval=True)(
        function_call("garbage"), context(root, approvals)
    )
    assert output.is_error
    assert approvals == []


async def test_tool_read_only_refuses_everything(root: Path) -> None:
    output = await ApplyPatchTool(read_only=True)(function_call(PATCH), context(root))
    assert output.is_error
    assert output.native == {"status": "failed"}
    assert (root / "notes.txt").read_text() == "one\ntwo\n"


async def test_tool_refuses_a_shell_call(root: Path) -> None:
    call = ToolCall(call_id="c", name="apply_patch", arguments="{}", kind="shell")
    with pytest.raises(ToolFailed):
        await ApplyPatchTool()(call, context(root))


def test_apply_operations_create_update_move_delete(root: Path) -> None:
    report = apply_operations(
        [
            {"type": "create_file", "path": "a.txt", "diff": "+a\n+b\n"},
            {"type": "create_file", "path": "crlf.txt", "diff": "+x\r\n+y\r\n+"},
            {
                "type": "update_file",
                "path": "notes.txt",
                "diff": "@@\n one\n-two\n+2\n",
                "move_to": "moved/notes.txt",
            },
        ],
        root,
    )
    assert (root / "a.txt").read_bytes() == b"a\nb"  # SDK create mode: no final newline
    assert (root / "crlf.txt").read_bytes() == b"x\r\ny\r\n"
    assert (root / "moved" / "notes.txt").read_text() == "one\n2\n"
    assert not (root / "notes.txt").exists()
    assert report.added == ("a.txt", "crlf.txt")
    assert report.modified == ("moved/notes.txt",)


def test_apply_operations_update_keeps_line_endings(root: Path) -> None:
    (root / "w.txt").write_bytes(b"a\r\nb\r\nc")
    apply_operations([{"type": "update_file", "path": "w.txt", "diff": "@@\n a\n-b\n+B\n"}], root)
    assert (root / "w.txt").read_bytes() == b"a\r\nB\r\nc"  # SDK: final-newline state kept


@pytest.mark.parametrize(
    ("operations", "message"),
    [
        ([], "no operations"),
        (["create_file"], "operation 1 is not an object"),
        ([{"type": "rename_file", "path": "a"}], "type must be one of"),
        ([{"type": "create_file", "path": 3, "diff": "+x"}], "'path' must be a string"),
        ([{"type": "create_file", "path": "a"}], "Missing diff for create_file a"),
        ([{"type": "update_file", "path": "notes.txt", "diff": " \n"}], "Empty diff"),
        ([{"type": "delete_file", "path": "notes.txt", "move_to": "x"}], "for update_file only"),
        ([{"type": "delete_file", "path": "missing.txt"}], "Failed to delete file missing.txt"),
        ([{"type": "create_file", "path": "a", "diff": "x"}], "Invalid Add File Line"),
        (
            [
                {
                    "type": "update_file",
                    "path": "notes.txt",
                    "diff": "@@\n-one\n+1\n*** Update File: b\n",
                }
            ],
            "one operation per file",
        ),
    ],
    ids=[
        "empty",
        "not-object",
        "bad-type",
        "bad-path",
        "no-diff",
        "empty-diff",
        "move-on-delete",
        "missing",
        "create-line",
        "two-files",
    ],
)
def test_apply_operations_errors(root: Path, operations: list[object], message: str) -> None:
    with pytest.raises(PatchError, match=message):
        apply_operations(operations, root)  # type: ignore[arg-type]
    assert (root / "notes.txt").read_text() == "one\ntwo\n"
