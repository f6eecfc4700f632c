"""The test-fixer's scripted run over tests/fixtures/buggy_pkg: its plan, the patches that fix the
three seeded bugs, and the workers that apply them (in-process and behind a fake server)."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import anyio

from orchestrator.agents.planner import PlanOut
from orchestrator.llm import ModelReply, ModelRequest
from orchestrator.testing import leaf_report, plan_reply, task, tool_call

from .engine_model import EngineModel
from .fault_openai import ApiCall, Reply, ToolCallOut

FIXTURE = Path(__file__).parent / "fixtures" / "buggy_pkg"
SUITE = f"PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 {sys.executable} -m pytest -q -p no:cacheprovider"
"""The fixture's suite with this interpreter; without our plugins it starts in a fraction of a
second (pytest-cov, hypothesis and the rest take seconds to load on a busy machine)."""

FAILING = {
    "g1": "tests/test_pricing.py::test_apply_discount_takes_a_percentage_off",
    "g2": "tests/test_receipt.py::test_format_cents_pads_the_cents",
    "g3": "tests/test_stock.py::test_restock_needed_skips_items_at_the_threshold",
}
"""The fixture's failing test per group, groups by test file in path order."""

FIXED_MODULES = {
    "fix_g1": "shop/pricing.py",
    "fix_g2": "shop/receipt.py",
    "fix_g3": "shop/stock.py",
}

PATCHES = {
    "fix_g1": """*** Begin Patch
*** Update File: shop/pricing.py
@@ def apply_discount(price_cents: int, percent: int) -> int:
     \"\"\"The price with `percent` per cent taken off, rounded down to a cent.\"\"\"
-    return price_cents - price_cents * percent // 10
+    return price_cents - price_cents * percent // 100
*** End Patch""",
    "fix_g2": """*** Begin Patch
*** Update File: shop/receipt.py
@@ def format_cents(cents: int) -> str:
     \"\"\"An amount in cents as dollars, e.g. 1205 -> "$12.05".\"\"\"
-    return f"${cents // 100}.{cents % 100}"
+    return f"${cents // 100}.{cents % 100:02d}"
*** End Patch""",
    "fix_g3": """*** Begin Patch
*** Update File: shop/stock.py
@@ def restock_needed(levels: dict[str, int], threshold: int) -> list[str]:
     \"\"\"The items whose level is below `threshold`, sorted by name.\"\"\"
-    return sorted(item for item, level in levels.items() if level <= threshold)
+    return sorted(item for item, level in levels.items() if level < threshold)
*** End Patch""",
}

WRONG_PATCH = """*** Begin Patch
*** Update File: shop/receipt.py
@@ def format_cents(cents: int) -> str:
     \"\"\"An amount in cents as dollars, e.g. 1205 -> "$12.05".\"\"\"
-    return f"${cents // 100}.{cents % 100}"
+    return f"${cents // 100}.{cents % 100:d}"
*** End Patch"""
"""Changes receipt.py without fixing it: the group's test still fails."""

_TOOLS = ["read_file", "apply_patch", "shell"]


def copy_fixture(tmp_path: Path) -> Path:
    """A fresh copy of the fixture repository to fix."""
    return Path(shutil.copytree(FIXTURE, tmp_path / "repo"))


def fixer_plan(*, with_checks: bool = False) -> PlanOut:
    """Three independent tasks, one per group; checks left to the agent's plan gate unless asked."""
    return plan_reply(
        *(
            task(
                f"fix_{key}",
                tools=_TOOLS,
                instruction=f"Fix the code under test so that {node} passes ({key}).",
                check=f"{SUITE} {node}" if with_checks else None,
            )
            for key, node in FAILING.items()
        )
    )


Responder = Callable[[ModelRequest], Awaitable[ModelReply]]


def fixing_worker(patches: Mapping[str, str] = PATCHES, *, together: int = 0) -> Responder:
    """A standing worker: each task applies its patch, then reports done.

    With `together`, each task's first turn waits until that many tasks have made theirs, so
    the run only gets past it when they run at the same time (a serial run would time out).
    """
    arrived: list[str] = []
    everyone = anyio.Event()

    async def respond(request: ModelRequest) -> ModelReply:
        tid = str(request.task_id)
        if any(m.role == "tool" for m in request.messages):
            return ModelReply(text=leaf_report(f"fixed {FIXED_MODULES[tid]}").model_dump_json())
        if together:
            arrived.append(tid)
            if len(arrived) >= together:
                everyone.set()
            with anyio.fail_after(20):
                await everyone.wait()
        return tool_call("apply_patch", {"patch": patches[tid]}, call_id=f"call_{tid}")

    return respond


class FixerServerModel:
    """The same run behind a fake OpenAI-compatible server, for the CLI in a subprocess."""

    def __call__(self, call: ApiCall) -> Reply:
        role = EngineModel.role_of(call)
        if role == "planner":
            return Reply(text=fixer_plan().model_dump_json())
        if role == "worker":
            tid = next(t for t in PATCHES if f"Your task ({t})" in call.user_text)
            if call.has_tool_result:
                report = leaf_report(f"fixed {FIXED_MODULES[tid]}")
                return Reply(text=report.model_dump_json())
            arguments = json.dumps({"patch": PATCHES[tid]})
            return Reply(
                tool_calls=(ToolCallOut(name="apply_patch", arguments=arguments, call_id=tid),)
            )
        if role == "reviewer":
            verdicts = [
                {"task_id": t, "verdict": "accept", "feedback": "", "new_tasks": None}
                for t in PATCHES
                if f"### {t} (tier " in call.user_text
            ]
            return Reply(text=json.dumps({"verdicts": verdicts}))
        return Reply(text="Fixed the failing tests.")
