"""A third-party plugin adds a tool and an agent: examples/plugin_tracker, built and pip-installed
into a directory of its own (nothing touches the project's venv), with its issue tracker's HTTP
API running on loopback. The CLI lists the plugin's agent and tool beside the built-ins, and the
agent, found through its entry point, triages the issues its tool really fetched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .cli_harness import assert_one_error, orchestrator

PLUGIN = Path(__file__).parents[1] / "examples" / "plugin_tracker"

RUN_AGENT = """
import json
import sys
from pathlib import Path

import anyio

from orchestrator import Settings
from orchestrator.agent_kit import load_agents
from orchestrator.agent_run import run_agent
from orchestrator.llm import ModelReply
from orchestrator.testing import ScriptedModel, accept_all, answer, leaf_report, plan_reply, task, tool_call


def triage(request):
    fetched = [m.content for m in request.messages if m.role == "tool"]
    if not fetched:
        return tool_call("list_open_issues", {"label": None}, call_id="fetch")
    issues = json.loads(fetched[0])
    outputs = {
        f"#{i['number']}": ("high" if "bug" in i["labels"] else "low") + f": {i['title']} - {i['body']}"
        for i in issues
    }
    return ModelReply(text=leaf_report(f"triaged {len(issues)} issues", **outputs).model_dump_json())


async def main() -> None:
    loaded = load_agents()
    agent = {a.name: a for a in loaded.agents}["issue-triage"]
    model = (
        ScriptedModel()
        .script("planner", plan_reply(task("triage", tools=["list_open_issues"])))
        .respond("worker", triage)
        .respond("reviewer", accept_all())
        .script("synthesizer", answer("Two bugs first, then the dark mode."))
    )
    workdir = Path(sys.argv[1])
    outcome = await run_agent(
        agent,
        agent.parse(["--output", "TRIAGE.md"]),
        workdir=workdir,
        client=model,
        settings=Settings(run_root=workdir.parent / "runs"),
    )
    model.assert_complete()
    print("RESULT " + json.dumps({
        "status": outcome.result.status,
        "report": outcome.report,
        "offered": sorted({d.name for r in model.calls_for("worker") for d in r.tools}),
        "fetched": [m.content for r in model.calls_for("worker") for m in r.messages if m.role == "tool"],
    }))


