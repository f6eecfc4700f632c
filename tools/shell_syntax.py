"""Reading a bash command line far enough to judge it: simple commands, redirections, substitutions.

Used by `shell_policy`; it never runs anything. It errs towards seeing more commands than bash would
(a quoted `$(...)` in single quotes still counts), never fewer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_SEPARATORS = frozenset(";&|()\n")
_GLOB = frozenset("*?[")
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_SPECIAL_PARAMETERS = frozenset("@*#?-$!0123456789")
_MAX_NESTING = 32
_DOUBLE_QUOTE_ESCAPES = frozenset('$`"\\\n')
# Longest first, so that `>>` is not read as `>`.
_REDIRECT_OPERATORS = (
    *("&>>", "<<<", "<<-"),
    *("&>", ">>", ">|", ">&", "<&", "<>", "<<", "<(", ">("),
    *("<", ">"),
)


class ShellSyntaxError(ValueError):
    """The command line is not complete bash (an unclosed quote, substitution or redirection)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Word:
    """One word after quote removal."""

    text: str
    is_dynamic: bool = False
    """Holds an expansion (`$x`, `$(...)`, a glob, braces) whose value is known at run time only."""
    is_quoted: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Redirect:
    """A redirection such as `> out.txt`, `2>&1` or a here-document."""

    operator: str
    target: Word
    body: str | None = None
    """The text fed to stdin by a here-document (`<<`) or here-string (`<<<`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SimpleCommand:
    """One command bash would run: its words and its redirections."""

    words: tuple[Word, ...]
    redirects: tuple[Redirect, ...] = ()


@dataclass(slots=True)
class _Builder:
    words: list[Word] = field(default_factory=lambda: [])
    redirects: list[Redirect] = field(default_factory=lambda: [])


@dataclass(slots=True)
class _Heredoc:
    builder: _Builder
    index: int
    delimiter: str
    strip_tabs: bool
    expands: bool


def split_commands(command: str) -> tuple[SimpleCommand, ...]:
    """Every simple command in `command`, including those inside substitutions and `$(...)`.

    Raises:
        ShellSyntaxError: When the line is incomplete, so its meaning cannot be known.
    """
    lexer = _Lexer(command, out=[])
    lexer.run(nested=False)
    return tuple(
        SimpleCommand(words=tuple(b.words), redirects=tuple(b.redirects)) for b in lexer.out
    )


class _Lexer:
    """A character scanner over one command string; nested substitutions reuse its output list."""

    def __init__(self, text: str, *, out: list[_Builder], pos: int = 0, depth: int = 0) -> None:
        if depth > _MAX_NESTING:
            raise ShellSyntaxError("substitutions are nested too deeply")
        self.depth = depth
        self.text = text
        self.pos = pos
        self.out = out
        self.current = _Builder()
        self.chars: list[str] = []
        self.has_word = False
        self.is_dynamic = False
        self.is_quoted = False
        self.has_brace = False
        self.pending_operator: str | None = None
        self.heredocs: list[_Heredoc] = []

    def run(self, *, nested: bool) -> int:
        """Scan to the end (nested: to the `)` closing the substitution); return the position."""
        depth = 0
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if nested and char == ")" and depth == 0:
                self._end_command()
                return self.pos + 1
            if char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
            self._step(char)
        if nested:
            raise ShellSyntaxError("unclosed $( ... )")
        self._end_command()
        if self.heredocs:
            self._read_heredocs()
        return self.pos

    def _step(self, char: str) -> None:
        if char in " \t":
            self._end_word()
            self.pos += 1
        elif char == "\n":
            self._end_command()
            self.pos += 1
            self._read_heredocs()
        elif char == "#" and not self.has_word:
            end = self.text.find("\n", self.pos)
            self.pos = len(self.text) if end < 0 else end
        elif char == "\\":
            self._read_backslash()
        elif char == "'":
            self._read_single_quoted()
        elif char == '"':
            self.pos += 1
            self._read_double_quoted(terminator='"')
        elif char == "`":
            self._read_backtick()
        elif char == "$":
            self._read_dollar()
        elif char in "<>":
            self._read_redirect()
        elif char == "&" and self.text.startswith(">", self.pos + 1):
            self._end_word()
            self._read_redirect()
        elif char in _SEPARATORS:
            self._end_command()
            self.pos += 1
        else:
            self._add(char, dynamic=char in _GLOB)
            self.has_brace = self.has_brace or char == "{"
            self.pos += 1

    def _add(self, text: str, *, dynamic: bool = False, quoted: bool = False) -> None:
        self.chars.append(text)
        self.has_word = True
        self.is_dynamic = self.is_dynamic or dynamic
        self.is_quoted = self.is_quoted or quoted

    def _end_word(self) -> None:
        if not self.has_word:
            return
        text = "".join(self.chars)
        braces = self.has_brace and ("," in text or ".." in text)  # `{a,b}`, `{1..3}` expand
        word = Word(text=text, is_dynamic=self.is_dynamic or braces, is_quoted=self.is_quoted)
        self.chars, self.has_word, self.is_dynamic, self.is_quoted = [], False, False, False
        self.has_brace = False
        operator, self.pending_operator = self.pending_operator, None
        if operator is None:
            self.current.words.append(word)
        elif operator in ("<<", "<<-"):
            self.current.redirects.append(Redirect(operator=operator, target=word))
            self.heredocs.append(
                _Heredoc(
                    builder=self.current,
                    index=len(self.current.redirects) - 1,
                    delimiter=word.text,
                    strip_tabs=operator == "<<-",
                    expands=not word.is_quoted,
                )
            )
        else:
            body = word.text if operator == "<<<" else None
            self.current.redirects.append(Redirect(operator=operator, target=word, body=body))

    def _end_command(self) -> None:
        self._end_word()
        if self.pending_operator is not None:
            raise ShellSyntaxError(f"redirection {self.pending_operator!r} has no target")
        if self.current.words or self.current.redirects:
            self.out.append(self.current)
        self.current = _Builder()

    def _read_backslash(self) -> None:
        following = self.text[self.pos + 1 : self.pos + 2]
        if following != "\n":  # a backslash-newline is a line continuation
            self._add(following, quoted=True)
        self.pos += 2

    def _read_single_quoted(self) -> None:
        end = self.text.find("'", self.pos + 1)
        if end < 0:
            raise ShellSyntaxError("unclosed single quote")
        self._add(self.text[self.pos + 1 : end], quoted=True)
        self.pos = end + 1

    def _read_double_quoted(self, *, terminator: str | None) -> None:
        """Read up to `terminator` (None: to the end, as in a here-document body)."""
        self._add("", quoted=terminator is not None)
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == terminator:
                self.pos += 1
                return
            if char == "\\" and self.text[self.pos + 1 : self.pos + 2] in _DOUBLE_QUOTE_ESCAPES:
                self._add(self.text[self.pos + 1])
                self.pos += 2
            elif char == "`":
                self._read_backtick()
            elif char == "$":
                self._read_dollar(in_quotes=True)
            else:
                self._add(char)
                self.pos += 1
        if terminator is not None:
            raise ShellSyntaxError("unclosed double quote")

    def _read_backtick(self) -> None:
        chars: list[str] = []
        pos = self.pos + 1
        while pos < len(self.text) and self.text[pos] != "`":
            if self.text[pos] == "\\" and pos + 1 < len(self.text):
                pos += 1
            chars.append(self.text[pos])
            pos += 1
        if pos >= len(self.text):
            raise ShellSyntaxError("unclosed backtick")
        self._scan_nested("".join(chars))
        self._add("`...`", dynamic=True)
        self.pos = pos + 1

    def _read_dollar(self, *, in_quotes: bool = False) -> None:
        following = self.text[self.pos + 1 : self.pos + 2]
        if self.text.startswith("((", self.pos + 1):  # arithmetic: only its substitutions run
            end = _matching_close(self.text, self.pos + 1, "(", ")")
            self._scan_expansions(self.text[self.pos + 3 : end - 1])
            self._add("$((...))", dynamic=True)
            self.pos = end + 1
        elif following == "(":
            inner = _Lexer(self.text, out=self.out, pos=self.pos + 2, depth=self.depth + 1)
            self.pos = inner.run(nested=True)
            self._add("$(...)", dynamic=True)
        elif following == "{":
            end = _matching_close(self.text, self.pos + 1, "{", "}")
            self._scan_expansions(self.text[self.pos + 2 : end])
            self._add("${...}", dynamic=True)
            self.pos = end + 1
        elif following == "'" and not in_quotes:  # $'...' ANSI-C quoting can spell any command name
            end = self.text.find("'", self.pos + 2)
            if end < 0:
                raise ShellSyntaxError("unclosed $'...'")
            self._add(self.text[self.pos + 2 : end], dynamic=True, quoted=True)
            self.pos = end + 1
        elif following and (following in _NAME_CHARS or following in _SPECIAL_PARAMETERS):
            end = self.pos + 2
            is_name = following in _NAME_CHARS
            while is_name and end < len(self.text) and self.text[end] in _NAME_CHARS:
                end += 1
            self._add(self.text[self.pos : end], dynamic=True)
            self.pos = end
        else:
            self._add("$")
            self.pos += 1

    def _read_redirect(self) -> None:
        if self.chars and "".join(self.chars).isdigit() and not self.is_quoted:
            self.chars, self.has_word = [], False  # `2>`: the digits name a file descriptor
        self._end_word()
        if self.pending_operator is not None:
            raise ShellSyntaxError(f"redirection {self.pending_operator!r} has no target")
        operator = next(op for op in _REDIRECT_OPERATORS if self.text.startswith(op, self.pos))
        self.pos += len(operator)
        if operator in ("<(", ">("):  # process substitution: a nested command list
            inner = _Lexer(self.text, out=self.out, pos=self.pos, depth=self.depth + 1)
            self.pos = inner.run(nested=True)
            self._add(f"{operator}...)", dynamic=True)
            return
        self.pending_operator = operator

    def _scan_nested(self, text: str) -> None:
        _Lexer(text, out=self.out, depth=self.depth + 1).run(nested=False)

    def _scan_expansions(self, text: str) -> None:
        """Find the substitutions in text that bash expands but does not run as a command."""
        if "$" in text or "`" in text:
            _Lexer(text, out=self.out, depth=self.depth + 1)._read_double_quoted(terminator=None)

    def _read_heredocs(self) -> None:
        heredocs, self.heredocs = self.heredocs, []
        for heredoc in heredocs:
            lines: list[str] = []
            while self.pos < len(self.text):
                end = self.text.find("\n", self.pos)
                end = len(self.text) if end < 0 else end
                line = self.text[self.pos : end]
                self.pos = end + 1
                if (line.lstrip("\t") if heredoc.strip_tabs else line) == heredoc.delimiter:
                    break
                lines.append(line)
            body = "\n".join(lines) + "\n"
            if heredoc.expands:
                self._scan_expansions(body)
            old = heredoc.builder.redirects[heredoc.index]
            heredoc.builder.redirects[heredoc.index] = Redirect(
                operator=old.operator, target=old.target, body=body
            )


def _matching_close(text: str, start: int, opening: str, closing: str) -> int:
    """Index of the `closing` that matches the `opening` at `start`, skipping quotes."""
    depth = 0
    pos = start
    quote: str | None = None
    while pos < len(text):
        char = text[pos]
        if quote is not None:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == opening:
            depth += 1
        elif char == closing:
            depth -= 1
            if depth == 0:
                return pos
        pos += 1
    raise ShellSyntaxError(f"unclosed {opening}")
