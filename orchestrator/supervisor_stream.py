"""The supervisor's side of a streaming planner: tasks join the graph as they are written, and
the whole plan, once validated, must agree with what already started."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .attempts import StreamedPlan
from .errors import PlanValidationError
from .models import TaskSpec
from .plan import extend_graph, validate_plan

if TYPE_CHECKING:
    from .supervisor import Supervisor


class Streaming:
    """Owns the buffer of streamed tasks whose dependencies have not arrived yet."""

    def __init__(self, sup: Supervisor) -> None:
        self._sup = sup
        self._buffer: list[TaskSpec] = []

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
        self._sup.stream_error = msg.error
        if msg.plan is None:
            self._sup.dispatcher.stop()
            return
        try:
            graph = validate_plan(
                msg.plan,
                known_tools=self._sup.setup.tools.keys(),
                known_tiers=[t.name for t in self._sup.setup.ladder],
                estimates=self._sup.setup.estimates,
            )
        except PlanValidationError as exc:
            self._sup.stream_error, self._sup.rejected_plan = str(exc), msg.plan
            self._sup.dispatcher.stop()
            return
        changed = [
            t for t in self._sup.graph.order if graph.tasks.get(t) != self._sup.graph.tasks[t]
        ]
        if changed:
            self._sup.stream_error = (
                f"streamed tasks changed in the final plan: {', '.join(changed)}"
            )
            self._sup.rejected_plan = msg.plan
            self._sup.dispatcher.stop()
            return
        self._buffer.clear()
        added = [t for t in graph.order if t not in self._sup.graph.tasks]
        self._sup.graph = graph
        for tid in self._sup.scheduler.states():
            if tid in graph.priority:
                self._sup.scheduler.set_priority(tid, graph.priority[tid])
        for tid in added:
            self._sup.admit(graph.tasks[tid])
        self._sup.plan_validated(graph)
        self._sup.add_tasks(added)
        self._sup.plan_complete = True
