"""The apply_patch conformance data: every Codex scenario and every Responses diff vector.

The cases are an in-repo copy of the shared conformance data (`tests/data/README.md`), so a clone
runs them all without `../shared`.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import PatchError
from orchestrator.tools.apply_patch import apply_patch
from orchestrator.tools.v4a import apply_diff

CONFORMANCE = Path(__file__).resolve().parents[1] / "data" / "apply_patch"
SCENARIOS = CONFORMANCE / "scenarios"


def _load_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


MANIFEST: dict[str, dict[str, Any]] = _load_json(SCENARIOS / "MANIFEST.json")["scenarios"]
VECTORS: list[dict[str, Any]] = _load_json(CONFORMANCE / "responses_diff_vectors.json")["vectors"]
SCENARIO_NAMES = sorted(path.name for path in SCENARIOS.iterdir() if path.is_dir())


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under `root` (missing folder = empty tree) with its exact bytes."""
    if not root.exists():
        return {}
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _workspace(scenario: Path, tmp_path: Path) -> Path:
    workspace = tmp_path / "workspace"
    if (scenario / "input").is_dir():
        shutil.copytree(scenario / "input", workspace)
    else:
        workspace.mkdir()
    return workspace


def test_conformance_data_is_complete() -> None:
    """Every scenario folder is in the manifest and the other way round (25 and 18 cases)."""
    assert sorted(MANIFEST) == SCENARIO_NAMES
    assert len(SCENARIO_NAMES) == 25
    assert len(VECTORS) == 18


@pytest.mark.parametrize("name", SCENARIO_NAMES, ids=SCENARIO_NAMES)
def test_scenario(name: str, tmp_path: Path) -> None:
    scenario = SCENARIOS / name
    meta = MANIFEST[name]
    workspace = _workspace(scenario, tmp_path)
    before = _tree(workspace)
    patch = (scenario / "patch.txt").read_bytes().decode("utf-8")
    if meta["expect_error"]:
        with pytest.raises(PatchError):
            apply_patch(patch, workspace)
        # All-or-nothing: a rejected patch leaves the input tree; for 015 Codex's partial
        # result (`expected/`) is also allowed by the data, but this project wants none.
        assert _tree(workspace) == before == _tree(scenario / "input")
        if not meta.get("also_accept_unchanged_tree"):
            assert _tree(workspace) == _tree(scenario / "expected")
    else:
        apply_patch(patch, workspace)
        assert _tree(workspace) == _tree(scenario / "expected")


@pytest.mark.parametrize("vector", VECTORS, ids=[vector["name"] for vector in VECTORS])
def test_responses_diff_vector(vector: dict[str, Any]) -> None:
    if "raises" in vector:
        assert vector["raises"] == "ValueError"
        with pytest.raises(ValueError, match=re.escape(vector.get("match", "")) or None):
            apply_diff(vector["input"], vector["diff"], vector["mode"])
    else:
        assert apply_diff(vector["input"], vector["diff"], vector["mode"]) == vector["expected"]
