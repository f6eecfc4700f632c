"""From a Python function to what a model sees: docstring descriptions, a pydantic arguments
model and a (strict) JSON schema, plus the mapping back from validated arguments to a call."""

from __future__ import annotations

import copy
import inspect
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, get_origin, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, PydanticUserError, create_model

from orchestrator.errors import ToolError
from orchestrator.toolkit import ToolContext

_GOOGLE_PARAM_SECTIONS = frozenset(
    {"args", "arguments", "parameters", "params", "keyword args", "keyword arguments"}
)
_GOOGLE_SECTIONS = _GOOGLE_PARAM_SECTIONS | frozenset(
    {
        "attributes", "example", "examples", "note", "notes", "raises", "references",
        "return", "returns", "see also", "todo", "warning", "warnings", "yield", "yields",
    }
)  # fmt: skip
_SECTION_HEADER = re.compile(r"^\s*([A-Za-z][A-Za-z ]*):\s*$")
_GOOGLE_ENTRY = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_SPHINX_FIELD = re.compile(r"^:(\w+)((?:\s+[^:]+)?)\s*:\s*(.*)$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Docstring:
    """The parts of a docstring a model is shown."""

    description: str
    """Everything before the first section (`Args:`, `Returns:`, `:param x:` …)."""
    params: Mapping[str, str]
    """Per-argument descriptions from a Google `Args:` section or Sphinx `:param x:` fields."""


def parse_docstring(doc: str | None) -> Docstring:
    """Split a Google- or Sphinx-style docstring into its description and argument descriptions."""
    lines = inspect.cleandoc(doc or "").splitlines()
    description: list[str] = []
    params: dict[str, str] = {}
    index = 0
    while index < len(lines):
        line = lines[index]
        header = _SECTION_HEADER.match(line)
        if header and header.group(1).strip().lower() in _GOOGLE_SECTIONS:
            end = _section_end(lines, index)
            if header.group(1).strip().lower() in _GOOGLE_PARAM_SECTIONS:
                params.update(_google_params(lines[index + 1 : end]))
            index = end
        elif line.startswith(":"):
            params.update(_sphinx_params(lines[index:]))
            break
        else:
            description.append(line)
            index += 1
    return Docstring(description="\n".join(description).strip(), params=params)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _section_end(lines: list[str], header: int) -> int:
    """Index of the first line after the section that starts at `header`."""
    base = _indent(lines[header])
    end = header + 1
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > base):
        end += 1
    return end


def _google_params(body: list[str]) -> dict[str, str]:
    params: dict[str, list[str]] = {}
    entry_indent: int | None = None
    current: list[str] | None = None
    for line in body:
        if not line.strip():
            continue
        match = _GOOGLE_ENTRY.match(line.strip())
        if match and (entry_indent is None or _indent(line) <= entry_indent):
            entry_indent = _indent(line)
            current = params.setdefault(match.group(1), [])
            current.append(match.group(2).strip())
        elif current is not None:
            current.append(line.strip())
    return {name: " ".join(part for part in parts if part) for name, parts in params.items()}


def _sphinx_params(fields: list[str]) -> dict[str, str]:
    params: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in fields:
        match = _SPHINX_FIELD.match(line.strip())
        if match:
            # `:param x:` and `:param int x:` describe x; `:returns:`, `:type x:` … are skipped.
            words = match.group(2).split()
            is_param = match.group(1) in {"param", "parameter", "arg", "argument"} and words
            current = params.setdefault(words[-1], []) if is_param else None
            if current is not None:
                current.append(match.group(3).strip())
        elif current is not None and line.strip():
            current.append(line.strip())
    return {name: " ".join(part for part in parts if part) for name, parts in params.items()}


@dataclass(frozen=True, slots=True, kw_only=True)
class FunctionSchema:
    """How to describe a function to a model and how to call it with validated arguments."""

    description: str
    args_model: type[BaseModel]
    """Validates the model's JSON arguments (`extra="forbid"`, constraints from the hints)."""
    json_schema: Mapping[str, Any]
    """The arguments' JSON schema as sent to the model (strict when the tool is strict)."""
    context_param: str | None
    """The parameter annotated `ToolContext`, injected and never shown to the model."""
    params: tuple[tuple[str, str, bool], ...]
    """(parameter name, model field name, positional-only) in signature order."""

    def call_arguments(
        self, args: BaseModel, ctx: ToolContext
    ) -> tuple[tuple[object, ...], dict[str, object]]:
        """Positional and keyword arguments for one call of the function."""
        positional: list[object] = []
        keywords: dict[str, object] = {}
        for param, field, is_positional in self.params:
            value = ctx if param == self.context_param else getattr(args, field)
            if is_positional:
                positional.append(value)
            else:
                keywords[param] = value
        return tuple(positional), keywords


