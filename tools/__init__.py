"""Executor tools: `@tool` functions, a plugin registry, apply_patch, shell and file tools.

Installed as `orchestrator.tools`; the engine never imports this package, the app wires it in.
"""

from __future__ import annotations

from .apply_patch import ApplyPatchTool as ApplyPatchTool
from .apply_patch import PatchReport as PatchReport
from .apply_patch import apply_operations as apply_operations
from .apply_patch import apply_patch as apply_patch
from .base import FunctionTool as FunctionTool
from .base import tool as tool
from .files import file_tools as file_tools
from .registry import ToolRegistry as ToolRegistry
from .shell import ShellTool as ShellTool
from .shell import run_acceptance_check as run_acceptance_check
from .shell_runner import ShellResult as ShellResult
from .shell_runner import arun_shell as arun_shell
from .shell_runner import run_shell as run_shell
from .v4a import apply_diff as apply_diff

__all__ = (
    "ApplyPatchTool",
    "FunctionTool",
    "PatchReport",
    "ShellResult",
    "ShellTool",
    "ToolRegistry",
    "apply_diff",
    "apply_operations",
    "apply_patch",
    "arun_shell",
    "file_tools",
    "run_acceptance_check",
    "run_shell",
    "tool",
)
