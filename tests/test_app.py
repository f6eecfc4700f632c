"""The composition root's wiring of settings into the built-in tools and the check runner."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from orchestrator.app import Orchestrator, default_tools, shell_check
from orchestrator.settings import Settings
from orchestrator.testing import ScriptedModel
from orchestrator.tools.sandbox import Sandbox
from orchestrator.tools.shell import ShellTool


def _shell(tools: Iterable[object]) -> ShellTool:
    found = [t for t in tools if isinstance(t, ShellTool)]
    assert len(found) == 1
    return found[0]


@pytest.fixture
def host_only_file() -> Iterator[Path]:
    """A file in the host's /tmp: a sandboxed command sees a private /tmp without it."""
    path = Path("/tmp") / f"orch-host-only-{uuid.uuid4().hex}"
    path.write_text("x")
    yield path
    path.unlink()


def test_orchestrator_shell_sandbox_off_disables_builtin_shell_isolation() -> None:
    orchestrator = Orchestrator(client=ScriptedModel(), settings=Settings(shell_sandbox="off"))

    sandbox = _shell(orchestrator.tools).sandbox

    assert sandbox is not None and not sandbox.is_available
    assert "ORCH_SHELL_SANDBOX=off" in sandbox.status_message


def test_default_tools_detect_the_sandbox_by_default() -> None:
    sandbox = _shell(default_tools()).sandbox

    assert sandbox is not None
    assert sandbox.is_available is Sandbox.detect().is_available


async def test_shell_check_runs_unisolated_when_sandbox_is_off(
    tmp_path: Path, host_only_file: Path
) -> None:
    outcome = await shell_check(
        f"test -e {host_only_file}", tmp_path, 5.0, tmp_path / "run", shell_sandbox="off"
    )

    assert outcome.passed


@pytest.mark.sandbox
async def test_shell_check_is_sandboxed_by_default(tmp_path: Path, host_only_file: Path) -> None:
    if not Sandbox.detect().is_available:
        pytest.skip("bubblewrap is unavailable here")

    outcome = await shell_check(f"test -e {host_only_file}", tmp_path, 5.0, tmp_path / "run")

    assert not outcome.passed
