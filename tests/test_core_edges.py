"""Small edges of the core: the scripted model's refusals, invalid settings, a non-JSON event
value, batch prices, a gateway over a backend that cannot stream, rate-limit headers that say
less is left, and schemas in older shapes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, cast

import pytest
from pydantic import BaseModel, WithJsonSchema

from orchestrator.errors import ConfigError
from orchestrator.events import RunStarted
from orchestrator.gateway import Gateway
from orchestrator.llm import (
    ModelCapabilities,
    ModelReply,
    ModelRequest,
    RateLimitInfo,
    ReplyDone,
    Role,
    UserMessage,
)
from orchestrator.logs import JsonlSink, read_events
from orchestrator.models import Limits, RunId, TaskId, TokenUsage
from orchestrator.pricing import Price, PriceTable
from orchestrator.retry import RetryPolicy
from orchestrator.schema import strict_json_schema
from orchestrator.settings import Settings
from orchestrator.testing import (
    RecordingSink,
    ScriptedModel,
    UnconsumedSteps,
    UnexpectedModelCall,
    text_reply,
)
from orchestrator.throttle import EndpointState, Throttle


def request(role: Role = "worker", task_id: TaskId | None = None) -> ModelRequest:
    return ModelRequest(
        role=role, model="gpt-5.4-mini", task_id=task_id, messages=(UserMessage(content="hi"),)
    )


# -- ScriptedModel -----------------------------------------------------------------------------
def test_scripted_model_refuses_a_step_it_could_not_play() -> None:
    model = ScriptedModel()
    with pytest.raises(TypeError, match="not a script step: 'done'"):
        model.script("worker", text_reply("ok"), "done")  # pyright: ignore[reportArgumentType]
    assert model.remaining() == {}  # nothing of the refused call was queued


async def test_scripted_model_call_past_the_script_names_role_and_task() -> None:
    model = ScriptedModel().script("worker", text_reply("for a"), task="a")
    assert (await model.complete(request(task_id=TaskId("a")))).text == "for a"
    with pytest.raises(UnexpectedModelCall, match="no scripted step left for role=worker task=a"):
        await model.complete(request(task_id=TaskId("a")))
    assert [c.key for c in model.calls] == ["worker:a"]


async def test_scripted_model_assert_complete_names_unused_steps() -> None:
    model = ScriptedModel().script("planner", text_reply("1"), text_reply("2"))
    await model.complete(request("planner"))
    with pytest.raises(UnconsumedSteps, match=r"never used: \{'planner': 1\}"):
        model.assert_complete()
    await model.complete(request("planner"))
    model.assert_complete()


# -- settings, logs, prices --------------------------------------------------------------------
def test_invalid_settings_from_the_environment_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="invalid orchestrator settings") as info:
        Settings.from_env({"ORCH_MAX_PARALLEL": "0"})
    assert "max_parallel" in str(info.value)


def test_jsonl_sink_writes_a_value_json_cannot_hold_as_redacted_text(tmp_path: Path) -> None:
    """A caller may pass a `Path` where a field says `str`; it is written as its text."""
    workdir = cast(str, cast(object, tmp_path / "sk-proj-abcdefghijklmnopqrstuvwx"))
    sink = JsonlSink(tmp_path / "events.jsonl")
    sink.emit(RunStarted(run_id=RunId("r1"), at=1.0, goal="g", ladder=("m",), workdir=workdir))
    sink.close()
    (event,) = read_events(tmp_path / "events.jsonl")
    assert event["workdir"] == f"{tmp_path}/[REDACTED]"


def test_batch_price_is_half_of_each_rate() -> None:
    price = Price(input=1.25, cached_input=0.125, output=10.0)
    assert price.batch() == Price(input=0.625, cached_input=0.0625, output=5.0)
    usage = PriceTable({"m": price.batch()}).cost("m", TokenUsage(input_tokens=1_000_000))
    assert usage.cost_usd == pytest.approx(0.625)


# -- gateway and throttle ----------------------------------------------------------------------
async def test_gateway_stream_over_a_backend_that_cannot_stream_is_one_whole_reply() -> None:
    model = ScriptedModel(capabilities=ModelCapabilities(streaming=False))
    model.script("worker", ModelReply(text="whole", usage=TokenUsage(input_tokens=3, requests=1)))
    sink = RecordingSink()
    gateway = Gateway(
        model,
        run_id=RunId("r"),
        sink=sink,
        prices=PriceTable.default(),
        limits=Limits(),
        throttle=Throttle(RetryPolicy(base_delay_s=0.001, max_delay_s=0.01), ceiling=64),
    )
    events = [event async for event in gateway.stream(request())]
    assert len(events) == 1 and isinstance(events[0], ReplyDone)
    assert events[0].reply.text == "whole"
    assert sink.kinds() == ["model_called"]
    assert gateway.ledger.calls == 1


def test_rate_limit_headers_saying_less_is_left_lower_the_learned_buckets() -> None:
    """60 requests and 6000 tokens a minute (buckets of 5 and 500), but the server says no
    request and 100 tokens are left: the next call waits for both to refill."""
    state = EndpointState(ceiling=64)
    info = RateLimitInfo(
        limit_requests=60, limit_tokens=6000, remaining_requests=0, remaining_tokens=100
    )
    state.succeeded(0.0, info)
    assert state.wait_s(0.0, 0) == pytest.approx(1.0)  # one request a second
    assert state.wait_s(0.0, 300) == pytest.approx(2.0)  # 200 more tokens at 100 a second
    plenty = RateLimitInfo(limit_requests=60, limit_tokens=6000, remaining_requests=99)
    state.succeeded(0.0, plenty)  # more left than the bucket holds: the bucket decides
    assert state.wait_s(0.0, 0) == pytest.approx(1.0)


# -- strict schemas of older shapes ------------------------------------------------------------
class _Count(BaseModel):
    n: Annotated[
        int,
        WithJsonSchema({"allOf": [{"type": "integer", "minimum": 0}], "description": "how many"}),
    ]


def test_strict_schema_inlines_a_single_entry_all_of() -> None:
    """Pydantic 1 wrapped a field's schema in a one-item `allOf` to give it a description."""
    schema = strict_json_schema(_Count)
    properties = cast(dict[str, Any], schema["properties"])
    assert properties["n"] == {
        "type": "integer",
        "minimum": 0,
        "description": "how many",
        "title": "N",
    }
    assert (schema["required"], schema["additionalProperties"]) == (["n"], False)


class _HandWritten(BaseModel):
    """A model that publishes its own schema, with a `$ref` this schema does not define."""

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:  # pyright: ignore[reportIncompatibleMethodOverride]
        item = {"$ref": "#/$defs/Elsewhere", "description": "defined by another document"}
        return {"type": "object", "properties": {"item": item}}


def test_strict_schema_keeps_a_ref_it_cannot_resolve() -> None:
    schema = strict_json_schema(_HandWritten)
    assert schema["properties"] == {
        "item": {"$ref": "#/$defs/Elsewhere", "description": "defined by another document"}
    }
    assert schema["required"] == ["item"]
