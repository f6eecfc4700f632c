"""A PEP 517 backend for this example only: packs `src/` into a pure-Python wheel, offline.

It reads name, version, dependencies and entry points from pyproject.toml and writes the wheel's
METADATA, WHEEL, entry_points.txt and RECORD; no setuptools or wheel package is needed.
"""

from __future__ import annotations

import base64
import hashlib
import tomllib
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast


def get_requires_for_build_wheel(config_settings: object = None) -> list[str]:
    """Nothing to install before building."""
    return []


def build_wheel(
    wheel_directory: str, config_settings: object = None, metadata_directory: object = None
) -> str:
    """Write the wheel into `wheel_directory` and return its file name."""
    project = cast(Mapping[str, Any], tomllib.loads(Path("pyproject.toml").read_text())["project"])
    name, version = str(project["name"]).replace("-", "_"), str(project["version"])
    info = f"{name}-{version}.dist-info"
    files = {
        path.relative_to("src").as_posix(): path.read_bytes()
        for path in sorted(Path("src").rglob("*.py"))
    }
    files[f"{info}/METADATA"] = _metadata(project).encode()
    files[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: build_backend\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    files[f"{info}/entry_points.txt"] = _entry_points(project).encode()
    record = [_record_line(path, data) for path, data in files.items()]
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,", ""]).encode()
    wheel = f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(Path(wheel_directory) / wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return wheel


def _metadata(project: Mapping[str, Any]) -> str:
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {project['name']}",
        f"Version: {project['version']}",
        f"Summary: {project.get('description', '')}",
        f"Requires-Python: {project.get('requires-python', '>=3')}",
    ]
    lines += [f"Requires-Dist: {dep}" for dep in project.get("dependencies", [])]
    return "\n".join(lines) + "\n"


def _entry_points(project: Mapping[str, Any]) -> str:
    groups = cast(Mapping[str, Mapping[str, str]], project.get("entry-points", {}))
    return "".join(
        f"[{group}]\n" + "".join(f"{key} = {value}\n" for key, value in points.items()) + "\n"
        for group, points in groups.items()
    )


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"
