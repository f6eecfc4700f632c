"""Shell policy: token-aware prefix rules, smuggling in compound lines, approval, read-only."""

from __future__ import annotations

import pytest

from orchestrator.models import TaskId
from orchestrator.toolkit import ApprovalRequest
from orchestrator.tools.shell_policy import (
    DEFAULT_DENY,
    Allowed,
    Denied,
    NeedsApproval,
    ShellPolicy,
)

DENY_PUSH = ShellPolicy(deny=("git push", "sudo"))
ALLOW_SOME = ShellPolicy(allow=("ls", "cat", "grep", "git status", "pytest", "echo"))
READ_ONLY = ShellPolicy(read_only=True)


@pytest.mark.parametrize(
    "command",
    ["ls", "echo hi", "git status", "git pushx", "git log --grep push", "echo 'git push'"],
)
def test_policy_allows_commands_no_rule_matches(command: str) -> None:
    assert DENY_PUSH.decide(command) == Allowed()


@pytest.mark.parametrize(
    "command",
    [
        "git push",
        "git push origin main",
        "/usr/bin/git push",
        "git -C ../other push",
        "sudo ls",
    ],
    ids=["exact", "longer", "absolute-path", "git-global-option", "single-token-rule"],
)
def test_policy_denies_matching_prefix(command: str) -> None:
    assert isinstance(DENY_PUSH.decide(command), Denied)


@pytest.mark.parametrize(
    "command",
    [
        "ls; git push",
        "ls && git push",
        "false || git push",
        "ls | git push",
        "ls\ngit push",
        "ls & git push",
        "(cd x && git push)",
        "{ ls; git push; }",
        "if true; then git push; fi",
        "echo $(git push)",
        'echo "$(git push)"',
        "echo `git push`",
        "echo ${x:-$(git push)}",
        "cat <(git push)",
        "cat <<EOF\n$(git push)\nEOF",
        "X=1 git push",
        "env A=b git push",
        "timeout 5 git push",
        "nohup git push &",
        "time git push",
        "command git push",
        "bash -c 'ls; git push'",
        "sh -lc 'git push'",
        "eval 'git push'",
        "bash <<'EOF'\ngit push\nEOF",
        "find . -exec git push \\;",
        "g\\it push",
        "'git' push",
        "function f { git push; }; f",
        "f() { git push; }; f",
        "for r in a b; do git push; done",
        "alias p='git push'",
        "trap 'git push' EXIT",
        "watch -n 1 git push",
        "flock /tmp/lock -c 'git push'",
    ],
    ids=[
        "semicolon", "and", "or", "pipe", "newline", "background", "subshell", "group", "if",
        "dollar-paren", "quoted-dollar-paren", "backticks", "parameter-default",
        "process-substitution", "heredoc-expansion", "assignment-prefix", "env", "timeout",
        "nohup", "time", "command-builtin", "bash-c", "sh-lc", "eval", "heredoc-to-shell",
        "find-exec", "backslash", "quotes", "function-keyword", "function-parens", "for-body",
        "alias", "trap", "watch", "flock-c",
    ],
)  # fmt: skip
def test_policy_finds_denied_command_hidden_in_compound_line(command: str) -> None:
    assert isinstance(DENY_PUSH.decide(command), Denied)


@pytest.mark.parametrize(
    "command",
    [
        "X=push; git $X",
        "git {push,status}",
        "$'\\x67it' push",
        "$CMD push",
        "echo push | xargs git",
        "find . -name push -exec git {} \\;",
        "bash -c \"$SCRIPT\"",
        "git -c alias.p='!git push' p",
    ],
    ids=[
        "variable-argument", "brace-expansion", "ansi-c-quoting", "variable-command", "xargs",
        "find-placeholder", "shell-of-variable", "git-alias",
    ],
)  # fmt: skip
def test_policy_asks_when_expansion_may_produce_denied_command(command: str) -> None:
    assert isinstance(DENY_PUSH.decide(command), NeedsApproval)


@pytest.mark.parametrize(
    "command", ["echo 'unclosed", 'echo "unclosed', "echo $(ls", "echo `ls", "ls >"]
)
def test_policy_asks_about_unparseable_commands(command: str) -> None:
    decision = DENY_PUSH.decide(command)

    assert isinstance(decision, NeedsApproval)
    assert "cannot be parsed" in decision.reason


