"""`protect_process_secrets` where a step is impossible: it skips the step, never raises, and never
writes memory it has not checked. Memory writes are recorded here, not made."""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

import pytest

from orchestrator import secrets
from orchestrator.secrets import protect_process_secrets

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

_PR_GET_DUMPABLE = 3

Writes = list[tuple[int, int]]


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> Writes:
    """Every `memset(address, 0, length)` the wipe asks for, recorded instead of done."""
    recorded: Writes = []

    def record(address: int, value: int, length: int) -> None:
        assert value == 0
        recorded.append((address, length))

    monkeypatch.setattr(secrets.ctypes, "memset", record)
    return recorded


def fake_proc(monkeypatch: pytest.MonkeyPatch, files: dict[str, str | bytes | None]) -> None:
    """Serve these /proc files (None: unreadable); every other path is the real one."""

    class _Path(type(Path())):
        def read_text(self, *args: object, **kwargs: object) -> str:
            content = files.get(str(self), self)
            if content is self:
                return super().read_text()
            if not isinstance(content, str):
                raise PermissionError(13, "Permission denied", str(self))
            return content

        def read_bytes(self) -> bytes:
            content = files.get(str(self), self)
            if content is self:
                return super().read_bytes()
            if not isinstance(content, bytes):
                raise PermissionError(13, "Permission denied", str(self))
            return content

    monkeypatch.setattr(secrets, "Path", _Path)


def stat_line(start: int | str, end: int | str, *, fields: int = 52) -> str:
    """A /proc/self/stat line of `fields` fields; the environment's (50, 51) are `start`, `end`."""
    rest = ["0"] * (fields - 2)  # after the pid and the command name
    if fields >= 51:
        rest[47], rest[48] = str(start), str(end)
    return "1234 (tricky ) name) " + " ".join(rest) + "\n"


def dumpable() -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.prctl(ctypes.c_int(_PR_GET_DUMPABLE), 0, 0, 0, 0))


def test_the_real_environment_block_is_found_and_only_named_values_are_wiped(
    writes: Writes,
) -> None:
    """Control for the tests below: on this machine the block checks out and the wipe targets
    exactly the named value (recorded, not written)."""
    span = secrets._environment_span()  # pyright: ignore[reportPrivateUsage]
    assert span is not None
    start, end = span
    shown = Path("/proc/self/environ").read_bytes()
    assert len(shown) == end - start
    name, _, value = shown.split(b"\0")[0].partition(b"=")
    secrets._wipe_initial_environment(frozenset({name.decode(), "NOT_SET_ANYWHERE"}))  # pyright: ignore[reportPrivateUsage]
    assert writes == [(start + len(name) + 1, len(value))]
    assert Path("/proc/self/environ").read_bytes() == shown  # nothing was written


@pytest.mark.parametrize(
    "stat",
    [None, stat_line(1, 2, fields=40), stat_line("x", "y"), stat_line(9, 9)],
    ids=["unreadable", "old-kernel", "not-numbers", "empty-span"],
)
def test_no_environment_span_means_no_wipe(
    monkeypatch: pytest.MonkeyPatch, writes: Writes, stat: str | None
) -> None:
    fake_proc(monkeypatch, {"/proc/self/stat": stat})
    assert secrets._environment_span() is None  # pyright: ignore[reportPrivateUsage]
    secrets._wipe_initial_environment(frozenset({"HOME", "PATH"}))  # pyright: ignore[reportPrivateUsage]
    assert writes == []


@pytest.mark.parametrize(
    "environ",
    [None, b"", b"HOME=/root\0"],
    ids=["unreadable", "empty", "other-length"],
)
def test_an_environment_block_that_does_not_check_out_is_left_alone(
    monkeypatch: pytest.MonkeyPatch, writes: Writes, environ: bytes | None
) -> None:
    """The kernel's addresses are trusted only when /proc shows exactly that many bytes there."""
    fake_proc(
        monkeypatch, {"/proc/self/stat": stat_line(4096, 8192), "/proc/self/environ": environ}
    )
    assert secrets._environment_span() == (4096, 8192)  # pyright: ignore[reportPrivateUsage]
    secrets._wipe_initial_environment(frozenset({"HOME"}))  # pyright: ignore[reportPrivateUsage]
    assert writes == []


class _NoPrctl:
    """A C library without `prctl` (not Linux's)."""


@pytest.mark.parametrize(
    "cdll",
    [OSError("no libc"), _NoPrctl()],
    ids=["no-libc", "no-prctl"],
)
def test_non_dumpable_is_skipped_without_prctl(
    monkeypatch: pytest.MonkeyPatch, cdll: OSError | _NoPrctl
) -> None:
    before = dumpable()

    def load(name: str | None, use_errno: bool = False) -> _NoPrctl:
        if isinstance(cdll, OSError):
            raise cdll
        return cdll

    monkeypatch.setattr(secrets.ctypes, "CDLL", load)
    secrets._set_non_dumpable()  # pyright: ignore[reportPrivateUsage]
    monkeypatch.undo()
    assert dumpable() == before


def test_protection_is_a_no_op_off_linux(monkeypatch: pytest.MonkeyPatch, writes: Writes) -> None:
    monkeypatch.setenv("ORCH_TEST_SECRET", "sk-not-really-a-key-0000")
    monkeypatch.setattr(secrets.sys, "platform", "darwin")
    before = dumpable()
    protect_process_secrets(["ORCH_TEST_SECRET"])
    libc = ctypes.CDLL(None)
    libc.getenv.restype = ctypes.c_char_p
    assert libc.getenv(b"ORCH_TEST_SECRET") == b"sk-not-really-a-key-0000"  # still inherited
    assert os.environ["ORCH_TEST_SECRET"] == "sk-not-really-a-key-0000"
    assert (writes, dumpable()) == ([], before)
