"""Check that apply_patch scales linearly: time patches of size N and 10N and print the ratio.

Each size is one file of N small functions (so lines like `    return None` and blank lines repeat
N times) and a patch with one unanchored 3-line-context chunk per function. Every chunk must be
checked for ambiguity, so a rescan of the file per chunk would show up as a ratio near 100.
A linear implementation gives a ratio near 10. Wall-clock time is noisy on a busy machine, so
the Python function calls of one envelope run are counted too: their ratio is exact.

Run with: `python bench/bench_apply_patch.py [--n 2000] [--repeat 3]`
"""

from __future__ import annotations

import argparse
import cProfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from orchestrator.tools.apply_patch import apply_operations, apply_patch


def source(functions: int) -> str:
    """A file of `functions` near-identical functions; only the returned number differs."""
    blocks = [
        f"def func_{i}(x):\n    if x:\n        return {i}\n    return None\n\n"
        for i in range(functions)
    ]
    return "".join(blocks)


def chunks(functions: int) -> list[str]:
    """One chunk per function: context, one changed line, context (no anchors)."""
    lines: list[str] = []
    for i in range(functions):
        lines += ["@@", "     if x:", f"-        return {i}", f"+        return {i} * 2"]
        lines += ["     return None"]
    return lines


def envelope(functions: int) -> str:
    body = ["*** Update File: big.py", *chunks(functions)]
    return "\n".join(["*** Begin Patch", *body, "*** End Patch"]) + "\n"


def best_time(run: Callable[[Path], object], text: str, repeat: int) -> float:
    """Fastest of `repeat` runs, each on a fresh copy of the file (the copy is not timed)."""
    best = float("inf")
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as folder:
            root = Path(folder)
            (root / "big.py").write_text(text)
            started = time.perf_counter()
            run(root)
            best = min(best, time.perf_counter() - started)
    return best


def call_count(functions: int) -> int:
    """Python function calls made by one envelope run (deterministic, unlike time)."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "big.py").write_text(source(functions))
        patch = envelope(functions)
        profile = cProfile.Profile()
        profile.runcall(apply_patch, patch, root)
    return sum(entry.callcount for entry in profile.getstats())


def measure(functions: int, repeat: int) -> tuple[float, float]:
    """Seconds for the envelope patch and for the same change as a native V4A operation."""
    text = source(functions)
    patch = envelope(functions)
    diff = "\n".join(chunks(functions)) + "\n"
    operation = {"type": "update_file", "path": "big.py", "diff": diff}
    envelope_s = best_time(lambda root: apply_patch(patch, root), text, repeat)
    native_s = best_time(lambda root: apply_operations([operation], root), text, repeat)
    return envelope_s, native_s


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="functions (= chunks) at size N")
    parser.add_argument("--repeat", type=int, default=3, help="runs per size; the best counts")
    args = parser.parse_args()
    small = measure(args.n, args.repeat)
    large = measure(args.n * 10, args.repeat)
    for label, at_n, at_10n in zip(("envelope", "native v4a"), small, large, strict=True):
        print(
            f"{label:>10}: N={args.n} chunks {at_n * 1000:8.1f} ms | "
            f"10N={args.n * 10} chunks {at_10n * 1000:8.1f} ms | ratio {at_10n / at_n:5.1f} "
            "(linear ~10, quadratic ~100)"
        )
    calls_n, calls_10n = call_count(args.n), call_count(args.n * 10)
    print(
        f"     calls: N {calls_n} | 10N {calls_10n} | ratio {calls_10n / calls_n:5.2f} "
        "(function calls of one envelope run)"
    )


if __name__ == "__main__":
    main()
