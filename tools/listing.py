"""`orchestrator tools list`: each registered tool's name, kind, description and argument schema."""

from __future__ import annotations

import json
import textwrap
from typing import Any, get_args

from orchestrator.llm import ToolKind

from .registry import ToolRegistry

_ALL_KINDS: frozenset[ToolKind] = frozenset(get_args(ToolKind))


def render_tool_listing(registry: ToolRegistry, *, as_json: bool) -> str:
    """Describe every registered tool, sorted by name, as text for people or as JSON.

    `kind` is how the tool reaches a backend that supports every native kind ("function",
    "apply_patch", "shell"); description and parameters are those of its function form, which
    every backend can use.
    """
    rows = [_row(registry, name) for name in sorted(registry.names())]
    if as_json:
        return json.dumps(rows, indent=2, ensure_ascii=False)
    if not rows:
        return "No tools registered."
    return "\n\n".join(_render_text(row) for row in rows)


def _row(registry: ToolRegistry, name: str) -> dict[str, Any]:
    tool = registry.get(name)
    native = tool.definition(native=_ALL_KINDS)
    function = tool.definition(native=frozenset())
    return {
        "name": tool.name,
        "kind": native.kind,
        "description": function.description,
        "parameters": dict(function.parameters),
        "strict": function.strict,
        "source": registry.source(name),
    }


def _render_text(row: dict[str, Any]) -> str:
    lines = [f"{row['name']} ({row['kind']})", f"  from {row['source']}"]
    if row["description"]:
        lines.append(textwrap.indent(row["description"], "  "))
    schema = json.dumps(row["parameters"], indent=2, ensure_ascii=False)
    lines.append("  arguments:")
    lines.append(textwrap.indent(schema, "    "))
    return "\n".join(lines)
