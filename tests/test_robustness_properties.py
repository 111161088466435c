"""Property-based tests (hypothesis, issue 14 item 11): whatever bytes a user's file holds, reading
it as an image or a checkpoint raises only the documented errors (or succeeds).

- images (:func:`deblurkit.io.load_image`): :class:`~deblurkit.io.ImageReadError` (its subclass
  :class:`~deblurkit.io.ImageTooLargeError` included) -- for random bytes, real photos cut at any
  point, and headers declaring absurd sizes, depths and colour types;
- weights (:func:`deblurkit.models.read_state_dict`, ``describe_checkpoint``):
  :class:`~deblurkit.models.CheckpointReadError`;
- training checkpoints (:func:`deblurkit.engine.checkpoint.load_training_checkpoint`):
  :class:`~deblurkit.engine.checkpoint.CheckpointUnreadableError`.

Examples are drawn deterministically (``derandomize``), so a run is reproducible.
"""
from __future__ import annotations

import io
import struct
import tempfile
import zlib
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from deblurkit.engine.checkpoint import CheckpointUnreadableError, load_training_checkpoint
from deblurkit.io import ImageReadError, load_image
from deblurkit.models import CheckpointReadError, describe_checkpoint, read_state_dict, save_safetensors

REPO = Path(__file__).resolve().parents[1]
REAL = sorted((REPO / "examples" / "real_blur").glob("*.*g"))
SETTINGS = settings(derandomize=True, deadline=None, database=None, max_examples=60,
                    suppress_health_check=[HealthCheck.too_slow])
SUFFIXES = [".png", ".jpg", ".tif", ".bmp", ".webp"]


def _file(data: bytes, suffix: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="deblurkit-prop-"))
    path = folder / f"x{suffix}"
    path.write_bytes(data)
    return path


def _read_image(data: bytes, suffix: str, max_megapixels=50.0) -> None:
    """Read ``data`` as an image file; only ImageReadError may escape (and results are sane)."""
    path = _file(data, suffix)
    try:
        loaded = load_image(path, max_megapixels=max_megapixels)
    except ImageReadError as e:
        assert str(path) in str(e)  # names the file
        return
    img = loaded.image
    assert img.dtype == torch.float32 and img.dim() == 3 and img.shape[0] in (1, 3)
    assert float(img.min()) >= 0.0 and float(img.max()) <= 1.0


# ------------------------------------------------------------------------------------------ images
@SETTINGS
@given(data=st.binary(max_size=2048), suffix=st.sampled_from(SUFFIXES))
def test_random_bytes_are_an_image_read_error(data, suffix):
    _read_image(data, suffix)


@SETTINGS
@given(index=st.integers(0, len(REAL) - 1), cut=st.floats(0.0, 1.0), flip=st.integers(0, 2**31))
def test_real_photos_cut_or_damaged_anywhere(index, cut, flip):
    data = REAL[index].read_bytes()
    cut_data = data[: int(len(data) * cut)]
    _read_image(cut_data, REAL[index].suffix)
    damaged = bytearray(data)
    damaged[flip % len(damaged)] ^= 0xFF  # one byte flipped somewhere
    _read_image(bytes(damaged), REAL[index].suffix)


def _png(width: int, height: int, depth: int, colour: int, payload: bytes) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(payload)) + chunk(b"IEND", b"")


DIMS = st.one_of(st.integers(0, 64), st.integers(0, 2**31 - 1), st.sampled_from([0, 1, 65535, 65536, 2**31 - 1]))


@SETTINGS
@given(width=DIMS, height=DIMS, depth=st.sampled_from([0, 1, 2, 4, 8, 16, 3, 255]),
       colour=st.sampled_from([0, 2, 3, 4, 6, 1, 7]), payload=st.binary(max_size=512),
       limit=st.sampled_from([50.0, None]))
@example(width=12000, height=12000, depth=8, colour=2, payload=b"\0" * 64, limit=50.0)
def test_png_headers_with_absurd_fields(width, height, depth, colour, payload, limit):
    _read_image(_png(width, height, depth, colour, payload), ".png", max_megapixels=limit)


@SETTINGS
@given(width=st.integers(0, 65535), height=st.integers(0, 65535), components=st.integers(0, 5),
       precision=st.sampled_from([8, 12, 16, 0]), tail=st.binary(max_size=256))
def test_jpeg_headers_with_absurd_fields(width, height, components, precision, tail):
    sof = struct.pack(">BHHB", precision, height, width, components) + b"\x11\x00" * components
    data = (b"\xff\xd8" + b"\xff\xc0" + struct.pack(">H", len(sof) + 2) + sof
            + b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00" + tail + b"\xff\xd9")
    _read_image(data, ".jpg")


@SETTINGS
@given(width=st.integers(-2**31, 2**31 - 1), height=st.integers(-2**31, 2**31 - 1),
       bpp=st.sampled_from([0, 1, 4, 8, 16, 24, 32, 7]), offset=st.integers(0, 2**32 - 1),
       tail=st.binary(max_size=256))
def test_bmp_headers_with_absurd_fields(width, height, bpp, offset, tail):
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bpp, 0, len(tail), 2835, 2835, 0, 0)
    data = b"BM" + struct.pack("<IHHI", 14 + 40 + len(tail), 0, 0, offset) + info + tail
    _read_image(data, ".bmp")


