"""Which shell commands a model may run: prefix allow / deny rules, approval and a read-only mode.

Rules see every simple command of a line (after `;`, `&&`, `||`, `|`, newlines, `$(...)`, backticks,
wrappers such as `env`, `timeout`, `xargs`, `find -exec` and `bash -c`), so a denied command cannot
hide behind an allowed one. Deny rules and read-only mode guard against mistakes: a determined model
can still write a script and run it, which only an allow-list (or the OS sandbox) stops.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from orchestrator.models import TaskId
from orchestrator.toolkit import ApprovalCallback, ApprovalRequest

from .shell_syntax import Redirect, ShellSyntaxError, Word, split_commands
from .shell_wrappers import Inner, Opaque, Script, git_subcommand, unwrap

DEFAULT_DENY: tuple[str, ...] = (
    "sudo",
    "su",
    "doas",
    "git push",
    "shutdown",
    "reboot",
    "poweroff",
    "halt",
)
"""Prefixes an unattended executor never needs; `ShellTool` denies them unless told otherwise."""

_MAX_DEPTH = 8
_RESERVED = frozenset(
    {"!", "{", "}", "if", "then", "elif", "else", "fi", "do", "done", "while", "until", "esac"}
)
_NOT_A_COMMAND = frozenset({"for", "select", "case"})
_HARMLESS_TARGETS = frozenset({"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty"})
_WRITE_REDIRECTS = frozenset({">", ">>", ">|", "&>", "&>>", "<>", ">&"})
_WRITING_PROGRAMS = frozenset(
    {
        "rm", "rmdir", "mv", "cp", "tee", "touch", "mkdir", "ln", "chmod", "chown", "chgrp",
        "truncate", "dd", "install", "shred", "unlink", "rsync", "patch", "apply_patch", "mkfifo",
    }
)  # fmt: skip
_GIT_WRITES = frozenset(
    {
        "add", "am", "apply", "branch", "checkout", "cherry-pick", "clean", "clone", "commit",
        "fetch", "gc", "init", "merge", "mv", "prune", "pull", "push", "rebase", "reset", "restore",
        "revert", "rm", "stash", "switch", "tag", "update-ref", "worktree",
    }
)  # fmt: skip
_FIND_WRITES = frozenset({"-delete", "-fprint", "-fprintf", "-fls"})
_INSTALLERS = frozenset({"pip", "pip3", "npm", "pnpm", "yarn", "apt", "apt-get", "cargo", "gem"})
_INSTALL_VERBS = frozenset({"install", "uninstall", "add", "remove", "update", "upgrade", "i"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Allowed:
    """The command may run."""

    kind: Literal["allowed"] = "allowed"


@dataclass(frozen=True, slots=True, kw_only=True)
class Denied:
    """The command must not run; `reason` is shown to the model."""

    reason: str
    kind: Literal["denied"] = "denied"


@dataclass(frozen=True, slots=True, kw_only=True)
class NeedsApproval:
    """The command may run only if an approver says yes."""

    reason: str
    kind: Literal["needs_approval"] = "needs_approval"


Decision = Allowed | Denied | NeedsApproval
_ALLOWED = Allowed()


@dataclass(frozen=True, slots=True, kw_only=True)
class ShellPolicy:
    """Prefix rules matched by token: `git push` denies `git push -f`, not `git pushx`."""

    allow: tuple[str, ...] | None = None
    """Prefixes that run without approval; None means any command that is not denied may run."""
    deny: tuple[str, ...] = ()
    """Prefixes that never run, wherever they appear in the line."""
    read_only: bool = False
    """Deny commands that obviously write; the sandbox also mounts the workspace read-only."""
    approval: ApprovalCallback | None = None
    """Asked about `NeedsApproval` commands; when None, the tool context's approver is asked."""

    def decide(self, command: str) -> Decision:
        """Judge one command line without asking anyone."""
        return self._decide_text(command, depth=0)

    async def authorize(
        self,
        command: str,
        *,
        approve: ApprovalCallback | None = None,
        task_id: TaskId | None = None,
    ) -> Allowed | Denied:
        """Judge a command line; settle `NeedsApproval` with our approver, else with `approve`."""
        decision = self.decide(command)
        if not isinstance(decision, NeedsApproval):
            return decision
        callback = self.approval or approve
        if callback is None:
            return Denied(reason=f"{decision.reason}, and no approver is configured")
        request = ApprovalRequest(
            tool="shell",
            summary=command,
            arguments={"command": command, "reason": decision.reason},
            task_id=task_id,
        )
        if await callback(request):
            return _ALLOWED
        return Denied(reason=f"approval refused ({decision.reason})")

    def _decide_text(self, text: str, *, depth: int) -> Decision:
        if depth > _MAX_DEPTH:
            return NeedsApproval(reason="commands are nested too deeply to check")
        try:
            commands = split_commands(text)
        except ShellSyntaxError as exc:
            return NeedsApproval(reason=f"the command cannot be parsed ({exc})")
        decisions: list[Decision] = []
        for simple in commands:
            if self.read_only:
                decisions.extend(_redirect_decision(r) for r in simple.redirects)
            stdin = next((r.body for r in simple.redirects if r.body is not None), None)
            decisions.append(self._decide_words(simple.words, stdin=stdin, depth=depth))
        return combine(decisions)

    def _decide_words(self, words: Sequence[Word], *, stdin: str | None, depth: int) -> Decision:
        words = _strip_keywords(words)
        if not words:
            return _ALLOWED
        if depth > _MAX_DEPTH:
            return NeedsApproval(reason="commands are nested too deeply to check")
        decisions = [self._deny_decision(words)]
        if self.read_only:
            decisions.append(_write_decision(words))
        match unwrap(words, stdin=stdin):
            case Inner(commands=commands, checks_outer=checks_outer):
                decisions += [self._decide_words(c, stdin=None, depth=depth + 1) for c in commands]
                if checks_outer:
                    decisions.append(self._allow_decision(words))
            case Script(text=script):
                decisions.append(self._decide_text(script, depth=depth + 1))
            case Opaque(reason=reason):
                decisions.append(NeedsApproval(reason=reason))
            case None:
                decisions.append(self._allow_decision(words))
        return combine(decisions)

    def _deny_decision(self, words: Sequence[Word]) -> Decision:
        if self.deny and words[0].is_dynamic:
            return NeedsApproval(reason=f"the command `{_show(words)}` is only known at run time")
        for rule in self.deny:
            match _match(shlex.split(rule), words):
                case "yes":
                    return Denied(reason=f"`{_show(words)}` matches the deny rule `{rule}`")
                case "maybe":
                    return NeedsApproval(
                        reason=f"`{_show(words)}` may match the deny rule `{rule}` at run time"
                    )
                case "no":
                    pass
        return _ALLOWED

    def _allow_decision(self, words: Sequence[Word]) -> Decision:
        if self.allow is None or any(_match(shlex.split(r), words) == "yes" for r in self.allow):
            return _ALLOWED
        return NeedsApproval(reason=f"`{_show(words)}` is not on the allow-list")


