"""Security (issue 14): no code from checkpoint files runs, whatever reads them.

A crafted pickle (an object whose ``__reduce__`` calls ``exec``) is fed through every command and
API that reads a checkpoint; the code it carries would create a marker file. Nothing may create it.
"""
from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from deblurkit.cli import app
from deblurkit.models import build

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO / "examples" / "real_blur" / "clock_motion.png"
runner = CliRunner()


def run_cli(*args):
    """``(exit code, output)`` of one in-process ``deblurkit`` call; an uncaught exception (a
    traceback for a user) fails the test."""
    res = runner.invoke(app, [str(a) for a in args])
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise AssertionError(f"deblurkit {' '.join(map(str, args))} raised {res.exception!r}:\n{res.output}")
    return res.exit_code, res.output


class _Payload:
    """Unpickling this runs ``exec(code)``: what an attacker's checkpoint would do."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        return (exec, (self.code,))


def tiny_state() -> dict:
    torch.manual_seed(0)
    return build("mimo_unet", base_channel=4, num_res=1).state_dict()


@pytest.fixture()
def marker(tmp_path) -> Path:
    return tmp_path / "PWNED"


@pytest.fixture()
def evil_weights(tmp_path, marker) -> Path:
    """A plain weights file with a payload beside the tensors."""
    path = tmp_path / "evil.pth"
    torch.save({"params": tiny_state(), "extra": _Payload(f"open({str(marker)!r}, 'w').close()")}, path)
    return path


def evil_training_checkpoint(path: Path, marker: Path, config: dict) -> Path:
    """A file shaped like ``ckpt/last.pt`` with a payload inside."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = tiny_state()
    torch.save({"step": 2, "model": sd, "ema": None, "config": config, "aux": {},
                "rng": _Payload(f"open({str(marker)!r}, 'w').close()")}, path)
    return path


def train_config(tmp_path: Path, shared_data: Path) -> Path:
    photos = str(shared_data / "photos" / "classic")
    raw = {
        "name": "tiny", "seed": 3,
        "model": {"name": "mimo_unet", "overrides": {"base_channel": 4, "num_res": 1}},
        "data": {"train": {"type": "synthetic", "photos": photos, "include": ["camera*"], "patch_size": 32,
                           "length": 8, "kernel_size": 9, "kernel_sources": ["trajectory"],
                           "trajectory_bank": 4, "seed": 1},
                 "batch_size": 4},
        "loss": [{"type": "l1", "weight": 1.0}],
        "optim": {"type": "adam", "lr": 1e-3},
        "train": {"total_steps": 2, "out_dir": str(tmp_path / "run"), "device": "cpu", "ckpt_every": 1,
                  "val_every": 1000, "log_every": 1},
    }
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    return cfg


def test_a_crafted_pickle_runs_nowhere(tmp_path, marker, evil_weights, shared_data):
    from deblurkit.inference import Deblurrer
    from deblurkit.models import CheckpointReadError, describe_checkpoint, load_checkpoint, read_state_dict

    # the payload is live: full unpickling does run it (so a missing marker below means something)
    torch.load(evil_weights, weights_only=False)
    assert marker.is_file()
    marker.unlink()

    # Python API
    for call in (lambda: read_state_dict(evil_weights), lambda: describe_checkpoint(evil_weights),
                 lambda: load_checkpoint(build("mimo_unet", base_channel=4, num_res=1), evil_weights),
                 lambda: Deblurrer(model="mimo_unet", weights=evil_weights, device="cpu")):
        with pytest.raises(CheckpointReadError, match="--trust-pickle"):
            call()
    # commands
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(PHOTO, src)
    data = tmp_path / "pairs" / "test" / "scene"
    for sub in ("blur", "sharp"):
        (data / sub).mkdir(parents=True)
        shutil.copy(PHOTO, data / sub / "a.png")
    cfg = train_config(tmp_path, shared_data)
    last = evil_training_checkpoint(tmp_path / "run" / "ckpt" / "last.pt", marker, {"name": "tiny"})
    calls = [
        ("deblur", src, "-o", tmp_path / "out", "--model", "mimo_unet", "--weights", evil_weights, "--device", "cpu"),
        ("evaluate", "--data", tmp_path / "pairs", "--model", "mimo_unet", "--weights", evil_weights,
         "--device", "cpu"),
        ("inspect", evil_weights),
        ("export", last, tmp_path / "exported.safetensors"),
        ("export", evil_weights, tmp_path / "exported.safetensors"),
        ("msdi", "split-parts", last, "-o", tmp_path / "parts"),
        ("msdi", "split-parts", evil_weights, "-o", tmp_path / "parts"),
        ("train", cfg, "--resume", "--no-progress"),
    ]
    for args in calls:
        code, out = run_cli(*args)
        assert code == 2, (args, out)
        assert "--trust-pickle" in out and "can run code" in out, (args, out)
        assert not marker.exists(), f"deblurkit {args[0]} ran code from the file"
    assert not (tmp_path / "exported.safetensors").exists() and not (tmp_path / "parts").exists()

    # the web app's weights field
    from deblurkit.app import AppConfig
    from webapp_server import LiveServer

    buf = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(buf, format="PNG")
    with LiveServer(AppConfig(examples_dir=None, device="cpu", workdir=tmp_path / "work")) as s:
        status, body, _ = s.call("POST", f"/api/jobs?model=mimo_unet&weights={evil_weights}", data=buf.getvalue())
        if status == 202:
            body = s.wait_job(body["job"]["id"])
            assert body["state"] == "error", body
    assert not marker.exists(), "the web app ran code from the weights file"


