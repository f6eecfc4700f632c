"""The `apply_patch` tool: envelope patches and native Responses operations, applied all-or-nothing
inside the workspace, with errors that tell the model what to fix."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import cast

import anyio.to_thread

from orchestrator.errors import PatchError, PathEscapeError
from orchestrator.llm import JSONValue, ToolCall, ToolDefinition, ToolKind
from orchestrator.toolkit import ApprovalRequest, ToolContext, ToolFailed, ToolOutput

from .patch_commit import commit
from .patch_parser import BEGIN_PATCH, AddFile, DeleteFile, Patch, parse_patch
from .patch_plan import PatchReport, Planner
from .patch_update import update_text
from .v4a import DiffError, apply_diff
from .workspace import MAX_TEXT_BYTES

__all__ = ("ApplyPatchTool", "PatchReport", "apply_operations", "apply_patch")

_OPERATION_TYPES = ("create_file", "update_file", "delete_file")

FUNCTION_DESCRIPTION = """\
Edit files in the workspace with one patch. Paths are relative to the workspace root.
The whole patch applies, or nothing does. Format:
*** Begin Patch
*** Add File: src/new.py
+every line of the new file, each prefixed with +
*** Delete File: src/old.py
*** Update File: src/app.py
*** Move to: src/main.py   (optional, right after its Update File line)
@@ class Greeter
@@     def hello(self):
         name = self.name
-        return "hi"
+        return f"hello {name}"
*** End Patch
In an Update, every line starts with ' ' (unchanged context), '-' (remove) or '+' (add).
Show about 3 context lines around each change and copy them exactly; never use line numbers.
Start each hunk with '@@' or '@@ <a line above the change>' (its class or def line); stack
several @@ lines (class, then method) to narrow the place. A hunk whose lines fit in more than
one place is refused: add context or an @@ line. Hunks of one file go in file order.
'*** End of File' after a hunk pins it to the end of the file."""

NATIVE_DESCRIPTION = (
    "Create, update or delete one file in the workspace per call (V4A diffs); paths are "
    "relative to the workspace root."
)


def apply_patch(
    patch_text: str, root: str | Path, *, max_file_bytes: int = MAX_TEXT_BYTES
) -> PatchReport:
    """Apply an envelope patch under `root`: every file's new content is computed before any write.

    Raises:
        PatchError: The patch is malformed or does not fit; the workspace is unchanged.
        PathEscapeError: A path leads outside the workspace or into a protected place.
    """
    patch = parse_patch(patch_text)
    if not patch.operations:
        raise PatchError(
            "No files were modified: the patch has no '*** Add File:', '*** Update File:' or "
            "'*** Delete File:' section between its markers."
        )
    planner = Planner(Path(root), max_file_bytes=max_file_bytes)
    for operation in patch.operations:
        if isinstance(operation, AddFile):
            planner.add(operation.path, operation.contents)
        elif isinstance(operation, DeleteFile):
            planner.delete(operation.path)
        else:
            edit = partial(update_text, chunks=operation.chunks, path=operation.path)
            planner.update(operation.path, edit, move_to=operation.move_to)
    commit(planner.changes(), root=planner.root)
    return planner.report()


def apply_operations(
    operations: Sequence[Mapping[str, JSONValue]],
    root: str | Path,
    *,
    max_file_bytes: int = MAX_TEXT_BYTES,
) -> PatchReport:
    """Apply native Responses operations (`create_file`/`update_file`/`delete_file`) all-or-nothing.

    Raises:
        PatchError: An operation is malformed or its diff does not fit; the workspace is unchanged.
        PathEscapeError: A path leads outside the workspace or into a protected place.
    """
    if not operations:
        raise PatchError("No files were modified: no operations were given.")
    planner = Planner(Path(root), max_file_bytes=max_file_bytes)
    for number, operation in enumerate(operations, 1):
        kind, path, diff, move_to = _operation_fields(operation, number)
        if kind == "delete_file":
            planner.delete(path)
        elif kind == "create_file":
            planner.add(path, _v4a(path, partial(apply_diff, "", diff, "create")))
        else:
            planner.update(path, _v4a_edit(path, diff), move_to=move_to)
    commit(planner.changes(), root=planner.root)
    return planner.report()


def _v4a_edit(path: str, diff: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        return _v4a(path, lambda: apply_diff(text, diff, "default"))

    return edit


def _v4a(path: str, run: Callable[[], str]) -> str:
    """Run a V4A diff, naming the file in the error (the SDK helper does not know it)."""
    try:
        return run()
    except DiffError as exc:
        raise PatchError(f"{path}: {exc}", path=path, hunk=exc.hunk) from exc


def _operation_fields(operation: object, number: int) -> tuple[str, str, str, str | None]:
    """Validate one native operation object: (type, path, diff, move_to)."""
    if not isinstance(operation, Mapping):
        raise PatchError(f"operation {number} is not an object")
    fields = cast("Mapping[str, object]", operation)
    kind, path = fields.get("type"), fields.get("path")
    diff, move_to = fields.get("diff"), fields.get("move_to")
    if kind not in _OPERATION_TYPES:
        raise PatchError(f"operation {number}: type must be one of {', '.join(_OPERATION_TYPES)}")
    assert isinstance(kind, str)
    if not isinstance(path, str):
        raise PatchError(f"operation {number} ({kind}): 'path' must be a string")
    if move_to is not None and (kind != "update_file" or not isinstance(move_to, str)):
        raise PatchError(f"operation {number} ({kind}): 'move_to' is a path, for update_file only")
    if kind == "delete_file":
        return kind, path, "", None
    if not isinstance(diff, str):
        raise PatchError(f"Missing diff for {kind} {path}", path=path)
    if kind == "update_file" and not diff.strip():
        raise PatchError(f"Empty diff for update_file {path}: nothing would change", path=path)
    return kind, path, diff, move_to


@dataclass(frozen=True, slots=True, kw_only=True)
class _Request:
    """One parsed call: what to show an approver and how to run it."""

    summary: str
    arguments: Mapping[str, JSONValue]
    run: Callable[[Path], PatchReport]


@dataclass(frozen=True, slots=True, kw_only=True)
class ApplyPatchTool:
    """The `apply_patch` tool, as a function tool (envelope) or the native Responses tool."""

    needs_approval: bool = False
    """Ask `ctx.approve` before changing anything; no approver means the call is refused."""
    read_only: bool = False
    """Refuse every call (a task that may look but not edit)."""
    max_file_bytes: int = MAX_TEXT_BYTES

    @property
    def name(self) -> str:
        """The tool name the model calls."""
        return "apply_patch"

    def definition(self, *, native: frozenset[ToolKind]) -> ToolDefinition:
        """The native tool when the backend has it, else a strict function taking `patch`."""
        if "apply_patch" in native:
            return ToolDefinition(
                kind="apply_patch", name=self.name, description=NATIVE_DESCRIPTION
            )
        patch_schema = {
            "type": "string",
            "description": "The whole patch, from '*** Begin Patch' to '*** End Patch'.",
        }
        return ToolDefinition(
            name=self.name,
            description=FUNCTION_DESCRIPTION,
            parameters={
                "type": "object",
                "properties": {"patch": patch_schema},
                "required": ["patch"],
                "additionalProperties": False,
            },
        )

    async def __call__(self, call: ToolCall, ctx: ToolContext) -> ToolOutput:
        """Apply the call's patch; every rejection comes back as a failed output to fix."""
        if self.read_only:
            return _failed("apply_patch is not allowed in this task: files are read-only.")
        try:
            request = self._request(call)
        except (PatchError, PathEscapeError) as exc:
            return _failed(str(exc))
        if self.needs_approval:
            refusal = await _approval(request, ctx)
            if refusal is not None:
                return _failed(refusal)
        try:
            report = await anyio.to_thread.run_sync(request.run, ctx.workdir)
        except (PatchError, PathEscapeError) as exc:
            return _failed(str(exc))
        return ToolOutput(content=report.summary, native={"status": "completed"})

    def _request(self, call: ToolCall) -> _Request:
        limit = self.max_file_bytes
        if call.kind == "apply_patch":
            operation = _json_object(call.arguments, what="the apply_patch operation")
            summary = f"{operation.get('type')} {operation.get('path')}"
            return _Request(
                summary=f"apply_patch: {summary}",
                arguments=operation,
                run=lambda root: apply_operations([operation], root, max_file_bytes=limit),
            )
        if call.kind != "function":
            raise ToolFailed(f"apply_patch cannot run a {call.kind} call")
        text = _patch_argument(call.arguments)
        patch = parse_patch(text)  # parse errors need no approval to be reported
        return _Request(
            summary=f"apply_patch: {_describe(patch)}",
            arguments={"patch": text},
            run=lambda root: apply_patch(text, root, max_file_bytes=limit),
        )


