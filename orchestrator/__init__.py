"""orchestrator: a frontier planner, a task DAG, concurrent cheap executors, review, escalation."""

from __future__ import annotations

import typing

from .agent_kit import Agent as Agent
from .agent_kit import AgentJob as AgentJob
from .agent_kit import AgentOutcome as AgentOutcome
from .agent_run import run_agent as run_agent
from .app import Orchestrator as Orchestrator
from .app import default_tools as default_tools
from .cancel import CancelToken as CancelToken
from .cassette import CassetteError as CassetteError
from .cassette import RecordingClient as RecordingClient
from .cassette_replay import ReplayMismatchError as ReplayMismatchError
from .cassette_replay import ReplayModel as ReplayModel
from .engine_options import RoleOptions as RoleOptions
from .errors import BudgetExceededError as BudgetExceededError
from .errors import ConfigError as ConfigError
from .errors import LocalModelError as LocalModelError
from .errors import ModelAPIError as ModelAPIError
from .errors import ModelBehaviorError as ModelBehaviorError
from .errors import ModelError as ModelError
from .errors import ModelOutageError as ModelOutageError
from .errors import ModelTimeoutError as ModelTimeoutError
from .errors import OrchestratorError as OrchestratorError
from .errors import PatchError as PatchError
from .errors import PathEscapeError as PathEscapeError
from .errors import PlanValidationError as PlanValidationError
from .errors import RunAbortedError as RunAbortedError
from .escalation import EscalationPolicy as EscalationPolicy
from .events import Event as Event
from .events import EventSink as EventSink
from .generation import Generation as Generation
from .generation import GenOptions as GenOptions
from .llm import ModelCapabilities as ModelCapabilities
from .llm import ModelClient as ModelClient
from .llm import ModelReply as ModelReply
from .llm import ModelRequest as ModelRequest
from .llm_openai_chat import OpenAIChatClient as OpenAIChatClient
from .llm_openai_responses import OpenAIResponsesClient as OpenAIResponsesClient
from .logs import StructlogSink as StructlogSink
from .logs import configure_logging as configure_logging
from .models import DEFAULT_LADDER as DEFAULT_LADDER
from .models import AcceptanceCheck as AcceptanceCheck
from .models import Budget as Budget
from .models import ErrorInfo as ErrorInfo
from .models import Failed as Failed
from .models import Limits as Limits
from .models import Plan as Plan
from .models import RunId as RunId
from .models import RunResult as RunResult
from .models import RunStatus as RunStatus
from .models import Skipped as Skipped
from .models import StopReason as StopReason
from .models import Succeeded as Succeeded
from .models import TaskId as TaskId
from .models import TaskResult as TaskResult
from .models import TaskSpec as TaskSpec
from .models import TierSpec as TierSpec
from .models import TierUsage as TierUsage
from .models import TokenUsage as TokenUsage
from .models import Unreviewed as Unreviewed
from .models import Usage as Usage
from .plugins import LoadedTools as LoadedTools
from .plugins import PluginFailure as PluginFailure
from .plugins import load_tools as load_tools
from .preview import Accept as Accept
from .preview import CostRange as CostRange
from .preview import EditPlan as EditPlan
from .preview import OnPlan as OnPlan
from .preview import PlanDecision as PlanDecision
from .preview import PlanEstimate as PlanEstimate
from .preview import PlanPreview as PlanPreview
from .preview import Refuse as Refuse
from .preview import TaskEstimate as TaskEstimate
from .pricing import Price as Price
from .pricing import PriceTable as PriceTable
from .report import ProgressSink as ProgressSink
from .report import render_result as render_result
from .report_html import write_report as write_report
from .retry import RetryPolicy as RetryPolicy
from .run import Engine as Engine
from .run import EngineConfig as EngineConfig
from .settings import Settings as Settings
from .stream import RunStream as RunStream
from .throttle import RateLimit as RateLimit
from .toolkit import Tool as Tool
from .toolkit import ToolContext as ToolContext
from .toolkit import ToolFailed as ToolFailed
from .toolkit import ToolRetry as ToolRetry
from .tools.base import tool as tool
from .tools.registry import ToolRegistry as ToolRegistry

if typing.TYPE_CHECKING:
    from .otel import OTelSink as OTelSink

__all__ = (
    "DEFAULT_LADDER",
    "Accept",
    "AcceptanceCheck",
    "Agent",
    "AgentJob",
    "AgentOutcome",
    "Budget",
    "BudgetExceededError",
    "CancelToken",
    "CassetteError",
    "ConfigError",
    "CostRange",
    "EditPlan",
    "Engine",
    "EngineConfig",
    "ErrorInfo",
    "EscalationPolicy",
    "Event",
    "EventSink",
    "Failed",
    "GenOptions",
    "Generation",
    "Limits",
    "LoadedTools",
    "LocalModelError",
    "ModelAPIError",
    "ModelBehaviorError",
    "ModelCapabilities",
    "ModelClient",
    "ModelError",
    "ModelOutageError",
    "ModelReply",
    "ModelRequest",
    "ModelTimeoutError",
    "OTelSink",
    "OnPlan",
    "OpenAIChatClient",
    "OpenAIResponsesClient",
    "Orchestrator",
    "OrchestratorError",
    "PatchError",
    "PathEscapeError",
    "Plan",
    "PlanDecision",
    "PlanEstimate",
    "PlanPreview",
    "PlanValidationError",
    "PluginFailure",
    "Price",
    "PriceTable",
    "ProgressSink",
    "RateLimit",
    "RecordingClient",
    "Refuse",
    "ReplayMismatchError",
    "ReplayModel",
    "RetryPolicy",
    "RoleOptions",
    "RunAbortedError",
    "RunId",
    "RunResult",
    "RunStatus",
    "RunStream",
    "Settings",
    "Skipped",
    "StopReason",
    "StructlogSink",
    "Succeeded",
    "TaskEstimate",
    "TaskId",
    "TaskResult",
    "TaskSpec",
    "TierSpec",
    "TierUsage",
    "TokenUsage",
    "Tool",
    "ToolContext",
    "ToolFailed",
    "ToolRegistry",
    "ToolRetry",
    "Unreviewed",
    "Usage",
    "configure_logging",
    "default_tools",
    "load_tools",
    "render_result",
    "run_agent",
    "tool",
    "write_report",
)

_LAZY = {"OTelSink": ".otel"}
"""Exports whose modules need an extra: imported on first use, so `import orchestrator` never
needs it (a missing extra raises `ConfigError` naming the install command then)."""


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
