"""The plugin's tool: the tracker's open issues, fetched over HTTP from the URL in TRACKER_URL."""

from __future__ import annotations

import os
from urllib.error import URLError
from urllib.parse import urlencode
from urllib.request import urlopen

from orchestrator import ConfigError, ToolFailed, tool

TRACKER_URL = "TRACKER_URL"
"""The environment variable holding the tracker's base URL, e.g. http://127.0.0.1:8765."""


def tracker_url() -> str:
    """The tracker's base URL from TRACKER_URL.

    Raises:
        ConfigError: the variable is not set; the message says how to start a tracker.
    """
    # A plugin reads its own configuration: orchestrator's Settings do not know this variable.
    url = os.environ.get(TRACKER_URL, "").strip()  # noqa: TID251
    if not url:
        raise ConfigError(
            f"{TRACKER_URL} is not set: start the example tracker with "
            f"`python -m tracker_plugin.server` and set {TRACKER_URL} to the URL it prints"
        )
    return url.rstrip("/")


@tool(timeout_s=15)
def list_open_issues(label: str | None = None) -> str:
    """List the issue tracker's open issues as JSON: number, title, labels, state and body.

    Args:
        label: Only issues with this label, e.g. "bug"; null lists every open issue.
    """
    try:
        base = tracker_url()
    except ConfigError as exc:
        raise ToolFailed(str(exc)) from exc
    query = urlencode({"state": "open"} | ({"label": label} if label else {}))
    try:
        with urlopen(f"{base}/issues?{query}", timeout=10) as reply:
            return reply.read().decode("utf-8")
    except (URLError, OSError) as exc:
        raise ToolFailed(f"the tracker at {base} did not answer: {exc}") from exc
