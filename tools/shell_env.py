"""The environment a model's shell command gets: a small explicit base, never our secrets.

Decision on the allow-list: it passes named variables through even when they look like credentials
(a task may need `GITHUB_TOKEN`), but never an `OPENAI_*` variable. The executor's own API key must
not reach a command the model wrote; naming one is a `ConfigError`. Glob entries (`LC_*`) pass only
variables that do not look like credentials.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping

from orchestrator.errors import ConfigError
from orchestrator.settings import process_environment

BASE_VARIABLES: tuple[str, ...] = (
    "PATH",
    "HOME",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "TERM",
    "TMPDIR",
    "TZ",
    "USER",
    "LOGNAME",
    "SHELL",
)
"""Passed through from our environment when set; everything else is dropped unless allow-listed."""

FIXED_VARIABLES: Mapping[str, str] = {
    "PAGER": "cat",
    "GIT_PAGER": "cat",
    "GIT_TERMINAL_PROMPT": "0",
    "DEBIAN_FRONTEND": "noninteractive",
}
"""Set for every command so that nothing waits for a terminal nobody watches."""

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
RUN_MARKER = "ORCH_SHELL_RUN"
"""Names a per-command token in the child's environment; cleanup kills every process carrying it."""

_SECRET_NAME = re.compile(
    r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|(^|_)AUTH|COOKIE|SESSION|PRIVATE|(^|_)PAT($|_)",
    re.IGNORECASE,
)
_NEVER_PASSED_PREFIX = "OPENAI_"


def looks_secret(name: str) -> bool:
    """Whether a variable name suggests a credential (`*KEY*`, `*TOKEN*`, `*_AUTH*`, `OPENAI_*`)."""
    return name.upper().startswith(_NEVER_PASSED_PREFIX) or bool(_SECRET_NAME.search(name))


def check_allow_list(allow: Iterable[str]) -> tuple[str, ...]:
    """Validate `env_allow` entries once, at construction.

    Raises:
        ConfigError: An entry names or could match an `OPENAI_*` variable.
    """
    entries = tuple(allow)
    for entry in entries:
        if entry.upper().startswith(_NEVER_PASSED_PREFIX):
            raise ConfigError(
                f"env_allow names {entry!r}: OPENAI_* variables never reach model-run commands; "
                "pass the value under another name if a command truly needs it"
            )
    return entries


def child_environment(
    *,
    allow: Iterable[str] = (),
    marker: str | None = None,
    parent: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Build the environment of one command from the base list, the allow-list and fixed settings.

    Args:
        allow: Extra variable names (exact, or globs such as `LC_*`) to pass through.
        marker: A token set as `ORCH_SHELL_RUN` so leftover processes can be found and killed.
        parent: The environment to draw from; our own process environment when None.
    """
    entries = check_allow_list(allow)
    source = process_environment() if parent is None else dict(parent)
    exact = {e for e in entries if not _is_glob(e)}
    globs = [e for e in entries if _is_glob(e)]
    env: dict[str, str] = {}
    for name, value in source.items():
        if name.upper().startswith(_NEVER_PASSED_PREFIX):
            continue
        listed = name in BASE_VARIABLES or any(fnmatch.fnmatchcase(name, g) for g in globs)
        if name in exact or (listed and not looks_secret(name)):
            env[name] = value
    env.setdefault("PATH", DEFAULT_PATH)
    env.update(FIXED_VARIABLES)
    if marker is not None:
        env[RUN_MARKER] = marker
    return env


def _is_glob(entry: str) -> bool:
    return any(char in entry for char in "*?[")
