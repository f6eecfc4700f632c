"""The repo-explainer agent end to end on a real multi-package repository: one task per folder
reads it with the real read-only file tools, the report (REPO_MAP.md) quotes what they returned,
and the workspace is left as it was."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from orchestrator.agent_kit import AgentJob
from orchestrator.agent_run import run_agent
from orchestrator.example_agents.repo_explainer import (
    AGENT,
    DEFAULT_OUTPUT,
    READ_ONLY_TOOLS,
    Folder,
    RepoFacts,
    read_top_level,
    report,
    with_folder_tasks,
)
from orchestrator.llm import ModelReply, ModelRequest
from orchestrator.models import (
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
from orchestrator.preview import Accept, EditPlan
from orchestrator.settings import Settings
from orchestrator.testing import (
    ScriptedModel,
    answer,
    leaf_report,
    plan_preview,
    plan_reply,
    task,
    tool_call,
)

FIXTURE = Path(__file__).parent / "fixtures" / "multi_repo"
FOLDERS = {"cart": "cart", "catalog": "catalog", "payments": "payments", "tests": "tests"}
DEFINITIONS = r"^(def|class) \w+"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of the multi-package fixture: the workspace the agent maps."""
    junk = shutil.ignore_patterns("__pycache__", ".pytest_cache")
    return Path(shutil.copytree(FIXTURE, tmp_path / "repo", ignore=junk))