anyio.run(main)
"""


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example plugin, built from its source tree and pip-installed into its own directory."""
    target = tmp_path_factory.mktemp("plugin-site")
    pip = [sys.executable, "-m", "pip", "install", "--no-build-isolation", "--no-deps"]
    pip += ["--no-index", "--disable-pip-version-check", "-q", "--target", str(target)]
    done = subprocess.run([*pip, str(PLUGIN)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (target / "tracker_plugin" / "tools.py").is_file()
    return target


@dataclass(frozen=True, slots=True)
class Tracker:
    url: str
    log: Path

    def requests(self) -> list[dict[str, str]]:
        """What reached the server, as its own log says."""
        if not self.log.is_file():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
def tracker(plugin_site: Path, tmp_path: Path) -> Iterator[Tracker]:
    """The plugin's issue tracker, started the way its docs say, on a free loopback port."""
    log = tmp_path / "tracker-requests.jsonl"
    command = [sys.executable, "-m", "tracker_plugin.server", "--port", "0", "--log", str(log)]
    env = {**os.environ, "PYTHONPATH": str(plugin_site)}
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) as server:
        try:
            assert server.stdout is not None
            first = server.stdout.readline().strip()  # printed once the socket listens
            assert first.startswith("serving on http://127.0.0.1:"), first
            yield Tracker(url=first.removeprefix("serving on "), log=log)
        finally:
            server.terminate()


def plugin_env(site: Path, **extra: str) -> dict[str, str]:
    return {"PYTHONPATH": str(site), **extra}


@pytest.mark.timeout(180)
def test_plugin_agent_is_listed_beside_the_built_in_agents(
    plugin_site: Path, tmp_path: Path
) -> None:
    cli = orchestrator("agents", "list", cwd=tmp_path, env=plugin_env(plugin_site))

    assert cli.code == 0, cli.stderr
    assert cli.stderr == ""
    names = [line.split()[0] for line in cli.stdout.splitlines()]
    assert names == ["coder", "issue-triage", "repo-explainer", "test-fixer"]
    assert (
        "issue-triage    Triage the example issue tracker's open issues into a Markdown "
        "report (plugin)." in cli.stdout.splitlines()
    )


@pytest.mark.timeout(180)
def test_plugin_tool_is_listed_from_its_distribution(plugin_site: Path, tmp_path: Path) -> None:
    cli = orchestrator("tools", "list", "--json", cwd=tmp_path, env=plugin_env(plugin_site))

    assert cli.code == 0, cli.stderr
    assert "list_open_issues" in cli.stdout
    assert "orchestrator-tracker-plugin 0.1.0" in cli.stdout


@pytest.mark.timeout(180)
def test_issue_triage_triages_the_open_issues_its_tool_fetched_over_http(
    plugin_site: Path, tracker: Tracker, tmp_path: Path
) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    script = tmp_path / "run_agent.py"
    script.write_text(RUN_AGENT)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ORCH_", "OPENAI_"))}

    done = subprocess.run(
        [sys.executable, str(script), str(workdir)],
        env={**base, **plugin_env(plugin_site, TRACKER_URL=tracker.url)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    out = json.loads(line.removeprefix("RESULT "))
    assert out["status"] == "completed", out["report"]
    # The tool came from the plugin's entry point (the agent has no built-ins) and really
    # called the tracker: the server logged the request and the worker got its JSON.
    assert out["offered"] == ["list_open_issues"]
    assert tracker.requests() == [{"method": "GET", "path": "/issues?state=open"}]
    (fetched,) = out["fetched"]
    assert [i["number"] for i in json.loads(fetched)] == [1, 2, 4]
    # The report holds the three open issues by number (the closed one is not there), and the
    # agent wrote it where --output said.
    report: str = out["report"]
    assert report.splitlines()[0] == "# Issue triage: 3 open issues"
    assert f"Tracker: {tracker.url}" in report
    issues = [x for x in report.splitlines() if x.startswith("- **#")]
    assert issues == [
        "- **#1** high: Checkout crashes on an empty cart - Pressing Pay with nothing in the "
        "cart shows a 500 page.",
        "- **#2** low: Add a dark mode - Several users ask for a dark theme.",
        "- **#4** high: Card payments time out after 30 seconds - The payment provider answers "
        "slowly at peak times; we give up too early.",
    ]
    assert "- triage: triaged 3 issues" in report
    assert (workdir / "TRIAGE.md").read_text() == report.rstrip() + "\n"


def get_json(url: str) -> tuple[int, Any]:
    """The status and JSON body of a GET (JSON is untyped at this edge)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.timeout(180)
def test_tracker_api_filters_by_state_and_label_and_logs_every_request(tracker: Tracker) -> None:
    status, bugs = get_json(f"{tracker.url}/issues?state=all&label=bug")
    _, everything = get_json(f"{tracker.url}/issues?state=all")
    missing, error = get_json(f"{tracker.url}/pulls")

    assert status == 200
    assert [i["number"] for i in bugs] == [1, 4]
    assert [i["state"] for i in everything] == ["open", "open", "closed", "open"]
    assert (missing, error) == (404, {"error": "no such resource: /pulls"})
    assert [r["path"] for r in tracker.requests()] == [
        "/issues?state=all&label=bug",
        "/issues?state=all",
        "/pulls",
    ]


@pytest.mark.timeout(180)
def test_issue_triage_without_a_tracker_url_is_one_error_naming_the_variable(
    plugin_site: Path, tmp_path: Path
) -> None:
    cli = orchestrator("agent", "issue-triage", cwd=tmp_path, env=plugin_env(plugin_site))

    assert_one_error(cli, 2, "TRACKER_URL is not set", "python -m tracker_plugin.server")
