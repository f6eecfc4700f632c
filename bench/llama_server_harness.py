"""Driving a live llama-server for the conformance matrix: the real clients over a recording
HTTP client, the raw request the clients no longer send, and a real executor attempt."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import httpx2

from bench.llama_server_cases import ApiStyle
from orchestrator.agents.worker import ExecutorWorker
from orchestrator.errors import ModelError
from orchestrator.llm import (
    ModelCapabilities,
    ModelClient,
    ModelReply,
    ModelRequest,
    ToolResultMessage,
)
from orchestrator.llm_openai_chat import OpenAIChatClient
from orchestrator.llm_openai_responses import OpenAIResponsesClient, responses_body
from orchestrator.models import RunId, TaskId, TaskSpec, TierSpec
from orchestrator.roles import WorkOutcome, WorkRequest
from orchestrator.tools.files import read_file

_TIMEOUT_S = 300.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Exchange:
    """One HTTP request and the server's answer, as JSON."""

    request: dict[str, Any]
    status: int
    response: Any


class Harness:
    """The server's URL, a recording HTTP client and the recorded exchanges."""

    def __init__(self, base_url: str, *, workdir: Path, info: dict[str, object]) -> None:
        self.base_url = base_url
        self.workdir = workdir
        self.info = info
        self.exchanges: list[Exchange] = []
        self.recorded: dict[str, Exchange] = {}

    @property
    def last_body(self) -> dict[str, Any]:
        """The JSON body of the last request sent."""
        return self.exchanges[-1].request

    @property
    def last_text(self) -> str:
        """The text of the last reply, whatever the client made of it ("" for an error)."""
        response: Any = self.exchanges[-1].response
        if not isinstance(response, dict) or self.exchanges[-1].status != 200:
            return ""
        body = cast(dict[str, Any], response)
        if "choices" in body:
            return str(body["choices"][0]["message"].get("content") or "")
        items = cast(list[dict[str, Any]], body.get("output", []))
        parts = [
            part for item in items if item.get("type") == "message" for part in item["content"]
        ]
        return "".join(str(part.get("text", "")) for part in cast(list[dict[str, Any]], parts))

    def http(self) -> httpx2.AsyncClient:
        async def on_response(response: httpx2.Response) -> None:
            await response.aread()
            body = json.loads(response.request.content)
            self.exchanges.append(
                Exchange(request=body, status=response.status_code, response=_json(response))
            )

        return httpx2.AsyncClient(timeout=_TIMEOUT_S, event_hooks={"response": [on_response]})

    def client(
        self,
        style: ApiStyle,
        caps: ModelCapabilities,
        http: httpx2.AsyncClient,
        *,
        extra_body: dict[str, object] | None = None,
    ) -> OpenAIChatClient | OpenAIResponsesClient:
        options: dict[str, Any] = {"base_url": self.base_url, "http_client": http}
        options |= {"capabilities": caps, "extra_body": extra_body}
        if style == "chat":
            return OpenAIChatClient(**options)
        return OpenAIResponsesClient(**options)

    async def complete(
        self,
        style: ApiStyle,
        caps: ModelCapabilities,
        request: ModelRequest,
        *,
        record: str | None = None,
    ) -> ModelReply | ModelError:
        """One call through the real client; a model error is returned, not raised."""
        async with self.http() as http:
            client = self.client(style, caps, http)
            try:
                reply: ModelReply | ModelError = await client.complete(request)
            except ModelError as exc:
                reply = exc
        if record is not None:
            self.recorded[record] = self.exchanges[-1]
        return reply

    async def post_untyped_replay(
        self, caps: ModelCapabilities, request: ModelRequest
    ) -> tuple[int, str]:
        """POST `request` to /v1/responses with its assistant text items untyped, as the client
        sent them before; returns (status, error message)."""
        body = responses_body(request, caps, store=False)
        body["input"] = [
            {k: v for k, v in item.items() if k != "type"}
            if item.get("role") == "assistant"
            else item
            for item in body["input"]
        ]
        async with self.http() as http:
            response = await http.post(f"{self.base_url}/responses", json=body)
        self.recorded["responses_replay_untyped"] = self.exchanges[-1]
        error: Any = _json(response)
        message = ""
        if isinstance(error, dict):
            message = str(cast(dict[str, Any], error).get("error", {}).get("message", ""))
        return response.status_code, message or response.text

    def save_recordings(self, folder: Path) -> None:
        """Write each recorded exchange to `folder/<name>.json`."""
        folder.mkdir(parents=True, exist_ok=True)
        for name, exchange in sorted(self.recorded.items()):
            payload = {
                "server": "llama-server",
                "build": {k: self.info.get(k) for k in ("llama_cpp_python", "llama_cpp_commit")},
                "request": exchange.request,
                "status": exchange.status,
                "response": exchange.response,
            }
            (folder / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")


def _json(response: httpx2.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


class _Counting:
    """A `ModelClient` that counts the tool calls its replies carry."""

    def __init__(self, client: ModelClient) -> None:
        self._client = client
        self.requests: list[ModelRequest] = []
        self.tool_calls: list[str] = []

    @property
    def capabilities(self) -> ModelCapabilities:
        return self._client.capabilities

    async def complete(self, request: ModelRequest) -> ModelReply:
        self.requests.append(request)
        reply = await self._client.complete(request)
        self.tool_calls += [call.name for call in reply.tool_calls]
        return reply


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    """What one executor attempt sent and got."""

    bodies: list[dict[str, Any]]
    """Every request body of the attempt, in order."""
    tool_results: int
    """Tool results in the last request: the tool calls that ran."""
    calls: list[str]
    outcome: WorkOutcome | None
    error: str | None = None
    """A model error that ended the attempt."""

    @property
    def mixed(self) -> int:
        """Requests that carried tools (not "none") and a format."""
        return sum(
            1
            for body in self.bodies
            if body.get("tools")
            and body.get("tool_choice") != "none"
            and ("response_format" in body or "text" in body)
        )

    @property
    def report_turn(self) -> dict[str, Any]:
        """The last request without tools: the report turn."""
        empty: dict[str, Any] = {}
        return next((body for body in reversed(self.bodies) if not body.get("tools")), empty)


async def executor_attempt(harness: Harness, caps: ModelCapabilities) -> Attempt:
    """A real `ExecutorWorker` attempt with the real read_file tool on a one-file workspace.

    The tool is forced on the first turn (`tool_calls_need_named_choice`, as for the embedded
    model: a 135M model does not choose tools by itself) and one call per turn is asked for;
    the point is what each turn sends and whether the report then parses.
    """
    workdir = harness.workdir / "workspace"
    workdir.mkdir(exist_ok=True)
    (workdir / "notes.txt").write_text("The secret word is pineapple.\n")
    request = WorkRequest(
        run_id=RunId("conformance"),
        goal="Find the secret word.",
        task=TaskSpec(
            id=TaskId("read"),
            instruction="Read the file notes.txt and report the secret word it contains.",
            tools=("read_file",),
            produces="the secret word",
        ),
        tier=TierSpec(name="mini", model="smollm2-135m"),
        attempt=1,
        inputs=(),
        feedback=(),
        tools=(read_file,),
        workdir=workdir,
        run_dir=harness.workdir / "run",
        max_turns=4,
    )
    worker = ExecutorWorker(temperature=0.0, compact=True)
    first = len(harness.exchanges)
    style: ApiStyle = "responses" if caps.responses_api else "chat"
    forced = replace(caps, tool_calls_need_named_choice=True)
    # One call per turn: at temperature 0 the model repeats a call until the token cap cuts one
    # in half, which llama-server answers with a 500.
    once: dict[str, object] = {"parallel_tool_calls": False}
    outcome: WorkOutcome | None = None
    error = None
    async with harness.http() as http:
        client = _Counting(harness.client(style, forced, http, extra_body=once))
        try:
            outcome = await worker.work(request, client)
        except ModelError as exc:
            error = f"{type(exc).__name__}: {exc}"[:160]
    last = client.requests[-1].messages if client.requests else ()
    return Attempt(
        bodies=[exchange.request for exchange in harness.exchanges[first:]],
        tool_results=sum(isinstance(message, ToolResultMessage) for message in last),
        calls=client.tool_calls,
        outcome=outcome,
        error=error,
    )