def _failed(message: str) -> ToolOutput:
    return ToolOutput(content=message, is_error=True, native={"status": "failed"})


async def _approval(request: _Request, ctx: ToolContext) -> str | None:
    """Why the call may not run, or None when it was approved."""
    if ctx.approve is None:
        return "apply_patch needs approval, and no approver is configured: nothing was changed."
    approval = ApprovalRequest(
        tool="apply_patch",
        summary=request.summary,
        arguments=request.arguments,
        task_id=ctx.task_id,
    )
    if not await ctx.approve(approval):
        return "apply_patch was not approved: nothing was changed."
    return None


def _json_object(arguments: str, *, what: str) -> dict[str, JSONValue]:
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError as exc:
        raise PatchError(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise PatchError(f"{what} must be a JSON object")
    return cast("dict[str, JSONValue]", value)


def _patch_argument(arguments: str) -> str:
    """The `patch` string of a function call; a bare patch sent without JSON is accepted too."""
    if arguments.lstrip().startswith(BEGIN_PATCH):
        return arguments
    value = _json_object(arguments, what='the arguments ({"patch": "*** Begin Patch ..."})')
    patch = value.get("patch")
    if not isinstance(patch, str):
        raise PatchError('the arguments must be {"patch": "<the patch text>"}')
    return patch


def _describe(patch: Patch) -> str:
    """One line an approver can judge: which files the patch adds, updates, moves or deletes."""
    parts: list[str] = []
    for operation in patch.operations:
        if isinstance(operation, AddFile):
            parts.append(f"A {operation.path}")
        elif isinstance(operation, DeleteFile):
            parts.append(f"D {operation.path}")
        elif operation.move_to:
            parts.append(f"M {operation.path} -> {operation.move_to}")
        else:
            parts.append(f"M {operation.path}")
    return ", ".join(parts) or "no file operations"