def combine(decisions: Iterable[Decision]) -> Decision:
    """The strictest of several decisions: any denial wins, then any need for approval."""
    pending: list[str] = []
    for decision in decisions:
        match decision:
            case Denied():
                return decision
            case NeedsApproval(reason=reason):
                pending.append(reason)
            case Allowed():
                pass
    if pending:
        return NeedsApproval(reason="; ".join(dict.fromkeys(pending)))
    return _ALLOWED


def _match(rule: Sequence[str], words: Sequence[Word]) -> Literal["yes", "maybe", "no"]:
    """Whether `words` start with the tokens of `rule`; "maybe" when an expansion decides it."""
    if not rule:
        return "no"
    words = _normalize_git(words)
    for index, token in enumerate(rule):
        if index >= len(words):
            return "no"
        word = words[index]
        if word.is_dynamic:
            return "maybe"
        text = _program(word.text) if index == 0 and "/" not in token else word.text
        if text != token:
            return "no"
    return "yes"


def _normalize_git(words: Sequence[Word]) -> Sequence[Word]:
    """Drop git's global options so `git -C dir push` meets the rule `git push`."""
    if not words or _program(words[0].text) != "git":
        return words
    index = git_subcommand(words)
    return [words[0], *words[index:]] if index is not None else words


def _program(text: str) -> str:
    return text.rsplit("/", 1)[-1]


def _show(words: Sequence[Word]) -> str:
    return " ".join(w.text for w in words)


def _strip_keywords(words: Sequence[Word]) -> Sequence[Word]:
    """Drop reserved words, `function NAME` and `NAME=value` prefixes to reach the command."""
    index = 0
    while index < len(words):
        word = words[index]
        if word.is_quoted:
            break
        if word.text == "function":
            index += 2  # `function f { body; }`: the body follows the name
        elif word.text in _RESERVED or _is_assignment(word.text):
            index += 1
        else:
            break
    rest = words[index:]
    if rest and not rest[0].is_quoted and rest[0].text in _NOT_A_COMMAND:
        return ()  # a `for`/`case` header runs nothing itself; its substitutions were split out
    return rest


def _is_assignment(text: str) -> bool:
    name, equals, _ = text.partition("=")
    name = name.removesuffix("+").split("[", 1)[0]
    return bool(equals) and name.isidentifier()


def _redirect_decision(redirect: Redirect) -> Decision:
    if redirect.operator not in _WRITE_REDIRECTS:
        return _ALLOWED
    target = redirect.target
    if redirect.operator == ">&" and (target.text.isdigit() or target.text == "-"):
        return _ALLOWED
    if not target.is_dynamic and target.text in _HARMLESS_TARGETS:
        return _ALLOWED
    return Denied(reason=f"read-only mode: `{redirect.operator} {target.text}` writes a file")


def _write_decision(words: Sequence[Word]) -> Decision:
    reason = _write_reason(words)
    if reason is None:
        return _ALLOWED
    return Denied(reason=f"read-only mode: `{_show(words)}` {reason}")


def _write_reason(words: Sequence[Word]) -> str | None:
    program = _program(words[0].text)
    options = [w.text for w in words[1:] if w.text.startswith("-") and not w.text.startswith("--")]
    longs = [w.text for w in words[1:] if w.text.startswith("--")]
    if program in _WRITING_PROGRAMS:
        return "writes files"
    if program == "sed" and (_has_switch(options, "i", "efl") or "--in-place" in longs):
        return "edits files in place"
    if program == "perl" and _has_switch(options, "i", "eEMmIdDCx0lF"):
        return "edits files in place"
    if program == "git":
        index = git_subcommand(words)
        if index is not None and index < len(words) and words[index].text in _GIT_WRITES:
            return "changes the repository"
    if program in _INSTALLERS and any(w.text in _INSTALL_VERBS for w in words[1:2]):
        return "installs or removes packages"
    if program == "find" and any(w.text in _FIND_WRITES for w in words):
        return "deletes or writes files"
    return None


def _has_switch(options: Sequence[str], switch: str, takes_rest: str) -> bool:
    """Whether a short-option cluster such as `-ni` holds `switch` before an option with a value."""
    for option in options:
        for letter in option[1:]:
            if letter == switch:
                return True
            if letter in takes_rest:
                break
    return False
