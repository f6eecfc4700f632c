"""`@tool` / `FunctionTool`: schema building, validation, execution and the error outputs."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import anyio
import pytest
from pydantic import BaseModel, Field

from orchestrator.errors import ToolError
from orchestrator.llm import ToolCall
from orchestrator.models import RunId, TaskId
from orchestrator.toolkit import (
    ApprovalCallback,
    ApprovalRequest,
    Tool,
    ToolContext,
    ToolFailed,
    ToolOutput,
    ToolRetry,
)
from orchestrator.tools.base import FunctionTool, tool


def make_ctx(tmp_path: Path, approve: ApprovalCallback | None = None) -> ToolContext:
    return ToolContext(
        workdir=tmp_path,
        run_dir=tmp_path,
        run_id=RunId("run-1"),
        task_id=TaskId("task-1"),
        call_id="call-1",
        approve=approve,
    )


async def call(
    target: Tool, tmp_path: Path, arguments: str | dict[str, Any], **ctx: Any
) -> ToolOutput:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    request = ToolCall(call_id="call-1", name=target.name, arguments=text)
    return await target(request, make_ctx(tmp_path, **ctx))


@tool
def add(a: int, b: Annotated[int, Field(ge=1)] = 2, label: str | None = None) -> str:
    """Add two numbers.

    Args:
        a: The first number.
        b: The second number,
            at least one.
        label: Shown before the sum.

    Returns:
        The sum as text.
    """
    return f"{label or 'sum'}: {a + b}"


@tool
async def async_add(a: int, b: int) -> int:
    """Add two numbers, asynchronously."""
    await anyio.lowlevel.checkpoint()
    return a + b


def test_tool_schema_from_hints_and_docstring() -> None:
    assert add.definition(native=frozenset()).parameters == {
        "type": "object",
        "properties": {
            "a": {"type": "integer", "description": "The first number."},
            "b": {
                "type": "integer",
                "minimum": 1,
                "description": "The second number, at least one. Default: 2.",
            },
            "label": {
                "anyOf": [{"type": "string"}, {"type": "null"}],
                "description": "Shown before the sum.",
            },
        },
        "required": ["a", "b", "label"],
        "additionalProperties": False,
    }


def test_tool_definition_is_a_strict_function() -> None:
    definition = add.definition(native=frozenset({"function", "apply_patch", "shell"}))

    assert (definition.name, definition.kind, definition.strict) == ("add", "function", True)
    assert definition.description == "Add two numbers."


def test_tool_non_strict_schema_keeps_defaults_optional() -> None:
    @tool(strict=False)
    def scale(x: int, factor: int = 2) -> int:
        return x * factor

    definition = scale.definition(native=frozenset())

    assert definition.strict is False
    assert definition.parameters == {
        "type": "object",
        "properties": {"x": {"type": "integer"}, "factor": {"type": "integer", "default": 2}},
        "required": ["x"],
        "additionalProperties": False,
    }


def test_tool_sphinx_docstring_describes_arguments() -> None:
    @tool
    def greet(name: str, times: int) -> str:
        """Greet someone.

        :param name: Who to greet.
        :param int times: How often,
            at least once.
        :returns: The greeting.
        """
        return name * times

    properties = greet.definition(native=frozenset()).parameters["properties"]

    assert greet.description == "Greet someone."
    assert properties["name"]["description"] == "Who to greet."
    assert properties["times"]["description"] == "How often, at least once."


def test_tool_explicit_field_description_beats_docstring() -> None:
    @tool
    def pick(n: Annotated[int, Field(description="From Field.")]) -> int:
        """Pick.

        Args:
            n: From the docstring.
        """
        return n

    assert pick.definition(native=frozenset()).parameters["properties"]["n"] == {
        "type": "integer",
        "description": "From Field.",
    }


class Point(BaseModel):
    x: int
    y: int = 0


def test_tool_strict_schema_makes_nested_models_strict() -> None:
    @tool
    def move(to: Point) -> str:
        """Move.

        Args:
            to: Where to.
        """
        return f"{to.x},{to.y}"

    parameters = move.definition(native=frozenset()).parameters

    assert parameters["properties"]["to"] == {
        "type": "object",
        "description": "Where to.",
        "properties": {
            "x": {"type": "integer"},
            "y": {"type": "integer", "description": "Default: 0."},
        },
        "required": ["x", "y"],
        "additionalProperties": False,
    }


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, ("add_numbers", "Add them.")),
        ({"name": "plus"}, ("plus", "Add them.")),
        ({"description": "Sum two ints."}, ("add_numbers", "Sum two ints.")),
    ],
    ids=["from-function", "name-option", "description-option"],
)
def test_tool_name_and_description(options: dict[str, Any], expected: tuple[str, str]) -> None:
    def add_numbers(a: int, b: int) -> int:
        """Add them."""
        return a + b

    made = tool(**options)(add_numbers)

    assert (made.name, made.description) == expected


def test_tool_satisfies_the_tool_protocol() -> None:
    assert isinstance(add, Tool)
    assert isinstance(add, FunctionTool)


@pytest.mark.parametrize("target", [add, async_add], ids=["sync", "async"])
async def test_tool_call_through_protocol(target: Tool, tmp_path: Path) -> None:
    output = await call(
        target, tmp_path, {"a": 2, "b": 3, **({"label": "sum"} if target is add else {})}
    )

    assert output == ToolOutput(content="sum: 5" if target is add else "5")


async def test_tool_decorated_function_still_callable() -> None:
    assert add(1, b=4) == "sum: 5"
    assert await async_add(1, 2) == 3
    assert add.__name__ == "add"
    assert add.__doc__ is not None
    assert add.__doc__.startswith("Add two numbers.")


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ("{not json", "- arguments: Invalid JSON"),
        ({"a": "three", "b": 1, "label": None}, "- a: Input should be a valid integer"),
        (
            {"a": 1, "b": 0, "label": None},
            "- b: Input should be greater than or equal to 1 (got 0)",
        ),
        ({"b": 1, "label": None}, "- a: Field required"),
        ({"a": 1, "b": 1, "label": None, "c": 1}, "- c: Extra inputs are not permitted"),
        ("[1, 2]", "- arguments: Input should be an object"),
    ],
    ids=["invalid-json", "wrong-type", "constraint", "missing", "extra", "not-an-object"],
)
async def test_tool_invalid_arguments_error_output(
    arguments: str | dict[str, Any], expected: str, tmp_path: Path
) -> None:
    output = await call(add, tmp_path, arguments)

    assert output.is_error
    assert output.content.startswith("Invalid arguments for add:\n")
    assert expected in output.content


async def test_tool_missing_defaulted_arguments_use_defaults(tmp_path: Path) -> None:
    """Non-strict backends may leave defaulted arguments out; validation fills them in."""
    assert await call(add, tmp_path, {"a": 1}) == ToolOutput(content="sum: 3")


async def test_tool_empty_arguments_text_means_no_arguments(tmp_path: Path) -> None:
    @tool
    def ping() -> str:
        return "pong"

    assert await call(ping, tmp_path, "") == ToolOutput(content="pong")


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_tool_exception_becomes_error_output(is_async: bool, tmp_path: Path) -> None:
    def broken(x: int) -> int:
        raise ValueError(f"bad x {x}")

    async def broken_async(x: int) -> int:
        raise ValueError(f"bad x {x}")

    made = tool(name="broken")(broken_async if is_async else broken)

    assert await call(made, tmp_path, {"x": 7}) == ToolOutput(
        content="ValueError: bad x 7", is_error=True
    )


async def test_tool_retry_signal_error_output_with_hint(tmp_path: Path) -> None:
    @tool
    def lookup(key: str) -> str:
        raise ToolRetry(f"no key {key!r}; try one of: a, b")

    output = await call(lookup, tmp_path, {"key": "z"})

    assert output.is_error
    assert output.native is None
    assert (
        output.content
        == "no key 'z'; try one of: a, b\n(Call lookup again with corrected arguments.)"
    )


async def test_tool_failed_signal_marked_terminal(tmp_path: Path) -> None:
    @tool
    async def deploy(env: str) -> str:
        raise ToolFailed(f"{env} is frozen")

    assert await call(deploy, tmp_path, {"env": "prod"}) == ToolOutput(
        content="prod is frozen", is_error=True, native={"terminal": True}
    )


async def test_tool_timeout_async_error_output(tmp_path: Path) -> None:
    @tool(timeout_s=0.05)
    async def hang() -> str:
        await anyio.sleep(10)
        return "never"

    assert await call(hang, tmp_path, {}) == ToolOutput(
        content="hang timed out after 0.05s", is_error=True
    )


async def test_tool_timeout_sync_reported_when_it_returns(tmp_path: Path) -> None:
    """A thread cannot be interrupted; its overrun is reported once the function returns."""

    @tool(timeout_s=0.05)
    def slow() -> str:
        time.sleep(0.2)
        return "late"

    assert await call(slow, tmp_path, {}) == ToolOutput(
        content="slow timed out after 0.05s", is_error=True
    )


async def test_tool_context_injected_and_hidden_from_schema(tmp_path: Path) -> None:
    @tool
    def where(ctx: ToolContext, name: str) -> str:
        return f"{ctx.task_id}:{ctx.workdir.name}:{name}"

    assert list(where.definition(native=frozenset()).parameters["properties"]) == ["name"]
    assert await call(where, tmp_path, {"name": "x"}) == ToolOutput(
        content=f"task-1:{tmp_path.name}:x"
    )


class Approver:
    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.requests: list[ApprovalRequest] = []

    async def __call__(self, request: ApprovalRequest) -> bool:
        self.requests.append(request)
        return self.answer


def make_delete(ran: list[str]) -> FunctionTool[[str], str]:
    @tool(needs_approval=True)
    def delete(path: str) -> str:
        ran.append(path)
        return f"deleted {path}"

    return delete


async def test_tool_approval_granted_runs_and_sends_request(tmp_path: Path) -> None:
    ran: list[str] = []
    approver = Approver(answer=True)

    output = await call(make_delete(ran), tmp_path, {"path": "a.txt"}, approve=approver)

    assert output == ToolOutput(content="deleted a.txt")
    assert approver.requests == [
        ApprovalRequest(
            tool="delete",
            summary='delete({"path": "a.txt"})',
            arguments={"path": "a.txt"},
            task_id=TaskId("task-1"),
        )
    ]


@pytest.mark.parametrize("approver", [Approver(answer=False), None], ids=["refused", "no-approver"])
async def test_tool_approval_refused_or_missing_does_not_run(
    approver: Approver | None, tmp_path: Path
) -> None:
    ran: list[str] = []

    output = await call(make_delete(ran), tmp_path, {"path": "a.txt"}, approve=approver)

    assert output.is_error
    assert "not approved" in output.content
    assert ran == []


@pytest.mark.parametrize(
    ("path", "asked"), [("notes/a.txt", False), ("/etc/passwd", True)], ids=["safe", "risky"]
)
async def test_tool_approval_predicate_decides_per_call(
    path: str, asked: bool, tmp_path: Path
) -> None:
    def risky(args: BaseModel) -> bool:
        return str(args.model_dump()["path"]).startswith("/")

    @tool(needs_approval=risky)
    def touch(path: str) -> str:
        return f"touched {path}"

    approver = Approver(answer=True)

    output = await call(touch, tmp_path, {"path": path}, approve=approver)

    assert output == ToolOutput(content=f"touched {path}")
    assert bool(approver.requests) is asked


@dataclass
class Pair:
    left: int
    right: int


@pytest.mark.parametrize(
    ("value", "content"),
    [
        ("plain text", "plain text"),
        ({"a": [1, 2]}, '{"a":[1,2]}'),
        ([1, "x"], '[1,"x"]'),
        (42, "42"),
        (1.5, "1.5"),
        (None, "null"),
        (Point(x=1, y=2), '{"x":1,"y":2}'),
        (Pair(left=1, right=2), '{"left":1,"right":2}'),
    ],
    ids=["str", "dict", "list", "int", "float", "none", "pydantic", "dataclass"],
)
async def test_tool_return_values_rendered(value: object, content: str, tmp_path: Path) -> None:
    @tool
    def give() -> object:
        return value

    assert await call(give, tmp_path, {}) == ToolOutput(content=content)


async def test_tool_returned_tool_output_passes_through(tmp_path: Path) -> None:
    @tool
    def custom() -> ToolOutput:
        return ToolOutput(content="partial", is_error=True, native={"status": "x"})

    assert await call(custom, tmp_path, {}) == ToolOutput(
        content="partial", is_error=True, native={"status": "x"}
    )


async def test_tool_parameters_pydantic_would_refuse_as_field_names(tmp_path: Path) -> None:
    @tool
    def fetch(url: str, json: bool, _retries: int) -> str:
        return f"{url} json={json} retries={_retries}"

    parameters = fetch.definition(native=frozenset()).parameters

    assert list(parameters["properties"]) == ["url", "json", "_retries"]
    assert parameters["required"] == ["url", "json", "_retries"]
    assert await call(fetch, tmp_path, {"url": "u", "json": True, "_retries": 2}) == ToolOutput(
        content="u json=True retries=2"
    )


async def test_tool_non_strict_accepts_free_form_objects(tmp_path: Path) -> None:
    made = tool(strict=False)(_free_form)

    assert await call(made, tmp_path, {"options": {"a": 1, "b": 2}}) == ToolOutput(content="2")


async def test_tool_positional_only_parameters(tmp_path: Path) -> None:
    @tool
    def pow_(base: int, /, exp: int) -> int:
        return base**exp

    assert await call(pow_, tmp_path, {"base": 2, "exp": 5}) == ToolOutput(content="32")


def _star_args(*values: int) -> int:
    return sum(values)


def _unannotated(x) -> int:  # pyright: ignore[reportMissingParameterType, reportUnknownParameterType]
    return 1


def _two_contexts(a: ToolContext, b: ToolContext) -> int:
    return 1


def _free_form(options: dict[str, int]) -> int:
    return len(options)


UNDESCRIBABLE: list[tuple[Callable[..., object], dict[str, Any], str]] = [
    (_star_args, {}, "*args/**kwargs"),
    (_unannotated, {}, "needs a type annotation"),
    (_two_contexts, {}, "only one parameter may take the ToolContext"),
    (lambda: 1, {}, "pass name="),
    (_star_args, {"name": "has space"}, "pass name="),
    (_two_contexts, {"timeout_s": 0}, "timeout_s must be positive"),
    (_free_form, {}, "strict mode cannot describe an object with arbitrary keys"),
]


@pytest.mark.parametrize(
    ("function", "options", "message"),
    UNDESCRIBABLE,
    ids=[
        "star-args",
        "no-annotation",
        "two-contexts",
        "lambda",
        "bad-name",
        "bad-timeout",
        "dict-in-strict-mode",
    ],
)
def test_tool_rejects_undescribable_functions(
    function: Any, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ToolError, match=re.escape(message)):
        tool(**options)(function)
