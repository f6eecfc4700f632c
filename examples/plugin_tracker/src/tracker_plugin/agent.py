"""The `issue-triage` agent: triages the tracker's open issues into a Markdown report.

Its only tool is `list_open_issues`, which reaches the run the way any plugin tool does: through
this distribution's `orchestrator.tools` entry point. Each task reports one output per issue,
named `#<number>`; the report lists them by number, so it holds exactly what the tasks triaged.

Run with: `TRACKER_URL=http://127.0.0.1:PORT orchestrator agent issue-triage`
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from orchestrator import ConfigError, Settings
from orchestrator.agent_kit import Agent, AgentJob, CheckRun
from orchestrator.models import Failed, RunResult, Skipped, Succeeded, Unreviewed

from .tools import tracker_url

GOAL = """\
Triage the open issues of the issue tracker{only}.

Fetch them with the list_open_issues tool{label_arg}; it is the only tool. For every open issue, \
decide a priority (high: broken for users, medium: slows users down, low: nice to have) and \
say why in one sentence, from the issue's title, labels and body.
Report one output per issue, named "#<number>" (e.g. "#12"), with the value \
"<priority>: <title> - <why>". A single task is enough for a short list; split by label for a \
long one.
"""

_ISSUE = re.compile(r"#(\d+)")


def arguments(parser: argparse.ArgumentParser) -> None:
    """An optional label filter and report file."""
    parser.add_argument("--label", default=None, help="only triage issues with this label")
    parser.add_argument(
        "--output", default=None, help="also write the report here (relative to the workdir)"
    )


def prepare(args: argparse.Namespace, workdir: Path) -> AgentJob:
    """The goal; refused early (ConfigError) without the tracker's URL or with plugins off."""
    url = tracker_url()
    if not Settings.from_env().plugins:
        raise ConfigError(
            "issue-triage needs its plugin's tool, and ORCH_PLUGINS=0 leaves plugins out: "
            "unset ORCH_PLUGINS"
        )
    label = None if args.label is None else str(args.label)
    return AgentJob(
        goal=GOAL.format(
            only="" if label is None else f" labelled {label!r}",
            label_arg="" if label is None else f' (label "{label}")',
        ),
        context=f"Issue tracker: {url}",
        output=None if args.output is None else Path(str(args.output)),
        facts={"tracker": url},
    )


def report(job: AgentJob, result: RunResult, checks: tuple[CheckRun, ...]) -> str:
    """Every triaged issue by number, then how each task went."""
    triaged: dict[int, str] = {}
    notes: list[str] = []
    for found in result.results.values():
        match found:
            case (
                Succeeded(summary=summary, outputs=outputs)
                | Unreviewed(summary=summary, outputs=outputs)
            ):
                for name, value in outputs.items():
                    if number := _ISSUE.fullmatch(name.strip()):
                        triaged[int(number.group(1))] = " ".join(value.split())
                notes.append(f"- {found.task_id}: {summary.strip()}")
            case Failed(error=error):
                notes.append(f"- {found.task_id}: failed: {error.message.strip()[:300]}")
            case Skipped(reason=reason):
                notes.append(f"- {found.task_id}: skipped: {reason}")
    lines = [f"# Issue triage: {len(triaged)} open issues", "", f"Tracker: {job.facts['tracker']}"]
    lines += ["", "## Issues", ""]
    lines += [f"- **#{n}** {triaged[n]}" for n in sorted(triaged)] or ["_No issue was triaged._"]
    lines += ["", "## Tasks", "", *notes]
    if result.status != "completed":
        lines += ["", f"_The run ended {result.status}: the list may be incomplete._"]
    return "\n".join(lines)


AGENT = Agent(
    name="issue-triage",
    summary="Triage the example issue tracker's open issues into a Markdown report (plugin).",
    prepare=prepare,
    arguments=arguments,
    report=report,
    builtin_tools=False,  # its one tool comes from the entry point: no files, no shell
)
"""Registered as `issue-triage` under `orchestrator.agents` by this plugin's distribution."""
