"""`ToolRegistry`: registration, lookup, entry-point plugins and the `tools list` renderer."""

from __future__ import annotations

import importlib
import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.errors import ToolError
from orchestrator.llm import ToolDefinition
from orchestrator.toolkit import Tool
from orchestrator.tools.base import FunctionTool, tool
from orchestrator.tools.listing import render_tool_listing
from orchestrator.tools.registry import ToolRegistry


@tool
def echo(text: str) -> str:
    """Say it back.

    Args:
        text: What to say.
    """
    return text


def shout(text: str) -> str:
    """Say it loudly."""
    return text.upper()


def test_registry_register_wraps_plain_functions() -> None:
    registry = ToolRegistry()

    registered = registry.register(shout)

    assert isinstance(registered, FunctionTool)
    assert registry.get("shout") is registered
    assert registered.description == "Say it loudly."


def test_registry_register_keeps_tools_as_they_are() -> None:
    registry = ToolRegistry([echo])

    assert registry.get("echo") is echo


def test_registry_lookup_protocol() -> None:
    registry = ToolRegistry([echo, shout])

    assert registry.names() == ("echo", "shout")
    assert "echo" in registry
    assert "nope" not in registry
    assert [item.name for item in registry] == ["echo", "shout"]
    assert len(registry) == 2


def test_registry_duplicate_name_names_both_sources() -> None:
    registry = ToolRegistry([echo])

    @tool(name="echo")
    def other_echo(text: str) -> str:
        return text

    with pytest.raises(ToolError) as caught:
        registry.register(other_echo, source="plugin X")

    message = str(caught.value)
    assert "duplicate tool name 'echo'" in message
    assert f"{__name__}.echo" in message
    assert "plugin X" in message


def test_registry_get_unknown_name_raises() -> None:
    with pytest.raises(ToolError, match="unknown tool"):
        ToolRegistry([echo]).get("nope")


def test_registry_select_keeps_the_order_given() -> None:
    registry = ToolRegistry([echo, shout])

    assert [item.name for item in registry.select(["shout", "echo"])] == ["shout", "echo"]


def test_registry_select_lists_every_unknown_name() -> None:
    registry = ToolRegistry([echo])

    with pytest.raises(ToolError) as caught:
        registry.select(["zeta", "echo", "alpha"])

    assert str(caught.value) == "unknown tool(s): alpha, zeta; registered: echo"


def test_registry_definitions() -> None:
    definitions = ToolRegistry([echo]).definitions(frozenset())

    assert definitions == (
        ToolDefinition(
            name="echo",
            description="Say it back.",
            parameters={
                "type": "object",
                "properties": {"text": {"type": "string", "description": "What to say."}},
                "required": ["text"],
                "additionalProperties": False,
            },
        ),
    )


# --- entry-point plugins, discovered for real through importlib.metadata -------------------


def write_distribution(
    root: Path, *, name: str, module: str, source: str, entry_points: dict[str, str], group: str
) -> None:
    """Write a minimal installed distribution: one module plus its .dist-info."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    lines = [f"[{group}]", *(f"{key} = {value}" for key, value in entry_points.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory on sys.path that distributions can be written into."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))  # pyright: ignore[reportUnknownMemberType]
    before = set(sys.modules)
    yield root
    for module in set(sys.modules) - before:
        del sys.modules[module]


def refresh() -> None:
    importlib.invalidate_caches()  # includes importlib.metadata's path cache


GOOD_PLUGIN = """
    from orchestrator.tools.base import tool

    @tool
    def greet(name: str) -> str:
        return f"hello {name}"

    def wave(times: int) -> str:
        return "wave " * times

    def make_tools():
        def count(n: int) -> str:
            return str(n)

        def upper(text: str) -> str:
            return text.upper()

        return [count, tool(name="upper_case")(upper)]
"""


def test_registry_load_entry_points_discovers_real_plugins(site: Path) -> None:
    write_distribution(
        site,
        name="myplugin",
        module="myplugin_tools",
        source=GOOD_PLUGIN,
        entry_points={
            "greet": "myplugin_tools:greet",
            "wave": "myplugin_tools:wave",
            "bundle": "myplugin_tools:make_tools",
        },
        group="orchestrator.tools",
    )
    refresh()
    registry = ToolRegistry()

    loaded = registry.load_entry_points()

    assert [item.name for item in loaded] == ["count", "upper_case", "greet", "wave"]
    assert registry.names() == ("count", "upper_case", "greet", "wave")
    assert all(isinstance(item, Tool) for item in loaded)
    assert registry.source("greet") == "entry point 'greet' (myplugin_tools:greet) of myplugin 0.1"


BROKEN_PLUGIN = """
    raise ImportError("needs libfoo")
