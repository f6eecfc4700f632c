"""The supervisor's side of a streaming planner: tasks join the graph as they are written, and
the whole plan, once validated, must agree with what already started."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .attempts import StreamedPlan
from .errors import PlanValidationError
from .models import Plan, TaskSpec
from .plan import extend_graph, validate_plan

if TYPE_CHECKING:
    from .supervisor import Supervisor


class Streaming:
    """Owns the buffer of streamed tasks whose dependencies have not arrived yet."""

    def __init__(self, sup: Supervisor) -> None:
        self._sup = sup
        self._buffer: list[TaskSpec] = []
        self.outcome: StreamOutcome | None = None
        """None until the stream ends."""

    def task(self, spec: TaskSpec) -> None:
        self._buffer.append(spec)
        progress = True
        while progress:
            progress = False
            for pending in list(self._buffer):
                if all(d in self._sup.graph.tasks for d in pending.deps):
                    self._buffer.remove(pending)
                    progress = True
                    try:
                        self._sup.graph = extend_graph(
                            self._sup.graph,
                            pending,
                            known_tools=self._sup.setup.tools.keys(),
                            known_tiers=[t.name for t in self._sup.setup.ladder],
                            estimates=self._sup.setup.estimates,
                        )
                    except PlanValidationError:
                        continue  # the final plan's validation reports it
                    self._sup.admit(pending)
                    self._sup.add_tasks([pending.id])

    def plan(self, msg: StreamedPlan) -> None:
        """The stream ended: adopt its plan, or stop and say why (the engine plans again)."""
        sup = self._sup
        if msg.plan is None:
            self._reject(msg.error or "the planner stream ended without a plan", None)
            return
        try:
            graph = validate_plan(
                msg.plan,
                known_tools=sup.setup.tools.keys(),
                known_tiers=[t.name for t in sup.setup.ladder],
                estimates=sup.setup.estimates,
            )
        except PlanValidationError as exc:
            self._reject(str(exc), msg.plan)
            return
        known = sup.graph.tasks
        changed = [t for t in sup.graph.order if graph.tasks.get(t) != known[t]]
        if changed:
            self._reject(
                f"streamed tasks changed in the final plan: {', '.join(changed)}", msg.plan
            )
            return
        self._buffer.clear()
        added = [t for t in graph.order if t not in known]
        sup.graph = graph
        for tid in sup.scheduler.states():
            if tid in graph.priority:
                sup.scheduler.set_priority(tid, graph.priority[tid])
        for tid in added:
            sup.admit(graph.tasks[tid])
        sup.plan_validated(graph)
        sup.add_tasks(added)
        sup.plan_complete = True
        self.outcome = StreamOutcome()

    def _reject(self, error: str, plan: Plan | None) -> None:
        """Stop the streamed plan: nothing new starts and attempts it started are cut now (the
        repaired plan adopts a task it has unchanged; the others are dropped with the plan)."""
        self.outcome = StreamOutcome(error=error, rejected=plan)
        self._sup.dispatcher.stop()
        self._sup.stopping.cut_running()


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamOutcome:
    """How a streamed plan ended, for the engine: adopted (no error), or why not."""

    error: str | None = None
    rejected: Plan | None = None
    """The whole plan the planner wrote, when it was invalid (the repair shows it its errors)."""
