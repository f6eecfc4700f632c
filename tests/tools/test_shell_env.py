"""The environment handed to model-run commands: an explicit base, no credentials."""

from __future__ import annotations

import pytest

from orchestrator.errors import ConfigError
from orchestrator.tools.shell import ShellTool
from orchestrator.tools.shell_env import (
    FIXED_VARIABLES,
    RUN_MARKER,
    child_environment,
    looks_secret,
)

PARENT = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/home/me",
    "LANG": "C.UTF-8",
    "OPENAI_API_KEY": "sk-secret",
    "OPENAI_BASE_URL": "https://example.invalid",
    "AWS_SECRET_ACCESS_KEY": "aws-secret",
    "GITHUB_TOKEN": "gh-secret",
    "DATABASE_PASSWORD": "pw",
    "MY_SETTING": "1",
    "MY_API_KEY": "my-secret",
    "RANDOM_THING": "x",
}


def test_child_environment_keeps_only_the_base_set() -> None:
    env = child_environment(parent=PARENT)

    assert {k: v for k, v in env.items() if k not in FIXED_VARIABLES} == {
        "PATH": "/usr/bin:/bin",
        "HOME": "/home/me",
        "LANG": "C.UTF-8",
    }


def test_child_environment_sets_non_interactive_defaults() -> None:
    env = child_environment(parent={})

    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert env["PAGER"] == "cat"
    assert env["PATH"]


def test_child_environment_passes_explicitly_allowed_credential() -> None:
    env = child_environment(allow=("GITHUB_TOKEN",), parent=PARENT)

    assert env["GITHUB_TOKEN"] == "gh-secret"


def test_child_environment_glob_skips_credentials() -> None:
    env = child_environment(allow=("MY_*",), parent=PARENT)

    assert env["MY_SETTING"] == "1"
    assert "MY_API_KEY" not in env


@pytest.mark.parametrize("entry", ["OPENAI_API_KEY", "OPENAI_*", "openai_api_key"])
def test_child_environment_refuses_to_allow_openai_variables(entry: str) -> None:
    with pytest.raises(ConfigError, match="OPENAI_"):
        child_environment(allow=(entry,), parent=PARENT)


def test_shell_tool_refuses_openai_key_in_allow_list() -> None:
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        ShellTool(sandbox=None, env_allow=("OPENAI_API_KEY",))


def test_child_environment_glob_never_matches_openai_variables() -> None:
    env = child_environment(allow=("*",), parent=PARENT)

    assert not any(name.startswith("OPENAI_") for name in env)
    assert "RANDOM_THING" in env


def test_child_environment_sets_run_marker() -> None:
    assert child_environment(marker="abc", parent={})[RUN_MARKER] == "abc"


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("OPENAI_ORG_ID", True),
        ("ANTHROPIC_API_KEY", True),
        ("GH_TOKEN", True),
        ("CLIENT_SECRET", True),
        ("PGPASSWORD", True),
        ("HTPASSWD", True),
        ("GOOGLE_APPLICATION_CREDENTIALS", True),
        ("NPM_AUTH", True),
        ("PATH", False),
        ("HOME", False),
        ("LC_ALL", False),
    ],
)
def test_looks_secret_flags_credential_names(name: str, secret: bool) -> None:
    assert looks_secret(name) is secret
