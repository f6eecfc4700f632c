"""The test-fixer agent end to end on a real repository: real pytest, real patches, the real
sandboxed shell, a scripted model; and its parts (JUnit parsing, grouping, plan gate, report)."""

from __future__ import annotations

import filecmp
from collections.abc import Mapping
from pathlib import Path

import anyio
import pytest

from orchestrator.agent_kit import AgentJob, CheckRun
from orchestrator.agent_run import run_agent
from orchestrator.errors import ConfigError
from orchestrator.escalation import EscalationPolicy
from orchestrator.events import AttemptFinished, TaskStarted, WorkspaceMerged
from orchestrator.example_agents.pytest_failures import (
    FailedTest,
    FailureGroup,
    group_failures,
    parse_junit,
    rerun_command,
)
from orchestrator.example_agents.test_fixer import AGENT, addressed, plan_gate, prepare, report
from orchestrator.models import (
    AcceptanceCheck,
    ErrorInfo,
    Failed,
    Plan,
    RunId,
    RunResult,
    Skipped,
    Succeeded,
    TaskId,
    TaskResult,
    TaskSpec,
    TierSpec,
    Unreviewed,
    Usage,
)
from orchestrator.preview import Accept, EditPlan
from orchestrator.settings import Settings
from orchestrator.testing import RecordingSink, ScriptedModel, accept_all, answer, plan_preview
from orchestrator.toolkit import CheckOutcome
from orchestrator.tools.apply_patch import apply_patch
from tests.helpers import fixture_pytest_env

from .buggy_pkg_fixes import (
    FAILING,
    FIXED_MODULES,
    PATCHES,
    SUITE,
    WRONG_PATCH,
    copy_fixture,
    fixer_plan,
    fixing_worker,
)

_SETTINGS = Settings(shell_sandbox="auto")
"""bubblewrap when it works here (as in production), else commands run unisolated."""


async def _suite_passes(repo: Path) -> bool:
    done = await anyio.run_process(SUITE, cwd=repo, check=False, env=fixture_pytest_env())
    return done.returncode == 0


def _changed_files(repo: Path, base: Path) -> set[str]:
    """Files of the fixture the run changed (pytest's and the run's own files left out)."""
    return {
        str(p.relative_to(base))
        for p in base.rglob("*")
        if p.is_file()
        and "__pycache__" not in p.parts
        and not filecmp.cmp(p, repo / p.relative_to(base), shallow=False)
    }


# -- end to end ----------------------------------------------------------------------------------


@pytest.mark.timeout(120)
async def test_test_fixer_turns_the_suite_green_through_three_parallel_tasks(
    tmp_path: Path, scripted: ScriptedModel, sink: RecordingSink
) -> None:
    """Three failure groups, three independent tasks running at once, each fix proven by its
    group's tests in the sandbox; the suite ends green and the report lists the three fixes."""
    repo = copy_fixture(tmp_path)
    assert not await _suite_passes(repo)
    scripted.script("planner", fixer_plan())
    scripted.respond("worker", fixing_worker(together=3))
    scripted.respond("reviewer", accept_all())
    scripted.script("synthesizer", answer("Fixed the failing tests."))

    outcome = await run_agent(
        AGENT,
        AGENT.parse(["--command", SUITE]),
        workdir=repo,
        client=scripted,
        settings=_SETTINGS,
        sinks=[sink],
    )

    assert outcome.result.status == "completed", outcome.report
    assert outcome.ok
    assert await _suite_passes(repo)
    assert [c.outcome.passed for c in outcome.checks] == [True]
    # Three tasks, no deps, each with the check the gate gave it: its group's failing test.
    plan = outcome.result.plan
    assert plan is not None
    assert {t.id: t.deps for t in plan.tasks} == {f"fix_{g}": () for g in FAILING}
    assert {t.id: t.check.command if t.check else None for t in plan.tasks} == {
        f"fix_{g}": f"{SUITE} {node}" for g, node in FAILING.items()
    }
    # Each fix landed in its own module, merged from its task's copy without conflicts.
    merged = {e.task_id: e for e in sink.events if isinstance(e, WorkspaceMerged)}
    assert {tid: e.merged for tid, e in merged.items()} == {
        TaskId(t): (m,) for t, m in FIXED_MODULES.items()
    }
    assert all(not e.conflicts for e in merged.values())
    assert _changed_files(repo, copy_fixture(tmp_path / "base")) == set(FIXED_MODULES.values())
    # They ran in parallel: every task started before any finished its attempt.
    started = [e.at for e in sink.events if isinstance(e, TaskStarted)]
    attempts = [e for e in sink.events if isinstance(e, AttemptFinished)]
    assert len(started) == len(attempts) == 3
    assert max(started) < min(a.at for a in attempts)
    # Each check ran and passed.
    assert all(a.outcome == "done" and a.check_output for a in attempts)
    assert all("1 passed" in (a.check_output or "") for a in attempts)
    assert outcome.report.startswith("test-fixer: 3 of 3 failure group(s) fixed.")
    for group, node in FAILING.items():
        assert f"- {group} ({node}) → task fix_{group} → check passed: `{SUITE} {node}`" in (
            outcome.report
        )
    assert "Not fixed" not in outcome.report
    assert f"Whole suite (`{SUITE}`): passed." in outcome.report


