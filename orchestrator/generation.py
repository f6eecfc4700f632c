"""Generation options per role and tier (temperature, output cap, reasoning effort): the one
syntax `--gen`, ORCH_GEN and `Settings.generation` share, and its precedence. Pure: no I/O.

An entry is `[SCOPE.]OPTION=VALUE`; entries are separated by commas. SCOPE is a role
(planner, worker, reviewer, synthesizer), a tier name (mini, base, frontier, ...), or
`ROLE@TIER`; no scope means every call. The most specific scope wins:
global < tier < role < role@tier. For the same scope and option, the later entry wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Literal, TypeVar, cast, get_args

from .errors import ConfigError
from .llm import ReasoningEffort, Role

Option = Literal["temperature", "max_output_tokens", "reasoning_effort"]
OPTIONS: tuple[Option, ...] = get_args(Option)
ROLES: tuple[Role, ...] = get_args(Role)
EFFORTS: tuple[ReasoningEffort, ...] = get_args(ReasoningEffort)
SYNTAX = (
    "[SCOPE.]OPTION=VALUE, comma-separated; OPTION: temperature (0-2), max_output_tokens (≥ 1), "
    f"reasoning_effort ({'|'.join(EFFORTS)}); SCOPE: a role ({', '.join(ROLES)}), a tier name, "
    "or ROLE@TIER (e.g. worker.max_output_tokens=1024,temperature=0)"
)
"""The syntax, for error messages and help texts."""
_MAX_TEMPERATURE = 2.0
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True, kw_only=True)
class GenOptions:
    """The generation options of one call (or of one scope); None leaves the server's default."""

    temperature: float | None = None
    max_output_tokens: int | None = None
    reasoning_effort: ReasoningEffort | None = None

    def over(self, base: GenOptions) -> GenOptions:
        """These options, with `base`'s where these are unset."""
        return GenOptions(
            temperature=_first(self.temperature, base.temperature),
            max_output_tokens=_first(self.max_output_tokens, base.max_output_tokens),
            reasoning_effort=_first(self.reasoning_effort, base.reasoning_effort),
        )


@dataclass(frozen=True, slots=True, order=True)
class Scope:
    """Which calls an entry applies to: every call, a tier's, a role's, or a role's on a tier."""

    role: str = ""
    tier: str = ""

    @property
    def rank(self) -> int:
        """Specificity: global 0 < tier 1 < role 2 < role@tier 3."""
        return (2 if self.role else 0) + (1 if self.tier else 0)

    def applies(self, role: Role, tier: str) -> bool:
        return self.role in ("", role) and self.tier in ("", tier)

    def __str__(self) -> str:
        return f"{self.role}@{self.tier}" if self.role and self.tier else self.role or self.tier


@dataclass(frozen=True, slots=True)
class Generation:
    """Generation options by scope; `for_call` resolves what one call gets."""

    scopes: tuple[tuple[Scope, GenOptions], ...] = ()
    """Sorted by scope, one entry per scope."""

    @classmethod
    def parse(cls, spec: str | Mapping[str, object] | Iterable[str], *, source: str) -> Generation:
        """Entries from text (`a=1,b=2`), several texts (repeated flags) or a mapping.

        Raises:
            ConfigError: an entry is malformed; the message names it and `source`.
        """
        if isinstance(spec, str):
            items = _split(spec)
        elif isinstance(spec, Mapping):
            entries = cast(Mapping[str, object], spec)
            items = [(str(key), _text(value)) for key, value in entries.items()]
        else:
            items = [item for text in spec for item in _split(text)]
        merged: dict[Scope, GenOptions] = {}
        for key, value in items:
            scope, option, parsed = _entry(key, value, source)
            merged[scope] = replace(merged.get(scope, GenOptions()), **{option: parsed})
        return cls(tuple(sorted(merged.items())))

    def merged(self, over: Generation) -> Generation:
        """These options with `over`'s on top, option by option and scope by scope."""
        merged = dict(self.scopes)
        for scope, options in over.scopes:
            merged[scope] = options.over(merged.get(scope, GenOptions()))
        return Generation(tuple(sorted(merged.items())))

    def for_call(self, role: Role, tier: str) -> GenOptions:
        """What a call of `role` on `tier` gets, the most specific scope winning per option."""
        resolved = GenOptions()
        applicable = [(s, o) for s, o in self.scopes if s.applies(role, tier)]
        for _, options in sorted(applicable, key=lambda pair: pair[0].rank, reverse=True):
            resolved = resolved.over(options)
        return resolved

    def check_tiers(self, tiers: Iterable[str]) -> None:
        """Raise `ConfigError` when a scope names a tier the ladder does not have."""
        known = tuple(tiers)
        for scope, _ in self.scopes:
            if scope.tier and scope.tier not in known:
                raise ConfigError(
                    f"generation option scope {str(scope)!r} names no tier of the ladder "
                    f"({', '.join(known)}); use one of those names, or a role ({', '.join(ROLES)})"
                )

    def __str__(self) -> str:
        """The entries in the syntax `parse` reads (so they can travel through ORCH_GEN)."""
        out: list[str] = []
        for scope, options in self.scopes:
            prefix = f"{scope}." if scope.rank else ""
            for spec in fields(options):
                value = cast(object, getattr(options, spec.name))
                if value is not None:
                    out.append(f"{prefix}{spec.name}={value}")
        return ",".join(out)


def _split(text: str) -> list[tuple[str, str | None]]:
    items: list[tuple[str, str | None]] = []
    for part in text.split(","):
        if part.strip():
            key, sep, value = part.partition("=")
            items.append((key.strip(), value.strip() if sep else None))
    return items


def _text(value: object) -> str | None:
    if isinstance(value, bool):
        return None
    return str(value) if isinstance(value, str | int | float) else None


def _entry(key: str, value: str | None, source: str) -> tuple[Scope, Option, float | int | str]:
    """(scope, option, value) of one `key=value` entry; `ConfigError` naming it otherwise."""
    shown = key if value is None else f"{key}={value}"

    def bad(problem: str) -> ConfigError:
        return ConfigError(f"bad generation option {shown!r} in {source}: {problem}; {SYNTAX}")

    if value is None:
        raise bad("expected OPTION=VALUE")
    scope_text, _, option = key.rpartition(".")
    if option not in OPTIONS:
        raise bad(f"unknown option {option!r}")
    scope = _scope(scope_text)
    if scope is None:
        raise bad(f"bad scope {scope_text!r}")
    parsed = _value(option, value)
    if parsed is None:
        raise bad(f"bad value {value!r} for {option}")
    return scope, option, parsed


def _scope(text: str) -> Scope | None:
    if not text:
        return Scope()
    role, at, tier = text.partition("@")
    if at:
        return Scope(role=role, tier=tier) if role in ROLES and _is_name(tier) else None
    if text in ROLES:
        return Scope(role=text)
    return Scope(tier=text) if _is_name(text) else None


def _is_name(text: str) -> bool:
    return bool(text) and not any(c.isspace() or c in ".@=," for c in text)


def _value(option: Option, text: str) -> float | int | str | None:
    if option == "reasoning_effort":
        return text if text in EFFORTS else None
    try:
        number = float(text) if option == "temperature" else int(text)
    except ValueError:
        return None
    if option == "temperature":
        return number if 0.0 <= number <= _MAX_TEMPERATURE else None
    return number if number >= 1 else None


def _first(value: _T | None, fallback: _T | None) -> _T | None:
    return fallback if value is None else value
