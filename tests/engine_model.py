"""A fault-server responder that plays every role of the engine, and a tool that counts its runs.

`EngineModel` answers planner, worker, reviewer and synthesizer requests deterministically (a pure
function of the request, so a retried request gets the same reply); `ToolLedger` gives the run a
function tool and counts how often each task executed it. `run_orchestrator` runs the whole engine
through the public API against a fault server's URL.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, cast

from orchestrator import (
    Limits,
    Orchestrator,
    RateLimit,
    RetryPolicy,
    RunResult,
    Settings,
    tool,
)
from orchestrator.agents.planner import PLANNER_PROMPT
from orchestrator.agents.reviewer import REVIEWER_PROMPT
from orchestrator.agents.synthesizer import SYNTHESIZER_PROMPT
from orchestrator.agents.worker import WORKER_PROMPT
from orchestrator.events import EventSink
from orchestrator.llm_openai_chat import OpenAIChatClient
from orchestrator.llm_openai_responses import OpenAIResponsesClient
from orchestrator.toolkit import Tool, ToolContext

from .fault_openai import ApiCall, Reply, ToolCallOut

Shape = Literal["independent", "layered"]
Role = Literal["planner", "worker", "reviewer", "synthesizer"]
TEST_API_KEY = "sk-test-fault-0123456789abcdef"
"""The key runs send; a server fault may echo it, so tests can look for it."""
ANSWER = "All tasks are done."
_PROMPTS: tuple[tuple[Role, str], ...] = (
    ("planner", PLANNER_PROMPT),
    ("worker", WORKER_PROMPT),
    ("reviewer", REVIEWER_PROMPT),
    ("synthesizer", SYNTHESIZER_PROMPT),
)
_SCHEMAS: Mapping[str, Role] = {"PlanOut": "planner", "ReviewOut": "reviewer"}
_TASK_ID = re.compile(r"Your task \(([^)]+)\)")
_REVIEW_ITEM = re.compile(r"^### (\S+) \(tier ", re.MULTILINE)


class EngineModel:
    """Answers each engine role; the plan has `n_tasks` tasks that each call `tool` once.

    Args:
        n_tasks: Tasks in the plan (ids t0001, t0002, ...).
        shape: independent: no dependencies; layered: layers of `width` tasks, each task
            depending on two tasks of the layer before.
        tool: The function tool every task is given and calls on its first turn.
        width: Tasks per layer of a layered plan.
        arguments: The tool call's arguments (default: `{"text": ...}` for `ToolLedger`'s tool).
    """

    def __init__(
        self,
        n_tasks: int = 200,
        *,
        shape: Shape = "independent",
        tool: str = "word_count",
        width: int = 10,
        arguments: Mapping[str, object] | None = None,
    ) -> None:
        self.n_tasks = n_tasks
        self.shape: Shape = shape
        self.tool = tool
        self.width = max(1, width)
        self.arguments = dict(arguments) if arguments is not None else None

    @property
    def task_ids(self) -> tuple[str, ...]:
        return tuple(f"t{i:04d}" for i in range(1, self.n_tasks + 1))

    def __call__(self, call: ApiCall) -> Reply:
        role = self.role_of(call)
        if role == "planner":
            return Reply(text=self.plan_json(_tool_enum(call.schema)))
        if role == "worker":
            return self._work(call)
        if role == "reviewer":
            return Reply(text=_accept_all(call.user_text))
        if role == "synthesizer":
            return Reply(text=ANSWER)
        raise ValueError(f"no engine role recognised in a request to model {call.model!r}")

    @staticmethod
    def role_of(call: ApiCall) -> Role | None:
        """The engine role that sent `call`: by its system prompt, else its output schema."""
        prompt = call.system_prompt
        for role, text in _PROMPTS:
            if prompt.startswith(text[:80]):
                return role
        return _SCHEMAS.get(call.schema_name or "")

    def plan_json(self, tools: Sequence[str] | None) -> str:
        """The planner's reply; `tools` is the request's tool enum (None: unconstrained)."""
        allowed = tools is None or self.tool in tools
        tasks = [self._task(index, tid, allowed) for index, tid in enumerate(self.task_ids)]
        return json.dumps({"rationale": "one task per item", "tasks": tasks})

    def _task(self, index: int, tid: str, has_tool: bool) -> dict[str, Any]:
        return {
            "id": tid,
            "instruction": f"Count the words of item {tid} with {self.tool}.",
            "deps": self._deps(index),
            "tools": [self.tool] if has_tool else [],
            "produces": f"the word count of {tid}",
            "check_command": None,
            "tier": None,
            "est_seconds": None,
        }

    def _deps(self, index: int) -> list[str]:
        if self.shape == "independent" or index < self.width:
            return []
        layer_start = (index // self.width - 1) * self.width
        position = index % self.width
        picks = {layer_start + position, layer_start + (position + 1) % self.width}
        return [f"t{p + 1:04d}" for p in sorted(picks)]

    def _work(self, call: ApiCall) -> Reply:
        found = _TASK_ID.search(call.user_text)
        tid = found.group(1) if found else "unknown"
        if self.tool in call.tool_names and not call.has_tool_result:
            args = self.arguments or {"text": f"item {tid} has five words"}
            arguments = json.dumps(args)
            return Reply(
                tool_calls=(
                    ToolCallOut(name=self.tool, arguments=arguments, call_id=f"call_{tid}"),
                )
            )
        report = {
            "status": "done",
            "summary": f"counted the words of {tid}",
            "outputs": [{"name": "words", "value": "5"}],
            "confidence": 0.9,
        }
        return Reply(text=json.dumps(report))


def _accept_all(user_text: str) -> str:
    verdicts = [
        {"task_id": tid, "verdict": "accept", "feedback": "", "new_tasks": None}
        for tid in dict.fromkeys(_REVIEW_ITEM.findall(user_text))
    ]
    return json.dumps({"verdicts": verdicts})


def _tool_enum(schema: Mapping[str, Any]) -> list[str] | None:
    """The enum of the plan schema's `tools` items, wherever the schema nests it."""
    for node in _walk(schema):
        tools = _mapping(_mapping(node.get("properties")).get("tools"))
        enum = _mapping(tools.get("items")).get("enum")
        if isinstance(enum, list):
            return [str(e) for e in cast(list[object], enum)]
    return None


