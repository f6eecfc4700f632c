"""Output schemas as each kind of server wants them: OpenAI strict mode, or a grammar-based server.

OpenAI strict mode rejects some keywords (`maxLength`, `minItems`, ...) and wants every property
required; llama.cpp, vLLM and Ollama compile the schema into a grammar that enforces those same
keywords. Pure functions over pydantic's JSON schema; no I/O, no vendor SDK.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import cast

from pydantic import BaseModel

from .llm import JSONValue

STRICT_UNSUPPORTED_KEYWORDS = frozenset(
    {
        "default",
        "discriminator",
        "examples",
        "minLength",
        "maxLength",
        "patternProperties",
        "unevaluatedProperties",
        "propertyNames",
        "minProperties",
        "maxProperties",
        "unevaluatedItems",
        "contains",
        "minContains",
        "maxContains",
        "uniqueItems",
    }
)
"""Keywords OpenAI strict mode rejects; pydantic validates them after the reply instead."""
_SCHEMA_MAPS = frozenset({"properties", "$defs"})
_SCHEMA_LISTS = frozenset({"anyOf", "oneOf", "allOf", "prefixItems"})
_SCHEMA_VALUES = frozenset({"items", "additionalProperties", "not"})


def schema_name(output_type: type[BaseModel]) -> str:
    """A `json_schema` name OpenAI accepts (`^[a-zA-Z0-9_-]{1,64}$`)."""
    return re.sub(r"[^a-zA-Z0-9_-]", "_", output_type.__name__)[:64] or "output"


def output_schema(output_type: type[BaseModel], *, strict: bool) -> dict[str, JSONValue]:
    """The schema to send: OpenAI strict form when `strict`, else the grammar form."""
    return strict_json_schema(output_type) if strict else grammar_json_schema(output_type)


def grammar_json_schema(output_type: type[BaseModel]) -> dict[str, JSONValue]:
    """The model's JSON schema for a grammar-based server, constraints kept.

    `maxLength`, `minLength`, `maxItems`, `minItems`, `pattern`, bounds and enums stay: the
    server's grammar enforces them, which is what keeps a small model's summary short. Optional
    fields stay optional. Objects without an `additionalProperties` rule get `false`, so the
    grammar never spends tokens on keys the model would drop.
    """
    return cast(dict[str, JSONValue], _closed(output_type.model_json_schema()))


def _closed(node: JSONValue) -> JSONValue:
    if isinstance(node, list):
        return [_closed(item) for item in cast(list[JSONValue], node)]
    if not isinstance(node, dict):
        return node
    out: dict[str, JSONValue] = {}
    for key, value in cast(dict[str, JSONValue], node).items():
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            subs = cast(dict[str, JSONValue], value)
            out[key] = {name: _closed(sub) for name, sub in subs.items()}
        elif key in _SCHEMA_LISTS or key in _SCHEMA_VALUES:
            out[key] = _closed(value)
        else:
            out[key] = value
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def strict_json_schema(output_type: type[BaseModel]) -> dict[str, JSONValue]:
    """The model's JSON schema in OpenAI strict form.

    Every object gets `additionalProperties: false` and lists all its properties as required
    (optional fields stay nullable), `oneOf` becomes `anyOf`, a `$ref` with siblings is inlined,
    and keywords strict mode rejects are dropped. `$defs` and plain `$ref` are kept.

    Raises:
        ValueError: the schema has a free-form mapping (a `dict` field), which strict mode
            cannot express.
    """
    schema = output_type.model_json_schema()
    defs = cast(dict[str, JSONValue], schema.get("$defs", {}))
    return cast(dict[str, JSONValue], _strict(schema, defs, "#"))


def _strict(node: JSONValue, defs: Mapping[str, JSONValue], path: str) -> JSONValue:
    if not isinstance(node, dict):
        return node
    out: dict[str, JSONValue] = {}
    for key, value in _flatten(cast(dict[str, JSONValue], node), defs).items():
        here = f"{path}/{key}"
        if key in STRICT_UNSUPPORTED_KEYWORDS:
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            subs = cast(dict[str, JSONValue], value)
            out[key] = {name: _strict(sub, defs, f"{here}/{name}") for name, sub in subs.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            subs_list = cast(list[JSONValue], value)
            name = "anyOf" if key == "oneOf" else key
            out[name] = [_strict(sub, defs, f"{here}/{i}") for i, sub in enumerate(subs_list)]
        elif key in _SCHEMA_VALUES:
            out[key] = _strict(value, defs, here)
        else:
            out[key] = value
    if out.get("type") == "object" or "properties" in out:
        extra = out.get("additionalProperties")
        if "properties" not in out and extra not in (None, False):
            raise ValueError(
                f"{path}: a free-form mapping cannot be expressed in OpenAI strict mode; "
                "use a list of objects with explicit fields instead"
            )
        properties = cast(dict[str, JSONValue], out.setdefault("properties", {}))
        out["required"] = list(properties)
        out["additionalProperties"] = False
    return out


def _flatten(node: dict[str, JSONValue], defs: Mapping[str, JSONValue]) -> dict[str, JSONValue]:
    """Inline a `$ref` that has siblings and a single-entry `allOf`, which strict mode refuses."""
    node = dict(node)
    all_of = node.get("allOf")
    if isinstance(all_of, list) and len(cast(list[JSONValue], all_of)) == 1:
        del node["allOf"]
        node = {**cast(dict[str, JSONValue], cast(list[JSONValue], all_of)[0]), **node}
    ref = node.get("$ref")
    if isinstance(ref, str) and len(node) > 1 and ref.startswith("#/$defs/"):
        target = defs.get(ref.removeprefix("#/$defs/"))
        if isinstance(target, dict):
            del node["$ref"]
            node = {**cast(dict[str, JSONValue], target), **node}
    return node
