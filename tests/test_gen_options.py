"""Generation options per role and tier: the one syntax of `--gen`, ORCH_GEN and
`Settings.generation`, its precedence, the requests it fills, and what each API style sends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator import ConfigError, EngineConfig, TierSpec
from orchestrator.agents.planner import DagPlanner
from orchestrator.app import Orchestrator
from orchestrator.engine_options import RoleOptions
from orchestrator.generation import Generation, GenOptions
from orchestrator.generation_roles import GenerationClient
from orchestrator.llm import (
    ModelCapabilities,
    ModelClient,
    ModelReply,
    ModelRequest,
    ReasoningEffort,
    Role,
    UserMessage,
)
from orchestrator.llm_openai_chat import OpenAIChatClient
from orchestrator.llm_openai_responses import OpenAIResponsesClient
from orchestrator.models import Plan
from orchestrator.roles import Planner, PlanRequest
from orchestrator.settings import Settings
from orchestrator.testing import ScriptedModel, accept_all, answer, leaf_report, plan_reply, task

from .cli_harness import UNREACHABLE, assert_one_error, backend_flags, orchestrator
from .fault_openai import ApiCall, Reply
from .fault_server import FaultServer

SPEC = (
    "temperature=0.5,max_output_tokens=900,"
    "frontier.reasoning_effort=high,frontier.temperature=0.4,"
    "worker.temperature=0.3,worker.max_output_tokens=700,"
    "worker@mini.temperature=0.1"
)


@pytest.mark.parametrize(
    ("role", "tier", "expected"),
    [
        pytest.param(
            "planner", "base", GenOptions(temperature=0.5, max_output_tokens=900), id="global"
        ),
        pytest.param(
            "planner",
            "frontier",
            GenOptions(temperature=0.4, max_output_tokens=900, reasoning_effort="high"),
            id="tier-over-global",
        ),
        pytest.param(
            "worker",
            "frontier",
            GenOptions(temperature=0.3, max_output_tokens=700, reasoning_effort="high"),
            id="role-over-tier",
        ),
        pytest.param(
            "worker", "mini", GenOptions(temperature=0.1, max_output_tokens=700), id="role@tier"
        ),
    ],
)
def test_generation_most_specific_scope_wins(role: Role, tier: str, expected: GenOptions) -> None:
    assert Generation.parse(SPEC, source="test").for_call(role, tier) == expected


def test_generation_later_entry_wins_and_flags_repeat() -> None:
    generation = Generation.parse(
        ["temperature=1", "temperature=0,worker.temperature=2"], source="t"
    )

    assert generation.for_call("reviewer", "mini").temperature == 0.0
    assert generation.for_call("worker", "mini").temperature == 2.0


def test_generation_merged_overrides_option_by_option() -> None:
    env = Generation.parse("temperature=1,worker.max_output_tokens=100", source="ORCH_GEN")
    flags = Generation.parse("worker.temperature=0,worker.max_output_tokens=200", source="--gen")

    merged = env.merged(flags)

    assert merged.for_call("worker", "mini") == GenOptions(temperature=0.0, max_output_tokens=200)
    assert merged.for_call("planner", "mini") == GenOptions(temperature=1.0)


def test_generation_text_round_trips() -> None:
    generation = Generation.parse(SPEC, source="test")

    assert Generation.parse(str(generation), source="again") == generation
    assert str(Generation()) == ""


def test_generation_reads_a_mapping() -> None:
    generation = Generation.parse(
        {"worker@base.max_output_tokens": 64, "reasoning_effort": "low"}, source="t"
    )

    assert generation.for_call("worker", "base") == GenOptions(
        max_output_tokens=64, reasoning_effort="low"
    )


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        pytest.param("worker.max_tokens=5", "unknown option 'max_tokens'", id="option"),
        pytest.param("temperature=3", "bad value '3' for temperature", id="hot"),
        pytest.param("temperature=warm", "bad value 'warm' for temperature", id="word"),
        pytest.param("max_output_tokens=0", "bad value '0' for max_output_tokens", id="zero"),
        pytest.param("reasoning_effort=huge", "bad value 'huge' for reasoning_effort", id="eff"),
        pytest.param("worker", "expected OPTION=VALUE", id="no-value"),
        pytest.param("boss@mini.temperature=1", "bad scope 'boss@mini'", id="role"),
        pytest.param("planner@.temperature=1", "bad scope 'planner@'", id="empty-tier"),
    ],
)
def test_generation_errors_name_the_entry_and_source(spec: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Generation.parse(f"temperature=0,{spec}", source="ORCH_GEN")

    message = str(caught.value)
    assert f"bad generation option {spec!r} in ORCH_GEN: {problem};" in message
    assert "[SCOPE.]OPTION=VALUE" in message


def test_generation_mapping_values_must_be_scalars() -> None:
    with pytest.raises(ConfigError, match="'temperature' in t: expected OPTION=VALUE"):
        Generation.parse({"temperature": True}, source="t")


def test_generation_unknown_tier_is_named() -> None:
    generation = Generation.parse("frontier.temperature=0,minii.temperature=1", source="t")

    with pytest.raises(
        ConfigError, match=r"scope 'minii' names no tier of the ladder \(a, frontier\)"
    ):
        generation.check_tiers(["a", "frontier"])
    generation.check_tiers(["minii", "frontier"])


def test_settings_read_orch_gen_and_merge_overrides() -> None:
    env = {"ORCH_GEN": "temperature=1,worker.max_output_tokens=100"}

    settings = Settings.from_env(env, generation="worker.max_output_tokens=200")

    assert settings.generation.for_call("worker", "x") == GenOptions(
        temperature=1.0, max_output_tokens=200
    )
    assert Settings.from_env(env).generation.for_call("planner", "x").temperature == 1.0


@pytest.mark.parametrize("value", [12, None], ids=["number", "none"])
def test_settings_generation_rejects_other_types(value: object) -> None:
    with pytest.raises(ConfigError, match=r"Settings\.generation must be text"):
        Settings.model_validate({"generation": value})


def _request(**fields: Any) -> ModelRequest:
    return ModelRequest(
        role=fields.pop("role", "worker"),
        model="m",
        messages=(UserMessage(content="hi"),),
        **fields,
    )


def test_generation_client_fill_order() -> None:
    """The request's own value, then the configured one, then the server's default cap."""
    generation = Generation.parse("top.reasoning_effort=low,worker.temperature=0.7", source="t")
    caps = ModelCapabilities(default_max_output_tokens=333)
    client = GenerationClient(
        ScriptedModel(capabilities=caps),
        lambda role, tier: generation.for_call(role, tier),
        tier="top",
    )

    worker = client.filled(_request(tier="mini", temperature=0.2))
    planner = client.filled(_request(role="planner", max_output_tokens=50))

    assert (worker.temperature, worker.max_output_tokens, worker.reasoning_effort) == (
        0.2,
        333,
        None,
    )
    assert (planner.temperature, planner.max_output_tokens, planner.reasoning_effort) == (
        None,
        50,
        "low",
    )


async def test_generation_client_streams_with_the_options_filled() -> None:
    model = ScriptedModel().script("worker", ModelReply(text="whole"))
    client = GenerationClient(model, lambda role, tier: GenOptions(temperature=0.9), tier="t")

    events = [event async for event in client.stream(_request())]

    assert len(events) == 2
    assert model.calls[0].request.temperature == 0.9


def _one_task_model() -> ScriptedModel:
    return (
        ScriptedModel()
        .script("planner", plan_reply(task("a"), task("b", tier="base")))
        .script("worker", leaf_report("did a"), leaf_report("did b"))
        .respond("reviewer", accept_all())
        .script("synthesizer", answer("done"))
    )


LADDER = (TierSpec(name="mini", model="m-1"), TierSpec(name="base", model="m-2"))


class PlainPlanner:
    """A planner that cannot stream (only `plan`)."""

    def __init__(self) -> None:
        self._inner = DagPlanner()

    async def plan(self, request: PlanRequest, client: ModelClient) -> Plan:
        return await self._inner.plan(request, client)


@pytest.mark.parametrize(
    ("planner", "stream_plan"),
    [(None, True), (None, False), (PlainPlanner(), True)],
    ids=["streamed", "not-streamed", "plain-planner"],
)
async def test_orchestrator_generation_reaches_every_role_request(
    tmp_path: Path, planner: Planner | None, stream_plan: bool
) -> None:
    """Options reach each role's request (so the gateway reserves the configured cap) per tier;
    the planner side resolves for the planner tier; the backend's options are the base."""
    model = _one_task_model()
    generation = Generation.parse("temperature=0.6,base.reasoning_effort=medium", source="t")
    settings = Settings(plugins=False, generation=generation)
    orch = Orchestrator(
        client=model,
        workdir=tmp_path,
        settings=settings,
        config=EngineConfig(ladder=LADDER, stream_plan=stream_plan),
        planner=planner,
        role_options=RoleOptions(max_output_tokens=512, temperature=0.0),
        generation={"worker@mini.max_output_tokens": 128, "reviewer.temperature": 0.1},
    )

    result = await orch.run("do a and b")

    assert result.status == "completed"
    seen = {
        (c.request.role, c.request.tier): (
            c.request.temperature,
            c.request.max_output_tokens,
            c.request.reasoning_effort,
        )
        for c in model.calls
    }
    assert seen == {
        ("planner", "base"): (0.6, 512, "medium"),
        ("worker", "mini"): (0.6, 128, None),
        ("worker", "base"): (0.6, 512, "medium"),
        ("reviewer", "base"): (0.1, 512, "medium"),
        ("synthesizer", "base"): (0.6, 512, "medium"),
    }


