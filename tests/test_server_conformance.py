"""The llama-server conformance matrix (`bench/llama_server_conformance.py`) against the real
upstream server: runs when its build is cached, skips otherwise.

Build it once with `python -m bench.llama_server` (about 25 minutes on 2 cores); the matrix then
takes a few minutes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.llama_server import find_build
from bench.llama_server_conformance import run_matrix
from orchestrator.errors import LocalModelError
from orchestrator.local_model import find_embedded_model

pytestmark = pytest.mark.server


@pytest.mark.timeout(1200)
async def test_llama_server_conformance_matrix(tmp_path: Path) -> None:
    server = find_build()
    if server is None:
        pytest.skip("llama-server is not cached; build it with: python -m bench.llama_server")
    try:
        find_embedded_model()
    except LocalModelError as exc:
        pytest.skip(str(exc))
    rows = await run_matrix(server, log_dir=tmp_path)
    failed = [f"{row.case} [{row.style} {row.mode}]: {row.observed}" for row in rows if not row.ok]
    assert failed == []
