"""Keeping credentials in: redacting them from text we print or store, hiding them from children.

`redact` is pure and cheap enough for every log line. `protect_process_secrets` is the one function
here with effects: it wipes keys from the memory that `/proc/<pid>/environ` shows and makes this
process non-dumpable, so that an unsandboxed child cannot read them back from us.
"""

from __future__ import annotations

import ctypes
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import cast

MARKER = "[REDACTED]"
"""What every redacted value becomes; no pattern matches it, so redaction is idempotent."""
MIN_SECRET_LENGTH = 8
"""Shorter known values are not replaced: they would blank ordinary words and numbers."""

_NOT_MARKER = r"(?!\[REDACTED\])"
_VALUE = _NOT_MARKER + r"""[^\s"'\\,;&)}\]<>]+"""
"""A header or field value: stops at quotes (also JSON-escaped ones), so JSON stays valid."""
_QUOTE = r"""\\?["']"""
_SCHEMES = r"(?:bearer|basic|token|digest|bot|apikey|key)"
_FIELDS = (
    r"api[_-]?key|(?:access|secret|private)[_-]key|(?:access|auth|refresh|bearer)[_-]?token"
    r"|client[_-]?secret|[_-]token|[_-]secret|password|passwd"
)
_CREDENTIAL = re.compile(
    # The lookahead lists every alternative's first character: it rejects most positions at once,
    # which makes the scan about four times faster than trying each alternative everywhere.
    r"(?=[aAbBcCgpPrRsS_-])(?:"
    # `Authorization: Bearer x` in any quoting (header echo, Python repr, JSON, escaped JSON).
    rf"(?P<header>(?i:(?:proxy-)?authorization)(?P<hq>{_QUOTE})?[ \t]*[:=][ \t]*(?(hq){_QUOTE}|"
    rf"(?:{_QUOTE})?)(?:(?i:{_SCHEMES})[ \t]+)?+){_VALUE}"
    # `api_key=x`, `"api_key": "x"`, `OPENAI_API_KEY=x`, `x-api-key: x`, `GITHUB_TOKEN=x`, ...
    # A quoted name needs a quoted value, so JSON numbers and booleans are left alone.
    rf"|(?P<field>(?i:{_FIELDS})(?P<fq>{_QUOTE})?[ \t]*[:=][ \t]*(?(fq){_QUOTE}|)){_VALUE}"
    rf"|(?P<bearer>(?i:\bbearer)[ \t]+){_NOT_MARKER}[A-Za-z0-9._~+/=-]{{8,}}"
    # Key formats: OpenAI / Anthropic (sk-, sk-proj-, sk-ant-), GitHub, AWS access key ids.
    r"|(?<![A-Za-z0-9])(?:sk-[A-Za-z0-9_-]{16,}|gh[pousr]_[A-Za-z0-9]{30,}"
    r"|github_pat_[A-Za-z0-9_]{30,}|AKIA[0-9A-Z]{16}(?![0-9A-Z])))"
)
_HINTS = ("authoriz", "bearer", "key", "token", "secret", "passw", "sk-", "akia", "github_pat")
"""Lower-case substrings one of which every pattern match contains: text without any skips the
regex (a `str.find` per hint is several times cheaper than running the alternation)."""
_GITHUB_HINTS = ("ghp_", "gho_", "ghu_", "ghs_", "ghr_")
"""GitHub token prefixes, checked case-sensitively (lower-case `gh` is too common to hint)."""

_ENV_FIELDS = (50, 51)
"""1-based fields of /proc/self/stat holding the start and end of the initial environment block."""
_PR_SET_DUMPABLE = 4


