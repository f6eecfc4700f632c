"""Commands that run other commands: `env`, `timeout`, `xargs`, `find -exec`, `bash -c`, `eval`...

`unwrap` says what such a command runs, so the shell policy can judge the inner command too.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .shell_syntax import Word

Words = tuple[Word, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Inner:
    """The wrapper runs these commands."""

    commands: tuple[Words, ...]
    checks_outer: bool = False
    """The wrapper must be allowed too: it is more than a prefix (`find`, `xargs`, `sudo`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Script:
    """The wrapper runs this text as a shell script (`bash -c`, `eval`, a here-document to `sh`)."""

    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Opaque:
    """The wrapper runs something only known at run time."""

    reason: str


Unwrapped = Inner | Script | Opaque | None


@dataclass(frozen=True, slots=True, kw_only=True)
class _Wrapper:
    valued: frozenset[str] = frozenset()
    """Options whose value is the next word."""
    operands: int = 0
    """Words between the options and the command (timeout's duration, flock's lock file)."""
    transparent: bool = True


def _wrapper(*valued: str, operands: int = 0, transparent: bool = True) -> _Wrapper:
    return _Wrapper(valued=frozenset(valued), operands=operands, transparent=transparent)


_XARGS_VALUED = ("-I", "-n", "-P", "-L", "-d", "-E", "-s", "-a", "--arg-file", "--delimiter")
_WRAPPERS: dict[str, _Wrapper] = {
    "env": _wrapper("-u", "--unset", "-C", "--chdir"),
    "command": _wrapper(),
    "builtin": _wrapper(),
    "exec": _wrapper("-a"),
    "nohup": _wrapper(),
    "setsid": _wrapper(),
    "time": _wrapper("-f", "-o", "--format", "--output"),
    "nice": _wrapper("-n", "--adjustment"),
    "ionice": _wrapper("-c", "-n", "-p", "-P", "-u", "--class", "--classdata"),
    "stdbuf": _wrapper("-i", "-o", "-e", "--input", "--output", "--error"),
    "timeout": _wrapper("-s", "--signal", "-k", "--kill-after", operands=1),
    "busybox": _wrapper(),
    "sudo": _wrapper("-u", "-g", "-p", "-C", "-D", "-h", "-r", "-t", "-U", "-T", transparent=False),
    "doas": _wrapper("-u", "-C", transparent=False),
    "xargs": _wrapper(*_XARGS_VALUED, transparent=False),
    "flock": _wrapper("-w", "-E", "--timeout", operands=1, transparent=False),
    "chroot": _wrapper("--userspec", "--groups", operands=1, transparent=False),
}
_WATCH = _wrapper("-n", "--interval")
_SHELLS = frozenset({"bash", "sh", "dash", "zsh", "ksh", "mksh", "ash"})
_SHELL_VALUED = frozenset({"-o", "+o", "-O", "+O", "--rcfile", "--init-file"})
_FIND_EXEC = frozenset({"-exec", "-execdir", "-ok", "-okdir"})
_GIT_VALUED = frozenset(
    {"-C", "-c", "--git-dir", "--work-tree", "--namespace", "--config-env", "--super-prefix"}
)
_STDIN_ARGS = Word(text="<arguments read from stdin>", is_dynamic=True)


def unwrap(words: Sequence[Word], *, stdin: str | None) -> Unwrapped:
    """What `words` runs besides itself; None when it runs nothing we can see.

    Args:
        words: One simple command, keywords and assignments already stripped.
        stdin: The here-document or here-string fed to it, if any (a script for `sh`).
    """
    program = words[0].text.rsplit("/", 1)[-1]
    if program in _SHELLS:
        return _unwrap_shell(words, stdin=stdin)
    special = _SPECIAL.get(program)
    if special is not None:
        return special(words)
    return _unwrap_wrapper(program, words)


def _unwrap_wrapper(program: str, words: Sequence[Word]) -> Inner | None:
    wrapper = _WRAPPERS.get(program)
    if wrapper is None:
        return None
    rest = _skip_options(words[1:], wrapper)
    if program == "xargs":
        rest = _xargs_command(words, rest)
    if not rest:
        return None
    return Inner(commands=(rest,), checks_outer=not wrapper.transparent)


def _script_of(words: Sequence[Word], what: str) -> Script | Opaque | None:
    """`words` joined into one script, as `eval` and `watch` run them."""
    if any(w.is_dynamic for w in words):
        return Opaque(reason=f"`{what}` of a value only known at run time")
    return Script(text=" ".join(w.text for w in words)) if words else None


def _unwrap_eval(words: Sequence[Word]) -> Unwrapped:
    return _script_of(words[1:], "eval")


def _unwrap_watch(words: Sequence[Word]) -> Unwrapped:
    return _script_of(_skip_options(words[1:], _WATCH), "watch")  # watch runs `sh -c "args"`


def _unwrap_command(words: Sequence[Word]) -> Unwrapped:
    if any(w.text in ("-v", "-V") for w in words[1:]):
        return None  # `command -v x` looks x up without running it
    return _unwrap_wrapper("command", words)


def _unwrap_env(words: Sequence[Word]) -> Unwrapped:
    split = _env_split_string(words)
    return split if split is not None else _unwrap_wrapper("env", words)


def _unwrap_dash_c(words: Sequence[Word]) -> Unwrapped:
    """`flock FILE -c CMD` and `script -c CMD` hand CMD to a shell."""
    for option, value in itertools.pairwise(words):
        if option.text in ("-c", "--command"):
            return _script_of((value,), words[0].text)
    return _unwrap_wrapper(words[0].text.rsplit("/", 1)[-1], words)


def _unwrap_alias(words: Sequence[Word]) -> Unwrapped:
    values = [Word(text=w.text.partition("=")[2], is_dynamic=w.is_dynamic) for w in words[1:]]
    scripts = [v for v in values if v.text or v.is_dynamic]
    if any(v.is_dynamic for v in scripts):
        return Opaque(reason="`alias` of a value only known at run time")
    return Script(text="\n".join(v.text for v in scripts)) if scripts else None


def _unwrap_trap(words: Sequence[Word]) -> Unwrapped:
    args = [w for w in words[1:] if w.text not in ("-p", "-l", "--")]
    if not args or args[0].text in ("", "-"):
        return None
    return _script_of(args[:1], "trap")


def git_subcommand(words: Sequence[Word]) -> int | None:
    """Index of git's subcommand in `words` (after `-C dir`, `-c key=value`, ...), if any."""
    index = 1
    while index < len(words):
        text = words[index].text
        if not text.startswith("-"):
            return index
        index += 2 if text in _GIT_VALUED else 1
    return None


def _skip_options(words: Sequence[Word], wrapper: _Wrapper) -> Words:
    index = 0
    while index < len(words) and words[index].text.startswith("-"):
        text = words[index].text
        index += 1
        if text == "--":
            break
        if text in wrapper.valued:
            index += 1
    while index < len(words) and _is_assignment(words[index]):
        index += 1  # `env NAME=value cmd`
    return tuple(words[index + wrapper.operands :])


def _is_assignment(word: Word) -> bool:
    name, equals, _ = word.text.partition("=")
    return bool(equals) and name.isidentifier() and not word.is_quoted


def _unwrap_shell(words: Sequence[Word], *, stdin: str | None) -> Script | Opaque | None:
    runs_string = False
    index = 1
    while index < len(words) and words[index].text[:1] in ("-", "+") and words[index].text != "--":
        text = words[index].text
        runs_string = runs_string or (not text.startswith("--") and "c" in text[1:])
        index += 2 if text in _SHELL_VALUED else 1
    if index < len(words) and words[index].text == "--":
        index += 1
    if index < len(words):
        if not runs_string:
            return None  # a script file: only an allow rule can vouch for it
        if words[index].is_dynamic:
            return Opaque(reason="the shell runs a script only known at run time")
        return Script(text=words[index].text)
    return Script(text=stdin) if stdin is not None and not runs_string else None


def _unwrap_find(words: Sequence[Word]) -> Inner | None:
    commands: list[Words] = []
    index = 0
    while index < len(words):
        if words[index].text not in _FIND_EXEC:
            index += 1
            continue
        end = index + 1
        while end < len(words) and (words[end].text not in (";", "+") or words[end].is_dynamic):
            end += 1
        # `{}` becomes a file name, which a model can choose: treat it as unknown.
        command = tuple(_dynamic_if(w, "{}") for w in words[index + 1 : end])
        if command:
            commands.append(command)
        index = end + 1
    return Inner(commands=tuple(commands), checks_outer=True) if commands else None


def _unwrap_git(words: Sequence[Word]) -> Opaque | None:
    for before, word in itertools.pairwise(words):
        if before.text == "-c" and (word.is_dynamic or "alias." in word.text or "!" in word.text):
            return Opaque(reason="`git -c` can define an alias that runs any command")
    return None


def _env_split_string(words: Sequence[Word]) -> Script | Opaque | None:
    for index, word in enumerate(words):
        text = word.text
        if text in ("-S", "--split-string") and index + 1 < len(words):
            value = words[index + 1]
        elif text.startswith("--split-string="):
            value = Word(text=text.partition("=")[2], is_dynamic=word.is_dynamic)
        else:
            continue
        if value.is_dynamic:
            return Opaque(reason="`env -S` of a value only known at run time")
        rest = " ".join(w.text for w in words[index + 2 :])
        return Script(text=f"{value.text} {rest}".strip())
    return None


def _xargs_command(words: Sequence[Word], rest: Words) -> Words:
    """The command xargs builds: input replaces the `-I` string, or is appended to the end."""
    replace = _xargs_replace(words[1 : len(words) - len(rest)])
    if replace is not None:
        return tuple(_dynamic_if(w, replace) for w in rest)
    return (*rest, _STDIN_ARGS) if rest else ()


def _xargs_replace(options: Sequence[Word]) -> str | None:
    for index, word in enumerate(options):
        text = word.text
        if text in ("-I", "--replace") and index + 1 < len(options):
            return options[index + 1].text
        if text.startswith("--replace="):
            return text.partition("=")[2] or "{}"
        if text.startswith("-I") and len(text) > 2:
            return text[2:]
        if text == "-i":
            return "{}"
    return None


def _dynamic_if(word: Word, placeholder: str) -> Word:
    if placeholder and placeholder in word.text:
        return Word(text=word.text, is_dynamic=True, is_quoted=word.is_quoted)
    return word


_SPECIAL: dict[str, Callable[[Sequence[Word]], Unwrapped]] = {
    "eval": _unwrap_eval,
    "watch": _unwrap_watch,
    "find": _unwrap_find,
    "git": _unwrap_git,
    "env": _unwrap_env,
    "command": _unwrap_command,
    "flock": _unwrap_dash_c,
    "script": _unwrap_dash_c,
    "alias": _unwrap_alias,
    "trap": _unwrap_trap,
}