def _walk(node: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every JSON object inside `node`, itself included."""
    yield node
    for value in node.values():
        children = cast(list[object], value) if isinstance(value, list) else [value]
        for child in children:
            if sub := _mapping(child):
                yield from _walk(sub)


def _mapping(value: object) -> Mapping[str, Any]:
    return cast(Mapping[str, Any], value) if isinstance(value, Mapping) else {}


class ToolLedger:
    """A function tool (`ledger.tool`) that counts its executions per task, thread-safely."""

    def __init__(self, name: str = "word_count") -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self.tool: Tool = self._make(name)

    def _make(self, name: str) -> Tool:
        lock, counts = self._lock, self._counts

        async def count_words(text: str, ctx: ToolContext) -> int:
            """Count the words in a text.

            Args:
                text: The text to count.
            """
            with lock:
                counts[ctx.task_id] += 1
            return len(text.split())

        return tool(name=name)(count_words)

    @property
    def counts(self) -> dict[str, int]:
        """Executions per task id."""
        with self._lock:
            return dict(self._counts)

    @property
    def reruns(self) -> int:
        """Executions beyond the first, over all tasks."""
        return sum(count - 1 for count in self.counts.values() if count > 1)


async def run_orchestrator(
    base_url: str,
    *,
    api: Literal["chat", "responses"],
    ledger: ToolLedger,
    workdir: Path,
    goal: str = "Count the words of every item.",
    max_parallel: int = 8,
    timeout_s: float = 10.0,
    sinks: Sequence[EventSink] = (),
    limits: Limits | None = None,
    retry: RetryPolicy | None = None,
    rate_limits: Mapping[str, RateLimit] | None = None,
) -> RunResult:
    """Run the whole engine (review on, streaming planner) through `Orchestrator` at `base_url`."""
    client: OpenAIChatClient | OpenAIResponsesClient
    if api == "chat":
        client = OpenAIChatClient(base_url=base_url, api_key=TEST_API_KEY, timeout_s=timeout_s)
    else:
        client = OpenAIResponsesClient(base_url=base_url, api_key=TEST_API_KEY, timeout_s=timeout_s)
    try:
        orchestrator = Orchestrator(
            tools=[ledger.tool],
            builtin_tools=False,
            workdir=workdir,
            client=client,
            settings=Settings(run_root=workdir / "runs"),
            limits=limits or Limits(max_parallel=max_parallel),
            retry=retry,
            rate_limits=rate_limits,
            review="all",
            sinks=sinks,
        )
        return await orchestrator.run(goal)
    finally:
        await client.aclose()
