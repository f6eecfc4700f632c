"""The tool registry: tools by name, built explicitly or discovered from entry-point plugins."""

from __future__ import annotations

import importlib.metadata
import inspect
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal, TypeAlias, cast

from orchestrator.errors import ToolError
from orchestrator.llm import ToolDefinition, ToolKind
from orchestrator.toolkit import Tool

from .base import FunctionTool

ENTRY_POINT_GROUP = "orchestrator.tools"
"""The entry-point group plugins register tools under."""

Registrable: TypeAlias = Tool | Callable[..., object]
"""A `Tool`, or a plain function that `register` wraps with `@tool`."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PluginFailure:
    """An installed plugin that was skipped, and why: what a warning about it must name."""

    entry_point: str
    """The entry point's name in its group."""
    target: str
    """What it points at, `module:attribute`."""
    distribution: str
    """The distribution that declares it, `name version` (or "an unknown distribution")."""
    error: str
    """What went wrong, naming the entry point: the message `errors="raise"` would raise."""

    def __str__(self) -> str:
        return self.error


@dataclass(frozen=True, slots=True, kw_only=True)
class PluginLoad:
    """What `ToolRegistry.load_plugins` registered and what it skipped."""

    tools: tuple[Tool, ...]
    """The tools registered, in discovery order."""
    failures: tuple[PluginFailure, ...]
    """The entry points skipped (each registered nothing), in discovery order."""


