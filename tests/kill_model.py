"""A fault-server responder for kill-and-resume runs of the real CLI with the built-in tools.

`KillModel(KillShape.for_seed(3))` plays every engine role as a pure function of the request, so
a resumed run gets the same plan, the same tool calls and the same reports as an uninterrupted
one. The plan is layered and streamed slowly (`chunk_delay_s` per streamed event), so a kill can
land inside the stream. Each worker reads its seeded data file on its first turn and reports the
value it read on the next; one task, the patcher, adds a line to `notes.txt` with apply_patch.
Every call is recorded with its time and the phase the harness set (`run`, `resume`, ...), so a
harness can tell the executor calls made after a kill.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from .engine_model import EngineModel, Role
from .fault_openai import ApiCall, Reply, ToolCallOut

ANSWER = "Every data file was read and the notes were patched."
GOAL = "Read every data file under data/ and add the patch line to notes.txt."
NOTES = "notes.txt"
NOTES_TEXT = "alpha\nbeta\ngamma\n"
_TASK_ID = re.compile(r"Your task \(([^)]+)\)")
_INPUT_FROM = re.compile(r"^Input from ([^\s:]+)", re.MULTILINE)
_REVIEW_ITEM = re.compile(r"^### (\S+) \(tier ", re.MULTILINE)


def draw(seed: int, *parts: object) -> float:
    """A uniform draw in [0, 1) fixed by the seed and the parts (no global random state)."""
    text = ":".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64


@dataclass(frozen=True, slots=True, kw_only=True)
class KillShape:
    """One seed's workload: plan size and layout, where the patcher sits, and the pacing."""

    seed: int
    n_tasks: int
    width: int
    """Tasks per layer; every task after the first layer depends on one or two of the layer before."""
    patcher_index: int
    chunk_delay_s: float
    """Pause after each streamed event of the plan."""
    jitter_s: float
    """Each reply waits a seeded time in [0, jitter_s) before it is sent."""
    max_parallel: int

    @classmethod
    def for_seed(cls, seed: int, *, n_tasks: int | None = None) -> KillShape:
        """The shape seed `seed` draws: 12-16 tasks (or `n_tasks`), 3-5 wide, 2-4 in parallel."""
        n = n_tasks if n_tasks is not None else 12 + 2 * int(draw(seed, "n") * 3)
        width = 3 + int(draw(seed, "width") * 3)
        return cls(
            seed=seed,
            n_tasks=n,
            width=width,
            patcher_index=min(n - 1, width + int(draw(seed, "patcher") * width)),
            chunk_delay_s=0.008 + 0.006 * draw(seed, "chunk"),
            jitter_s=0.004 + 0.016 * draw(seed, "jitter"),
            max_parallel=2 + int(draw(seed, "parallel") * 3),
        )

    @property
    def task_ids(self) -> tuple[str, ...]:
        return tuple(f"t{i:03d}" for i in range(1, self.n_tasks + 1))

    @property
    def patcher(self) -> str:
        return self.task_ids[self.patcher_index]

    @property
    def patch_line(self) -> str:
        """The line the patcher adds to notes.txt."""
        return f"patched by {self.patcher}"

    def value_of(self, task_id: str) -> str:
        """The value seeded in `data/<task_id>.txt`, which the task reports."""
        return hashlib.sha256(f"{self.seed}:{task_id}".encode()).hexdigest()[:12]

    def deps(self, index: int) -> list[str]:
        if index < self.width:
            return []
        layer_start = (index // self.width - 1) * self.width
        first = layer_start + int(draw(self.seed, "dep", index) * self.width)
        picks = {first}
        if draw(self.seed, "two", index) < 0.6:
            picks.add(layer_start + (first - layer_start + 1) % self.width)
        return [self.task_ids[p] for p in sorted(picks)]

    def seed_workdir(self, workdir: Path) -> None:
        """Write the files the tasks read and patch."""
        data = workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        for tid in self.task_ids:
            (data / f"{tid}.txt").write_text(f"value of {tid} = {self.value_of(tid)}\n")
        (workdir / NOTES).write_text(NOTES_TEXT)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRecord:
    """One request the model answered."""

    at: float
    """time.monotonic() when it arrived."""
    role: Role | None
    task_id: str | None
    """The worker's task; None for the other roles."""
    turn: int
    """Workers: 1 before the tool ran, 2 after."""
    phase: str


class KillModel:
    """Answers every engine role for `shape`; records each call (see `calls`)."""

    def __init__(self, shape: KillShape) -> None:
        self.shape = shape
        self.phase = "run"
        """Stamped on each call; the harness moves it on before it resumes a run."""
        self._lock = threading.Lock()
        self._calls: list[CallRecord] = []
        self.plan_text, self.task_ends = self._plan()

    def __call__(self, call: ApiCall) -> Reply:
        role = EngineModel.role_of(call)
        task_id = task_of(call) if role == "worker" else None
        turn = 2 if role == "worker" and call.has_tool_result else 1
        with self._lock:
            self._calls.append(
                CallRecord(
                    at=time.monotonic(), role=role, task_id=task_id, turn=turn, phase=self.phase
                )
            )
        time.sleep(self.shape.jitter_s * draw(self.shape.seed, "reply", role, task_id, turn))
        if role == "planner":
            return Reply(text=self.plan_text, chunk_delay_s=self.shape.chunk_delay_s)
        if role == "worker":
            return self._work(call, task_id or "unknown")
        if role == "reviewer":
            return Reply(text=_accept_all(call.user_text))
        if role == "synthesizer":
            return Reply(text=ANSWER)
        raise ValueError(f"no engine role recognised in a request to model {call.model!r}")

    @property
    def calls(self) -> tuple[CallRecord, ...]:
        with self._lock:
            return tuple(self._calls)

    def worker_calls(self, phase: str | None = None) -> Counter[str]:
        """Executor requests per task id, in `phase` (None: all)."""
        return Counter(
            c.task_id
            for c in self.calls
            if c.role == "worker" and c.task_id and (phase is None or c.phase == phase)
        )

    def role_calls(self, role: Role, phase: str | None = None) -> int:
        """Requests of `role` in `phase` (None: all)."""
        return sum(1 for c in self.calls if c.role == role and phase in (None, c.phase))

    def tasks_streamed(self, chars: int) -> int:
        """How many tasks of the plan are complete in its first `chars` characters."""
        return sum(1 for end in self.task_ends if end <= chars)

    # -- replies -----------------------------------------------------------------------------

    def _plan(self) -> tuple[str, tuple[int, ...]]:
        """The planner's reply text and the offset just past each task object in it."""
        text = json.dumps({"rationale": "one task per data file, then the patch"})[:-1]
        text += ', "tasks": ['
        ends: list[int] = []
        for index, tid in enumerate(self.shape.task_ids):
            text += (", " if index else "") + json.dumps(self._task(index, tid))
            ends.append(len(text))
        return text + "]}", tuple(ends)

    def _task(self, index: int, tid: str) -> dict[str, Any]:
        patcher = index == self.shape.patcher_index
        instruction = (
            f"Add the line {self.shape.patch_line!r} after 'alpha' in {NOTES}."
            if patcher
            else f"Read data/{tid}.txt and report the value it holds."
        )
        return {
            "id": tid,
            "instruction": instruction,
            "deps": self.shape.deps(index),
            "tools": ["apply_patch" if patcher else "read_file"],
            "produces": "the patched notes" if patcher else f"the value of {tid}",
            "check_command": None,
            "tier": None,
            "est_seconds": None,
        }

    def _work(self, call: ApiCall, tid: str) -> Reply:
        patcher = tid == self.shape.patcher
        if not call.has_tool_result:
            return Reply(tool_calls=(self._tool_call(tid, patcher=patcher),))
        inputs = ",".join(sorted(set(_INPUT_FROM.findall(call.user_text))))
        if patcher:
            summary, outputs = f"added {self.shape.patch_line!r}", {"patched": NOTES}
        else:
            found = re.search(rf"value of {re.escape(tid)} = (\w+)", _tool_output(call))
            value = found.group(1) if found else "missing"
            summary, outputs = f"read the value of {tid}", {"value": value}
        report = {
            "status": "done",
            "summary": summary,
            "outputs": [{"name": k, "value": v} for k, v in {**outputs, "inputs": inputs}.items()],
            "confidence": 0.9,
        }
        return Reply(text=json.dumps(report))

    def _tool_call(self, tid: str, *, patcher: bool) -> ToolCallOut:
        if patcher:
            patch = (
                f"*** Begin Patch\n*** Update File: {NOTES}\n@@\n alpha\n"
                f"+{self.shape.patch_line}\n*** End Patch"
            )
            return ToolCallOut(
                name="apply_patch", arguments=json.dumps({"patch": patch}), call_id=f"call_{tid}"
            )
        arguments = {"path": f"data/{tid}.txt", "start_line": None, "end_line": None}
        return ToolCallOut(name="read_file", arguments=json.dumps(arguments), call_id=f"call_{tid}")


def task_of(call: ApiCall) -> str | None:
    """The task id of a worker request."""
    found = _TASK_ID.search(call.user_text)
    return found.group(1) if found else None


def _accept_all(user_text: str) -> str:
    verdicts = [
        {"task_id": tid, "verdict": "accept", "feedback": "", "new_tasks": None}
        for tid in dict.fromkeys(_REVIEW_ITEM.findall(user_text))
    ]
    return json.dumps({"verdicts": verdicts})


def _tool_output(call: ApiCall) -> str:
    """Every tool result in the conversation, joined (chat `tool` messages, Responses
    `function_call_output` items)."""
    key = "input" if call.api == "responses" else "messages"
    texts: list[str] = []
    for item in _items(call.body.get(key)):
        if item.get("role") == "tool" or item.get("type") == "function_call_output":
            content = item.get("content", item.get("output"))
            texts.append(content if isinstance(content, str) else json.dumps(content))
    return "\n".join(texts)


def _items(value: object) -> Iterator[Mapping[str, Any]]:
    if isinstance(value, list):
        for item in cast(list[object], value):
            if isinstance(item, Mapping):
                yield cast(Mapping[str, Any], item)
