"""Which tools a run has: the built-ins, the caller's, then installed plugins.

One builder (`load_tools`) for `Orchestrator`, `orchestrator run` and `orchestrator tools list`,
so a listed tool is one a plan may name. A broken plugin is skipped and reported, never fatal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .settings import Settings, ShellSandbox
from .toolkit import Tool
from .tools.registry import ENTRY_POINT_GROUP, PluginFailure, ToolRegistry

if TYPE_CHECKING:
    from .tools.sandbox import Sandbox

__all__ = ("ENTRY_POINT_GROUP", "LoadedTools", "PluginFailure", "default_tools", "load_tools")


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadedTools:
    """The tools a run may use, and the installed plugins that were skipped."""

    tools: tuple[Tool, ...]
    """Built-ins first, then the caller's tools, then plugins', each name once."""
    errors: tuple[PluginFailure, ...]
    """Broken plugins (import error, not a tool, duplicate name), each naming its entry point."""
    registry: ToolRegistry
    """The same tools with where each came from, for listings (`render_tool_listing`)."""


def load_tools(
    settings: Settings | None = None,
    *,
    tools: Sequence[Tool | Callable[..., Any]] = (),
    builtin_tools: bool = True,
    plugins: bool | None = None,
) -> LoadedTools:
    """Build the run's tool registry: built-ins, `tools`, then the `orchestrator.tools` plugins.

    Args:
        settings: Where the shell sandbox mode and `plugins` (ORCH_PLUGINS) come from; None reads
            the environment.
        tools: The caller's tools (functions are wrapped with `@tool`).
        builtin_tools: Include `default_tools()`.
        plugins: Load installed plugins; None follows `settings.plugins` (on by default).

    Raises:
        ToolError: two of the built-ins and `tools` share a name (a plugin that reuses a name
            is skipped and reported in `errors` instead).
    """
    settings = settings or Settings.from_env()
    registry = ToolRegistry()
    if builtin_tools:
        for item in default_tools(shell_sandbox=settings.shell_sandbox):
            registry.register(item)
    for item in tools:
        registry.register(item)
    errors: tuple[PluginFailure, ...] = ()
    if settings.plugins if plugins is None else plugins:
        errors = registry.load_plugins(ENTRY_POINT_GROUP).failures
    return LoadedTools(tools=tuple(registry), errors=errors, registry=registry)


def default_tools(*, shell_sandbox: ShellSandbox = "auto") -> tuple[Tool, ...]:
    """The built-in executor tools: read-only file tools, apply_patch and a sandboxed shell."""
    from .tools.apply_patch import ApplyPatchTool
    from .tools.files import file_tools
    from .tools.shell import ShellTool

    return (*file_tools(), ApplyPatchTool(), ShellTool(sandbox=sandbox_for(shell_sandbox)))


def sandbox_for(mode: ShellSandbox) -> Sandbox | Literal["detect"]:
    """The shell runner's isolation for a settings value; "off" says why in its status message."""
    from .tools.sandbox import Sandbox

    if mode == "off":
        return Sandbox.disabled("ORCH_SHELL_SANDBOX=off")
    return "detect"