def test_trust_pickle_reads_a_trusted_legacy_checkpoint(tmp_path, marker, shared_data):
    """--trust-pickle is the one way to the old unpickling path (and it does unpickle)."""
    cfg = {"name": "tiny", "model": {"name": "mimo_unet", "overrides": {"base_channel": 4, "num_res": 1}}}
    last = evil_training_checkpoint(tmp_path / "ckpt" / "last.pt", marker, cfg)
    code, out = run_cli("export", last, tmp_path / "w.safetensors", "--trust-pickle")
    assert code == 0, out
    assert marker.exists()  # trusted: unpickled in full, payload included
    assert (tmp_path / "w.safetensors").is_file()


def test_training_checkpoints_are_tensor_only(tmp_path, shared_data):
    """A run's checkpoint is read by weights_only=True, and resume from it restores every RNG."""
    import random

    from deblurkit.engine import Trainer, load_config
    from deblurkit.engine.checkpoint import capture_rng_state, restore_rng_state

    cfg = load_config(train_config(tmp_path, shared_data))
    Trainer(cfg, progress=False).fit()
    st = torch.load(tmp_path / "run" / "ckpt" / "last.pt", weights_only=True)
    assert st["step"] == 2 and st["config"]["name"] == "tiny"
    state = capture_rng_state()
    expected = (random.random(), float(np.random.rand()), float(torch.rand(())))
    random.random(), np.random.rand(), torch.rand(())
    restore_rng_state(torch.load(io.BytesIO(_saved(state)), weights_only=True))
    assert (random.random(), float(np.random.rand()), float(torch.rand(()))) == expected


def _saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


# ---------------------------------------------------------------- size limits before decoding (item 3)
def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width x height`` RGB pixels, with a token of pixel data:
    what a decompression bomb looks like before its (tiny, highly compressed) data is inflated."""
    import struct
    import zlib

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 4096))
            + chunk(b"IEND", b""))


def test_a_huge_declared_image_is_refused_from_its_header(tmp_path, monkeypatch):
    import cv2

    from deblurkit.io import ImageTooLargeError, load_image, read_image

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header_only(12000, 12000))
    decoded = []
    real = cv2.imdecode
    monkeypatch.setattr(cv2, "imdecode", lambda *a: decoded.append(1) or real(*a))
    with pytest.raises(ImageTooLargeError, match=r"bomb.png': 12000x12000 = 144.0 MP .*--max-megapixels 145") as info:
        load_image(bomb)
    assert "1.6 GB" in str(info.value)  # the decoded float32 RGB tensor
    with pytest.raises(ImageTooLargeError):
        read_image(bomb)
    assert decoded == []  # refused before any pixel was decoded
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(small)
    assert load_image(small, max_megapixels=0.002).image.shape == (3, 40, 50)
    with pytest.raises(ImageTooLargeError, match="50x40 = 0.0 MP"):
        load_image(small, max_megapixels=0.001)


def test_deblur_refuses_a_huge_image_and_max_megapixels_raises_the_limit(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header_only(12000, 12000))
    code, out = run_cli("deblur", bomb, "-o", tmp_path / "out", "--device", "cpu")
    assert code != 0 and "12000x12000 = 144.0 MP" in out and "--max-megapixels" in out, out
    assert out.count("bomb.png") >= 1 and "Traceback" not in out
    # raised: the header passes, and the (token) pixel data is then found corrupt
    code, out = run_cli("deblur", bomb, "-o", tmp_path / "out", "--device", "cpu", "--max-megapixels", "150")
    assert code != 0 and "MP" not in out and "could not be decoded" in out, out
    code, out = run_cli("deblur", bomb, "-o", tmp_path / "out", "--max-megapixels", "0")
    assert code == 2 and "--max-megapixels must be > 0" in out
