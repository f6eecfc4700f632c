"""The coder agent end to end on a real package: two module tasks in parallel, each writing its
change and tests with the real apply_patch and proving them with real pytest in the sandboxed
shell, then a final task that runs the whole suite after both."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Awaitable
from pathlib import Path

import anyio
import pytest

from orchestrator.agent_kit import AgentJob, CheckRun
from orchestrator.agent_run import run_agent
from orchestrator.events import TaskStarted, TaskSucceeded, WorkspaceMerged
from orchestrator.example_agents.coder import (
    AGENT,
    DEFAULT_TEST_COMMAND,
    SUITE_TASK,
    changed_files,
    report,
    with_suite_task,
)
from orchestrator.llm import ModelReply, ModelRequest
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
    TaskSpec,
    Usage,
)
from orchestrator.preview import Accept, EditPlan, PlanPreview
from orchestrator.settings import Settings
from orchestrator.testing import (
    RecordingSink,
    ScriptedModel,
    accept_all,
    answer,
    leaf_report,
    plan_preview,
    plan_reply,
    task,
    tool_call,
)
from orchestrator.toolkit import CheckOutcome
from tests.helpers import fixture_pytest_env

FIXTURE = Path(__file__).parent / "fixtures" / "coder_pkg"
PYTEST = f"PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 {sys.executable} -m pytest -q"
"""This interpreter's pytest (not whatever `python` is here) without plugin autoloading (this
venv's plugins take seconds to load, the fixture needs none)."""

PRICING_PATCH = '''\
*** Begin Patch
*** Update File: inventory/pricing.py
@@ def subtotal(lines: list[tuple[int, float]]) -> float:
     """The sum of (quantity, unit price) lines, rounded to cents."""
     return round(sum(line_total(q, p) for q, p in lines), 2)
+
+
+def apply_discount(amount: float, percent: float) -> float:
+    """`amount` reduced by `percent` per cent, rounded to cents."""
+    if not 0 <= percent <= 100:
+        raise ValueError("percent must be between 0 and 100")
+    return round(amount * (100 - percent) / 100, 2)
*** Add File: tests/test_discount.py
+import pytest
+
+from inventory.pricing import apply_discount
+
+
+def test_apply_discount_takes_the_percent_off() -> None:
+    assert apply_discount(19.99, 25) == 14.99
+
+
+def test_apply_discount_rejects_a_percent_over_100() -> None:
+    with pytest.raises(ValueError, match="between 0 and 100"):
+        apply_discount(10.0, 120)
*** End Patch
'''

STOCK_PATCH = '''\
*** Begin Patch
*** Update File: inventory/stock.py
@@ def level(self, sku: str) -> int:
         """How many items of `sku` are on the shelf."""
         return self._levels.get(sku, 0)
+
+    def low_stock(self, threshold: int) -> list[str]:
+        """The SKUs whose quantity is below `threshold`, sorted."""
+        return sorted(sku for sku, level in self._levels.items() if level < threshold)
*** Add File: tests/test_low_stock.py
+from inventory.stock import Stock
+
+
+def test_low_stock_lists_skus_below_the_threshold_sorted() -> None:
+    stock = Stock()
+    stock.add("pear", 2)
+    stock.add("apple", 1)
+    stock.add("plum", 9)
+    assert stock.low_stock(3) == ["apple", "pear"]
*** End Patch
'''


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of the fixture package: the workspace the agent changes."""
    junk = shutil.ignore_patterns("__pycache__", ".pytest_cache", ".benchmarks")
    return Path(shutil.copytree(FIXTURE, tmp_path / "repo", ignore=junk))


class Rendezvous:
    """Holds each module task's first turn until the other's has arrived: they must overlap."""

    def __init__(self, *task_ids: str) -> None:
        self.arrived = {t: anyio.Event() for t in task_ids}

    async def meet(self, task_id: str) -> None:
        self.arrived[task_id].set()
        with anyio.fail_after(10):  # a serial run never gets here for both: fail, do not hang
            for event in self.arrived.values():
                await event.wait()


def module_worker(meeting: Rendezvous, task_id: str, patch: str):
    """The module task's worker: meet the other module task, then patch; then report."""

    async def first(request: ModelRequest) -> ModelReply:
        await meeting.meet(task_id)
        return tool_call("apply_patch", {"patch": patch}, call_id=f"patch-{task_id}")

    return first


