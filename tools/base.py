"""Function tools: `@tool` turns a typed Python function into a `Tool` the executor can call.

Everything the model can get wrong or the function can raise comes back as an error
`ToolOutput` the model reads and acts on; only cancellation and bugs in the wiring propagate.
"""

from __future__ import annotations

import functools
import inspect
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, ParamSpec, TypeAlias, TypeVar, cast, overload

import anyio
import anyio.lowlevel
import anyio.to_thread
import pydantic_core
from pydantic import BaseModel, ValidationError

from orchestrator.errors import ToolError
from orchestrator.llm import ToolCall, ToolDefinition, ToolKind
from orchestrator.toolkit import (
    ApprovalRequest,
    ToolContext,
    ToolFailed,
    ToolOutput,
    ToolRetry,
)

from .function_schema import FunctionSchema, function_schema

P = ParamSpec("P")
R = TypeVar("R")

ApprovalPolicy: TypeAlias = bool | Callable[[BaseModel], bool | Awaitable[bool]]
"""Whether a call needs approval: always/never, or decided from the validated arguments."""

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SUMMARY_CHARS = 200
_INPUT_CHARS = 80


class FunctionTool(Generic[P, R]):
    """A Python function exposed to models as a function tool.

    It implements the `Tool` Protocol (`await tool(call, ctx)`) and stays callable like the
    function it wraps (`tool(1, 2)`), so the function can still be unit-tested directly.
    """

    __name__: str
    __qualname__: str
    __wrapped__: Callable[P, R]

    def __init__(
        self,
        function: Callable[P, R],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout_s: float | None = None,
        needs_approval: ApprovalPolicy = False,
        strict: bool = True,
    ) -> None:
        """Describe `function`; see `tool` for the options.

        Raises:
            ToolError: the name is not a valid function name or a parameter cannot be described.
        """
        tool_name = getattr(function, "__name__", "") if name is None else name
        if not _NAME.match(tool_name):
            raise ToolError(
                f"tool name {tool_name!r} must be 1-64 letters, digits, '_' or '-'; pass name=..."
            )
        if timeout_s is not None and timeout_s <= 0:
            raise ToolError(f"tool {tool_name!r}: timeout_s must be positive, got {timeout_s}")
        self._function = function
        self._name = tool_name
        self._schema: FunctionSchema = function_schema(
            function, name=tool_name, description=description, strict=strict
        )
        self._timeout_s = timeout_s
        self._needs_approval = needs_approval
        self._strict = strict
        self._is_async = _is_async_callable(function)
        functools.update_wrapper(self, function)

    @property
    def name(self) -> str:
        """The name the model calls the tool by."""
        return self._name

    @property
    def description(self) -> str:
        """What the model is told the tool does."""
        return self._schema.description

    @property
    def function(self) -> Callable[P, R]:
        """The wrapped function."""
        return self._function

    @property
    def args_model(self) -> type[BaseModel]:
        """The pydantic model that validates the model's arguments."""
        return self._schema.args_model

    @property
    def parameters(self) -> Mapping[str, Any]:
        """The JSON schema of the arguments as the model sees it."""
        return self._schema.json_schema

    @property
    def timeout_s(self) -> float | None:
        """Seconds one call may take; None means no limit of its own."""
        return self._timeout_s

    @property
    def strict(self) -> bool:
        """Whether the schema is written for OpenAI strict mode."""
        return self._strict

    def definition(self, *, native: frozenset[ToolKind] = frozenset()) -> ToolDefinition:
        """A function tool definition; function tools have no native form, so `native` is moot."""
        del native
        return ToolDefinition(
            name=self._name,
            description=self._schema.description,
            parameters=self._schema.json_schema,
            kind="function",
            strict=self._strict,
        )

    @overload
    async def __call__(self, call: ToolCall, ctx: ToolContext) -> ToolOutput: ...

    @overload
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R: ...

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """`(ToolCall, ToolContext)` runs the tool for a model; anything else calls the function."""
        tool_call = _as_tool_call(args, kwargs)
        if tool_call is not None:
            return self.invoke(*tool_call)
        return self._function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"FunctionTool(name={self._name!r}, function={self._function!r})"

    async def invoke(self, call: ToolCall, ctx: ToolContext) -> ToolOutput:
        """Validate the call's JSON arguments, ask for approval if needed, run, and report."""
        try:
            args = self._schema.args_model.model_validate_json(call.arguments.strip() or "{}")
        except ValidationError as exc:
            return ToolOutput(content=_describe_invalid(self._name, exc), is_error=True)
        if await self._approval_needed(args) and not await self._approved(args, ctx):
            return ToolOutput(
                content=f"{self._name} was not approved; the call did not run. "
                "Do not retry it unchanged; choose another way or report what you need.",
                is_error=True,
            )
        if self._timeout_s is None:
            return await self._run(args, ctx)
        output = ToolOutput(
            content=f"{self._name} timed out after {self._timeout_s:g}s", is_error=True
        )
        with anyio.move_on_after(self._timeout_s):
            result = await self._run(args, ctx)
            # A sync function that ignored the deadline (a thread cannot be interrupted) is
            # reported as timed out once it returns.
            await anyio.lowlevel.checkpoint_if_cancelled()
            output = result
        return output

    async def _approval_needed(self, args: BaseModel) -> bool:
        if isinstance(self._needs_approval, bool):
            return self._needs_approval
        decision = self._needs_approval(args)
        return bool(await decision) if inspect.isawaitable(decision) else bool(decision)

    async def _approved(self, args: BaseModel, ctx: ToolContext) -> bool:
        if ctx.approve is None:
            return False
        arguments: dict[str, Any] = args.model_dump(mode="json", by_alias=True)
        summary = f"{self._name}({json.dumps(arguments, ensure_ascii=False)})"
        if len(summary) > _SUMMARY_CHARS:
            summary = summary[: _SUMMARY_CHARS - 1] + "…"
        request = ApprovalRequest(
            tool=self._name, summary=summary, arguments=arguments, task_id=ctx.task_id
        )
        return await ctx.approve(request)

    async def _run(self, args: BaseModel, ctx: ToolContext) -> ToolOutput:
        positional, keywords = self._schema.call_arguments(args, ctx)
        call = functools.partial(self._function, *positional, **keywords)
        try:
            if self._is_async:
                result: object = await cast(Awaitable[object], call())
            else:
                result = await anyio.to_thread.run_sync(call)
        except ToolRetry as exc:
            return ToolOutput(
                content=f"{exc.message}\n(Call {self._name} again with corrected arguments.)",
                is_error=True,
            )
        except ToolFailed as exc:
            return ToolOutput(content=exc.message, is_error=True, native={"terminal": True})
        except Exception as exc:  # the model reads the error and can adapt; cancellation passes
            return ToolOutput(content=f"{type(exc).__name__}: {exc}", is_error=True)
        return render_result(result)


