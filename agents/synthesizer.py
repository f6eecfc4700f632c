"""The synthesizer role: one plain-text model call writes the final answer from the task results."""

from __future__ import annotations

from orchestrator.errors import ModelBehaviorError
from orchestrator.llm import ModelClient, ModelRequest, SystemMessage, UserMessage
from orchestrator.models import TaskId
from orchestrator.roles import SynthesisRequest

SYNTHESIZER_PROMPT = """\
You write the final answer to a goal. A team of AI agents split the goal into tasks and carried \
them out; you get each task with its result.
- Answer the goal directly, as one coherent answer. Do not retell the tasks one by one.
- Use only the task results as your source. Do not invent results, files or numbers.
- If a task failed or was skipped, say so plainly, and say which parts of the goal are therefore \
missing or uncertain.
- Be concise.
"""

CACHE_KEY = "orch-synthesizer"
_NO_RESULT = "(no result recorded)"


class AnswerSynthesizer:
    """Satisfies `orchestrator.roles.Synthesizer`."""

    def __init__(
        self, *, temperature: float | None = None, max_output_tokens: int | None = None
    ) -> None:
        self._temperature = temperature
        self._max_output_tokens = max_output_tokens

    async def synthesize(self, request: SynthesisRequest, client: ModelClient) -> str:
        """Write the final answer.

        Raises:
            ModelError: the call failed, or the model replied with no text (ModelBehaviorError).
        """
        reply = await client.complete(self.model_request(request))
        answer = reply.text.strip()
        if not answer:
            raise ModelBehaviorError("the synthesizer replied with an empty answer")
        return answer

    def model_request(self, request: SynthesisRequest) -> ModelRequest:
        """The model call that writes the answer for `request`."""
        return ModelRequest(
            role="synthesizer",
            model=request.model,
            messages=(
                SystemMessage(content=SYNTHESIZER_PROMPT),
                UserMessage(content=render_request(request)),
            ),
            temperature=self._temperature,
            max_output_tokens=self._max_output_tokens,
            prompt_cache_key=CACHE_KEY,
        )


def render_request(request: SynthesisRequest) -> str:
    """The goal, then every task in plan order with its result; results outside the plan last."""
    sections = [f"Goal:\n{request.goal.strip()}"]
    if request.stopped:
        sections.append(
            f"The run stopped before every task ran ({request.stopped}). Say plainly which "
            "parts of the goal were not done."
        )
    sections.append("Task results, in plan order:")
    planned: set[TaskId] = set()
    for task in request.plan.tasks:
        planned.add(task.id)
        head = f"## {task.id}\nTask: {task.instruction.strip()}"
        if task.produces:
            head += f"\nExpected: {task.produces.strip()}"
        result = request.results.get(task.id, _NO_RESULT).strip() or _NO_RESULT
        sections.append(f"{head}\nResult: {result}")
    sections.extend(
        f"## {task_id}\nResult: {result.strip() or _NO_RESULT}"
        for task_id, result in request.results.items()
        if task_id not in planned
    )
    return "\n\n".join(sections)
