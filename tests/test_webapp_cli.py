"""``deblurkit serve`` as a user runs it: a real process, loopback only, temp folder removed on stop."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_starts_on_loopback_and_cleans_up_on_stop(tmp_path):
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(SRC), OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "deblurkit", "serve", "--port", str(port), "--device", "cpu",
         "--workdir", str(tmp_path), "--max-upload-mb", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        deadline = time.monotonic() + 90
        info = None
        while info is None:
            assert proc.poll() is None, proc.communicate()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/info", timeout=5) as r:
                    info = json.loads(r.read())
            except OSError:
                assert time.monotonic() < deadline, "deblurkit serve did not answer within 90 s"
                time.sleep(0.3)
        assert info["max_upload_bytes"] == 3 * 2**20 and info["device"] == "cpu"
        folders = list(tmp_path.iterdir())
        assert len(folders) == 1 and folders[0].name.startswith("deblurkit-app-")
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert f"http://127.0.0.1:{port}/" in out
    assert list(tmp_path.iterdir()) == []  # its temporary folder is gone


def test_serve_rejects_bad_options(tmp_path):
    from typer.testing import CliRunner

    from deblurkit.cli import app

    runner = CliRunner()
    for args, needle in [
        (["--port", "70000"], "--port must be between 1 and 65535"),
        (["--examples", str(tmp_path / "nowhere")], "examples folder not found"),
        (["--max-upload-mb", "0"], "--max-upload-mb must be > 0"),
        (["--device", "tpu"], "tpu"),
    ]:
        r = runner.invoke(app, ["serve", *args, "--workdir", str(tmp_path / "w")])
        assert r.exit_code == 2 and needle in r.output, (args, r.output)
    assert not (tmp_path / "w").exists() or list((tmp_path / "w").iterdir()) == []