def render_result(result: object) -> ToolOutput:
    """Turn a function's return value into what the model reads.

    A `ToolOutput` passes through, a str is used as is, anything else (pydantic models,
    dataclasses, dicts, lists, numbers, None) is JSON-encoded.
    """
    if isinstance(result, ToolOutput):
        return result
    if isinstance(result, str):
        return ToolOutput(content=result)
    return ToolOutput(content=pydantic_core.to_json(result, fallback=str).decode())


def _describe_invalid(name: str, error: ValidationError) -> str:
    """One line per problem, naming the argument and what was expected."""
    lines = [f"Invalid arguments for {name}:"]
    for detail in error.errors(include_url=False):
        field = ".".join(str(part) for part in detail["loc"]) or "arguments"
        line = f"- {field}: {detail['msg']}"
        if detail["type"] not in {"missing", "json_invalid"}:
            shown = repr(detail["input"])
            if len(shown) > _INPUT_CHARS:
                shown = shown[: _INPUT_CHARS - 1] + "…"
            line += f" (got {shown})"
        lines.append(line)
    lines.append(f"Call {name} again with arguments that match its schema.")
    return "\n".join(lines)


def _as_tool_call(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[ToolCall, ToolContext] | None:
    """The (call, ctx) pair when called the way the `Tool` Protocol calls, else None."""
    names = ("call", "ctx")[len(args) :]
    if len(args) > 2 or set(kwargs) != set(names):
        return None
    call, ctx = (*args, *(kwargs[name] for name in names))
    if isinstance(call, ToolCall) and isinstance(ctx, ToolContext):
        return call, ctx
    return None


def _is_async_callable(function: object) -> bool:
    while isinstance(function, functools.partial):
        function = function.func
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        getattr(function, "__call__", None)  # noqa: B004 - an object with an async __call__
    )


@overload
def tool(function: Callable[P, R], /) -> FunctionTool[P, R]: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float | None = None,
    needs_approval: ApprovalPolicy = False,
    strict: bool = True,
) -> Callable[[Callable[P, R]], FunctionTool[P, R]]: ...


def tool(
    function: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float | None = None,
    needs_approval: ApprovalPolicy = False,
    strict: bool = True,
) -> FunctionTool[P, R] | Callable[[Callable[P, R]], FunctionTool[P, R]]:
    """Make a function tool from a sync or async function; use bare (`@tool`) or with options.

    The name is the function's name and the description its docstring (the text before the
    first section); per-argument descriptions come from a Google `Args:` section or Sphinx
    `:param x:` fields. Arguments are validated with a pydantic model built from the type
    hints, so `Annotated[int, Field(ge=1)]` and `Field` defaults apply. A parameter annotated
    `ToolContext` is injected and hidden from the model. Sync functions run in a worker thread.

    Args:
        function: The function, when used bare.
        name: Overrides the function's name.
        description: Overrides the docstring.
        timeout_s: Seconds one call may take; an overrun returns an error output.
        needs_approval: True, or a predicate on the validated arguments (may be async); such
            calls run only when `ctx.approve` says yes.
        strict: Write the schema for OpenAI strict mode (see `strict_json_schema`).

    Raises:
        ToolError: the function cannot be described to a model.
    """

    def wrap(target: Callable[P, R]) -> FunctionTool[P, R]:
        return FunctionTool(
            target,
            name=name,
            description=description,
            timeout_s=timeout_s,
            needs_approval=needs_approval,
            strict=strict,
        )

    return wrap if function is None else wrap(function)
