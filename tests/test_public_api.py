from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import textwrap

import pytest

import orchestrator


def test_public_api_all_is_sorted_and_complete() -> None:
    def isort_key(name: str) -> tuple[int, str]:  # ruff RUF022: CONSTANTS, Classes, functions
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert list(orchestrator.__all__) == sorted(orchestrator.__all__, key=isort_key)
    exported = {
        n
        for n in dir(orchestrator)
        if (not n.startswith("_") and n[0].isupper()) or n in ("tool", "default_tools")
    }
    exported -= {m for m in exported if isinstance(getattr(orchestrator, m), type(orchestrator))}
    assert exported <= set(orchestrator.__all__)
    for name in orchestrator.__all__:
        assert hasattr(orchestrator, name)


def test_public_api_installs_one_top_level_name() -> None:
    """Only `orchestrator` is importable from this distribution: no top-level agents/tools modules."""
    dist = importlib.metadata.distribution("orchestrator-agents")
    top = (dist.read_text("top_level.txt") or "").split()
    assert top in ([], ["orchestrator"])
    import orchestrator.agents
    import orchestrator.tools

    assert orchestrator.agents.__name__ == "orchestrator.agents"
    assert orchestrator.tools.__name__ == "orchestrator.tools"


def test_public_api_exports_what_users_must_name() -> None:
    """Types a goal script, a sink or a test names are importable from `orchestrator` itself."""
    needed = {
        "Budget",
        "CancelToken",
        "EngineConfig",
        "ErrorInfo",
        "Event",
        "EventSink",
        "LoadedTools",
        "OTelSink",
        "OpenAIChatClient",
        "OpenAIResponsesClient",
        "PlanEstimate",
        "PlanPreview",
        "PluginFailure",
        "RunResult",
        "RunStatus",
        "RunStream",
        "StopReason",
        "TaskId",
        "TaskResult",
        "TierUsage",
        "TokenUsage",
        "ToolRegistry",
        "Usage",
        "load_tools",
        "render_result",
    }

    assert needed <= set(orchestrator.__all__)
    assert "OTelSink" in dir(orchestrator)


def test_public_api_otel_sink_is_lazy_and_import_needs_no_extra() -> None:
    """`import orchestrator` works without OpenTelemetry; naming `OTelSink` says what to install."""
    code = textwrap.dedent(
        """
        import sys
        sys.modules["opentelemetry"] = None  # the otel extra is not installed
        import orchestrator
        assert "orchestrator.otel" not in sys.modules
        try:
            orchestrator.OTelSink
        except orchestrator.ConfigError as exc:
            print("ConfigError:", exc)
        """
    )

    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )

    assert done.stdout.startswith("ConfigError: orchestrator.otel needs OpenTelemetry: pip install")


def test_public_api_otel_sink_is_the_otel_module_class() -> None:
    from orchestrator.otel import OTelSink

    assert orchestrator.OTelSink is OTelSink
    with pytest.raises(AttributeError, match="no_such_name"):
        orchestrator.no_such_name  # type: ignore[attr-defined]  # noqa: B018
