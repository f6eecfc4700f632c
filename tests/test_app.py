"""The composition root's wiring of settings into the built-in tools and the check runner."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from orchestrator import ConfigError, EngineConfig, TierSpec
from orchestrator.app import Orchestrator, default_tools, shell_check
from orchestrator.settings import Settings
from orchestrator.testing import (
    ScriptedModel,
    accept_all,
    answer,
    leaf_report,
    plan_reply,
    task,
)
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


def one_task_model(*, reviewed: bool = True) -> ScriptedModel:
    model = (
        ScriptedModel()
        .script("planner", plan_reply(task("a")))
        .script("worker", leaf_report("did a"))
        .script("synthesizer", answer("done"))
    )
    return model.respond("reviewer", accept_all()) if reviewed else model


async def test_orchestrator_config_reaches_the_engine(tmp_path: Path) -> None:
    ladder = (TierSpec(name="small", model="gpt-5.4-nano"), TierSpec(name="top", model="gpt-5.4"))
    model = one_task_model(reviewed=False)  # review="none": a reviewer call would fail the test
    config = EngineConfig(ladder=ladder, review="none", run_root=Path("elsewhere"))
    orch = Orchestrator(
        client=model, workdir=tmp_path, settings=Settings(plugins=False), config=config
    )

    result = await orch.run("do a")

    assert result.status == "completed"
    assert [c.request.model for c in model.calls] == ["gpt-5.4", "gpt-5.4-nano", "gpt-5.4"]
    assert result.run_dir == str(tmp_path.resolve() / "elsewhere" / result.run_id)
    model.assert_complete()


async def test_orchestrator_explicit_arguments_win_over_config(tmp_path: Path) -> None:
    model = one_task_model()
    orch = Orchestrator(
        client=model,
        workdir=tmp_path,
        settings=Settings(plugins=False),
        config=EngineConfig(review="none"),
        review="all",
    )

    await orch.run("do a")

    assert len(model.calls_for("reviewer")) == 1


async def test_orchestrator_config_left_at_defaults_takes_the_settings(tmp_path: Path) -> None:
    model = one_task_model()
    settings = Settings(plugins=False, run_root=Path("from-settings"))
    orch = Orchestrator(client=model, workdir=tmp_path, settings=settings, config=EngineConfig())

    result = await orch.run("do a")

    assert result.run_dir == str(tmp_path.resolve() / "from-settings" / result.run_id)


async def test_orchestrator_run_dir_is_absolute_for_a_relative_workdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    orch = Orchestrator(client=one_task_model(), settings=Settings(plugins=False))

    result = await orch.run("do a")

    assert result.run_dir is not None
    run_dir = Path(result.run_dir)
    assert run_dir.is_absolute()
    assert run_dir == tmp_path.resolve() / ".orchestrator" / "runs" / result.run_id
    assert orch.workdir == tmp_path.resolve()


def test_orchestrator_otel_setting_adds_an_otel_sink() -> None:
    from orchestrator.otel import OTelSink

    orch = Orchestrator(client=ScriptedModel(), settings=Settings(otel=True, plugins=False))

    assert [type(s) for s in orch.sinks] == [OTelSink]


def test_orchestrator_otel_setting_without_the_extra_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # type: ignore[arg-type]
    monkeypatch.delitem(sys.modules, "orchestrator.otel", raising=False)

    with pytest.raises(ConfigError, match=r"ORCH_OTEL .*pip install 'orchestrator-agents\[otel\]'"):
        Orchestrator(client=ScriptedModel(), settings=Settings(otel=True, plugins=False))


def test_orchestrator_reads_orch_otel_and_orch_plugins_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from orchestrator.otel import OTelSink

    monkeypatch.setenv("ORCH_OTEL", "1")
    monkeypatch.setenv("ORCH_PLUGINS", "0")

    orch = Orchestrator(client=ScriptedModel(), builtin_tools=False)

    assert [type(s) for s in orch.sinks] == [OTelSink]
    assert orch.tools == ()
