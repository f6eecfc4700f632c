"""`orchestrator tools list`: the tools an executor may be given, with their schemas."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from .settings import Settings


def add_tools_commands(
    command: Callable[..., argparse.ArgumentParser], *, parents: list[argparse.ArgumentParser]
) -> None:
    """`tools list` (`command` is the subparsers' add_parser; `parents` hold the common options)."""
    tools = command("tools", help="tool registry")
    tools_sub = tools.add_subparsers(required=True)
    listing = tools_sub.add_parser(
        "list", help="list registered tools with their schemas", parents=parents
    )
    listing.add_argument("--json", action="store_true", help="print the listing as JSON")
    listing.set_defaults(func=cmd_tools_list)


def cmd_tools_list(args: argparse.Namespace) -> int:
    """The tools a plan may name: built-ins, then installed plugins (a broken one is named)."""
    from .plugins import load_tools
    from .tools.listing import render_tool_listing

    loaded = load_tools(Settings.from_env())
    print(render_tool_listing(loaded.registry, as_json=args.json))
    for failure in loaded.errors:
        print(f"warning: plugin skipped: {failure.error}", file=sys.stderr)
    return 0