class Redactor:
    """Redacts a fixed set of known secret values, then everything that looks like a credential."""

    __slots__ = ("_known",)

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        """Remember the known values worth replacing (long enough, and not inside the marker)."""
        usable = {s for s in secrets if len(s) >= MIN_SECRET_LENGTH and s not in MARKER}
        # Longest first, so a secret that contains another is replaced whole.
        self._known: tuple[str, ...] = tuple(sorted(usable, key=len, reverse=True))

    @property
    def known(self) -> tuple[str, ...]:
        """The exact values replaced, longest first."""
        return self._known

    def __call__(self, text: str) -> str:
        """`text` with every known secret and credential-looking value replaced by `MARKER`."""
        for secret in self._known:
            if secret in text:
                text = text.replace(secret, MARKER)
        return redact_patterns(text)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with the given secret values and anything that looks like a credential redacted.

    Covers `Authorization:` header echoes and `Bearer` tokens, `api_key=`/`"api_key": "..."`-style
    fields (also `*_TOKEN`, `*_SECRET`, `password`), and key formats (`sk-...`, `sk-proj-...`,
    GitHub and AWS ids). Idempotent: `redact(redact(t)) == redact(t)`.
    """
    return Redactor(secrets)(text)


def redact_patterns(text: str) -> str:
    """Pattern-only redaction, for sinks that know no secret values; fast on ordinary text."""
    if not has_hint(text):
        return text
    return _CREDENTIAL.sub(_replace, text)


def redact_data(value: object, redactor: Callable[[str], str] = redact_patterns) -> object:
    """`value` with `redactor` (by default the patterns) applied to every string in it.

    For JSON-like data (dicts, lists, tuples; their types are kept). Redacting the data rather
    than its JSON text matters: in the text, an escape such as `\\n` right before a key hides it.
    """
    if isinstance(value, str):
        return redactor(value)
    if isinstance(value, dict):
        items = cast("dict[object, object]", value).items()
        return {key: redact_data(item, redactor) for key, item in items}
    if isinstance(value, list | tuple):
        elements = cast("list[object] | tuple[object, ...]", value)
        redacted = [redact_data(item, redactor) for item in elements]
        return tuple(redacted) if isinstance(value, tuple) else redacted
    return value


def has_hint(text: str) -> bool:
    """Whether `text` contains something a credential pattern could match (cheap pre-check)."""
    lowered = text.lower()
    return any(hint in lowered for hint in _HINTS) or any(h in text for h in _GITHUB_HINTS)


def _replace(match: re.Match[str]) -> str:
    kept = match.group("header") or match.group("field") or match.group("bearer") or ""
    return kept + MARKER


def protect_process_secrets(names: Iterable[str]) -> None:
    """Make the named variables' values unreadable by this process's children (Linux; else no-op).

    Without a sandbox, a model-run command can read `/proc/<our pid>/environ` (the environment we
    were started with, still in our memory) and `/proc/<our pid>/mem`. This wipes the named values
    from that block in place, drops them from the C-level environment (children started without
    an explicit `env` no longer inherit them), and marks the process non-dumpable, which denies
    both files to every process without CAP_SYS_PTRACE. `os.environ` keeps its copy, so settings
    read later still work. A step that is impossible here is skipped; this never raises.
    """
    if not sys.platform.startswith("linux"):
        return
    wanted = frozenset(names)
    _wipe_initial_environment(wanted)
    for name in wanted:
        os.unsetenv(name)
    _set_non_dumpable()


def value_ranges(block: bytes, names: frozenset[str]) -> Iterator[tuple[int, int]]:
    """(offset, length) of each named variable's value in a NUL-separated environment block."""
    offset = 0
    for entry in block.split(b"\0"):
        name, sep, value = entry.partition(b"=")
        if sep and value and name.decode(errors="replace") in names:
            yield offset + len(name) + 1, len(value)
        offset += len(entry) + 1


def _wipe_initial_environment(names: frozenset[str]) -> None:
    span = _environment_span()
    if span is None:
        return
    start, end = span
    try:
        shown = Path("/proc/self/environ").read_bytes()
    except OSError:
        return
    # Write only where the kernel says the block is, and only after checking that those bytes are
    # exactly what /proc shows: a wrong address would corrupt memory instead of failing.
    if not shown or len(shown) != end - start or ctypes.string_at(start, end - start) != shown:
        return
    for offset, length in value_ranges(shown, names):
        ctypes.memset(start + offset, 0, length)


def _environment_span() -> tuple[int, int] | None:
    try:
        stat = Path("/proc/self/stat").read_text()
    except OSError:
        return None
    # Field 2 (the command name) may hold spaces and parentheses; fields after it cannot.
    fields = stat.rsplit(")", 1)[-1].split()
    first, last = (index - 3 for index in _ENV_FIELDS)
    try:
        start, end = int(fields[first]), int(fields[last])
    except (IndexError, ValueError):
        return None
    return (start, end) if 0 < start < end else None


def _set_non_dumpable() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return
    zero = ctypes.c_ulong(0)
    prctl(ctypes.c_int(_PR_SET_DUMPABLE), zero, zero, zero, zero)
