"""The shared OpenAI plumbing: error mapping for both clients, strict schemas, lenient parsing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

import httpx2
import pytest
from pydantic import BaseModel, Field

from orchestrator.errors import ModelAPIError, ModelBehaviorError, ModelTimeoutError
from orchestrator.llm import ModelClient, ModelRequest, UserMessage
from orchestrator.llm_openai import first_json_object, parse_output, strict_json_schema
from orchestrator.llm_openai_chat import OpenAIChatClient
from orchestrator.llm_openai_responses import OpenAIResponsesClient

from .openai_payloads import ScriptedServer, chat_completion, error, message_item, ok, response

Factory = Callable[..., Any]
CLIENTS = pytest.mark.parametrize(
    "factory", [OpenAIResponsesClient, OpenAIChatClient], ids=["responses", "chat"]
)
REQUEST = ModelRequest(role="worker", model="m", messages=(UserMessage(content="hi"),))


async def call_once(factory: Factory, server: ScriptedServer, **options: Any) -> None:
    async with server.http_client() as http:
        client = factory(api_key="sk-test", http_client=http, **options)
        try:
            await client.complete(REQUEST)
        finally:
            await client.aclose()


@CLIENTS
@pytest.mark.parametrize(
    ("status", "retryable"), [(429, True), (500, True), (503, True)], ids=["429", "500", "503"]
)
async def test_retryable_status_maps_to_retryable_api_error(
    factory: Factory, status: int, retryable: bool
) -> None:
    server = ScriptedServer(error(status, "Slow down.", type_="requests", code="rate_limit"))
    with pytest.raises(ModelAPIError, match="Slow down") as caught:
        await call_once(factory, server)
    assert (caught.value.status_code, caught.value.retryable) == (status, retryable)
    assert len(server.requests) == 1  # no hidden SDK retries


@CLIENTS
async def test_bad_request_is_not_retryable_and_quotes_the_server(factory: Factory) -> None:
    message = "Invalid schema for response_format 'Plan': 'required' is missing 'x'."
    server = ScriptedServer(error(400, message, type_="invalid_request_error"))
    with pytest.raises(ModelAPIError) as caught:
        await call_once(factory, server)
    assert caught.value.status_code == 400
    assert caught.value.retryable is False
    assert message in str(caught.value)
    assert isinstance(caught.value.__cause__, Exception)
    assert len(server.requests) == 1


@CLIENTS
async def test_read_timeout_maps_to_model_timeout(factory: Factory) -> None:
    server = ScriptedServer(httpx2.ReadTimeout("timed out"))
    with pytest.raises(ModelTimeoutError) as caught:
        await call_once(factory, server, timeout_s=7.5)
    assert caught.value.timeout_s == 7.5
    assert len(server.requests) == 1


@CLIENTS
async def test_connection_refused_is_retryable_without_status(factory: Factory) -> None:
    server = ScriptedServer(httpx2.ConnectError("[Errno 111] Connection refused"))
    with pytest.raises(ModelAPIError, match="Connection refused") as caught:
        await call_once(factory, server)
    assert (caught.value.status_code, caught.value.retryable) == (None, True)
    assert len(server.requests) == 1


@CLIENTS
async def test_legacy_httpx_client_is_accepted(factory: Factory) -> None:
    """A caller's plain `httpx.AsyncClient` works too, timeouts included."""
    httpx = pytest.importorskip("httpx")  # not an openai dependency any more (httpx2 is)
    payload = response([message_item("hi")]) if factory is OpenAIResponsesClient else None
    replies: list[Any] = [
        httpx.Response(200, json=payload or chat_completion("hi")),
        httpx.ReadTimeout("timed out"),
    ]

    def handle(request: Any) -> Any:
        reply = replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as http:
        client: ModelClient = factory(api_key="sk-test", http_client=http, base_url="http://x/v1")
        assert (await client.complete(REQUEST)).text == "hi"
        with pytest.raises(ModelTimeoutError):
            await client.complete(REQUEST)


@CLIENTS
async def test_aclose_leaves_a_callers_http_client_open(factory: Factory) -> None:
    server = ScriptedServer(ok(response([message_item("a")])), ok(chat_completion("a")))
    async with server.http_client() as http:
        await factory(http_client=http).aclose()
        assert not http.is_closed
    own = factory()
    await own.aclose()


class Step(BaseModel):
    id: str = Field(min_length=1, description="Unique within the plan.")
    after: list[str] = []


class Cat(BaseModel):
    kind: Literal["cat"]


class Dog(BaseModel):
    kind: Literal["dog"]
    good: bool = True


class Plan(BaseModel):
    """A plan."""

    default: int = 3
    first: Step = Field(description="Where to start.")
    steps: list[Step]
    pet: Annotated[Cat | Dog, Field(discriminator="kind")]


def test_strict_schema_closes_every_object_and_requires_every_property() -> None:
    schema = strict_json_schema(Plan)
    assert schema["required"] == ["default", "first", "steps", "pet"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["default"] == {"type": "integer", "title": "Default"}
    step = schema["$defs"]["Step"]
    assert step["required"] == ["id", "after"]
    assert step["additionalProperties"] is False
    assert step["properties"]["id"] == {
        "type": "string",
        "title": "Id",
        "description": "Unique within the plan.",
    }


def test_strict_schema_inlines_refs_with_siblings_and_turns_one_of_into_any_of() -> None:
    schema = strict_json_schema(Plan)
    first = schema["properties"]["first"]
    assert "$ref" not in first
    assert first["description"] == "Where to start."
    assert first["additionalProperties"] is False
    assert schema["properties"]["steps"]["items"] == {"$ref": "#/$defs/Step"}
    pet = schema["properties"]["pet"]
    assert pet["anyOf"] == [{"$ref": "#/$defs/Cat"}, {"$ref": "#/$defs/Dog"}]
    assert "oneOf" not in pet
    assert "discriminator" not in pet


def test_strict_schema_refuses_free_form_mappings() -> None:
    class Loose(BaseModel):
        tags: dict[str, str]

    with pytest.raises(ValueError, match="free-form mapping"):
        strict_json_schema(Loose)


def test_parse_output_lenient_finds_the_first_json_object() -> None:
    text = 'Sure! Here it is:\n```json\n{"id": "a", "after": []}\n```\nAnything else? {"x": 1}'
    assert parse_output(text, Step, lenient=True) == Step(id="a")
    with pytest.raises(ModelBehaviorError):
        parse_output(text, Step)


def test_parse_output_error_quotes_a_bounded_part_of_the_reply() -> None:
    text = '{"id": ""}' + " " * 5000
    with pytest.raises(ModelBehaviorError, match=r"at 'id'.*\(5010 chars\)"):
        parse_output(text, Step)


def test_first_json_object_skips_non_objects() -> None:
    assert first_json_object('[1, 2] then {bad then {"ok": true}') == {"ok": True}
    assert first_json_object("no json here") is None
