"""Test helper: run the deblurkit web app with uvicorn in a thread on a free loopback port."""
from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import uvicorn

from deblurkit.app import AppConfig, create_app


class LiveServer:
    """``with LiveServer(AppConfig(...)) as s: s.call("GET", "/api/info")``; stops on exit
    (the app's workspace is then deleted by its shutdown hook)."""

    def __init__(self, config: AppConfig) -> None:
        self.app = create_app(config)
        self.workspace = self.app.state.workspace
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.base = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="on"))
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    def __enter__(self) -> "LiveServer":
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the web app did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=30)
        self._sock.close()

    def call(self, method: str, path: str, data: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, Any, dict[str, str]]:
        """``(status, JSON or bytes, headers)`` of one request."""
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                status, body, hdrs = r.status, r.read(), dict(r.headers)
        except urllib.error.HTTPError as e:
            status, body, hdrs = e.code, e.read(), dict(e.headers)
        if hdrs.get("content-type", "").startswith("application/json"):
            body = json.loads(body)
        return status, body, hdrs

    def wait_job(self, job_id: str, timeout: float = 120.0) -> dict[str, Any]:
        """Poll a job until it is done or failed; returns its final state."""
        deadline = time.monotonic() + timeout
        while True:
            status, body, _ = self.call("GET", f"/api/jobs/{job_id}")
            assert status == 200, body
            job = body["job"]
            if job["state"] in ("done", "error"):
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['state']} after {timeout} s")
            time.sleep(0.05)
