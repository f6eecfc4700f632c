"""One cell of the fault matrix: the whole engine, through `Orchestrator`, against a seeded fault
server, and the figures issue 9 asks for (lost tasks, attempts per call, transport escalations,
tool re-runs, wall time)."""

from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Literal, cast

import anyio

from orchestrator.errors import RunAbortedError
from orchestrator.events import EscalationDecided, ReviewDecided
from orchestrator.models import RunResult
from orchestrator.retry import RetryPolicy
from orchestrator.testing import RecordingSink
from tests.engine_model import EngineModel, ToolLedger, run_orchestrator
from tests.fault_log import attempts_ratio, logical_calls, max_attempts
from tests.fault_plan import ALL_KINDS, FaultKind, FaultPlan
from tests.fault_server import FaultServer

TRANSPORT_TRIGGERS = frozenset({"api_error", "timeout", "outage"})
"""Escalation triggers that name a transport fault, not the quality of the work."""
_UNJUDGED = "reviewer unavailable"
"""How engines before the Unreviewed state marked a batch accepted without a verdict."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Cell:
    """What one cell runs."""

    n_tasks: int
    rate: float
    seed: int
    api: Literal["chat", "responses"]
    latency_s: float = 0.02
    timeout_s: float = 1.0
    """The client's per-request timeout (a `hang` fault costs this much)."""
    retry_after_s: float = 0.25
    kinds: tuple[FaultKind, ...] = ALL_KINDS
    max_parallel: int = 8
    cell_timeout_s: float = 300.0
    retry_base_s: float = 0.2
    """`RetryPolicy.base_delay_s`; scaled with the latency when the whole bench is scaled."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CellResult:
    """The figures of one cell."""

    cell: Cell
    status: str
    """The run's status, `failed (ErrorType)` when it raised, `timeout` past `cell_timeout_s`."""
    succeeded: int
    lost: int
    """Tasks that did not succeed (failed, skipped, unreviewed or never reached)."""
    by_kind: dict[str, int]
    unreviewed: int
    """Tasks left unreviewed, or (older engines) accepted after a failed review call."""
    requests: int
    logical_calls: int
    attempts_ratio: float
    max_attempts: int
    worker_requests_per_task: float
    """Worker HTTP requests per planned task: 2.0 when each task's two turns (tool call,
    report) were sent once; also counts whole attempts re-run with feedback, which the
    per-call ratio cannot see (their bodies differ)."""
    faults: int
    """Requests the server faulted."""
    transport_escalations: int
    tool_reruns: int
    wall_s: float
    responder_errors: int


async def run_cell(cell: Cell) -> CellResult:
    """Run one cell; never raises for an engine failure (that is a figure, not a crash)."""
    model = EngineModel(cell.n_tasks)
    ledger = ToolLedger()
    sink = RecordingSink()
    plan = FaultPlan(rate=cell.rate, kinds=cell.kinds, retry_after_s=cell.retry_after_s, hang_s=30)
    srv = FaultServer(
        model, faults=plan, seed=cell.seed, latency_s=cell.latency_s, role_of=EngineModel.role_of
    )
    result: RunResult | None = None
    status = "timeout"
    with tempfile.TemporaryDirectory() as tmp:
        srv.start()
        started = perf_counter()
        try:
            with anyio.move_on_after(cell.cell_timeout_s):
                try:
                    result = await run_orchestrator(
                        srv.base_url,
                        api=cell.api,
                        ledger=ledger,
                        workdir=Path(tmp),
                        max_parallel=cell.max_parallel,
                        timeout_s=cell.timeout_s,
                        sinks=[sink],
                        retry=RetryPolicy(
                            base_delay_s=cell.retry_base_s, max_delay_s=cell.retry_base_s * 80
                        ),
                    )
                    status = result.status
                except RunAbortedError as exc:
                    result, status = exc.result, f"failed ({_root_name(exc)})"
                except Exception as exc:  # the bench reports a failed run; it must not stop
                    status = f"failed ({type(exc).__name__})"
        finally:
            wall = perf_counter() - started
            srv.close(raise_errors=False)
    return _figures(cell, status, result, srv, sink, ledger, wall)


def _figures(
    cell: Cell,
    status: str,
    result: RunResult | None,
    srv: FaultServer,
    sink: RecordingSink,
    ledger: ToolLedger,
    wall: float,
) -> CellResult:
    records = srv.records
    kinds = Counter(r.kind for r in result.results.values()) if result else Counter[str]()
    succeeded = kinds.get("succeeded", 0)
    unjudged = sum(
        1 for e in sink.events if isinstance(e, ReviewDecided) and e.feedback.startswith(_UNJUDGED)
    )
    escalations = sum(
        1
        for e in sink.events
        if isinstance(e, EscalationDecided) and e.trigger in TRANSPORT_TRIGGERS
    )
    return CellResult(
        cell=cell,
        status=status,
        succeeded=succeeded,
        lost=cell.n_tasks - succeeded,
        by_kind=dict(kinds),
        unreviewed=kinds.get("unreviewed", 0) + unjudged,
        requests=len(records),
        logical_calls=logical_calls(records),
        attempts_ratio=attempts_ratio(records),
        max_attempts=max_attempts(records),
        worker_requests_per_task=sum(r.role == "worker" for r in records) / cell.n_tasks,
        faults=sum(1 for r in records if r.fault is not None),
        transport_escalations=escalations,
        tool_reruns=ledger.reruns,
        wall_s=wall,
        responder_errors=len(srv.responder_errors),
    )


def _root_name(exc: BaseException) -> str:
    """The type of the error that started a chain, through exception groups (what the run
    died of)."""
    seen: set[int] = set()
    current: BaseException = exc
    while id(current) not in seen:
        seen.add(id(current))
        inner = cast("tuple[BaseException, ...]", getattr(current, "exceptions", ()))
        if inner:
            current = inner[0]
        elif current.__cause__ is not None:
            current = current.__cause__
        else:
            break
    return type(current).__name__