@pytest.mark.timeout(120)
async def test_test_fixer_reports_a_group_whose_fix_fails_its_check(
    tmp_path: Path, scripted: ScriptedModel
) -> None:
    """A patch that does not fix its test fails the task's check: that group is reported not
    fixed, the others fixed, and the outcome is not ok."""
    repo = copy_fixture(tmp_path)
    scripted.script("planner", fixer_plan())
    scripted.respond("worker", fixing_worker({**PATCHES, "fix_g2": WRONG_PATCH}))
    scripted.respond("reviewer", accept_all())
    scripted.script("synthesizer", answer("Fixed two of three."))

    outcome = await run_agent(
        AGENT,
        AGENT.parse(["--command", SUITE]),
        workdir=repo,
        client=scripted,
        settings=_SETTINGS,
        ladder=[TierSpec(name="mini", model="m-mini")],
        policy=EscalationPolicy(max_attempts_per_tier=1),
    )

    assert not outcome.ok
    assert outcome.result.status != "completed"
    assert isinstance(outcome.result.results[TaskId("fix_g2")], Failed)
    assert [c.outcome.passed for c in outcome.checks] == [False]
    assert outcome.report.startswith("test-fixer: 2 of 3 failure group(s) fixed.")
    fixed, unfixed = outcome.report.split("Not fixed:")
    assert "→ task fix_g1 → check passed" in fixed
    assert "→ task fix_g3 → check passed" in fixed
    assert f"- g2 ({FAILING['g2']}) → task fix_g2 failed: CheckFailed: acceptance check" in unfixed
    assert f"Whole suite (`{SUITE}`): FAILED." in unfixed


async def test_test_fixer_spends_nothing_when_the_suite_passes(
    tmp_path: Path, scripted: ScriptedModel
) -> None:
    repo = copy_fixture(tmp_path)
    for patch in PATCHES.values():
        apply_patch(patch, repo)

    outcome = await run_agent(
        AGENT, AGENT.parse(["--command", SUITE]), workdir=repo, client=scripted, settings=_SETTINGS
    )

    assert outcome.ok
    assert outcome.report == f"The test suite passes (`{SUITE}`): nothing to fix."
    assert outcome.result.run_id == ""
    assert outcome.result.usage == Usage()
    assert scripted.calls == []
    assert not (repo / ".orchestrator").exists()
    assert not list(repo.glob(".test-fixer-*.xml"))


# -- prepare ---------------------------------------------------------------------------------------


async def test_prepare_groups_the_failures_by_test_file_and_gates_the_plan(tmp_path: Path) -> None:
    repo = copy_fixture(tmp_path)
    job = await prepare(AGENT.parse(["--command", SUITE]), repo)
    groups: tuple[FailureGroup, ...] = job.facts["groups"]
    assert {g.key: g.node_ids for g in groups} == {g: (n,) for g, n in FAILING.items()}
    assert job.checks == (AcceptanceCheck(command=SUITE, timeout_s=300.0),)
    assert job.nothing_to_do is None
    for group, node in FAILING.items():
        assert (
            f"## {group}: {node.split('::')[0]} (1 failing)\ncheck: `{SUITE} {node}`" in job.context
        )
    assert "assert 0 == 900" in job.context
    assert not list(repo.glob(".test-fixer-*.xml"))  # its report file is gone


async def test_prepare_without_pytest_makes_the_whole_suite_one_group(tmp_path: Path) -> None:
    command = "echo boom; exit 3"
    job = await prepare(AGENT.parse(["--command", command]), tmp_path)
    (group,) = job.facts["groups"]
    assert group.files == ()
    assert "boom" in group.failures[0].traceback
    assert "## g1: the whole suite (1 failing)\ncheck: `echo boom; exit 3`" in job.context


