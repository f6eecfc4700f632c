"""`unwrap` and `git_subcommand`: what a wrapper command runs, read from its words."""

from __future__ import annotations

import pytest

from orchestrator.tools.shell_syntax import split_commands
from orchestrator.tools.shell_wrappers import (
    Inner,
    Opaque,
    Script,
    Unwrapped,
    git_subcommand,
    unwrap,
)

Shape = tuple[tuple[tuple[str, bool], ...], ...]


def _unwrap(command: str, *, stdin: str | None = None) -> Unwrapped:
    (simple,) = split_commands(command)
    return unwrap(simple.words, stdin=stdin)


def _inner(command: str) -> tuple[Shape, bool]:
    """The inner commands as (text, is_dynamic) pairs, and whether the wrapper is checked too."""
    unwrapped = _unwrap(command)
    assert isinstance(unwrapped, Inner), unwrapped
    shape = tuple(tuple((w.text, w.is_dynamic) for w in words) for words in unwrapped.commands)
    return shape, unwrapped.checks_outer


@pytest.mark.parametrize(
    ("command", "shape", "checks_outer"),
    [
        ("env -- ls -l", ((("ls", False), ("-l", False)),), False),
        ("env -i -u HOME A=1 ls", ((("ls", False),),), False),
        ("command ls -l", ((("ls", False), ("-l", False)),), False),
        ("timeout -s KILL 5 make", ((("make", False),),), False),
        ("flock /tmp/lock make", ((("make", False),),), True),
        ("xargs -I {} rm {}", ((("rm", False), ("{}", True)),), True),
        ("xargs -IF rm F.txt", ((("rm", False), ("F.txt", True)),), True),
        ("xargs --replace=F rm F", ((("rm", False), ("F", True)),), True),
        ("xargs --replace= rm {}", ((("rm", False), ("{}", True)),), True),
        ("xargs -i rm {}", ((("rm", False), ("{}", True)),), True),
        (
            "xargs -n 1 rm",
            ((("rm", False), ("<arguments read from stdin>", True)),),
            True,
        ),
        (
            "find . -exec rm {} \\; -exec ls +",
            ((("rm", False), ("{}", True)), (("ls", False),)),
            True,
        ),
    ],
    ids=[
        "env_double_dash",
        "env_options_and_assignments",
        "command",
        "timeout_operand",
        "flock_without_dash_c",
        "xargs_replace",
        "xargs_joined_replace",
        "xargs_long_replace",
        "xargs_long_replace_default",
        "xargs_dash_i",
        "xargs_appends_stdin",
        "find_two_execs",
    ],
)
def test_unwrap_names_the_inner_commands(command: str, shape: Shape, checks_outer: bool) -> None:
    assert _inner(command) == (shape, checks_outer)


@pytest.mark.parametrize(
    "command",
    [
        "timeout 5",
        "nohup",
        "xargs",
        "xargs -I",
        "command -v ls",
        "command -V ls",
        "script out.log",
        "trap",
        "trap - INT",
        "trap '' INT",
        "alias",
        "find . -exec \\;",
        "find . -name x",
        "bash script.sh",
        "bash",
        "bash -c",
        "git log",
        "ls -l",
    ],
)
def test_unwrap_finds_nothing_run(command: str) -> None:
    assert _unwrap(command) is None


@pytest.mark.parametrize(
    ("command", "text"),
    [
        ("eval 'rm -rf /' now", "rm -rf / now"),
        ("watch -n 1 ls -l", "ls -l"),
        ("flock /tmp/lock -c 'make all'", "make all"),
        ("script -c 'make all' out.log", "make all"),
        ("alias ll='ls -l' la='ls -a'", "ls -l\nls -a"),
        ("trap 'rm x' EXIT", "rm x"),
        ("env -S 'ls -l' /tmp", "ls -l /tmp"),
        ("env --split-string='ls -l'", "ls -l"),
        ("bash -c -- 'echo hi'", "echo hi"),
        ("sh -e -o pipefail -c 'echo hi'", "echo hi"),
    ],
    ids=[
        "eval",
        "watch",
        "flock_dash_c",
        "script_dash_c",
        "alias",
        "trap",
        "env_split_string",
        "env_split_string_joined",
        "shell_double_dash",
        "shell_valued_option",
    ],
)
def test_unwrap_reads_the_script_run(command: str, text: str) -> None:
    assert _unwrap(command) == Script(text=text)


def test_unwrap_shell_reads_its_script_from_a_heredoc() -> None:
    assert _unwrap("sh", stdin="rm -rf /\n") == Script(text="rm -rf /\n")


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        ('eval "$cmd"', "`eval` of a value only known at run time"),
        ("watch $cmd", "`watch` of a value only known at run time"),
        ('alias ll="$cmd"', "`alias` of a value only known at run time"),
        ('env -S "$cmd"', "`env -S` of a value only known at run time"),
        ("env --split-string=$cmd", "`env -S` of a value only known at run time"),
        ('bash -c "$cmd"', "the shell runs a script only known at run time"),
        ("git -c alias.x='!rm -rf /' x", "`git -c` can define an alias that runs any command"),
        ("git -c $opt status", "`git -c` can define an alias that runs any command"),
    ],
    ids=[
        "eval",
        "watch",
        "alias",
        "env_split_string",
        "env_split_string_joined",
        "shell",
        "git_alias",
        "git_dynamic",
    ],
)
def test_unwrap_cannot_know_a_value_set_at_run_time(command: str, reason: str) -> None:
    assert _unwrap(command) == Opaque(reason=reason)


@pytest.mark.parametrize(
    ("command", "index"),
    [
        ("git status", 1),
        ("git -C ../repo -c user.name=x --no-pager push", 6),
        ("git --version", None),
        ("git -C", None),
    ],
    ids=["plain", "global_options", "options_only", "missing_value"],
)
def test_git_subcommand_skips_global_options(command: str, index: int | None) -> None:
    (simple,) = split_commands(command)

    assert git_subcommand(simple.words) == index