class ToolRegistry:
    """Tools by unique name, in registration order."""

    def __init__(self, tools: Iterable[Registrable] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        self._sources: dict[str, str] = {}
        for item in tools:
            self.register(item)

    def register(self, tool: Registrable, *, source: str | None = None) -> Tool:
        """Add a tool; a plain function is wrapped with `@tool`. Returns the registered tool.

        Args:
            tool: The tool or function.
            source: Where it came from, for error messages; defaults to its Python path.

        Raises:
            ToolError: another tool already has the name (both sources are named), or a
                function cannot be described to a model.
        """
        resolved = _as_tool(tool)
        where = source or _python_path(tool)
        if resolved.name in self._tools:
            raise ToolError(
                f"duplicate tool name {resolved.name!r}: registered from "
                f"{self._sources[resolved.name]} and again from {where}"
            )
        self._tools[resolved.name] = resolved
        self._sources[resolved.name] = where
        return resolved

    def get(self, name: str) -> Tool:
        """The tool called `name`.

        Raises:
            ToolError: no tool has that name.
        """
        return self.select((name,))[0]

    def names(self) -> tuple[str, ...]:
        """Every tool name, in registration order."""
        return tuple(self._tools)

    def source(self, name: str) -> str:
        """Where the tool called `name` was registered from."""
        return self._sources[name]

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(tuple(self._tools.values()))

    def __len__(self) -> int:
        return len(self._tools)

    def select(self, names: Iterable[str]) -> tuple[Tool, ...]:
        """The tools with these names, in the order given.

        Raises:
            ToolError: some names are unknown; the message lists them and the known names.
        """
        wanted = tuple(names)
        unknown = sorted({name for name in wanted if name not in self._tools})
        if unknown:
            known = ", ".join(self._tools) or "none"
            raise ToolError(f"unknown tool(s): {', '.join(unknown)}; registered: {known}")
        return tuple(self._tools[name] for name in wanted)

    def definitions(self, native: frozenset[ToolKind] = frozenset()) -> tuple[ToolDefinition, ...]:
        """Every tool's definition for a backend that supports the `native` tool kinds."""
        return tuple(tool.definition(native=native) for tool in self._tools.values())

    def load_entry_points(
        self,
        group: str = ENTRY_POINT_GROUP,
        *,
        errors: Literal["raise", "warn"] = "raise",
    ) -> tuple[Tool, ...]:
        """Register the tools installed distributions advertise under the entry-point `group`.

        An entry point may name a `Tool`, a plain function with parameters (wrapped with
        `@tool`), or a zero-argument callable (a factory) returning a `Tool`, a function, or an
        iterable of them. A zero-argument *tool* must therefore be decorated with `@tool`.

        Args:
            group: The entry-point group.
            errors: "raise" stops at the first broken plugin; "warn" emits a `RuntimeWarning`
                naming it and goes on with the others.

        Returns:
            The tools registered by this call, in discovery order.

        Raises:
            ToolError: with errors="raise", a plugin failed to import or build, gave something
                that is not a tool, or reused a registered name; the message names the
                distribution and the entry point.
        """
        if errors == "warn":
            loaded = self.load_plugins(group)
            for failure in loaded.failures:
                warnings.warn(f"skipped tool plugin: {failure}", RuntimeWarning, stacklevel=2)
            return loaded.tools
        added: list[Tool] = []
        for entry_point in _entry_points(group):
            added.extend(self._register_plugin(entry_point))
        return tuple(added)

    def load_plugins(self, group: str = ENTRY_POINT_GROUP) -> PluginLoad:
        """Register every plugin of `group` that works; skip each broken one, saying why.

        A broken plugin (it fails to import or build, gives something that is not a tool, or
        reuses a registered name) registers nothing and is returned as a `PluginFailure`;
        nothing is raised or logged here, so each caller reports failures its own way.
        """
        added: list[Tool] = []
        failures: list[PluginFailure] = []
        for entry_point in _entry_points(group):
            try:
                added.extend(self._register_plugin(entry_point))
            except ToolError as exc:
                failures.append(_failure(entry_point, exc))
        return PluginLoad(tools=tuple(added), failures=tuple(failures))

    def _register_plugin(self, entry_point: importlib.metadata.EntryPoint) -> list[Tool]:
        """Register everything one entry point provides, or nothing when any of it is bad."""
        label = _describe_entry_point(entry_point)
        items = _load_plugin(entry_point, label)
        try:
            tools = [_as_tool(item) for item in items]
        except ToolError as exc:
            raise ToolError(f"{label}: {exc}") from exc
        seen: set[str] = set()
        for tool in tools:
            if tool.name in self._tools or tool.name in seen:
                other = self._sources.get(tool.name, label)
                raise ToolError(
                    f"duplicate tool name {tool.name!r}: registered from {other} "
                    f"and again from {label}"
                )
            seen.add(tool.name)
        return [self.register(tool, source=label) for tool in tools]


def _as_tool(item: Registrable) -> Tool:
    if isinstance(item, Tool) and not isinstance(item, type):
        return item
    if callable(item):
        return FunctionTool(item)
    raise ToolError(f"{item!r} is neither a Tool nor a function")


def _python_path(item: object) -> str:
    function = item.function if isinstance(item, FunctionTool) else item
    module = getattr(function, "__module__", None) or type(function).__module__
    qualname = getattr(function, "__qualname__", None) or type(function).__qualname__
    return f"{module}.{qualname}"


def _entry_points(group: str) -> list[importlib.metadata.EntryPoint]:
    """The group's entry points by name, so discovery does not depend on install order."""
    return sorted(importlib.metadata.entry_points(group=group), key=lambda ep: ep.name)


def _distribution(entry_point: importlib.metadata.EntryPoint) -> str:
    dist = entry_point.dist
    return "an unknown distribution" if dist is None else f"{dist.name} {dist.version}"


def _describe_entry_point(entry_point: importlib.metadata.EntryPoint) -> str:
    where = _distribution(entry_point)
    return f"entry point {entry_point.name!r} ({entry_point.value}) of {where}"


def _failure(entry_point: importlib.metadata.EntryPoint, exc: ToolError) -> PluginFailure:
    return PluginFailure(
        entry_point=entry_point.name,
        target=entry_point.value,
        distribution=_distribution(entry_point),
        error=str(exc),
    )


def _load_plugin(entry_point: importlib.metadata.EntryPoint, label: str) -> list[Registrable]:
    """What one entry point provides, as tools or functions still to wrap."""
    try:
        loaded = entry_point.load()
    except Exception as exc:  # any import-time failure of third-party code is the plugin's
        raise ToolError(f"cannot load {label}: {type(exc).__name__}: {exc}") from exc
    if isinstance(loaded, Tool) and not isinstance(loaded, type):
        return [loaded]
    if not callable(loaded):
        raise ToolError(f"{label} is {loaded!r}, not a tool, function or factory")
    if not _is_factory(loaded):
        return [loaded]
    factory = cast(Callable[[], object], loaded)
    try:
        made = factory()
    except Exception as exc:  # a factory is third-party code too
        raise ToolError(f"factory {label} failed: {type(exc).__name__}: {exc}") from exc
    if isinstance(made, Tool) or callable(made):
        return [made]
    if not isinstance(made, Iterable) or isinstance(made, str | bytes):
        raise ToolError(f"factory {label} returned {made!r}, not tools or functions")
    items: list[Registrable] = []
    for item in cast(Iterable[object], made):
        if not callable(item):
            raise ToolError(f"factory {label} returned {item!r}, not a tool or function")
        items.append(item)
    return items


def _is_factory(loaded: Callable[..., object]) -> bool:
    """A class or a callable without parameters builds tools; anything else is a tool."""
    if isinstance(loaded, type):
        return True
    try:
        return not inspect.signature(loaded).parameters
    except (TypeError, ValueError):  # no introspectable signature: treat it as a tool
        return False
