"""`split_commands` on the corners of bash syntax: comments, continuations, quoting inside
expansions, arithmetic, here-documents at the end of the line, and incomplete lines."""

from __future__ import annotations

import pytest

from orchestrator.tools.shell_syntax import (
    Redirect,
    ShellSyntaxError,
    SimpleCommand,
    Word,
    split_commands,
)


def _texts(command: str) -> list[list[str]]:
    """The words of each simple command in `command`, as text."""
    return [[word.text for word in simple.words] for simple in split_commands(command)]


@pytest.mark.parametrize(
    ("command", "texts"),
    [
        ("echo hi # rm -rf /", [["echo", "hi"]]),
        ("# rm -rf /\nls", [["ls"]]),
        ("echo a#b", [["echo", "a#b"]]),
        ("ec\\\nho hi", [["echo", "hi"]]),
        ("x=`echo \\$HOME`", [["echo", "$HOME"], ["x=`...`"]]),
        ('echo "`id -u`"', [["id", "-u"], ["echo", "`...`"]]),
        ("echo $((1 + $(id -u)))", [["id", "-u"], ["echo", "$((...))"]]),
        ("echo $((1 + 2))", [["echo", "$((...))"]]),
    ],
    ids=[
        "comment_after_words",
        "comment_line",
        "hash_inside_word",
        "line_continuation",
        "backslash_in_backticks",
        "backticks_in_double_quotes",
        "substitution_in_arithmetic",
        "plain_arithmetic",
    ],
)
def test_split_commands_finds_every_command(command: str, texts: list[list[str]]) -> None:
    assert _texts(command) == texts


def test_split_commands_escaped_dollar_in_double_quotes_is_literal() -> None:
    assert split_commands('echo "\\$HOME costs \\"1\\""') == (
        SimpleCommand(
            words=(Word(text="echo"), Word(text='$HOME costs "1"', is_quoted=True)),
        ),
    )


@pytest.mark.parametrize("command", ["echo $", "echo a$/b", 'echo "$"'], ids=["end", "slash", "dq"])
def test_split_commands_lone_dollar_is_a_literal(command: str) -> None:
    (simple,) = split_commands(command)

    assert not simple.words[1].is_dynamic
    assert "$" in simple.words[1].text


@pytest.mark.parametrize(
    ("command", "texts"),
    [
        ("echo ${x:-'}'}", [["echo", "${...}"]]),
        ('echo ${x:-"}"} done', [["echo", "${...}", "done"]]),
        ("echo ${x:-${y}} done", [["echo", "${...}", "done"]]),
        ("echo ${x:-$(id)}", [["id"], ["echo", "${...}"]]),
    ],
    ids=["single_quoted_brace", "double_quoted_brace", "nested_braces", "substitution"],
)
def test_split_commands_parameter_expansion_ends_at_its_own_brace(
    command: str, texts: list[list[str]]
) -> None:
    assert _texts(command) == texts


def test_split_commands_heredoc_without_a_newline_has_an_empty_body() -> None:
    (simple,) = split_commands("cat <<EOF")

    assert simple.redirects == (Redirect(operator="<<", target=Word(text="EOF"), body="\n"),)


def test_split_commands_heredoc_without_its_delimiter_runs_to_the_end() -> None:
    (simple,) = split_commands("cat <<EOF\nline 1\nline 2")

    assert simple.redirects[0].body == "line 1\nline 2\n"


def test_split_commands_scans_an_expanding_heredoc_for_substitutions() -> None:
    assert _texts("cat <<EOF\n$(id)\nEOF\n") == [["cat"], ["id"]]


def test_split_commands_quoted_heredoc_delimiter_does_not_expand() -> None:
    assert _texts("cat <<'EOF'\n$(id)\nEOF\n") == [["cat"]]


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("echo " + "$(" * 40 + ")" * 40, "substitutions are nested too deeply"),
        ("echo $'abc", "unclosed $'...'"),
        ("echo > > out", "redirection '>' has no target"),
        ("echo ${x", "unclosed {"),
        ("echo ${x:-'}", "unclosed {"),
        ("echo $((1 + 2)", "unclosed ("),
        ("echo `ls", "unclosed backtick"),
        ('echo "abc', "unclosed double quote"),
    ],
    ids=[
        "too_deep",
        "ansi_c_quote",
        "redirect_without_target",
        "brace",
        "quote_in_brace",
        "arithmetic",
        "backtick",
        "double_quote",
    ],
)
def test_split_commands_rejects_an_incomplete_line(command: str, message: str) -> None:
    with pytest.raises(ShellSyntaxError) as caught:
        split_commands(command)

    assert str(caught.value) == message
