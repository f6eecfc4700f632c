"""Results files made of labelled sections (rerunning a label replaces its section), and the
commit a figure was measured at."""

from __future__ import annotations

import subprocess
from pathlib import Path


def write_section(path: Path, label: str, text: str, *, heading: str) -> None:
    """Put `text` into `path` as the section for `label`, replacing an older one; a new file
    starts with `heading`."""
    start, end = f"<!-- section: {label} -->", f"<!-- end: {label} -->"
    block = f"{start}\n{text}{end}\n"
    if not path.exists():
        path.write_text(f"{heading}\n\n{block}")
        return
    old = path.read_text()
    if start in old and end in old:
        head, rest = old.split(start, 1)
        _, tail = rest.split(end, 1)
        path.write_text(head + block + tail.lstrip("\n"))
    else:
        path.write_text(old.rstrip("\n") + "\n\n" + block)


def head_commit() -> str:
    """This checkout's short commit id."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return out.stdout.strip()
