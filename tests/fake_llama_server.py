"""A stand-in for `python -m llama_cpp.server`, run as a real subprocess by the lifecycle tests.

Usage: `python fake_llama_server.py PORT MODE STATE_DIR`. Modes:
ok (serves), exit (fails at start-up), silent (never listens; leaves a child in its group),
crash_once / crash_always (dies mid-request), error_500 (answers chat with HTTP 500), slow (takes
SLOW_S per chat request; like llama-cpp-python's server, it answers one request at a time).
Replies copy the shape of llama-cpp-python 0.3.x's JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

USAGE = {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16}
SLOW_S = 0.3
"""How long mode `slow` takes per chat request."""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    mode = "ok"
    state = Path()

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            model: dict[str, Any] = {"id": "smollm2-135m", "object": "model", "permissions": []}
            self.send_json(200, {"object": "list", "data": [model]})
        else:
            self.send_json(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        marker = self.state / "crashed"
        if self.mode == "crash_always" or (self.mode == "crash_once" and not marker.exists()):
            marker.touch()
            print("fatal: segmentation fault in ggml", flush=True)
            os._exit(139)  # dies mid-request, before any response bytes
        if self.mode == "slow":
            time.sleep(SLOW_S)
        if self.mode == "error_500":
            self.send_json(500, {"error": {"message": "boom", "type": "internal_server_error"}})
        elif body.get("stream"):
            self.send_stream(body["model"])
        else:
            self.send_completion(body["model"])

    def send_completion(self, model: str) -> None:
        message = {"role": "assistant", "content": f"hello from {os.getpid()}"}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
        completion = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [choice],
            "usage": USAGE,
        }
        self.send_json(200, completion)

    def send_stream(self, model: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        base = {"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1, "model": model}
        deltas: list[dict[str, str]] = [
            {"role": "assistant", "content": ""},
            {"content": "hello "},
            {"content": f"from {os.getpid()}"},
        ]
        chunks: list[dict[str, Any]] = [
            {**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas
        ]
        chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        chunks.append({**base, "choices": [], "usage": USAGE})
        for chunk in chunks:
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.close_connection = True

    def send_json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        print(format % args, flush=True)


def main() -> None:
    port, mode, state = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    wait_policy = os.environ.get("OMP_WAIT_POLICY")
    print(f"fake llama server: mode={mode} port={port} OMP_WAIT_POLICY={wait_policy}", flush=True)
    if mode == "exit":
        print("error: failed to load model (corrupt GGUF)", flush=True)
        sys.exit(3)
    if mode == "silent":
        # Never listens; leaves a child in its process group, as a real server's workers would.
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        (state / "child.pid").write_text(str(child.pid))  # may be a FIFO the test reads
        time.sleep(600)
    Handler.mode = mode
    Handler.state = state
    HTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
