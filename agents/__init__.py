"""The default role implementations (planner, executor, reviewer, synthesizer).

Installed as `orchestrator.agents`; each role satisfies its Protocol in `orchestrator.roles`.
"""

from __future__ import annotations

from .planner import DagPlanner as DagPlanner
from .reviewer import BatchReviewer as BatchReviewer
from .synthesizer import AnswerSynthesizer as AnswerSynthesizer
from .worker import ExecutorWorker as ExecutorWorker

__all__ = ("AnswerSynthesizer", "BatchReviewer", "DagPlanner", "ExecutorWorker")
