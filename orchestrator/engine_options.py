"""Per-backend generation options for the roles (e.g. temperature 0 for a tiny model)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class RoleOptions:
    temperature: float | None = None
    max_output_tokens: int | None = None
    compact: bool = False
    """Smaller output schemas (no acceptance checks, tier hints or estimates; short summaries)
    for models too small to fill the full ones."""
