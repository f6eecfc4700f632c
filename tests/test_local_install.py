"""`.ci/install_local.py` (the README's first command's install): never silent for minutes."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / ".ci" / "install_local.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("install_local", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


install = load_script()


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        ("Collecting anyio>=4.11", "Collecting anyio>=4.11"),
        (
            "  Downloading llama_cpp_python-0.3.36.tar.gz (50.1 MB)",
            "Downloading llama_cpp_python-0.3.36.tar.gz (50.1 MB)",
        ),
        ("  Created temporary directory: /tmp/pip-build", None),
        ("  Building wheel for llama-cpp-python (pyproject.toml): started", "Compiling"),
        ("Building editable for orchestrator-agents (pyproject.toml): started", None),
        ("  [1/140] Building C object vendor/llama.cpp/ggml/src/ggml.c.o", "step 1/140"),
        ("  -- Configuring done (2.1s)", None),
        ("Successfully installed anyio-4.16.0", "Successfully installed anyio-4.16.0"),
    ],
    ids=[
        "collecting",
        "download",
        "pip-chatter",
        "llama-build-starts",
        "other-build",
        "first-step",
        "cmake-chatter",
        "installed",
    ],
)
def test_local_install_progress_shows_what_tells_where_it_is(line: str, shown: str | None) -> None:
    got = install.Progress(every_s=10.0, clock=lambda: 0.0).line(line)
    assert (got is None) if shown is None else (got is not None and shown in got)


def test_local_install_progress_shows_steps_every_few_seconds_and_the_last() -> None:
    now = [0.0]
    progress = install.Progress(every_s=10.0, clock=lambda: now[0])
    shown: list[str | None] = []
    for step, at in ((1, 0.0), (2, 5.0), (3, 11.0), (4, 12.0), (5, 12.5)):
        now[0] = at
        shown.append(progress.line(f"[{step}/5] Building CXX object llama.cpp.o"))
    assert shown == [
        "  compiling llama.cpp: step 1/5",
        None,
        "  compiling llama.cpp: step 3/5",
        None,
        "  compiling llama.cpp: step 5/5",
    ]


def test_local_install_silence_prints_dots_and_failure_the_log_tail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_pip = (
        "import sys, time\n"
        "print('Collecting llama-cpp-python', flush=True)\n"
        "time.sleep(0.5)\n"
        "print('error: compiler exploded', flush=True)\n"
        "sys.exit(3)\n"
    )
    shown: list[str] = []
    code = install.run_with_progress(
        [sys.executable, "-c", fake_pip],
        log=tmp_path / "pip.log",
        heartbeat_s=0.1,
        show=shown.append,
    )
    assert code == 3
    assert shown[0] == "Collecting llama-cpp-python"
    assert "error: compiler exploded" in shown[-1] and "exit 3" in shown[-1]
    assert "..." in capsys.readouterr().out
    assert "compiler exploded" in (tmp_path / "pip.log").read_text()


def test_local_install_progress_announces_the_compile_once() -> None:
    progress = install.Progress()
    lines = [
        "Building wheel for llama-cpp-python (pyproject.toml): started",
        "Running command Building wheel for llama-cpp-python (pyproject.toml)",
        "Building wheel for llama-cpp-python (pyproject.toml): finished with status 'done'",
    ]
    shown = [progress.line(line) for line in lines]
    assert shown[0] is not None and "about 5 minutes" in shown[0]
    assert shown[1:] == [None, None]
