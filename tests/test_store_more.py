"""The run index's small answers (`store.py`): a run it does not know, and a running row from
before process ids were kept."""

from __future__ import annotations

import os
from pathlib import Path

from orchestrator.models import RunId
from orchestrator.store import RunStore, is_alive, process_start


def test_store_row_of_an_unknown_run_is_none(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    try:
        store.started(RunId("r1"), "g", 1.0)
        assert store.row("r2") is None
        row = store.row("r1")
        assert row is not None and (row.run_id, row.status) == ("r1", "running")
    finally:
        store.close()


def test_is_alive_counts_a_row_without_a_pid_as_alive() -> None:
    """An index from before pids were kept: a running row is not guessed interrupted."""
    assert is_alive(None, None)
    assert is_alive(None, "boot:123")


def test_is_alive_tells_this_process_from_a_later_one_with_its_pid() -> None:
    pid = os.getpid()
    assert is_alive(pid, process_start(pid))
    assert is_alive(pid, None)
    assert not is_alive(pid, "another-boot:1")