"""


def write_broken_and_good(site: Path) -> None:
    write_distribution(
        site,
        name="brokenplugin",
        module="brokenplugin_tools",
        source=BROKEN_PLUGIN,
        entry_points={"bad": "brokenplugin_tools:anything"},
        group="test.broken.tools",
    )
    write_distribution(
        site,
        name="goodplugin",
        module="goodplugin_tools",
        source=GOOD_PLUGIN,
        entry_points={"greet": "goodplugin_tools:greet"},
        group="test.broken.tools",
    )
    refresh()


def test_registry_broken_plugin_raises_naming_distribution_and_entry_point(site: Path) -> None:
    write_broken_and_good(site)

    with pytest.raises(ToolError) as caught:
        ToolRegistry().load_entry_points("test.broken.tools")

    assert str(caught.value) == (
        "cannot load entry point 'bad' (brokenplugin_tools:anything) of brokenplugin 0.1: "
        "ImportError: needs libfoo"
    )
    assert isinstance(caught.value.__cause__, ImportError)


def test_registry_broken_plugin_warns_and_loads_the_rest(site: Path) -> None:
    write_broken_and_good(site)
    registry = ToolRegistry()

    with pytest.warns(RuntimeWarning, match="brokenplugin 0.1: ImportError: needs libfoo"):
        loaded = registry.load_entry_points("test.broken.tools", errors="warn")

    assert [item.name for item in loaded] == ["greet"]


@pytest.mark.parametrize(
    ("source", "target", "message"),
    [
        ("VALUE = 3\n", "VALUE", "is 3, not a tool, function or factory"),
        ("def make():\n    return 5\n", "make", "returned 5, not tools or functions"),
        ("def make():\n    return [1]\n", "make", "returned 1, not a tool or function"),
        ("def make():\n    raise RuntimeError('boom')\n", "make", "failed: RuntimeError: boom"),
        ("def make():\n    return [lambda: 1]\n", "make", "oddplugin 0.1: tool name '<lambda>'"),
    ],
    ids=["not-callable", "factory-non-iterable", "factory-bad-item", "factory-raises", "bad-tool"],
)
def test_registry_plugin_that_is_not_a_tool_raises(
    source: str, target: str, message: str, site: Path
) -> None:
    write_distribution(
        site,
        name="oddplugin",
        module="oddplugin_tools",
        source=source,
        entry_points={"odd": f"oddplugin_tools:{target}"},
        group="test.odd.tools",
    )
    refresh()

    with pytest.raises(ToolError, match=message):
        ToolRegistry().load_entry_points("test.odd.tools")


def test_registry_plugin_name_clash_registers_nothing_from_it(site: Path) -> None:
    write_distribution(
        site,
        name="clashplugin",
        module="clashplugin_tools",
        source=GOOD_PLUGIN,
        entry_points={"bundle": "clashplugin_tools:make_tools"},
        group="test.clash.tools",
    )
    refresh()

    @tool(name="upper_case")
    def mine(text: str) -> str:
        return text

    registry = ToolRegistry([mine])

    with pytest.raises(ToolError, match="duplicate tool name 'upper_case'") as caught:
        registry.load_entry_points("test.clash.tools")

    assert "entry point 'bundle' (clashplugin_tools:make_tools) of clashplugin 0.1" in str(
        caught.value
    )
    assert registry.names() == ("upper_case",)


# --- `orchestrator tools list` ---------------------------------------------------------------


def test_listing_json_has_name_kind_description_and_schema() -> None:
    registry = ToolRegistry([shout, echo])

    rows = json.loads(render_tool_listing(registry, as_json=True))

    assert [row["name"] for row in rows] == ["echo", "shout"]
    assert rows[0] == {
        "name": "echo",
        "kind": "function",
        "description": "Say it back.",
        "parameters": echo.definition(native=frozenset()).parameters,
        "strict": True,
        "source": f"{__name__}.echo",
    }


def test_listing_text_shows_each_tool() -> None:
    text = render_tool_listing(ToolRegistry([echo]), as_json=False)

    assert text.splitlines()[:4] == [
        "echo (function)",
        f"  from {__name__}.echo",
        "  Say it back.",
        "  arguments:",
    ]
    assert '      "text": {' in text


@pytest.mark.parametrize(("as_json", "expected"), [(True, "[]"), (False, "No tools registered.")])
def test_listing_empty_registry(as_json: bool, expected: str) -> None:
    assert render_tool_listing(ToolRegistry(), as_json=as_json) == expected
