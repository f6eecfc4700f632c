"""The command line's smaller promises: the fix each model failure names, the redacting stream
standing in for a terminal, logs above the live table on a terminal, and `tools list` naming a
broken plugin while listing the rest (the last one the real CLI in a subprocess)."""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path

import pytest
import structlog.testing

from orchestrator.cli_errors import explain, model_fix
from orchestrator.cli_output import RedactingStream
from orchestrator.cli_progress import progress_sinks
from orchestrator.errors import (
    ModelAPIError,
    ModelBehaviorError,
    ModelError,
    ModelOutageError,
    ModelTimeoutError,
)
from orchestrator.events import PlanRejected
from orchestrator.live import LiveView
from orchestrator.logs import StructlogSink
from orchestrator.models import RunId
from orchestrator.secrets import Redactor

from .cli_harness import orchestrator

_FIXES = [
    pytest.param(
        ModelOutageError("down", status_code=503, outage_s=30.0),
        "check that the model server (--base-url) is up and reachable",
        id="outage",
    ),
    pytest.param(
        ModelAPIError("refused", status_code=None, retryable=True),
        "check that the model server (--base-url) is up and reachable",
        id="no-status",
    ),
    pytest.param(
        ModelAPIError("no", status_code=401, retryable=False),
        "check the API key (OPENAI_API_KEY) for this server",
        id="401",
    ),
    pytest.param(
        ModelAPIError("no", status_code=403, retryable=False),
        "check the API key (OPENAI_API_KEY) for this server",
        id="403",
    ),
    pytest.param(
        ModelAPIError("no such model", status_code=404, retryable=False),
        "check the model ids (--models) and the server (--base-url)",
        id="404",
    ),
    pytest.param(
        ModelTimeoutError("slow", timeout_s=1.0),
        "the server is slow: raise ORCH_REQUEST_TIMEOUT_S, or use a faster model",
        id="timeout",
    ),
    pytest.param(
        ModelBehaviorError("not json"),
        "the model did not answer in the requested shape: try a stronger model (--models)",
        id="behavior",
    ),
    pytest.param(
        ModelAPIError("bad request", status_code=400, retryable=False),
        "check the model server, the API key and the model ids (--models)",
        id="other-status",
    ),
    pytest.param(
        ModelError("odd"),
        "check the model server, the API key and the model ids (--models)",
        id="other-error",
    ),
]


@pytest.mark.parametrize(("exc", "fix"), _FIXES)
def test_model_fix_names_what_to_check_for_each_model_failure(exc: ModelError, fix: str) -> None:
    assert model_fix(exc) == fix


def test_cli_errors_explain_a_model_timeout_with_its_fix() -> None:
    failure = explain(ModelTimeoutError("read timed out", timeout_s=120.0))
    assert failure.code == 1
    assert failure.line == (
        "error: ModelTimeoutError: read timed out — the server is slow: raise "
        "ORCH_REQUEST_TIMEOUT_S, or use a faster model"
    )


class _Terminal(io.StringIO):
    """A text buffer that says it is a terminal (what rich and the CLI ask of stdout/stderr)."""

    def isatty(self) -> bool:
        return True


def test_redacting_stream_passes_the_target_terminal_through(tmp_path: Path) -> None:
    with (tmp_path / "out.txt").open("w", encoding="utf-16") as target:
        stream = RedactingStream(target, Redactor(["sk-secret-value-123"]))
        assert stream.writable()
        assert stream.fileno() == target.fileno()
        assert stream.encoding == "utf-16"
        assert not stream.isatty()
        assert stream.write("key sk-secret-value-123\n") == len("key sk-secret-value-123\n")
        stream.flush()
    text = (tmp_path / "out.txt").read_text(encoding="utf-16")
    assert "sk-secret-value-123" not in text
    assert text.startswith("key ")
    assert RedactingStream(_Terminal(), Redactor([])).isatty()


def test_progress_on_a_terminal_logs_above_the_live_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Stdout and stderr both terminals: the logs go through the live view's log stream."""
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("NO_COLOR", raising=False)
    stderr = _Terminal()
    monkeypatch.setattr("sys.stderr", stderr)
    log_sink, view = progress_sinks(as_json=False, stream=_Terminal())
    assert isinstance(log_sink, StructlogSink)
    assert isinstance(view, LiveView)
    # The table is not live yet, so the line falls through to stderr.
    log_sink.emit(PlanRejected(run_id=RunId("r1"), at=0.0, attempt=1, error="cycle a -> b"))
    logged = stderr.getvalue()
    assert "plan_rejected" in logged
    assert "cycle a -> b" in logged


def test_progress_on_a_terminal_with_stderr_piped_logs_as_usual(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`orchestrator run ... 2>log`: the table on the terminal, the logs through structlog."""
    monkeypatch.setenv("TERM", "xterm-256color")
    piped = io.StringIO()
    monkeypatch.setattr("sys.stderr", piped)
    log_sink, view = progress_sinks(as_json=False, stream=_Terminal())
    assert isinstance(log_sink, StructlogSink)
    assert isinstance(view, LiveView)
    with structlog.testing.capture_logs() as logs:
        log_sink.emit(PlanRejected(run_id=RunId("r1"), at=0.0, attempt=1, error="cycle"))
    assert [(e["event"], e["error"], e["log_level"]) for e in logs] == [
        ("plan_rejected", "cycle", "warning")
    ]
    assert piped.getvalue() == ""  # not routed through the live view's log stream


def test_progress_not_on_a_terminal_is_plain_lines() -> None:
    from orchestrator.report import ProgressSink

    log_sink, lines = progress_sinks(as_json=False, stream=io.StringIO())
    assert isinstance(log_sink, StructlogSink)
    assert isinstance(lines, ProgressSink)


_BROKEN_PLUGIN = """
def shout(text: str) -> str:
    \"\"\"Upper-case a text.\"\"\"
    return text.upper()
"""


@pytest.mark.timeout(30)
def test_cli_tools_list_names_a_broken_plugin_and_lists_the_rest(tmp_path: Path) -> None:
    site = tmp_path / "site"
    info = site / "shoutplugin-0.1.dist-info"
    info.mkdir(parents=True)
    (site / "shoutplugin.py").write_text(textwrap.dedent(_BROKEN_PLUGIN))
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: shoutplugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[orchestrator.tools]\nshout = shoutplugin:shout\nmissing = no_such_module_here:x\n"
    )
    cli = orchestrator("tools", "list", "--json", cwd=tmp_path, env={"PYTHONPATH": str(site)})
    assert cli.code == 0, cli.stderr
    names = {tool["name"] for tool in json.loads(cli.stdout)}
    assert {"shout", "read_file"} <= names
    assert "missing" not in names
    (warning,) = cli.stderr.splitlines()
    assert warning.startswith("warning: plugin skipped: cannot load entry point 'missing' ")
    assert "ModuleNotFoundError" in warning
    assert "Traceback" not in cli.stderr
