"""The agent interface: loading agents from entry points, preparing a job, running it to a report."""

from __future__ import annotations

import argparse
from pathlib import Path

import anyio

from orchestrator.agent_kit import Agent, AgentJob, load_agents
from orchestrator.agent_run import agent_orchestrator, default_report, run_agent
from orchestrator.cancel import CancelToken
from orchestrator.models import AcceptanceCheck, RunId, RunResult, Usage
from orchestrator.run import EngineConfig
from orchestrator.settings import Settings
from orchestrator.testing import ScriptedModel, answer, plan_reply, task
from orchestrator.testing import leaf_report as report_of
from tests.test_plugins import install_dist
from tests.test_plugins import site as site

_SETTINGS = Settings(shell_sandbox="off")


_PLUGIN = """
from orchestrator.agent_kit import Agent, AgentJob
AGENT = Agent(name="aaa-helper", summary="helps", prepare=lambda args, workdir: AgentJob(goal="g"))
TWIN = Agent(name="aaa-helper", summary="a second helper", prepare=AGENT.prepare)
NOT_AN_AGENT = 42
"""


def test_load_agents_keeps_good_ones_sorted_and_names_each_bad_one(site: Path) -> None:
    install_dist(
        site,
        "zz_plugin",
        _PLUGIN,
        {
            "helper": "zz_plugin:AGENT",
            "twin": "zz_plugin:TWIN",
            "number": "zz_plugin:NOT_AN_AGENT",
            "missing": "zz_no_such_module:AGENT",
        },
        group="orchestrator.agents",
    )
    loaded = load_agents()
    names = [a.name for a in loaded.agents]
    assert names == sorted(names)
    assert {"aaa-helper", "test-fixer"} <= set(names)
    (helper,) = [a for a in loaded.agents if a.name == "aaa-helper"]
    assert helper.summary == "helps"  # the first registered wins
    errors = {e.entry_point: e.error for e in loaded.errors}
    assert errors["twin"] == "duplicate 'aaa-helper'"
    assert errors["number"] == "not an Agent: int"
    assert errors["missing"].startswith("ModuleNotFoundError: ")


async def test_agent_parse_and_job_take_sync_and_async_prepare(tmp_path: Path) -> None:
    def arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--topic", default="x")

    async def later(args: argparse.Namespace, workdir: Path) -> AgentJob:
        return AgentJob(goal=f"{args.topic} in {workdir.name}")

    sync = Agent(
        name="a",
        summary="s",
        prepare=lambda args, wd: AgentJob(goal=args.topic),
        arguments=arguments,
    )
    assert (await sync.job(sync.parse(["--topic", "cats"]), tmp_path)).goal == "cats"
    deferred = Agent(name="b", summary="s", prepare=later, arguments=arguments)
    assert (await deferred.job(deferred.parse(), tmp_path)).goal == f"x in {tmp_path.name}"


async def test_run_agent_with_nothing_to_do_starts_no_run(tmp_path: Path) -> None:
    agent = Agent(
        name="idle",
        summary="s",
        prepare=lambda args, wd: AgentJob(goal="g", nothing_to_do="already done"),
    )
    model = ScriptedModel()
    outcome = await run_agent(agent, agent.parse(), workdir=tmp_path, client=model)
    assert (outcome.ok, outcome.report, outcome.result.status) == (
        True,
        "already done",
        "completed",
    )
    assert model.calls == []


async def test_run_agent_cancelled_while_preparing_runs_nothing(tmp_path: Path) -> None:
    started = anyio.Event()

    async def slow(args: argparse.Namespace, workdir: Path) -> AgentJob:
        started.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    agent = Agent(name="slow", summary="s", prepare=slow)
    token = CancelToken()
    outcome: list[bool] = []

    async def go() -> None:
        done = await run_agent(agent, agent.parse(), workdir=tmp_path, cancel=token)
        outcome.append(done.ok)
        assert done.result.status == "cancelled"
        assert done.report == "cancelled while preparing: nothing ran"

    async with anyio.create_task_group() as tg:
        tg.start_soon(go)
        await started.wait()
        token.cancel()
    assert outcome == [False]


async def test_run_agent_runs_the_job_its_checks_and_writes_the_report(tmp_path: Path) -> None:
    """The job's goal is run with the agent's defaults; its checks run after; the default report
    (answer, then one line per check) is returned and written to `output`."""
    job = AgentJob(
        goal="write a note",
        checks=(AcceptanceCheck(command="true"), AcceptanceCheck(command="false")),
        output=Path("out/report.md"),
    )
    agent = Agent(name="noter", summary="s", prepare=lambda args, wd: job, review="none")
    model = (
        ScriptedModel()
        .script("planner", plan_reply(task("note")))
        .script("worker", report_of("noted"))
        .script("synthesizer", answer("The note is written."))
    )
    outcome = await run_agent(
        agent, agent.parse(), workdir=tmp_path, client=model, settings=_SETTINGS
    )
    model.assert_complete()
    assert outcome.result.status == "completed"
    assert [c.outcome.passed for c in outcome.checks] == [True, False]
    assert not outcome.ok  # a final check failed
    assert outcome.report.startswith("The note is written.")
    assert outcome.report.endswith("Final checks:\n- passed: true\n- FAILED: false")
    assert (tmp_path / "out" / "report.md").read_text() == outcome.report + "\n"


def test_agent_orchestrator_takes_the_agents_planner_tier_unless_given() -> None:
    agent = Agent(
        name="p", summary="s", prepare=lambda a, w: AgentJob(goal="g"), planner_tier="base"
    )
    job = AgentJob(goal="g")
    orch = agent_orchestrator(
        agent, job, workdir=Path("."), client=ScriptedModel(), settings=_SETTINGS
    )
    assert orch._config.planner_tier == "base"  # pyright: ignore[reportPrivateUsage]
    given = EngineConfig(planner_tier="mini")
    orch = agent_orchestrator(
        agent, job, workdir=Path("."), client=ScriptedModel(), settings=_SETTINGS, config=given
    )
    assert orch._config.planner_tier == "mini"  # pyright: ignore[reportPrivateUsage]


def test_default_report_without_checks_is_the_answer() -> None:
    result = RunResult(
        run_id=RunId("r"),
        goal="g",
        status="completed",
        answer="Done.\n",
        plan=None,
        results={},
        usage=Usage(),
    )
    assert default_report(AgentJob(goal="g"), result, ()) == "Done."