def coder_model(meeting: Rendezvous) -> ScriptedModel:
    plan = plan_reply(
        task(
            "pricing",
            tools=["read_file", "apply_patch"],
            check=f"{PYTEST} tests/test_pricing.py tests/test_discount.py",
        ),
        task(
            "stock",
            tools=["read_file", "apply_patch"],
            check=f"{PYTEST} tests/test_stock.py tests/test_low_stock.py",
        ),
        task(SUITE_TASK, "pricing", "stock", tools=["shell"], check=PYTEST),
    )
    return (
        ScriptedModel()
        .script("planner", plan)
        .script(
            "worker",
            module_worker(meeting, "pricing", PRICING_PATCH),
            leaf_report("added apply_discount with tests"),
            task="pricing",
        )
        .script(
            "worker",
            module_worker(meeting, "stock", STOCK_PATCH),
            leaf_report("added Stock.low_stock with tests"),
            task="stock",
        )
        .script(
            "worker",
            tool_call("shell", {"command": PYTEST}, call_id="suite-run"),
            leaf_report("the whole suite passes"),
            task=SUITE_TASK,
        )
        .respond("reviewer", accept_all())
        .script("synthesizer", answer("Added apply_discount and Stock.low_stock, with tests."))
    )


def pytest_in(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q"],
        cwd=repo,
        env=fixture_pytest_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.timeout(60)
async def test_coder_makes_the_change_in_parallel_and_the_suite_runs_last(
    repo: Path, tmp_path: Path
) -> None:
    change = (repo / "CHANGE.md").read_text()
    args = AGENT.parse([change, "--test-command", PYTEST])
    model = coder_model(Rendezvous("pricing", "stock"))
    sink = RecordingSink()

    outcome = await run_agent(
        AGENT,
        args,
        workdir=repo,
        client=model,
        settings=Settings(run_root=tmp_path / "runs"),
        sinks=[sink],
    )

    model.assert_complete()
    assert outcome.result.status == "completed", outcome.report
    assert outcome.ok
    # The files the two module tasks wrote are in the workspace, tests included, and pass.
    assert (
        "def apply_discount(amount: float, percent: float) -> float:"
        in (repo / "inventory" / "pricing.py").read_text()
    )
    assert (
        "def low_stock(self, threshold: int) -> list[str]:"
        in (repo / "inventory" / "stock.py").read_text()
    )
    assert (repo / "tests" / "test_discount.py").is_file()
    assert (repo / "tests" / "test_low_stock.py").is_file()
    suite = pytest_in(repo)
    assert suite.returncode == 0, suite.stdout
    assert "8 passed" in suite.stdout
    # The final task started only after both module tasks were accepted and merged, and its
    # shell run saw both changes: 5 original tests + 3 new ones.
    events = sink.events
    started = {e.task_id: i for i, e in enumerate(events) if isinstance(e, TaskStarted)}
    finished = {e.task_id: i for i, e in enumerate(events) if isinstance(e, TaskSucceeded)}
    merged = {e.task_id: i for i, e in enumerate(events) if isinstance(e, WorkspaceMerged)}
    assert started[TaskId(SUITE_TASK)] > max(finished[TaskId("pricing")], finished[TaskId("stock")])
    assert started[TaskId(SUITE_TASK)] > max(merged[TaskId("pricing")], merged[TaskId("stock")])
    (shell_output,) = [
        m.content
        for r in model.calls_for("worker", SUITE_TASK)
        for m in r.messages
        if m.role == "tool"
    ]
    assert "8 passed" in shell_output
    # The job's own final check is the whole suite, run after the run.
    assert [(c.check.command, c.outcome.passed) for c in outcome.checks] == [(PYTEST, True)]
    # The report lists the files from the run's merges, each task, and the suite's outcome.
    assert f"Suite `{PYTEST}`: passed." in outcome.report
    for line in (
        "- pricing: succeeded (mini): added apply_discount with tests",
        "- suite: succeeded (mini): the whole suite passes",
    ):
        assert line in outcome.report.splitlines(), outcome.report
    files = outcome.report.split("## Files changed\n\n")[1].split("\n\n")[0]
    assert files.splitlines() == [
        "- `inventory/pricing.py` (pricing)",
        "- `inventory/stock.py` (stock)",
        "- `tests/test_discount.py` (pricing)",
        "- `tests/test_low_stock.py` (stock)",
    ]


def test_coder_arguments_default_to_pytest() -> None:
    args = AGENT.parse(["add", "a", "feature"])

    assert args.change == ["add", "a", "feature"]
    assert args.test_command == DEFAULT_TEST_COMMAND


async def test_coder_prepare_lists_sources_and_checks_the_whole_suite(repo: Path) -> None:
    (repo / ".hidden").mkdir()
    (repo / ".hidden" / "secret.py").write_text("x = 1\n")

    job = await AGENT.job(AGENT.parse(["add discounts", "--test-command", "make test"]), repo)

    assert "add discounts" in job.goal
    assert "`make test`" in job.goal
    assert job.checks == (AcceptanceCheck(command="make test", timeout_s=600.0),)
    assert "- inventory/pricing.py" in job.context
    assert "- tests/test_stock.py" in job.context
    assert "secret.py" not in job.context
    assert job.facts == {"change": "add discounts", "test_command": "make test"}


async def test_coder_prepare_caps_the_file_listing(tmp_path: Path) -> None:
    for n in range(205):
        (tmp_path / f"m{n:03}.py").write_text("")

    job = await AGENT.job(AGENT.parse(["x"]), tmp_path)

    assert "- m199.py" in job.context
    assert "m200.py" not in job.context
    assert "... and 5 more" in job.context


def spec(task_id: str, *deps: str, check: str | None = None) -> TaskSpec:
    return TaskSpec(
        id=TaskId(task_id),
        instruction=f"do {task_id}",
        deps=tuple(TaskId(d) for d in deps),
        check=None if check is None else AcceptanceCheck(command=check),
    )


def suite_check(plan: Plan) -> list[tuple[str, tuple[str, ...], str | None]]:
    return [(t.id, t.deps, t.check.command if t.check else None) for t in plan.tasks]


async def gate_decision(preview: PlanPreview):
    job = await AGENT.job(AGENT.parse(["x", "--test-command", "pytest"]), Path("/nonexistent"))
    assert job.on_plan is not None
    decision = job.on_plan(preview)
    assert not isinstance(decision, Awaitable)
    return decision


async def test_coder_gate_accepts_a_plan_whose_final_task_runs_the_suite() -> None:
    preview = plan_preview(spec("a"), spec("b"), spec("all", "a", "b", check="pytest"))

    assert await gate_decision(preview) == Accept()


async def test_coder_gate_adds_a_suite_task_after_every_leaf() -> None:
    """Without a task that all others lead to, a suite task waits for the tasks nothing waits for."""
    preview = plan_preview(spec("a"), spec("b", "a"), spec("c"), spec("suite", check="pytest -x"))

    decision = await gate_decision(preview)

    assert isinstance(decision, EditPlan)
    assert suite_check(decision.plan)[-1] == ("suite_2", ("b", "c", "suite"), "pytest")
    assert decision.plan.tasks[-1].tools == (
        "read_file",
        "list_dir",
        "search_text",
        "apply_patch",
        "shell",
    )
    assert decision.plan.tasks[-1].check == AcceptanceCheck(command="pytest", timeout_s=600.0)


def test_coder_gate_gives_the_final_task_the_suite_as_its_check() -> None:
    """A final task reached through a chain keeps its place; its check becomes the suite."""
    plan = Plan(
        goal="g",
        tasks=(spec("a"), spec("b", "a"), spec("c"), spec("end", "b", "c", check="pytest -k x")),
    )

    edited = with_suite_task(plan, "pytest")

    assert suite_check(edited) == [
        ("a", (), None),
        ("b", ("a",), None),
        ("c", (), None),
        ("end", ("b", "c"), "pytest"),
    ]


def test_coder_gate_on_an_empty_plan_adds_the_suite_task() -> None:
    edited = with_suite_task(Plan(goal="g", tasks=()), "pytest")

    assert suite_check(edited) == [(SUITE_TASK, (), "pytest")]


def result_of(
    *results: Succeeded | Failed | Skipped, plan: Plan | None, run_dir: str | None
) -> RunResult:
    return RunResult(
        run_id=RunId("r1"),
        goal="g",
        status="partial",
        answer="",
        plan=plan,
        results={r.task_id: r for r in results},
        usage=Usage(),
        run_dir=run_dir,
    )


def test_coder_report_names_failed_skipped_and_unrun_tasks_and_shows_the_failing_suite(
    tmp_path: Path,
) -> None:
    plan = Plan(goal="g", tasks=(spec("a"), spec("b"), spec("c"), spec("d")))
    result = result_of(
        Succeeded(task_id=TaskId("a"), summary="did a", tier="mini", attempts=1),
        Failed(
            task_id=TaskId("b"),
            error=ErrorInfo(type="CheckFailed", message="tests failed"),
            tier="frontier",
            attempts=3,
        ),
        Skipped(task_id=TaskId("c"), reason="b failed", blocked_by=TaskId("b")),
        Skipped(task_id=TaskId("extra"), reason="replaced"),
        plan=plan,
        run_dir=str(tmp_path),  # no journal there: no file changes to report
    )
    check = CheckRun(
        check=AcceptanceCheck(command="pytest"),
        outcome=CheckOutcome(passed=False, output="1 failed"),
    )
    job = AgentJob(goal="g", facts={"change": "add x"})

    text = report(job, result, (check,))

    assert text.splitlines()[:4] == [
        "# Coder: add x",
        "",
        "Run: partial.",
        "Suite `pytest`: FAILED.",
    ]
    for line in (
        "(none)",
        "- a: succeeded (mini): did a",
        "- b: failed: tests failed",
        "- c: skipped: b failed",
        "- d: not run",
        "- extra: skipped: replaced",
        "## Suite output: `pytest`",
        "1 failed",
    ):
        assert line in text.splitlines(), text
    assert changed_files(result_of(plan=None, run_dir=None)) == ()


def test_coder_report_without_final_checks_says_the_suite_did_not_run() -> None:
    text = report(AgentJob(goal="the goal"), result_of(plan=None, run_dir=None), ())

    assert text.splitlines()[:4] == ["# Coder: the goal", "", "Run: partial.", "Suite: not run."]
