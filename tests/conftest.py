"""Shared fixtures: anyio on asyncio, an offline guarantee, and a scripted model checked on teardown."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any, cast

import pytest
import structlog

from orchestrator.testing import RecordingSink, ScriptedModel

_LOOPBACK = ("127.", "::1", "localhost")

collect_ignore_glob = ["fixtures/*"]
"""Fixture repositories carry tests of their own, for the agents to run, not for this suite."""


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """No OPENAI_* variables and no connection off this machine, unless a test is marked live."""
    if request.node.get_closest_marker("live"):
        return
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        target: object = address  # narrowed below; `address` goes through untouched
        parts = cast("tuple[object, ...]", target) if isinstance(target, tuple) else (target,)
        host = str(parts[0])
        if self.family == socket.AF_UNIX or host.startswith(_LOOPBACK):
            return real_connect(self, address)
        pytest.fail(f"test tried to reach {address!r}: tests are offline")

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture(autouse=True)
def _structlog_config() -> Iterator[None]:
    """Put structlog back as it was: a CLI run in-process configures it for the whole process."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture
def scripted() -> Iterator[ScriptedModel]:
    """A ScriptedModel whose unused steps fail the test."""
    model = ScriptedModel()
    yield model
    model.assert_complete()


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()