async def test_prepare_refuses_a_command_that_does_not_parse(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not parse"):
        await prepare(AGENT.parse(["--command", "pytest 'unclosed"]), tmp_path)


async def test_prepare_survives_a_pytest_report_that_is_not_xml(tmp_path: Path) -> None:
    """A command that only claims to be pytest writes a report that does not parse: the output
    stands in for it."""
    fake = tmp_path / "pytest"
    fake.write_text(
        "#!/bin/sh\n"
        'for a; do case "$a" in --junitxml=*) echo "not xml" > "${a#--junitxml=}";; esac; done\n'
        "echo failed\nexit 1\n"
    )
    fake.chmod(0o755)
    command = f"{fake} -rf"
    job = await prepare(AGENT.parse(["--command", command]), tmp_path)
    (group,) = job.facts["groups"]
    assert group.key == "g1"
    assert "failed" in group.failures[0].traceback


# -- JUnit parsing and grouping ------------------------------------------------------------------

_JUNIT = """<?xml version="1.0"?><testsuites><testsuite>
<testcase classname="tests.test_a" name="test_ok" file="tests/test_a.py"/>
<testcase classname="tests.test_a.TestK" name="test_p[1-2]" file="tests/test_a.py">
  <failure message="assert 1 == 2">line 1
line 2</failure></testcase>
<testcase classname="" name="tests.test_b" file="tests/test_b.py">
  <error message="collection failure">ImportError</error></testcase>
<testcase classname="pkg.test_c" name="test_x"><failure message="m"/></testcase>
<testcase classname="tests.test_a" name="test_skip" file="tests/test_a.py"><skipped/></testcase>
</testsuite></testsuites>"""


def test_parse_junit_names_failures_errors_classes_and_collection_errors() -> None:
    failures = parse_junit(_JUNIT)
    assert [(f.node_id, f.file, f.message) for f in failures] == [
        ("tests/test_a.py::TestK::test_p[1-2]", "tests/test_a.py", "assert 1 == 2"),
        ("tests/test_b.py", "tests/test_b.py", "collection failure"),
        ("pkg/test_c.py::test_x", "pkg/test_c.py", "m"),
    ]
    assert failures[0].traceback == "line 1\nline 2"
    assert failures[2].traceback == ""


def _failure(file: str, name: str = "t") -> FailedTest:
    return FailedTest(node_id=f"{file}::{name}", file=file, message="", traceback="")


@pytest.mark.parametrize(
    ("max_groups", "expected"),
    [
        pytest.param(8, [("a.py",), ("b.py",), ("c.py",)], id="one-per-file"),
        pytest.param(2, [("a.py",), ("b.py", "c.py")], id="extra-files-join-the-last"),
        pytest.param(0, [("a.py", "b.py", "c.py")], id="at-least-one"),
    ],
)
def test_group_failures_by_test_file(max_groups: int, expected: list[tuple[str, ...]]) -> None:
    failures = [_failure("c.py"), _failure("a.py"), _failure("b.py"), _failure("a.py", "u")]
    groups = group_failures(failures, max_groups=max_groups)
    assert [g.files for g in groups] == expected
    assert [g.key for g in groups] == [f"g{i}" for i in range(1, len(expected) + 1)]
    assert groups[0].node_ids[:2] == ("a.py::t", "a.py::u")


def test_rerun_command_narrows_pytest_only() -> None:
    group = FailureGroup(key="g1", files=("a.py",), failures=(_failure("a.py", "t[x y]"),))
    assert rerun_command("pytest -q", [group]) == "pytest -q 'a.py::t[x y]'"
    assert rerun_command("make test", [group]) == "make test"


# -- the plan gate ---------------------------------------------------------------------------------


def _groups() -> tuple[FailureGroup, ...]:
    return tuple(
        FailureGroup(key=g, files=(n.split("::")[0],), failures=(_failure(*n.split("::")),))
        for g, n in FAILING.items()
    )


def _job(command: str = "pytest") -> AgentJob:
    return AgentJob(goal="fix", facts={"command": command, "groups": _groups()})


def _spec(task_id: str, instruction: str = "fix it", check: str | None = None) -> TaskSpec:
    return TaskSpec(
        id=TaskId(task_id),
        instruction=instruction,
        check=AcceptanceCheck(command=check) if check else None,
    )


def test_addressed_by_group_key_else_by_file() -> None:
    groups = _groups()
    assert addressed(_spec("fix_g2"), groups) == (groups[1],)
    assert addressed(_spec("t", "see tests/test_stock.py"), groups) == (groups[2],)
    assert addressed(_spec("fix_both", "g1 and g3"), groups) == (groups[0], groups[2])
    assert addressed(_spec("msg1", "g10 and g1x"), groups) == ()


def test_plan_gate_gives_each_fix_task_its_groups_tests_as_check() -> None:
    gate = plan_gate("pytest -q", _groups(), timeout_s=30.0)
    own = _spec("fix_g1", check="make check")
    preview = plan_preview(
        own, _spec("fix_g2"), _spec("fix_both", "g1, g3"), _spec("notes"), goal="fix"
    )
    decision = gate(preview)
    assert isinstance(decision, EditPlan)
    checks = {t.id: t.check for t in decision.plan.tasks}
    assert checks == {
        "fix_g1": own.check,
        "fix_g2": AcceptanceCheck(command=f"pytest -q {FAILING['g2']}", timeout_s=30.0),
        "fix_both": AcceptanceCheck(
            command=f"pytest -q {FAILING['g1']} {FAILING['g3']}", timeout_s=30.0
        ),
        "notes": None,
    }
    assert decision.plan.goal == "fix"


def test_plan_gate_accepts_a_plan_whose_fix_tasks_have_checks() -> None:
    gate = plan_gate("pytest", _groups(), timeout_s=30.0)
    assert gate(plan_preview(_spec("fix_g1", check="pytest x"), _spec("notes"))) == Accept()


# -- the report ------------------------------------------------------------------------------------


def _result(*tasks: TaskSpec, results: Mapping[str, TaskResult], run_id: str = "r1") -> RunResult:
    return RunResult(
        run_id=RunId(run_id),
        goal="fix",
        status="partial",
        answer="",
        plan=Plan(goal="fix", tasks=tasks),
        results={TaskId(k): v for k, v in results.items()},
        usage=Usage(),
    )


def test_report_says_why_each_group_was_not_fixed() -> None:
    tasks = (_spec("fix_g1"), _spec("fix_g2", check="pytest x"), _spec("fix_g3", check="y"))
    results: dict[str, TaskResult] = {
        "fix_g1": Succeeded(task_id=TaskId("fix_g1"), summary="", tier="mini", attempts=1),
        "fix_g2": Skipped(task_id=TaskId("fix_g2"), reason="run cancelled"),
    }
    text = report(_job(), _result(*tasks, results=results), ())
    assert text.splitlines() == [
        "test-fixer: 0 of 3 failure group(s) fixed.",
        "",
        "Not fixed:",
        f"- g1 ({FAILING['g1']}) → task fix_g1 succeeded without a check",
        f"- g2 ({FAILING['g2']}) → task fix_g2 skipped: run cancelled",
        f"- g3 ({FAILING['g3']}) → task fix_g3 did not finish",
        "",
        "Whole suite (`pytest`): not run again (the run was cancelled).",
        "Run r1: partial.",
    ]


def test_report_names_unreviewed_failed_and_unaddressed_groups() -> None:
    tasks = (_spec("fix_g1", check="a"), _spec("fix_g2", check="b"))
    results: dict[str, TaskResult] = {
        "fix_g1": Unreviewed(
            task_id=TaskId("fix_g1"), reason="no verdict", summary="", tier="mini", attempts=1
        ),
        "fix_g2": Failed(
            task_id=TaskId("fix_g2"), error=ErrorInfo(type="X", message=""), tier="m", attempts=2
        ),
    }
    check = CheckRun(
        check=AcceptanceCheck(command="pytest"), outcome=CheckOutcome(passed=True, output="")
    )
    text = report(_job(), _result(*tasks, results=results, run_id=""), (check,))
    assert f"- g1 ({FAILING['g1']}) → task fix_g1 unreviewed: no verdict" in text
    assert f"- g2 ({FAILING['g2']}) → task fix_g2 failed: X: " in text
    assert f"- g3 ({FAILING['g3']}) → no task of the plan addressed it" in text
    assert text.endswith("Whole suite (`pytest`): passed.")


def test_report_of_the_whole_suite_group() -> None:
    tail = FailedTest(node_id="", file="", message="the suite failed", traceback="boom")
    job = AgentJob(
        goal="fix",
        facts={
            "command": "make test",
            "groups": (FailureGroup(key="g1", files=(), failures=(tail,)),),
        },
    )
    result = _result(
        _spec("fix_g1", check="make test"),
        results={
            "fix_g1": Succeeded(task_id=TaskId("fix_g1"), summary="", tier="mini", attempts=1)
        },
    )
    text = report(job, result, ())
    assert "- g1 (the whole suite) → task fix_g1 → check passed: `make test`" in text
