"""`orchestrator run SCRIPT --base-url URL --models a,b,c --server ... --gen ...`: the flags reach
the goal script's own `Orchestrator()`. The real CLI runs in a subprocess against a loopback
OpenAI-protocol server that records every request body."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .cli_harness import orchestrator, write_script
from .engine_model import EngineModel
from .fault_openai import ApiCall
from .fault_server import FaultServer

SCRIPT = [
    "from orchestrator import Orchestrator",
    "",
    "async def main() -> int:",
    "    result = await Orchestrator().run('Count the words.')",
    "    print('status', result.status)",
    "    return 0",
]


class Bodies:
    """Every request body the server got, with the role that sent it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seen: list[tuple[str | None, dict[str, Any]]] = []

    def __call__(self, call: ApiCall, role: str | None) -> None:
        with self._lock:
            self.seen.append((role, dict(call.body)))

    def of(self, role: str) -> list[dict[str, Any]]:
        return [body for seen_role, body in self.seen if seen_role == role]


@pytest.fixture
def bodies() -> Bodies:
    return Bodies()


@pytest.fixture
def server(bodies: Bodies) -> Iterator[FaultServer]:
    model = EngineModel(2, tool="list_dir", arguments={"path": "."})
    with FaultServer(model, role_of=EngineModel.role_of, on_request=bodies) as srv:
        yield srv


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("style", "server_name"), [("chat", "llama.cpp"), ("responses", "vllm")], ids=["chat", "resp"]
)
def test_cli_flags_reach_the_scripts_orchestrator(
    tmp_path: Path, server: FaultServer, bodies: Bodies, style: str, server_name: str
) -> None:
    """Requests go to --base-url with the bottom model for workers and the top one for the
    planner side, shaped by the --server preset and carrying the --gen options."""
    script = write_script(tmp_path / "goal.py", SCRIPT)
    flags = (
        *("--base-url", server.base_url, "--api-style", style, "--models", "a,b,c"),
        *("--server", server_name, "--gen", "worker.max_output_tokens=321"),
        *("--gen", "frontier.reasoning_effort=high,temperature=0.25"),
    )
    cli = orchestrator("run", str(script), *flags, cwd=tmp_path, env={"OPENAI_API_KEY": ""})

    assert cli.code == 0, cli.stderr[-3000:]
    assert "status completed" in cli.stdout
    assert all(
        r.path == f"/v1/{'chat/completions' if style == 'chat' else 'responses'}"
        for r in server.records
    )
    cap = "max_tokens" if style == "chat" else "max_output_tokens"
    workers, planners = bodies.of("worker"), bodies.of("planner")
    assert len(workers) == 4 and len(planners) == 1  # per task: a list_dir call, a report
    for body in workers:
        assert (body["model"], body[cap], body["temperature"]) == ("a", 321, 0.25)
        assert "reasoning_effort" not in body and "reasoning" not in body
        if server_name == "llama.cpp":  # it reads a tool_choice object as "auto"
            assert not isinstance(body.get("tool_choice", "auto"), dict)
    for role in ("planner", "reviewer", "synthesizer"):
        for body in bodies.of(role):
            assert (body["model"], body[cap], body["temperature"]) == ("c", 4096, 0.25), role
            effort = body["reasoning_effort"] if style == "chat" else body["reasoning"]["effort"]
            assert effort == "high", role
    (planner,) = planners
    if style == "chat":  # llama.cpp: the schema rides on json_object
        assert planner["response_format"]["type"] == "json_object"
        assert "schema" in planner["response_format"]
    else:  # vLLM honours text.format, without OpenAI's strict mode
        assert planner["text"]["format"]["type"] == "json_schema"
        assert "strict" not in planner["text"]["format"]