async def test_orchestrator_refuses_a_tier_the_ladder_lacks(tmp_path: Path) -> None:
    orch = Orchestrator(
        client=ScriptedModel(),
        workdir=tmp_path,
        settings=Settings(plugins=False),
        config=EngineConfig(ladder=LADDER),
        generation="frontier.temperature=0",
    )

    with pytest.raises(ConfigError, match="'frontier' names no tier of the ladder"):
        await orch.run("do a")


# -- on the wire, through the real openai client over loopback ---------------------------------


@pytest.fixture
def wire() -> Iterator[tuple[FaultServer, list[dict[str, Any]]]]:
    bodies: list[dict[str, Any]] = []

    def record(call: ApiCall, role: str | None) -> None:
        bodies.append(dict(call.body))

    with FaultServer(lambda call: Reply(text="ok"), on_request=record) as server:
        yield server, bodies


@pytest.mark.parametrize("effort", ["high", None], ids=["set", "unset"])
@pytest.mark.parametrize("style", ["chat", "responses"])
async def test_options_on_the_wire(
    wire: tuple[FaultServer, list[dict[str, Any]]], style: str, effort: ReasoningEffort | None
) -> None:
    server, bodies = wire
    client_type = OpenAIChatClient if style == "chat" else OpenAIResponsesClient
    client = client_type(base_url=server.base_url, capabilities=ModelCapabilities())
    request = _request(temperature=0.25, max_output_tokens=77, reasoning_effort=effort)
    try:
        reply = await client.complete(request)
    finally:
        await client.aclose()

    assert reply.text == "ok"
    (body,) = bodies
    assert body["temperature"] == 0.25
    cap, reasoning = (
        ("max_tokens", "reasoning_effort")
        if style == "chat"
        else (
            "max_output_tokens",
            "reasoning",
        )
    )
    assert body[cap] == 77
    if effort is None:
        assert reasoning not in body
    else:
        assert body[reasoning] == (effort if style == "chat" else {"effort": effort})


# -- the command line ------------------------------------------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("flags", "env", "fragment"),
    [
        pytest.param(
            ("--gen", "worker.max_tokens=5"), {}, "'worker.max_tokens=5' in --gen", id="flag"
        ),
        pytest.param(
            (), {"ORCH_GEN": "temperature=hot"}, "'temperature=hot' in ORCH_GEN", id="env"
        ),
        pytest.param(
            ("--gen", "tier9.temperature=0"), {}, "'tier9' names no tier of the ladder", id="tier"
        ),
    ],
)
def test_cli_bad_generation_option_is_a_usage_error(
    tmp_path: Path, flags: tuple[str, ...], env: dict[str, str], fragment: str
) -> None:
    cli = orchestrator(
        "run", "Count the words.", *backend_flags(UNREACHABLE), *flags, cwd=tmp_path, env=env
    )

    assert_one_error(cli, 2, fragment)
