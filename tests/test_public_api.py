from __future__ import annotations

import importlib.metadata

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
