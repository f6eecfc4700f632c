"""Secrets never leave: redaction of text, and a child's view of our /proc entries from the outside."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from orchestrator.cli import RedactingStream, redacted_output
from orchestrator.secrets import (
    MARKER,
    Redactor,
    redact,
    redact_data,
    redact_patterns,
    value_ranges,
)
from orchestrator.settings import Settings, secret_variables

REPO = Path(__file__).resolve().parents[1]
KEY = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0" * 3

REDACTED_CASES = [
    pytest.param(
        f"Authorization: Bearer {KEY}", f"Authorization: Bearer {MARKER}", id="header-echo"
    ),
    pytest.param(
        "authorization: Basic dXNlcjpwYXNzd29yZA==",
        f"authorization: Basic {MARKER}",
        id="header-basic-lower-case",
    ),
    pytest.param(
        "Authorization: opaque-token-value", f"Authorization: {MARKER}", id="header-no-scheme"
    ),
    pytest.param(
        '{"headers": {"Authorization": "Bearer abcdefgh12345678"}}',
        f'{{"headers": {{"Authorization": "Bearer {MARKER}"}}}}',
        id="header-json",
    ),
    pytest.param(
        r'{"body": "{\"authorization\": \"Bearer abcdefgh12345678\"}"}',
        rf'{{"body": "{{\"authorization\": \"Bearer {MARKER}\"}}"}}',
        id="header-escaped-json",
    ),
    pytest.param(
        "{'Authorization': 'Bearer abcdefgh12345678'}",
        f"{{'Authorization': 'Bearer {MARKER}'}}",
        id="header-python-repr",
    ),
    pytest.param(
        "error 401: Bearer abcdefgh12345678 is invalid",
        f"error 401: Bearer {MARKER} is invalid",
        id="bearer-token",
    ),
    pytest.param(f"your key {KEY} was rejected", f"your key {MARKER} was rejected", id="sk-proj"),
    pytest.param("key sk-abcdefghijklmnopqrstuvwxyz012345", f"key {MARKER}", id="sk-legacy"),
    pytest.param("api_key=abc123def&x=1", f"api_key={MARKER}&x=1", id="query-api-key"),
    pytest.param('{"api_key": "abc123def"}', f'{{"api_key": "{MARKER}"}}', id="json-api-key"),
    pytest.param(
        "OPENAI_API_KEY=not-an-sk-key-at-all", f"OPENAI_API_KEY={MARKER}", id="env-assignment"
    ),
    pytest.param("x-api-key: hunter2hunter2", f"x-api-key: {MARKER}", id="x-api-key-header"),
    pytest.param(
        "GITHUB_TOKEN=ghp_" + "a" * 36, f"GITHUB_TOKEN={MARKER}", id="github-token-variable"
    ),
    pytest.param("id AKIAABCDEFGHIJKLMNOP here", f"id {MARKER} here", id="aws-key-id"),
]

ORDINARY_TEXT = [
    pytest.param("Wrote 3 files; all 12 tests passed.", id="prose"),
    pytest.param('{"tokens_in": 120, "max_tokens": 50, "input_tokens": 7}', id="token-counts"),
    pytest.param('{"secret": true, "password": null, "api_key": ""}', id="json-non-strings"),
    pytest.param("the bearer of bad news", id="bearer-word"),
    pytest.param("pip install scikit-learn; see sk-learn docs", id="sk-word"),
    pytest.param("risk-assessment-framework-for-task-graphs", id="kebab-case"),
    pytest.param("Authorization is required for this endpoint", id="authorization-word"),
    pytest.param("", id="empty"),
]


@pytest.mark.parametrize(("text", "expected"), REDACTED_CASES)
def test_redact_replaces_credentials(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(("text", "expected"), REDACTED_CASES)
def test_redact_is_idempotent(text: str, expected: str) -> None:
    assert redact(redact(text)) == redact(text)


@pytest.mark.parametrize("text", ORDINARY_TEXT)
def test_redact_leaves_ordinary_text_alone(text: str) -> None:
    assert redact(text) == text


def test_redact_replaces_known_secret_anywhere() -> None:
    secret = "plain-looking-value-123"

    text = f"server said: {secret}; again:{secret}."

    assert redact(text, [secret]) == f"server said: {MARKER}; again:{MARKER}."


def test_redactor_ignores_short_known_values() -> None:
    """A 3-character 'secret' would blank ordinary words; such values are not replaced."""
    redactor = Redactor(["abc", "long-enough-secret"])

    assert redactor.known == ("long-enough-secret",)
    assert redactor("abc long-enough-secret") == f"abc {MARKER}"


def test_redactor_replaces_longest_secret_first() -> None:
    redactor = Redactor(["secret-part", "secret-part-and-more"])

    assert redactor("x secret-part-and-more y") == f"x {MARKER} y"


def test_redact_data_keeps_json_valid_and_types() -> None:
    data: dict[str, object] = {
        "message": f'echo: {{"Authorization": "Bearer {KEY}"}}',
        "ids": ("a", "b"),
        "nested": [{"k": f"api_key={KEY}"}],
        "count": 3,
    }

    redacted = redact_data(data)

    assert isinstance(redacted, dict)
    assert KEY not in json.dumps(redacted)
    assert redacted["ids"] == ("a", "b")
    assert redacted["count"] == 3


def test_redact_patterns_is_cheap_on_ordinary_event_lines() -> None:
    """Sinks redact every line; an ordinary one must cost microseconds, not a regex per pattern."""
    line = json.dumps({"kind": "task_succeeded", "summary": "ok " * 40, "tokens_in": 12})
    rounds = 2_000

    started = time.perf_counter()
    for _ in range(rounds):
        redact_patterns(line)
    per_line_s = (time.perf_counter() - started) / rounds

    assert per_line_s < 200e-6


def test_value_ranges_finds_only_named_values() -> None:
    block = b"PATH=/bin\0OPENAI_API_KEY=sk-x\0OPENAI_API_KEY_OLD=y\0EMPTY=\0"

    ranges = list(value_ranges(block, frozenset({"OPENAI_API_KEY", "EMPTY"})))

    assert ranges == [(len(b"PATH=/bin\0OPENAI_API_KEY="), len(b"sk-x"))]


def test_secret_variables_picks_credentials_by_name() -> None:
    env = {
        "OPENAI_API_KEY": "k1",
        "ANTHROPIC_API_KEY": "k2",
        "GITHUB_TOKEN": "k3",
        "CLIENT_SECRET": "k4",
        "DB_PASSWORD": "k5",
        "AWS_SECRET_ACCESS_KEY": "k6",
        "HF_TOKEN": "",
        "PATH": "/bin",
        "TOKENIZERS_PARALLELISM": "false",
        "SORT_KEY": "name",
    }

    assert sorted(secret_variables(env)) == [
        "ANTHROPIC_API_KEY",
        "AWS_SECRET_ACCESS_KEY",
        "CLIENT_SECRET",
        "DB_PASSWORD",
        "GITHUB_TOKEN",
        "OPENAI_API_KEY",
    ]


@pytest.mark.parametrize(
    ("value", "expected"), [("off", "off"), ("auto", "auto"), (None, "auto")], ids=str
)
def test_settings_read_shell_sandbox(value: str | None, expected: str) -> None:
    env = {} if value is None else {"ORCH_SHELL_SANDBOX": value}

    assert Settings.from_env(env).shell_sandbox == expected


def test_redacted_output_redacts_prints_and_restores_streams(
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret = f"opaque-{uuid.uuid4().hex}"
    before = sys.stdout, sys.stderr

    with redacted_output(Redactor([secret])):
        print(f"result: {secret}")
        print(f"error: Authorization: Bearer {KEY}", file=sys.stderr)

    out, err = capsys.readouterr()
    assert (out, err) == (f"result: {MARKER}\n", f"error: Authorization: Bearer {MARKER}\n")
    assert (sys.stdout, sys.stderr) == before


def test_redacting_stream_reports_the_target_tty_state() -> None:
    """configure_logging picks its renderer from isatty(); the wrapper must not change the choice."""
    stream = RedactingStream(io.StringIO(), Redactor())

    assert not stream.isatty()
    assert stream.write("abc") == 3


# --- From the outside: a real process with a key in its initial environment -------------------

PROC_COMMAND = "cat /proc/$PPID/environ /proc/{pid}/environ | tr '\\0' '\\n'"

MEM_SCAN = """
import sys
pid, needle = sys.argv[1], sys.argv[2][::-1].encode()
try:
    maps = open(f"/proc/{pid}/maps").read().splitlines()
    mem = open(f"/proc/{pid}/mem", "rb", buffering=0)
