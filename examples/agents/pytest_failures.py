"""Failing tests from a pytest JUnit XML report, grouped by test file (pure: text in, values out).

The XML report (`--junitxml`, `junit_family=xunit1` for the `file` attribute) is pytest's own
structured account of a run, so nothing here scrapes the terminal output.
"""

from __future__ import annotations

import shlex
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

JUNIT_OPTIONS = ("-rf", "-o", "junit_family=xunit1")
"""Added with `--junitxml=FILE` to the suite's command when it runs pytest."""

_TRACEBACK_LINES = 30
"""The tail of each failure's traceback the planner is shown: where it failed and why."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FailedTest:
    """One failing (or erroring) test, as pytest reported it."""

    node_id: str
    """What `pytest NODE_ID` re-runs, e.g. `tests/test_a.py::test_b`."""
    file: str
    """The test file, relative to the rootdir."""
    message: str
    traceback: str
    """The tail of pytest's report of the failure."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FailureGroup:
    """Failing tests one task fixes: those of one test file (extra files merged into the last)."""

    key: str
    """`g1`, `g2`, ...: how the plan's tasks name the group they fix."""
    files: tuple[str, ...]
    failures: tuple[FailedTest, ...]

    @property
    def node_ids(self) -> tuple[str, ...]:
        return tuple(f.node_id for f in self.failures)


def is_pytest(command: str) -> bool:
    """Whether `command` runs pytest (so it takes `--junitxml` and node ids)."""
    return any(PurePosixPath(word).name in ("pytest", "py.test") for word in shlex.split(command))


def rerun_command(command: str, groups: Iterable[FailureGroup]) -> str:
    """The suite's command narrowed to the groups' tests (the whole suite when not pytest)."""
    node_ids = [n for group in groups for n in group.node_ids if n]
    if not node_ids or not is_pytest(command):
        return command
    return " ".join((command, *(shlex.quote(n) for n in node_ids)))


def parse_junit(xml_text: str) -> tuple[FailedTest, ...]:
    """Every test case of the report with a `<failure>` or `<error>`, in report order.

    Raises:
        ElementTree.ParseError: the text is not XML.
    """
    root = ElementTree.fromstring(xml_text)
    found: list[FailedTest] = []
    for case in root.iter("testcase"):
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is None:
            continue
        file, node_id = _node_id(case.get("classname", ""), case.get("name", ""), case.get("file"))
        lines = (problem.text or "").rstrip().splitlines()
        found.append(
            FailedTest(
                node_id=node_id,
                file=file,
                message=problem.get("message", ""),
                traceback="\n".join(lines[-_TRACEBACK_LINES:]),
            )
        )
    return tuple(found)


def _node_id(classname: str, name: str, file: str | None) -> tuple[str, str]:
    """(file, node id) of a test case; a collection error names its module, not a test."""
    if file is None:  # not xunit1: the file is the class path's module part, best guess
        file = classname.replace(".", "/") + ".py" if classname else name.replace(".", "/") + ".py"
    if not classname:  # a module that failed to import
        return file, file
    module = file.removesuffix(".py").replace("/", ".")
    inner = classname[len(module) + 1 :].split(".") if classname.startswith(f"{module}.") else []
    return file, "::".join((file, *inner, name))


def group_failures(failures: Iterable[FailedTest], *, max_groups: int) -> tuple[FailureGroup, ...]:
    """One group per test file, by path; the files beyond `max_groups` join the last group."""
    by_file: dict[str, list[FailedTest]] = {}
    for failure in failures:
        by_file.setdefault(failure.file, []).append(failure)
    files = sorted(by_file)
    cut = max(1, max_groups) - 1
    buckets: list[Sequence[str]] = [[f] for f in files[:cut]]
    if files[cut:]:
        buckets.append(files[cut:])
    return tuple(
        FailureGroup(
            key=f"g{index}",
            files=tuple(bucket),
            failures=tuple(f for file in bucket for f in by_file[file]),
        )
        for index, bucket in enumerate(buckets, start=1)
    )