def function_schema(
    function: Callable[..., object], *, name: str, description: str | None, strict: bool
) -> FunctionSchema:
    """Build the arguments model and JSON schema of `function`.

    Raises:
        ToolError: a parameter cannot be described to a model (no annotation, `*args`, …).
    """
    try:
        hints = get_type_hints(function, include_extras=True)
    except (NameError, TypeError) as exc:
        raise ToolError(
            f"tool {name!r}: cannot resolve the type hints of {function!r} ({exc}); "
            "import the types at module level, not under TYPE_CHECKING or inside a function"
        ) from exc
    doc = parse_docstring(inspect.getdoc(function))
    fields: dict[str, Any] = {}
    params: list[tuple[str, str, bool]] = []
    context_param: str | None = None
    for param in inspect.signature(function).parameters.values():
        annotation = _annotation(name, param, hints)
        is_positional = param.kind is inspect.Parameter.POSITIONAL_ONLY
        if annotation is ToolContext:
            if context_param is not None:
                raise ToolError(f"tool {name!r}: only one parameter may take the ToolContext")
            context_param = param.name
            params.append((param.name, param.name, is_positional))
            continue
        field = _field_name(param.name)
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[field] = (_described(annotation, param.name, doc.params.get(param.name)), default)
        params.append((param.name, field, is_positional))
    model_name = "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name)) + "Args"
    config = ConfigDict(extra="forbid", protected_namespaces=())
    try:
        args_model = create_model(model_name, __config__=config, **fields)
        raw = args_model.model_json_schema()
    except PydanticUserError as exc:  # e.g. a parameter type pydantic cannot validate
        raise ToolError(f"tool {name!r}: cannot build an arguments schema: {exc}") from exc
    return FunctionSchema(
        description=doc.description if description is None else description,
        args_model=args_model,
        json_schema=_strict_for(name, raw) if strict else lax_json_schema(raw),
        context_param=context_param,
        params=tuple(params),
    )


def _annotation(tool: str, param: inspect.Parameter, hints: Mapping[str, Any]) -> Any:
    if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
        raise ToolError(f"tool {tool!r}: *args/**kwargs ({param.name}) cannot be described")
    if param.name not in hints:
        raise ToolError(f"tool {tool!r}: parameter {param.name!r} needs a type annotation")
    return hints[param.name]


def _field_name(param: str) -> str:
    """A model field name for `param` pydantic accepts; the schema still shows `param` (alias).

    Pydantic refuses leading underscores and warns when a field shadows a `BaseModel`
    attribute (`json`, `copy`, `schema`, …); such parameters get a prefixed field name.
    """
    return f"arg{param}" if param.startswith("_") or hasattr(BaseModel, param) else param


def _described(annotation: Any, param: str, doc: str | None) -> Any:
    """`annotation` with the docstring description and alias added ahead of its own metadata.

    Metadata the user wrote (`Annotated[int, Field(description=...)]`, a `Field` default) comes
    later, so pydantic lets it win over the docstring.
    """
    extra: dict[str, Any] = {"description": doc} if doc else {}
    if _field_name(param) != param:
        extra["alias"] = param
    if not extra:
        return annotation
    if get_origin(annotation) is Annotated:
        return Annotated[(annotation.__origin__, Field(**extra), *annotation.__metadata__)]
    return Annotated[annotation, Field(**extra)]


def _strict_for(tool: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return strict_json_schema(schema)
    except ToolError as exc:
        raise ToolError(
            f"tool {tool!r}: {exc}; describe it with a pydantic model or pass strict=False"
        ) from exc


def lax_json_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Pydantic's schema without titles: defaults stay optional and documented with `default`."""
    result = copy.deepcopy(dict(schema))
    _walk(result, lambda node: node.pop("title", None))
    return result


def strict_json_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Rewrite a pydantic JSON schema into the subset OpenAI strict mode accepts.

    The OpenAI Agents SDK approach: every object gets `additionalProperties: false` and lists
    every property in `required`; types are left alone, so a parameter is nullable only when its
    annotation allows None (`int | None = None`). Strict mode rejects the `default` keyword, so
    it is removed and a non-None default is written into the description ("Default: 5.") for the
    model to pass when it has no better value. Titles go, `oneOf` becomes `anyOf`, and a `$ref`
    with sibling keywords is inlined.

    Raises:
        ToolError: the schema has an object with free-form keys, which strict mode cannot express.
    """
    root = copy.deepcopy(dict(schema))
    _walk(root, lambda node: _strict_node(node, root))
    return root


def _walk(node: dict[str, Any], visit: Callable[[dict[str, Any]], object]) -> None:
    """Call `visit` on `node` and every subschema below it, parents first."""
    visit(node)
    for key in ("$defs", "properties"):
        named: dict[str, dict[str, Any]] = node.get(key) or {}
        for child in named.values():
            _walk(child, visit)
    if isinstance(node.get("items"), dict):
        _walk(node["items"], visit)
    for key in ("anyOf", "allOf", "prefixItems"):
        children: list[dict[str, Any]] = node.get(key) or []
        for child in children:
            _walk(child, visit)


def _strict_node(node: dict[str, Any], root: Mapping[str, Any]) -> None:
    node.pop("title", None)
    if "default" in node:
        default = node.pop("default")
        if default is not None:
            note = f"Default: {json.dumps(default)}."
            node["description"] = f"{node['description']} {note}" if "description" in node else note
    if isinstance(node.get("allOf"), list) and len(node["allOf"]) == 1:
        node.update({**node.pop("allOf")[0], **node})
    if "$ref" in node and len(node) > 1:
        target: Any = root
        for part in node.pop("$ref").removeprefix("#/").split("/"):
            target = target[part]
        node.update({**copy.deepcopy(target), **node})
        node.pop("title", None)
    if "oneOf" in node:
        node["anyOf"] = [*node.get("anyOf", []), *node.pop("oneOf")]
    if node.get("type") == "object" or "properties" in node:
        if node.setdefault("additionalProperties", False) is not False:
            # dict[str, X] / free-form objects: strict mode needs every key named up front.
            raise ToolError("strict mode cannot describe an object with arbitrary keys (a dict)")
        node["required"] = list(node.get("properties", {}))