# ------------------------------------------------------------------------------------------ checkpoints
def _weights_bytes() -> bytes:
    buf = io.BytesIO()
    torch.save({"params": {"conv.weight": torch.randn(4, 3, 3, 3), "conv.bias": torch.zeros(4)}}, buf)
    return buf.getvalue()


def _training_bytes() -> bytes:
    buf = io.BytesIO()
    torch.save({"step": 3, "model": {"w": torch.ones(2)}, "config": {"name": "x"}}, buf)
    return buf.getvalue()


def _safetensors_bytes() -> bytes:
    path = _file(b"", ".safetensors")
    save_safetensors({"conv.weight": torch.randn(2, 2)}, path)
    return path.read_bytes()


WEIGHTS, TRAINING, SAFETENSORS = _weights_bytes(), _training_bytes(), _safetensors_bytes()


def _read_checkpoints(data: bytes, suffix: str) -> None:
    path = _file(data, suffix)
    for read in (read_state_dict, describe_checkpoint):
        try:
            read(path)
        except CheckpointReadError as e:
            assert str(path) in str(e)
    try:
        load_training_checkpoint(path)
    except CheckpointUnreadableError as e:
        assert str(path) in str(e)


@SETTINGS
@given(data=st.binary(max_size=4096), suffix=st.sampled_from([".pth", ".pt", ".safetensors", ".ckpt"]))
def test_random_bytes_are_a_checkpoint_error(data, suffix):
    _read_checkpoints(data, suffix)


@SETTINGS
@given(which=st.sampled_from(["weights", "training", "safetensors"]), cut=st.floats(0.0, 1.0),
       flip=st.integers(0, 2**31), value=st.integers(0, 255))
def test_real_checkpoints_cut_or_damaged_anywhere(which, cut, flip, value):
    data = {"weights": WEIGHTS, "training": TRAINING, "safetensors": SAFETENSORS}[which]
    suffix = ".safetensors" if which == "safetensors" else ".pt"
    _read_checkpoints(data[: int(len(data) * cut)], suffix)
    damaged = bytearray(data)
    damaged[flip % len(damaged)] = value
    _read_checkpoints(bytes(damaged), suffix)


@SETTINGS
@given(header=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode),
                        st.dictionaries(st.text(max_size=8), st.dictionaries(
                            st.sampled_from(["dtype", "shape", "data_offsets"]),
                            st.one_of(st.text(max_size=6), st.lists(st.integers(-2**40, 2**40), max_size=4))),
                            max_size=3).map(lambda d: __import__("json").dumps(d).encode())),
       declared=st.one_of(st.none(), st.integers(0, 2**64 - 1)), tail=st.binary(max_size=64))
def test_safetensors_headers_with_absurd_fields(header, declared, tail):
    n = len(header) if declared is None else declared
    _read_checkpoints(struct.pack("<Q", n) + header + tail, ".safetensors")


# a pickle of plain data (what weights_only=True reads) shaped anyhow, also like a training state
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.text(max_size=6), st.builds(lambda n: torch.ones(n), st.integers(0, 3)))
PLAIN = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.tuples(inner, inner),
    st.dictionaries(st.one_of(st.text(max_size=6), st.integers(0, 3)), inner, max_size=3)), max_leaves=12)
STATE_LIKE = st.fixed_dictionaries({"step": PLAIN, "model": PLAIN, "config": PLAIN},
                                   optional={"ema": PLAIN, "aux": PLAIN, "rng": PLAIN})


@settings(SETTINGS, max_examples=30)
@given(obj=st.one_of(PLAIN, STATE_LIKE, st.fixed_dictionaries(
    {"step": st.integers(0, 9), "model": st.just({"w": torch.ones(2)}),
     "config": st.fixed_dictionaries({"name": PLAIN, "model": st.one_of(PLAIN, st.fixed_dictionaries(
         {"name": PLAIN, "overrides": PLAIN}))})})))
def test_any_plain_pickle_is_read_or_refused_in_one_line(obj):
    """What torch.load(weights_only=True) accepts, shaped anyhow: the readers raise only their
    documented errors, and ``deblurkit export`` / ``msdi split-parts`` answer in one line (exit 0
    or 2), never with a traceback."""
    from typer.testing import CliRunner

    from deblurkit.cli import app

    path = _file(b"", ".pt")
    torch.save(obj, path)
    _read_checkpoints(path.read_bytes(), ".pt")
    try:
        st_ = load_training_checkpoint(path)
        assert isinstance(st_, dict) and {"step", "model", "config"} <= set(st_)
    except CheckpointUnreadableError:
        pass
    for args in (["export", str(path), str(path.with_name("w.safetensors"))],
                 ["msdi", "split-parts", str(path), "-o", str(path.with_name("parts"))]):
        res = CliRunner().invoke(app, args)
        assert res.exception is None or isinstance(res.exception, SystemExit), (args, repr(res.exception))
        assert res.exit_code in (0, 2) and "Traceback" not in res.output
