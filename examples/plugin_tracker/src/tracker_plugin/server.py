"""The issue tracker the example ships: a JSON API on loopback, built on the standard library.

`python -m tracker_plugin.server [--port 0] [--log FILE]` prints `serving on http://127.0.0.1:PORT`
and serves until stopped. `GET /issues?state=open&label=bug` lists issues; every request is
appended to FILE as one JSON line, so a test can see what really reached the server.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import cast
from urllib.parse import parse_qs, urlsplit

Issue = Mapping[str, object]

ISSUES: tuple[Issue, ...] = (
    {
        "number": 1,
        "title": "Checkout crashes on an empty cart",
        "labels": ["bug", "checkout"],
        "state": "open",
        "body": "Pressing Pay with nothing in the cart shows a 500 page.",
    },
    {
        "number": 2,
        "title": "Add a dark mode",
        "labels": ["feature", "ui"],
        "state": "open",
        "body": "Several users ask for a dark theme.",
    },
    {
        "number": 3,
        "title": "Typo on the about page",
        "labels": ["docs"],
        "state": "closed",
        "body": "'Shpo' should read 'Shop'.",
    },
    {
        "number": 4,
        "title": "Card payments time out after 30 seconds",
        "labels": ["bug", "payments"],
        "state": "open",
        "body": "The payment provider answers slowly at peak times; we give up too early.",
    },
)
"""The tracker's issues: three open, one closed."""


class TrackerServer(ThreadingHTTPServer):
    """The tracker's HTTP server; bound to loopback only."""

    daemon_threads = True

    def __init__(
        self, port: int = 0, *, log: Path | None = None, issues: Sequence[Issue] = ISSUES
    ) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.issues = tuple(issues)
        self.log = log
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """The base URL clients use (the tool reads it from TRACKER_URL)."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    def record(self, method: str, path: str) -> None:
        """Append one request to the log file (one JSON object a line)."""
        if self.log is None:
            return
        with self._lock, self.log.open("a", encoding="utf-8") as out:
            out.write(json.dumps({"method": method, "path": path}) + "\n")

    def select(self, state: str, label: str | None) -> list[Issue]:
        """The issues in `state` (all: any), with `label` when given, by number."""
        return [
            issue
            for issue in self.issues
            if state in ("all", issue["state"])
            and (label is None or label in cast(list[str], issue["labels"]))
        ]


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        server = cast(TrackerServer, self.server)
        server.record("GET", self.path)
        url = urlsplit(self.path)
        if url.path != "/issues":
            self._send(404, {"error": f"no such resource: {url.path}"})
            return
        query = parse_qs(url.query)
        state = query.get("state", ["open"])[0]
        label = query.get("label", [None])[0]
        self._send(200, server.select(state, label))

    def _send(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: requests go to the JSON log, not to stderr."""


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the tracker until interrupted, saying where first."""
    parser = argparse.ArgumentParser(prog="python -m tracker_plugin.server")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--log", type=Path, default=None, help="append each request here")
    args = parser.parse_args(argv)
    with TrackerServer(cast(int, args.port), log=cast(Path | None, args.log)) as server:
        print(f"serving on {server.url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how it is meant to stop
            server.serve_forever()


if __name__ == "__main__":
    main()
