"""Plugins for real: `load_tools` is the one registry builder, and installed plugins load in runs.

The end-to-end tests build a real distribution (pyproject + module + entry points) in a temporary
directory, `pip install --target` it (nothing touches the project's venv), and run a goal script
in a subprocess with that directory on its path.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from orchestrator import Orchestrator, Settings, tool
from orchestrator.plugins import load_tools
from orchestrator.testing import (
    ScriptedModel,
    accept_all,
    answer,
    leaf_report,
    plan_reply,
    task,
    tool_call,
)

# --- installed distributions without pip (fast, in-process) ---------------------------------

GOOD = """
    from orchestrator import tool

    @tool
    def shout(text: str) -> str:
        \"\"\"Upper-case a text.\"\"\"
        return text.upper() + "!"

    VALUE = 3

    def read_file(path: str) -> str:
        return path
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory on sys.path holding installed distributions (module + .dist-info)."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))  # pyright: ignore[reportUnknownMemberType]
    before = set(sys.modules)
    yield root
    for module in set(sys.modules) - before:
        del sys.modules[module]
    importlib.invalidate_caches()


def install_dist(
    root: Path,
    name: str,
    source: str,
    entry_points: dict[str, str],
    *,
    group: str = "orchestrator.tools",
) -> None:
    """Write an installed distribution declaring `entry_points` in `group`."""
    (root / f"{name}.py").write_text(textwrap.dedent(source))
    info = root / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    lines = [f"[{group}]", *(f"{k} = {v}" for k, v in entry_points.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    importlib.invalidate_caches()


def install_good_and_broken(site: Path) -> None:
    install_dist(
        site,
        "shoutplugin",
        GOOD,
        {
            "shout": "shoutplugin:shout",
            "missing": "no_such_module_here:thing",
            "value": "shoutplugin:VALUE",
            "clash": "shoutplugin:read_file",
        },
    )


def test_load_tools_orders_builtins_callers_then_plugins(site: Path) -> None:
    install_dist(site, "shoutplugin", GOOD, {"shout": "shoutplugin:shout"})

    @tool
    def mine(text: str) -> str:
        """Mine."""
        return text

    loaded = load_tools(Settings(), tools=[mine])

    names = [t.name for t in loaded.tools]
    assert names[-2:] == ["mine", "shout"]
    assert names[0] == "read_file"
    assert loaded.errors == ()
    assert loaded.registry.source("shout") == (
        "entry point 'shout' (shoutplugin:shout) of shoutplugin 0.1"
    )


def test_load_tools_skips_broken_plugins_naming_entry_point_and_error(site: Path) -> None:
    install_good_and_broken(site)

    loaded = load_tools(Settings())

    assert "shout" in [t.name for t in loaded.tools]
    by_name = {f.entry_point: f for f in loaded.errors}
    assert sorted(by_name) == ["clash", "missing", "value"]
    assert by_name["missing"].target == "no_such_module_here:thing"
    assert by_name["missing"].distribution == "shoutplugin 0.1"
    assert by_name["missing"].error.startswith(
        "cannot load entry point 'missing' (no_such_module_here:thing) of shoutplugin 0.1: "
        "ModuleNotFoundError"
    )
    assert "is 3, not a tool, function or factory" in by_name["value"].error
    assert "duplicate tool name 'read_file'" in by_name["clash"].error
    assert str(by_name["clash"]) == by_name["clash"].error


@pytest.mark.parametrize(
    ("settings", "plugins"),
    [(Settings(plugins=False), None), (Settings(), False)],
    ids=["setting", "argument"],
)
def test_load_tools_leaves_plugins_out_when_asked(
    site: Path, settings: Settings, plugins: bool | None
) -> None:
    install_good_and_broken(site)

    loaded = load_tools(settings, plugins=plugins, builtin_tools=False)

    assert loaded.tools == ()
    assert loaded.errors == ()


@pytest.mark.parametrize(("raw", "on"), [("0", False), ("1", True)], ids=["off", "on"])
def test_settings_orch_plugins_variable(raw: str, on: bool) -> None:
    assert Settings.from_env({"ORCH_PLUGINS": raw}).plugins is on
    assert Settings.from_env({}).plugins is True


async def test_orchestrator_broken_plugin_is_logged_and_the_run_uses_the_good_one(
    site: Path, tmp_path: Path
) -> None:
    install_good_and_broken(site)
    model = (
        ScriptedModel()
        .script("planner", plan_reply(task("loud", tools=["shout"])))
        .script("worker", tool_call("shout", {"text": "hi"}), leaf_report("shouted"))
        .respond("reviewer", accept_all())
        .script("synthesizer", answer("HI!"))
    )

    with capture_logs() as logs:
        orch = Orchestrator(client=model, workdir=tmp_path)
    result = await orch.run("shout hi")

    skipped = [e for e in logs if e["event"] == "tool_plugin_skipped"]
    assert [(e["entry_point"], e["log_level"]) for e in skipped] == [
        ("clash", "warning"),
        ("missing", "warning"),
        ("value", "warning"),
    ]
    assert all(e["distribution"] == "shoutplugin 0.1" and e["error"] for e in skipped)
    assert [f.entry_point for f in orch.plugin_errors] == ["clash", "missing", "value"]
    assert result.status == "completed"
    tool_messages = [m for r in model.calls_for("worker") for m in r.messages if m.role == "tool"]
    assert [m.content for m in tool_messages] == ["HI!"]
    model.assert_complete()


def test_orchestrator_plugins_false_overrides_settings(site: Path) -> None:
    install_good_and_broken(site)

    orch = Orchestrator(client=ScriptedModel(), settings=Settings(), plugins=False)

    assert "shout" not in [t.name for t in orch.tools]
    assert orch.plugin_errors == ()


# --- a real package, built and pip-installed ------------------------------------------------

BACKEND = '''
"""A PEP 517 backend in the source tree: builds a pure-Python wheel with no build deps."""
import base64, hashlib, tomllib, zipfile
from pathlib import Path


def get_requires_for_build_wheel(config_settings=None):
    return []


def _record_line(path, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
    name, version = project["name"].replace("-", "_"), project["version"]
    info = f"{name}-{version}.dist-info"
    groups = project.get("entry-points", {})
    files = {p.name: p.read_bytes() for p in Path("src").glob("*.py")}
    files[f"{info}/METADATA"] = (
        f"Metadata-Version: 2.1\\nName: {project['name']}\\nVersion: {version}\\n"
    ).encode()
    files[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\\nGenerator: inline\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
    )
    files[f"{info}/entry_points.txt"] = "".join(
        f"[{group}]\\n" + "".join(f"{k} = {v}\\n" for k, v in items.items())
        for group, items in groups.items()
    ).encode()
    record = [_record_line(path, data) for path, data in files.items()] + [f"{info}/RECORD,,"]
    files[f"{info}/RECORD"] = ("\\n".join(record) + "\\n").encode()
    wheel = f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(Path(wheel_directory) / wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return wheel
'''

PYPROJECT = """
[build-system]
requires = []
build-backend = "inline_backend"
backend-path = ["."]

[project]
name = "orch-stamp-plugin"
version = "0.1.0"

[project.entry-points."orchestrator.tools"]
stamp = "orch_stamp_plugin:stamp"
broken = "orch_stamp_missing:stamp"
"""

PLUGIN_MODULE = '''
"""A tool plugin for orchestrator."""
from orchestrator import tool


@tool
def stamp(text: str) -> str:
    """Stamp a text, proving the plugin ran."""
    return f"stamped by orch-stamp-plugin: {text}"
'''

GOAL_SCRIPT = """
import json

import anyio

from orchestrator import ModelReply, Orchestrator, PlanValidationError
from orchestrator.testing import (
    ScriptedModel, accept_all, answer, leaf_report, plan_reply, task, tool_call,
)

PLAN = plan_reply(task("stamp_it", tools=["stamp"]))


async def main() -> None:
    model = (
        ScriptedModel()
        .respond("planner", lambda request: ModelReply(text=PLAN.model_dump_json()))
        .script("worker", tool_call("stamp", {"text": "hello"}), leaf_report("stamped"))
        .respond("reviewer", accept_all())
        .script("synthesizer", answer("done"))
    )
    orch = Orchestrator(client=model, builtin_tools=False)
    out: dict[str, object] = {
        "tools": [t.name for t in orch.tools],
        "skipped": [f.entry_point for f in orch.plugin_errors],
    }
    try:
        result = await orch.run("Stamp hello")
    except PlanValidationError as exc:
        out["error"] = str(exc)
    else:
        out["status"] = result.status
        out["tool_output"] = [
            m.content for r in model.calls_for("worker") for m in r.messages if m.role == "tool"
        ]
    print("RESULT " + json.dumps(out))


anyio.run(main)
"""


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin package, built from its source tree and pip-installed into its own directory."""
    source = tmp_path_factory.mktemp("plugin-src")
    (source / "pyproject.toml").write_text(PYPROJECT)
    (source / "inline_backend.py").write_text(BACKEND)
    (source / "src").mkdir()
    (source / "src" / "orch_stamp_plugin.py").write_text(PLUGIN_MODULE)
    target = tmp_path_factory.mktemp("plugin-site")
    pip = [sys.executable, "-m", "pip", "install", "--no-build-isolation", "--no-deps"]
    pip += ["--no-index", "--disable-pip-version-check", "-q", "--target", str(target)]
    done = subprocess.run([*pip, str(source)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (target / "orch_stamp_plugin.py").is_file()
    return target


def run_goal_script(site: Path, workdir: Path, **env: str) -> tuple[dict[str, object], str]:
    """Run GOAL_SCRIPT in a fresh interpreter with `site` on its path; its result and stderr."""
    script = workdir / "goal.py"
    script.write_text(GOAL_SCRIPT)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ORCH_", "OPENAI_"))}
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=workdir,
        env={**base, "PYTHONPATH": str(site), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT ")), done.stdout + done.stderr


@pytest.mark.timeout(180)
def test_installed_plugin_package_is_used_by_a_run(plugin_site: Path, tmp_path: Path) -> None:
    """The scripted plan names the plugin's tool: the plan is valid and the tool runs."""
    out, output = run_goal_script(plugin_site, tmp_path)

    assert out["status"] == "completed"
    assert out["tools"] == ["stamp"]
    assert out["tool_output"] == ["stamped by orch-stamp-plugin: hello"]
    # The broken entry point of the same package is skipped and named, and the run went on.
    assert out["skipped"] == ["broken"]
    assert "tool_plugin_skipped" in output
    assert "orch_stamp_missing" in output


@pytest.mark.timeout(180)
def test_installed_plugin_is_left_out_with_orch_plugins_0(
    plugin_site: Path, tmp_path: Path
) -> None:
    """Opted out, the same plan names an unknown tool and is rejected."""
    out, _ = run_goal_script(plugin_site, tmp_path, ORCH_PLUGINS="0")

    assert out["tools"] == []
    assert out["skipped"] == []
    assert "stamp" in str(out["error"])
