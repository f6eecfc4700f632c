"""Planning replies that are not a plan at all (`planning.py`): the reply is sent back as a repair
request, like an invalid plan, and counts against the same repairs."""

from __future__ import annotations

from pathlib import Path

import anyio

from orchestrator.errors import ModelBehaviorError
from orchestrator.events import PlanRejected
from orchestrator.testing import RecordingSink, ScriptedModel

from .helpers import accept_all, answer, engine, leaf, plan, task


async def test_planning_reply_that_is_not_a_plan_is_repaired(
    scripted: ScriptedModel, sink: RecordingSink, tmp_path: Path
) -> None:
    scripted.script("planner", ModelBehaviorError("reply is not JSON"), plan(task("a")))
    scripted.script("worker", leaf("a done"), task="a")
    scripted.respond("reviewer", accept_all).respond("synthesizer", answer)
    with anyio.fail_after(5):
        result = await engine(scripted, tmp_path, sinks=[sink], stream_plan=False).run("g")
    assert result.status == "completed"
    (rejected,) = [e for e in sink.events if isinstance(e, PlanRejected)]
    assert rejected.attempt == 1
    assert rejected.error == "the reply was not a valid plan: reply is not JSON"
    assert rejected.task_ids == ()
    repair = scripted.calls_for("planner")[1]
    assert any("reply is not JSON" in getattr(m, "content", "") for m in repair.messages)
