"""The reviewer role: judge a batch of finished tasks and say, per task, what happens next.

The user message puts what is stable during a run first (tool catalog, goal, plan) and the
per-batch results last, so consecutive review calls share a long cacheable prefix.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict

from orchestrator.llm import ModelClient, ModelRequest, SystemMessage, UserMessage
from orchestrator.models import TaskId
from orchestrator.roles import (
    Accept,
    EscalateTask,
    ReplanTask,
    RetryTask,
    ReviewItem,
    ReviewRequest,
    Verdict,
)

from .schemas import TaskOut, parse_reply, render_tasks, render_tools, to_task_spec

REVIEWER_PROMPT = """\
You are the reviewer in a team of AI agents. Cheap executor models carried out tasks of a plan. \
For each task under review you judge its result against what the goal needs and decide what \
happens next.

Verdicts:
- accept: the result is good enough for the goal. Do not nitpick wording, style or small gaps \
that do not matter for the goal.
- retry: the result is wrong or incomplete and the same executor can fix it with concrete \
feedback. Say exactly what is wrong and what to do instead.
- escalate: the executor is too weak for this task: it is confused, repeats a mistake, reports \
the task as ambiguous, or the task needs judgement. A stronger model takes it over. Say what went \
wrong.
- replan: the task itself was mis-specified (wrong approach, missing step, too big), so doing it \
again cannot help. Give new_tasks that replace it, written like plan tasks: self-contained \
instructions, exact tool names, deps only on existing tasks or earlier new tasks, ids not used by \
other tasks, tier null unless the plan already uses that tier name. Tasks that depended on the \
replaced task wait for the new ones.

Be strict about what the goal needs: wrong or made-up facts, missing outputs or files, work that \
was claimed but not done. Be lenient about everything else. An acceptance check that passed is \
strong evidence that the task is done. A report with status "failed" or "ambiguous" usually needs \
retry, escalate or replan.

Give one verdict per task under review, with task_id exactly as shown. feedback is read by whoever \
redoes the task, so make it concrete (it may be "" for accept). new_tasks is a list for replan and \
null otherwise. A task you leave out is accepted.

Reply with the JSON object only.
"""

CACHE_KEY = "orch-reviewer"
DEFAULT_RETRY_FEEDBACK = "The reviewer rejected this result; do the task again, more carefully."
"""Used when the model asks for a retry without saying why."""


class VerdictOut(BaseModel):
    """The verdict on one task under review."""

    model_config = ConfigDict(extra="forbid")
    task_id: str
    verdict: Literal["accept", "retry", "escalate", "replan"]
    feedback: str
    new_tasks: list[TaskOut] | None


class ReviewOut(BaseModel):
    """One verdict per task under review."""

    model_config = ConfigDict(extra="forbid")
    verdicts: list[VerdictOut]


class BatchReviewer:
    """Satisfies `orchestrator.roles.Reviewer`."""

    def __init__(
        self,
        *,
        temperature: float | None = None,
        max_output_tokens: int | None = None,
        max_output_chars: int = 6_000,
    ) -> None:
        """Configure the calls.

        Args:
            temperature: Sampling temperature, or None for the backend's default.
            max_output_tokens: Cap on the reply, or None for the backend's default.
            max_output_chars: Each reported output value is cut to this many characters.
        """
        self._temperature = temperature
        self._max_output_tokens = max_output_tokens
        self._max_output_chars = max_output_chars

    async def review(self, request: ReviewRequest, client: ModelClient) -> tuple[Verdict, ...]:
        """Judge a batch; verdicts on tasks outside the batch are dropped; the engine reviews
        tasks without a verdict again (it never accepts unjudged work).

        Raises:
            ModelError: the call failed, or the reply does not fit `ReviewOut`.
        """
        if not request.items:
            return ()
        reply = await client.complete(self.model_request(request))
        out = parse_reply(reply, ReviewOut)
        return to_verdicts(out, (item.task.id for item in request.items))

    def model_request(self, request: ReviewRequest) -> ModelRequest:
        """The model call that reviews `request.items`."""
        return ModelRequest(
            role="reviewer",
            model=request.model,
            messages=(
                SystemMessage(content=REVIEWER_PROMPT),
                UserMessage(content=render_request(request, self._max_output_chars)),
            ),
            output_type=ReviewOut,
            temperature=self._temperature,
            max_output_tokens=self._max_output_tokens,
            prompt_cache_key=CACHE_KEY,
        )


def render_request(request: ReviewRequest, max_output_chars: int) -> str:
    """Stable part (tools, goal, plan) first, then the batch under review."""
    plan_ids = {t.id for t in request.plan.tasks}
    items = "\n\n".join(
        _render_item(item, is_in_plan=item.task.id in plan_ids, max_chars=max_output_chars)
        for item in request.items
    )
    return (
        f"{render_tools(request.tools)}\n\n"
        f"Goal:\n{request.goal.strip()}\n\n"
        f"Plan:\n{render_tasks(request.plan.tasks)}\n\n"
        f"Tasks under review ({len(request.items)}):\n\n{items}"
    )


def _render_item(item: ReviewItem, *, is_in_plan: bool, max_chars: int) -> str:
    report = item.report
    lines = [f"### {item.task.id} (tier {item.tier}, attempt {item.attempt})"]
    if not is_in_plan:
        lines.append(f"Task: {render_tasks((item.task,))}")
    confidence = "" if report.confidence is None else f" (confidence {report.confidence:g})"
    lines.append(f"Status: {report.status}{confidence}")
    lines.append(f"Summary: {report.summary.strip()}")
    if report.outputs:
        lines.append("Outputs:")
        lines.extend(
            f"- {name}: {json.dumps(_cut(value, max_chars), ensure_ascii=False)}"
            for name, value in report.outputs.items()
        )
    else:
        lines.append("Outputs: none")
    if item.check_output is not None:
        command = "" if item.task.check is None else f" `{item.task.check.command}`"
        lines.append(f"Acceptance check{command} PASSED. Its output:")
        lines.append(_cut(item.check_output, max_chars).strip() or "(no output)")
    return "\n".join(lines)


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} more characters cut]"


def to_verdicts(out: ReviewOut, batch: Iterable[TaskId]) -> tuple[Verdict, ...]:
    """Domain verdicts for a reply: first verdict per batch task wins, others are dropped.

    One verdict for a batch of one is that task's, whatever id it names (small models misspell).
    """
    pending = set(batch)
    if len(pending) == 1 and len(out.verdicts) == 1:
        return (_to_verdict(next(iter(pending)), out.verdicts[0]),)
    verdicts: list[Verdict] = []
    for v in out.verdicts:
        task_id = TaskId(v.task_id.strip())
        if task_id not in pending:
            continue
        pending.discard(task_id)
        verdicts.append(_to_verdict(task_id, v))
    return tuple(verdicts)


def _to_verdict(task_id: TaskId, v: VerdictOut) -> Verdict:
    feedback = v.feedback.strip()
    match v.verdict:
        case "accept":
            return Accept(task_id=task_id, feedback=feedback)
        case "escalate":
            return EscalateTask(task_id=task_id, feedback=feedback)
        case "replan" if v.new_tasks:
            new_tasks = tuple(to_task_spec(t) for t in v.new_tasks)
            return ReplanTask(task_id=task_id, feedback=feedback, new_tasks=new_tasks, keep=False)
        case "retry" | "replan":
            return RetryTask(task_id=task_id, feedback=feedback or DEFAULT_RETRY_FEEDBACK)
