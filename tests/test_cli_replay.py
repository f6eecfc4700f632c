"""`--record FILE` and `--replay FILE` through the real command line, in a subprocess: a goal run
recorded against a loopback OpenAI-compatible server replays with no server reachable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest

from orchestrator.cassette import read_cassette
from orchestrator.cli import main

from .cli_harness import UNREACHABLE, Cli, assert_one_error, orchestrator, server_flags
from .engine_model import EngineModel
from .fault_server import FaultServer

PRICED = "gpt-5.4-mini,gpt-5.4,gpt-5.5"
"""Models the default price table knows, so the run has a cost to reproduce."""
GOAL = "Count the words of three items"
_SHELL = {"command": "echo five words in a line", "timeout_ms": 10_000, "max_output_length": None}
_VARYING = ("run_id", "run_dir", "duration_s", "started_at", "finished_at", "elapsed_s")
"""Result fields that differ between any two runs (ids, places, clocks)."""


def _result(cli: Cli) -> dict[str, Any]:
    """The `--json` result line, without what differs between any two runs."""
    assert cli.code == 0, cli.stderr[-3000:]
    line: dict[str, Any] = json.loads(cli.stdout.strip().splitlines()[-1])
    assert line["kind"] == "result"
    return _steady(line)


def _costs(value: Any, path: str = "") -> dict[str, float]:
    """Every `cost_usd` in a result, by where it is."""
    found: dict[str, float] = {}
    if isinstance(value, dict):
        for key, item in cast("dict[str, Any]", value).items():
            where = f"{path}.{key}"
            found |= {where: item} if key == "cost_usd" else _costs(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(cast("list[Any]", value)):
            found |= _costs(item, f"{path}[{index}]")
    return found


def _steady(value: Any, drop: tuple[str, ...] = ()) -> Any:
    """`value` without the fields in `_VARYING` and `drop`, at any depth."""
    if isinstance(value, dict):
        items = cast("dict[str, Any]", value).items()
        return {k: _steady(v, drop) for k, v in items if k not in (*_VARYING, *drop)}
    if isinstance(value, list):
        return [_steady(v, drop) for v in cast("list[Any]", value)]
    return value


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A goal run recorded with `--record` against a loopback server; its cassette and result.

    Each of its three tasks runs the built-in shell tool once, then reports.
    """
    tmp_path = tmp_path_factory.mktemp("recording")
    work = tmp_path / "recorded"
    work.mkdir()
    path = tmp_path / "run.jsonl"
    model = EngineModel(3, tool="shell", arguments=_SHELL)
    with FaultServer(model, role_of=EngineModel.role_of) as srv:
        cli = orchestrator(
            *("run", GOAL, "--json", "--workdir", str(work), "--record", str(path)),
            *server_flags(srv, PRICED),
            cwd=tmp_path,
        )
    return path, _result(cli)


@pytest.fixture
def cassette(tmp_path: Path, recording: tuple[Path, dict[str, Any]]) -> tuple[Path, dict[str, Any]]:
    """A copy of the recorded cassette that a test may change."""
    path = tmp_path / "run.jsonl"
    path.write_bytes(recording[0].read_bytes())
    return path, recording[1]


@pytest.mark.timeout(60)
def test_cli_replay_reproduces_the_recorded_result_and_cost_offline(
    tmp_path: Path, cassette: tuple[Path, dict[str, Any]]
) -> None:
    path, recorded = cassette
    work = tmp_path / "replayed"
    work.mkdir()

    cli = orchestrator(
        *("run", GOAL, "--json", "--workdir", str(work), "--replay", str(path)),
        *("--base-url", UNREACHABLE),  # nothing listens there: any model call would fail
        cwd=tmp_path,
        env={"OPENAI_API_KEY": ""},
    )

    replayed = _result(cli)
    calls = read_cassette(path)[1]
    tool_calls = {(c.task, t.name) for c in calls if c.reply for t in c.reply.tool_calls}
    assert tool_calls == {("t0001", "shell"), ("t0002", "shell"), ("t0003", "shell")}
    assert recorded["status"] == "completed" and recorded["usage"]["cost_usd"] > 0
    costs = _costs(recorded)  # floats summed in completion order: equal up to rounding
    assert _costs(replayed) == {k: pytest.approx(v, rel=1e-9) for k, v in costs.items()}
    assert _steady(replayed, drop=("cost_usd",)) == _steady(recorded, drop=("cost_usd",))


@pytest.mark.timeout(60)
def test_cli_replay_of_a_cassette_missing_a_call_fails_in_one_line(
    tmp_path: Path, cassette: tuple[Path, dict[str, Any]]
) -> None:
    path, _ = cassette
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(line for line in lines if '"role":"synthesizer"' not in line))

    cli = orchestrator("run", GOAL, "--replay", str(path), cwd=tmp_path)

    assert_one_error(cli, 1, "replay: synthesizer call", "holds no such call", alone=False)


@pytest.mark.parametrize(
    ("args", "what"),
    [
        pytest.param(("--record", "a", "--replay", "b"), "--record and --replay", id="both"),
        pytest.param(("--replay", "missing.jsonl"), "no such cassette: ", id="missing"),
    ],
)
def test_cli_refuses_record_with_replay_or_a_missing_cassette_before_anything_starts(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    what: str,
) -> None:
    monkeypatch.chdir(tmp_path)

    code = main(["run", GOAL, *args])

    err = capsys.readouterr().err
    assert (code, err.count("\n"), err.startswith(f"error: {what}")) == (2, 1, True), err
    assert list(tmp_path.iterdir()) == []


def test_cli_refuses_a_corrupt_cassette_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_text("not a cassette\n")

    cli = orchestrator("run", GOAL, "--replay", "bad.jsonl", cwd=tmp_path)

    assert_one_error(cli, 2, "bad.jsonl is not an orchestrator cassette")


@pytest.mark.timeout(60)
def test_cli_replay_reaches_a_goal_script_as_orch_replay(
    tmp_path: Path, cassette: tuple[Path, dict[str, Any]]
) -> None:
    """A script's own `Orchestrator()` replays the cassette `--replay` names (a relative path,
    though the script runs in its --workdir)."""
    path, recorded = cassette
    work = tmp_path / "elsewhere"
    work.mkdir()
    script = tmp_path / "goal.py"
    script.write_text(
        "from orchestrator import Orchestrator\n\n"
        "async def main() -> None:\n"
        f"    result = await Orchestrator().run({GOAL!r})\n"
        "    print('RESULT', result.status, result.usage.tokens.input_tokens)\n"
    )

    cli = orchestrator(
        *("run", "goal.py", "--workdir", str(work), "--replay", path.name), cwd=tmp_path
    )

    assert cli.code == 0, cli.stderr[-3000:]
    tokens = recorded["usage"]["tokens"]["input_tokens"]
    assert f"RESULT completed {tokens}" in cli.stdout