def snapshot(root: Path) -> dict[str, str]:
    """Every file under `root` by its content hash."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def tool_results(request: ModelRequest) -> list[str]:
    return [m.content for m in request.messages if m.role == "tool"]


def folder_mapper(request: ModelRequest) -> ModelReply:
    """A worker for every folder task: list the folder, search its definitions, report both."""
    task_id = request.task_id or ""
    folder = FOLDERS[task_id]
    seen = tool_results(request)
    if not seen:
        return tool_call("list_dir", {"path": folder}, call_id=f"ls-{task_id}")
    if len(seen) == 1:
        args = {"pattern": DEFINITIONS, "path": folder}
        return tool_call("search_text", args, call_id=f"grep-{task_id}")
    files, definitions = seen
    summary = f"{folder} holds {len(files.splitlines())} files."
    report = leaf_report(summary, modules=definitions, entry_points="none", tests="none")
    return ModelReply(text=report.model_dump_json())


def explainer_model() -> ScriptedModel:
    tasks = [task(tid, tools=READ_ONLY_TOOLS) for tid in FOLDERS]
    return (
        ScriptedModel()
        .script("planner", plan_reply(*tasks))
        .respond("worker", folder_mapper)
        .script("synthesizer", answer("shopkit has three packages and a test folder."))
    )


def section(text: str, heading: str) -> str:
    """The body of the `## heading` section of a Markdown text."""
    body = text.split(f"\n{heading}\n", 1)[1]
    return body.split("\n## ", 1)[0]


@pytest.mark.timeout(30)
async def test_repo_explainer_maps_each_package_from_what_the_tools_read(
    repo: Path, tmp_path: Path
) -> None:
    before = snapshot(repo)
    model = explainer_model()

    outcome = await run_agent(
        AGENT,
        AGENT.parse([]),
        workdir=repo,
        client=model,
        settings=Settings(run_root=tmp_path / "runs"),
        plugins=False,
    )

    model.assert_complete()
    assert outcome.result.status == "completed", outcome.report
    written = (repo / DEFAULT_OUTPUT).read_text()
    assert written == outcome.report.rstrip() + "\n"
    # Read-only: the workers were offered the read-only file tools and nothing else, and the
    # only change to the workspace is the report itself.
    offered = {frozenset(d.name for d in r.tools) for r in model.calls_for("worker")}
    assert offered == {frozenset({"read_file", "list_dir", "search_text"})}
    assert snapshot(repo) == before | {DEFAULT_OUTPUT: snapshot(repo)[DEFAULT_OUTPUT]}
    # One section per package (and the tests folder), each holding what its tools returned.
    for task_id, folder in FOLDERS.items():
        heading = f"## {'Folder' if folder == 'tests' else 'Package'} `{folder}`"
        body = section(written, heading)
        listing, definitions = tool_results(model.calls_for("worker", task_id)[-1])
        for line in definitions.strip().splitlines():
            assert line in body
        assert f"{folder} holds {len(listing.splitlines())} files." in body
    assert "\n  - cart/cart.py:6: class Cart:\n" in section(written, "## Package `cart`")
    assert "catalog/products.py:21: def find_product(sku: str) -> Product:" in written
    assert "payments/card.py:4: def luhn_valid(number: str) -> bool:" in written
    # The top level's facts: structure, entry points, how to run and test it.
    assert written.startswith("# Repository map: shopkit\n")
    assert section(written, "## Structure").splitlines()[1:] == [
        "- `cart/` (package): cart holds 3 files.",
        "- `catalog/` (package): catalog holds 3 files.",
        "- `payments/` (package): payments holds 3 files.",
        "- `tests/` (folder): tests holds 3 files.",
        "- `README.md`",
        "- `pyproject.toml`",
    ]
    assert section(written, "## Entry points").splitlines()[1:4] == [
        "- `shopkit-cart` runs `cart.cli:main` (pyproject scripts)",
        "- `shopkit-catalog` runs `catalog.cli:main` (pyproject scripts)",
        "- `python -m payments` (`__main__.py`)",
    ]
    assert "- Test: `python -m pytest`" in section(written, "## How to run and test it")


async def test_repo_explainer_output_goes_where_asked(repo: Path) -> None:
    job = await AGENT.job(AGENT.parse(["--output", "docs/map.md"]), repo)

    assert job.output == Path("docs/map.md")
    assert "`shopkit`" in job.goal
    assert "- cart/ (package) [cart]" in job.context
    assert "Script: shopkit-cart = cart.cli:main" in job.context


def test_read_top_level_maps_src_packages_entry_points_and_skips_junk(tmp_path: Path) -> None:
    for folder in ("src/alpha", "src/beta-two", "docs", ".git", "node_modules", "x.egg-info"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "src" / "alpha" / "__init__.py").write_text("")
    (tmp_path / "src" / "alpha" / "__main__.py").write_text("")
    (tmp_path / "conftest.py").write_text("")
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "demo"\n[project.gui-scripts]\ndemo-gui = "alpha:gui"\n'
        '[project.entry-points."orchestrator.tools"]\nstamp = "alpha:stamp"\n'
    )

    facts = read_top_level(tmp_path)

    assert facts.folders == (
        Folder(path="docs", task_id="docs", kind="folder"),
        Folder(path="src/alpha", task_id="alpha", kind="package"),
        Folder(path="src/beta-two", task_id="beta_two", kind="folder"),
    )
    assert facts.files == ("conftest.py", "pyproject.toml")
    assert facts.scripts == (("demo-gui", "alpha:gui"),)
    assert facts.entry_points == (("orchestrator.tools", "stamp", "alpha:stamp"),)
    assert facts.main_modules == ("alpha",)
    assert facts.test_command == "python -m pytest"


def test_read_top_level_without_pyproject_or_tests(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("not = [toml")
    (tmp_path / "notes.txt").write_text("x")

    facts = read_top_level(tmp_path)

    assert facts.name == tmp_path.name
    assert (facts.folders, facts.scripts, facts.test_command) == ((), (), None)
    assert (tmp_path / "pyproject.toml").unlink() is None
    assert read_top_level(tmp_path).has_pyproject is False


def test_read_top_level_caps_the_folders_given_a_task(tmp_path: Path) -> None:
    for n in range(26):
        (tmp_path / f"d{n:02}").mkdir()

    facts = read_top_level(tmp_path)

    assert len(facts.folders) == 24
    assert facts.unmapped == ("d24", "d25")


def spec(task_id: str, *tools: str) -> TaskSpec:
    return TaskSpec(id=TaskId(task_id), instruction=f"map {task_id}", tools=tools)


FOLDER_A = Folder(path="a", task_id="a", kind="package")
FOLDER_B = Folder(path="src/b", task_id="b", kind="folder")


def test_folder_gate_adds_a_task_for_each_unplanned_folder_and_strips_writing_tools() -> None:
    plan = Plan(goal="g", tasks=(spec("a", "read_file", "shell"),))

    edited = with_folder_tasks(plan, (FOLDER_A, FOLDER_B))

    assert [(t.id, t.tools) for t in edited.tasks] == [
        ("a", ("read_file",)),
        ("b", READ_ONLY_TOOLS),
    ]
    assert "`src/b/`" in edited.tasks[1].instruction


async def test_folder_gate_accepts_a_read_only_plan_covering_every_folder(repo: Path) -> None:
    job = await AGENT.job(AGENT.parse([]), repo)
    assert job.on_plan is not None
    covering = Plan(goal="g", tasks=tuple(spec(t, "list_dir") for t in FOLDERS))
    partial = Plan(goal="g", tasks=(spec("cart", "list_dir"),))

    assert job.on_plan(plan_preview(*covering.tasks, goal="g")) == Accept()
    decision = job.on_plan(plan_preview(*partial.tasks, goal="g"))
    assert isinstance(decision, EditPlan)
    assert [t.id for t in decision.plan.tasks] == ["cart", "catalog", "payments", "tests"]


def test_report_shows_failed_skipped_missing_and_extra_tasks() -> None:
    facts = RepoFacts(
        name="demo",
        folders=(FOLDER_A, FOLDER_B, Folder(path="c", task_id="c", kind="folder")),
        unmapped=("z",),
    )
    results = {
        TaskId("a"): Failed(
            task_id=TaskId("a"), error=ErrorInfo(type="X", message="boom"), tier="t", attempts=1
        ),
        TaskId("b"): Skipped(task_id=TaskId("b"), reason="budget"),
        TaskId("overview"): Succeeded(
            task_id=TaskId("overview"),
            summary="all of it",
            outputs={"note": " "},
            tier="t",
            attempts=1,
        ),
    }
    result = RunResult(
        run_id=RunId("r"),
        goal="g",
        status="partial",
        answer="",
        plan=None,
        results=results,
        usage=Usage(),
    )

    text = report(AgentJob(goal="g", facts={"repo": facts}), result, ())

    assert section(text, "## Structure").splitlines()[1:5] == [
        "- `a/` (package)",
        "- `src/b/` (folder)",
        "- `c/` (folder)",
        "- `z/` (not mapped: too many folders)",
    ]
    assert "No scripts, entry points or `__main__` modules" in text
    assert "The top level shows no install, run or test setup." in text
    assert "_Not mapped: the task failed: boom_" in section(text, "## Package `a`")
    assert "_Not mapped: the task was skipped: budget_" in section(text, "## Folder `src/b`")
    assert "_No task reported on this folder._" in section(text, "## Folder `c`")
    assert "### overview\n\nall of it" in section(text, "## Other findings")
    assert "- **note**: (empty)" in section(text, "## Other findings")
    assert text.endswith("_The run ended partial: some parts may be missing._")