except OSError as exc:
    print("mem: denied", type(exc).__name__)
    sys.exit(0)
for line in maps:
    span, perms = line.split()[:2]
    start, end = (int(part, 16) for part in span.split("-"))
    if not perms.startswith("r") or end - start > 1 << 28:
        continue
    try:
        mem.seek(start)
        data = mem.read(end - start)
    except (OSError, OverflowError, ValueError):
        continue
    if needle in data:
        print("mem: found")
        sys.exit(0)
print("mem: not found")
"""
"""Scans the process whose pid it is given for a needle, given reversed so the command's own
text (which the orchestrator holds in memory) cannot be what it finds."""


@pytest.fixture
def probe_key() -> str:
    return f"sk-test-{uuid.uuid4().hex}"


@pytest.fixture
def probe_workspace(tmp_path: Path) -> Path:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "scan.py").write_text(MEM_SCAN)
    return workspace


def run_probe(key: str, workspace: Path, mode: str, runner: str, command: str) -> str:
    """Run tests/proc_probe.py as a separate process whose initial environment holds `key`."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(workspace.parent),
        "OPENAI_API_KEY": key,
        "PYTHONPATH": str(REPO),
    }
    done = subprocess.run(
        [sys.executable, "-m", "tests.proc_probe", mode, runner, str(workspace), command],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "settings key intact: True" in done.stdout
    return done.stdout + done.stderr


def mem_scan_command(key: str, workspace: Path) -> str:
    return f"{sys.executable} -I {workspace / 'scan.py'} {{pid}} {key[::-1]}"


@pytest.mark.timeout(60)
def test_proc_probe_control_unprotected_child_reads_key(
    probe_key: str, probe_workspace: Path
) -> None:
    """Control: without protection a child reads our key from both /proc files, so the probe works."""
    output = run_probe(probe_key, probe_workspace, "exposed", "plain", PROC_COMMAND)
    scan = run_probe(
        probe_key, probe_workspace, "exposed", "plain", mem_scan_command(probe_key, probe_workspace)
    )

    assert output.count(probe_key) == 2
    assert "mem: found" in scan


@pytest.mark.timeout(60)
def test_protection_wipes_key_from_initial_environment(
    probe_key: str, probe_workspace: Path
) -> None:
    """Even a child keeping every capability (root's, here) sees no key in /proc/<pid>/environ."""
    output = run_probe(probe_key, probe_workspace, "protect", "plain", PROC_COMMAND)

    assert probe_key not in output


@pytest.mark.timeout(60)
def test_shell_tool_without_sandbox_cannot_read_key_from_parent(
    probe_key: str, probe_workspace: Path
) -> None:
    """The real shell tool, bubblewrap off: neither environ nor mem of the orchestrator is readable."""
    output = run_probe(probe_key, probe_workspace, "protect", "tool", PROC_COMMAND)
    scan = run_probe(
        probe_key, probe_workspace, "protect", "tool", mem_scan_command(probe_key, probe_workspace)
    )

    assert probe_key not in output
    assert "mem: denied PermissionError" in scan


@pytest.mark.sandbox
@pytest.mark.timeout(60)
def test_run_shell_is_sandboxed_by_default(
    probe_key: str, probe_workspace: Path, tmp_path: Path
) -> None:
    """No sandbox argument and no protection: bubblewrap alone keeps the parent's key and the
    host's files out of reach."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    outside = tmp_path / "outside"
    outside.mkdir()
    command = f"{PROC_COMMAND}; touch {outside}/escaped; echo wrote=$?"

    output = run_probe(probe_key, probe_workspace, "exposed", "run_shell", command)

    assert "sandboxed=True" in output
    assert probe_key not in output
    assert "wrote=1" in output
    assert not (outside / "escaped").exists()


# --- From the outside: the CLI against a server that echoes the Authorization header ------------


class _EchoAuthorization(BaseHTTPRequestHandler):
    """Answers every request with a 400 whose message repeats the credential it was sent."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        header = self.headers.get("authorization") or ""
        token = header.split()[-1] if header else ""
        message = f"bad request: Authorization: {header} (key {token} is not valid here)"
        body = json.dumps({"error": {"message": message, "type": "invalid_request"}}).encode()
        self.send_response(400)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def echo_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoAuthorization)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.timeout(60)
def test_cli_output_and_run_files_never_show_echoed_key(
    echo_server: str, tmp_path: Path, probe_key: str
) -> None:
    runs = tmp_path / "runs"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "OPENAI_API_KEY": probe_key,
        "ORCH_RUN_ROOT": str(runs),
        "PYTHONPATH": str(REPO),
    }
    flags = [
        "-v",
        "--json",
        "--base-url",
        echo_server,
        "--models",
        "m1",
        "--workdir",
        str(tmp_path),
    ]
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "run", "say hi", *flags],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )

    assert done.returncode == 1
    assert "400" in done.stderr and MARKER in done.stderr  # the error was shown, redacted
    assert "error: run " in done.stderr and "Traceback" not in done.stderr
    assert probe_key not in done.stdout + done.stderr
    stored = [path for path in runs.rglob("*") if path.is_file()]
    assert {path.name for path in stored} >= {"events.jsonl", "result.json", "runs.sqlite3"}
    for path in stored:
        assert probe_key.encode() not in path.read_bytes(), path