@pytest.mark.parametrize(
    "command",
    ["ls -la", "ls | grep x", "git status --short", "timeout 60 pytest -q", "cat a > b"],
)
def test_policy_allow_list_lets_listed_commands_run(command: str) -> None:
    assert ALLOW_SOME.decide(command) == Allowed()


@pytest.mark.parametrize(
    "command",
    ["rm -rf build", "ls; rm x", "echo $(whoami)", "python -c 1", "git commit", "find . -name x"],
)
def test_policy_allow_list_sends_unlisted_commands_to_approval(command: str) -> None:
    assert isinstance(ALLOW_SOME.decide(command), NeedsApproval)


def test_policy_empty_allow_list_asks_about_everything() -> None:
    assert isinstance(ShellPolicy(allow=()).decide("ls"), NeedsApproval)


def test_policy_deny_wins_over_allow() -> None:
    policy = ShellPolicy(allow=("git",), deny=("git push",))

    assert isinstance(policy.decide("git push"), Denied)


def test_policy_default_deny_blocks_sudo_and_push() -> None:
    policy = ShellPolicy(deny=DEFAULT_DENY)

    assert [isinstance(policy.decide(c), Denied) for c in ("sudo rm x", "git push")] == [True] * 2


@pytest.mark.parametrize(
    "command",
    [
        "ls > out.txt",
        "echo x >> log",
        "cmd &> all.log",
        "rm -rf build",
        "mv a b",
        "cp a b",
        "touch x",
        "cat a | tee b",
        "sed -i s/a/b/ f",
        "sed -ni p f",
        "perl -pi -e s/a/b/ f",
        "git commit -m msg",
        "git -C . add x",
        "pip install requests",
        "find . -delete",
        "find . -exec rm {} +",
        "sudo rm x",
    ],
)
def test_policy_read_only_denies_obvious_writes(command: str) -> None:
    decision = READ_ONLY.decide(command)

    assert isinstance(decision, Denied)
    assert decision.reason.startswith("read-only mode")


@pytest.mark.parametrize(
    "command",
    [
        "ls -la",
        "cat f 2>/dev/null",
        "pytest -q 2>&1 | tail -5",
        "echo err >&2",
        "grep -r '>' .",
        "sed -n 1,5p f",
        "perl -Mstrict -e 1",
        "git log --oneline",
        "git diff",
        "find . -name '*.py'",
    ],
)
def test_policy_read_only_allows_reading(command: str) -> None:
    assert READ_ONLY.decide(command) == Allowed()


async def test_policy_approval_callback_yes_allows() -> None:
    asked: list[ApprovalRequest] = []

    async def approve(request: ApprovalRequest) -> bool:
        asked.append(request)
        return True

    policy = ShellPolicy(allow=("ls",), approval=approve)

    decision = await policy.authorize("rm x", task_id=TaskId("t1"))

    assert decision == Allowed()
    assert [(r.tool, r.summary, r.task_id) for r in asked] == [("shell", "rm x", "t1")]


async def test_policy_approval_callback_no_denies() -> None:
    async def refuse(request: ApprovalRequest) -> bool:
        return False

    decision = await ShellPolicy(allow=("ls",), approval=refuse).authorize("rm x")

    assert isinstance(decision, Denied)
    assert "approval refused" in decision.reason


async def test_policy_uses_context_approver_when_it_has_none() -> None:
    async def approve(request: ApprovalRequest) -> bool:
        return True

    decision = await ShellPolicy(allow=("ls",)).authorize("rm x", approve=approve)

    assert decision == Allowed()


async def test_policy_without_approver_denies_what_needs_approval() -> None:
    decision = await ShellPolicy(allow=("ls",)).authorize("rm x")

    assert isinstance(decision, Denied)
    assert "no approver" in decision.reason


async def test_policy_never_asks_about_denied_commands() -> None:
    async def must_not_be_asked(request: ApprovalRequest) -> bool:
        pytest.fail("a denied command reached the approver")

    decision = await DENY_PUSH.authorize("ls; git push", approve=must_not_be_asked)

    assert isinstance(decision, Denied)
