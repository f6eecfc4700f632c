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
from .patch_journal import PatchJournal, Step, apply_journaled, patch_key, plan_steps
from .patch_lock import workspace_lock
from .patch_parser import BEGIN_PATCH, AddFile, DeleteFile, FileOperation, Patch, parse_patch
from .patch_plan import PatchReport, Planner
from .patch_update import update_text
from .v4a import DiffError, apply_diff
from .workspace import MAX_TEXT_BYTES

__all__ = ("ApplyPatchTool", "PatchJournal", "PatchReport", "apply_operations", "apply_patch")

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
    patch_text: str,
    root: str | Path,
    *,
    max_file_bytes: int = MAX_TEXT_BYTES,
    journal: PatchJournal | None = None,
) -> PatchReport:
    """Apply an envelope patch under `root`: every file's new content is computed before any write.

    Args:
        patch_text: The patch, from '*** Begin Patch' to '*** End Patch'.
        root: The workspace root.
        max_file_bytes: Largest file the patch may read or rewrite.
        journal: In a durable run, where the patch is recorded before any write; a patch an
            earlier attempt of the same task recorded is then skipped or finished, not re-applied.

    Raises:
        PatchError: The patch is malformed or does not fit, or a file it touches was changed by
            someone else after it was read; the workspace is unchanged.
        PathEscapeError: A path leads outside the workspace or into a protected place.
    """
    patch = parse_patch(patch_text)
    if not patch.operations:
        raise PatchError(
            "No files were modified: the patch has no '*** Add File:', '*** Update File:' or "
            "'*** Delete File:' section between its markers."
        )
    steps = [_envelope_step(operation) for operation in patch.operations]
    return _apply(steps, Path(root), patch_text, max_file_bytes=max_file_bytes, journal=journal)


def apply_operations(
    operations: Sequence[Mapping[str, JSONValue]],
    root: str | Path,
    *,
    max_file_bytes: int = MAX_TEXT_BYTES,
    journal: PatchJournal | None = None,
) -> PatchReport:
    """Apply native Responses operations (`create_file`/`update_file`/`delete_file`) all-or-nothing.

    A `journal` works as in `apply_patch`; the operations' canonical JSON is the patch text.

    Raises:
        PatchError: An operation is malformed or its diff does not fit; the workspace is unchanged.
        PathEscapeError: A path leads outside the workspace or into a protected place.
    """
    if not operations:
        raise PatchError("No files were modified: no operations were given.")
    steps = [_native_step(operation, number) for number, operation in enumerate(operations, 1)]
    text = "" if journal is None else _canonical_json(operations)
    return _apply(steps, Path(root), text, max_file_bytes=max_file_bytes, journal=journal)


def _apply(
    steps: Sequence[Step],
    root: Path,
    text: str,
    *,
    max_file_bytes: int,
    journal: PatchJournal | None,
) -> PatchReport:
    # Reading, matching, the race check, the journal record and the writes all happen under the
    # workspace's lock: another patch waits instead of writing over what this one read.
    with workspace_lock(root):
        if journal is not None:
            key = patch_key(text)
            return apply_journaled(
                steps, root, key=key, journal=journal, max_file_bytes=max_file_bytes
            )
        planner = plan_steps(steps, root, max_file_bytes=max_file_bytes)
        commit(planner.changes(), root=planner.root)
        return planner.report()


def _envelope_step(operation: FileOperation) -> Step:
    path = operation.path
    if isinstance(operation, AddFile):
        contents = operation.contents
        return Step(paths=(path,), plan=lambda planner: planner.add(path, contents))
    if isinstance(operation, DeleteFile):
        return Step(paths=(path,), plan=lambda planner: planner.delete(path))
    edit = partial(update_text, chunks=operation.chunks, path=path)
    move_to = operation.move_to
    paths = (path,) if move_to is None else (path, move_to)
    return Step(paths=paths, plan=lambda planner: planner.update(path, edit, move_to=move_to))


def _native_step(operation: object, number: int) -> Step:
    """A step that validates its operation when planned, so errors come in operation order."""

    def plan(planner: Planner) -> None:
        kind, path, diff, move_to = _operation_fields(operation, number)
        if kind == "delete_file":
            planner.delete(path)
        elif kind == "create_file":
            planner.add(path, _v4a(path, partial(apply_diff, "", diff, "create")))
        else:
            planner.update(path, _v4a_edit(path, diff), move_to=move_to)

    named: tuple[object, ...] = ()
    if isinstance(operation, Mapping):  # the caller's types are not trusted: JSON from a model
        fields = cast("Mapping[str, object]", operation)
        named = (fields.get("path"), fields.get("move_to"))
    return Step(paths=tuple(path for path in named if isinstance(path, str)), plan=plan)


def _canonical_json(operations: Sequence[Mapping[str, JSONValue]]) -> str:
    """The operations as one text, the same for the same operations whatever their key order."""

    def plain(value: object) -> object:
        if isinstance(value, Mapping):
            return dict(cast("Mapping[str, object]", value))
        raise PatchError("the operations must be JSON objects")

    return json.dumps(
        list(operations), sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=plain
    )


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
        journal = None
        if ctx.effects is not None:
            journal = PatchJournal(effects=ctx.effects, task_id=ctx.task_id)
        try:
            request = self._request(call, journal)
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

    def _request(self, call: ToolCall, journal: PatchJournal | None) -> _Request:
        limit = self.max_file_bytes
        if call.kind == "apply_patch":
            operation = _json_object(call.arguments, what="the apply_patch operation")
            summary = f"{operation.get('type')} {operation.get('path')}"
            return _Request(
                summary=f"apply_patch: {summary}",
                arguments=operation,
                run=lambda root: apply_operations(
                    [operation], root, max_file_bytes=limit, journal=journal
                ),
            )
        if call.kind != "function":
            raise ToolFailed(f"apply_patch cannot run a {call.kind} call")
        text = _patch_argument(call.arguments)
        patch = parse_patch(text)  # parse errors need no approval to be reported
        return _Request(
            summary=f"apply_patch: {_describe(patch)}",
            arguments={"patch": text},
            run=lambda root: apply_patch(text, root, max_file_bytes=limit, journal=journal),
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
