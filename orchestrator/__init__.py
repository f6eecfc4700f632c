"""orchestrator: a frontier planner, a task DAG, concurrent cheap executors, review, escalation."""

from __future__ import annotations

from .app import Orchestrator as Orchestrator
from .app import default_tools as default_tools
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
from .llm import ModelCapabilities as ModelCapabilities
from .llm import ModelClient as ModelClient
from .llm import ModelReply as ModelReply
from .llm import ModelRequest as ModelRequest
from .models import DEFAULT_LADDER as DEFAULT_LADDER
from .models import Failed as Failed
from .models import Limits as Limits
from .models import Plan as Plan
from .models import RunResult as RunResult
from .models import Skipped as Skipped
from .models import Succeeded as Succeeded
from .models import TaskSpec as TaskSpec
from .models import TierSpec as TierSpec
from .models import Unreviewed as Unreviewed
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
from .retry import RetryPolicy as RetryPolicy
from .run import Engine as Engine
from .run import EngineConfig as EngineConfig
from .settings import Settings as Settings
from .throttle import RateLimit as RateLimit
from .toolkit import Tool as Tool
from .toolkit import ToolContext as ToolContext
from .toolkit import ToolFailed as ToolFailed
from .toolkit import ToolRetry as ToolRetry
from .tools.base import tool as tool

__all__ = (
    "DEFAULT_LADDER",
    "Accept",
    "BudgetExceededError",
    "ConfigError",
    "CostRange",
    "EditPlan",
    "Engine",
    "EngineConfig",
    "EscalationPolicy",
    "Failed",
    "Limits",
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
    "OnPlan",
    "Orchestrator",
    "OrchestratorError",
    "PatchError",
    "PathEscapeError",
    "Plan",
    "PlanDecision",
    "PlanEstimate",
    "PlanPreview",
    "PlanValidationError",
    "Price",
    "PriceTable",
    "RateLimit",
    "Refuse",
    "RetryPolicy",
    "RoleOptions",
    "RunAbortedError",
    "RunResult",
    "Settings",
    "Skipped",
    "Succeeded",
    "TaskEstimate",
    "TaskSpec",
    "TierSpec",
    "Tool",
    "ToolContext",
    "ToolFailed",
    "ToolRetry",
    "Unreviewed",
    "default_tools",
    "tool",
)
