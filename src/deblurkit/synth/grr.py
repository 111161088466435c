"""Build GRR-blurred / global-shutter pairs from real video (the GRR_real layout of RSS-T).

Layout written: ``<out>/<split>/<seq>/RSGR/PNG/<n>.png`` (GRR blurry) and
``<out>/<split>/<seq>/GS/PNG/<n>.png`` (sharp global-shutter reference) plus ``manifest.json``.

Each sample starts at an original frame ``s``: the frames it spans are interpolated ``factor``
times (:func:`deblurkit.synth.interpolate.interpolate_frames`), all rows are reset at ``s`` and row
``r`` integrates ``exposure + readout * r / (H - 1)`` interpolated frames
(:func:`deblurkit.synth.shutter.grr_blur`).

The GS reference (``reference``) follows the capture set-up of the real pairs: GRR_real and
RSGR-GS_v1 were recorded through a beam splitter by a GS camera and a GRR ("RSGR") camera
triggered together, with the GS exposure equal to the exposure of the GRR camera's first row
(Wang et al., *Neural Global Shutter*, CVPR 2022, Fig. 2b, the set-up whose RSGR/GS layout the
RSS-T README reuses). So the default ``reference="first_row"`` integrates the scene over the
first row's window ``[s, s + exposure)`` with :func:`deblurkit.synth.shutter.global_shutter_blur`:
the top row of the GRR frame then matches the reference exactly and the blur relative to it grows
towards the bottom, as in the captured data. ``"start"`` (the sharp frame at the reset time) and
``"middle"`` (the sharp frame at the middle of the first row's exposure) give instantaneous
references instead.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np
import torch

from ..io.atomic import write_text_atomic
from ..io.images import ImageReadError, list_images, read_image, save_image
from .interpolate import interpolate_frames
from .shutter import global_shutter_blur, grr_blur

__all__ = ["read_frames", "build_grr_sequence", "REFERENCES"]

#: Choices of the GS reference time (see the module docstring); the first is the default.
REFERENCES = ("first_row", "start", "middle")


def read_frames(source: str | os.PathLike, max_frames: int | None = None) -> torch.Tensor:
    """Frames of a video file (any OpenCV-readable container) or a folder of images, as
    (T, 3, H, W) float32 RGB in [0, 1].

    Raises:
        FileNotFoundError: missing path. ImageReadError: unreadable video / no frames / frames of
        different sizes (naming the source).
    """
    src = Path(source)
    if not src.exists():
        raise FileNotFoundError(f"no such video or frame folder: '{src}'")
    frames: list[torch.Tensor] = []
    if src.is_dir():
        for f in list_images(src)[: max_frames or None]:
            frames.append(read_image(f, channels=3))
    else:
        cap = cv2.VideoCapture(str(src))
        try:
            while max_frames is None or len(frames) < max_frames:
                ok, bgr = cap.read()
                if not ok:
                    break
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
                frames.append(torch.from_numpy(rgb).permute(2, 0, 1))
        finally:
            cap.release()
    if len(frames) < 2:
        raise ImageReadError(f"'{src}': need at least 2 frames, read {len(frames)}")
    if len({tuple(f.shape) for f in frames}) != 1:
        raise ImageReadError(f"'{src}': frames have different sizes")
    return torch.stack(frames)


def build_grr_sequence(frames: torch.Tensor, out: str | os.PathLike, *, seq: str = "seq0", split: str = "test",
                       factor: int = 8, exposure: float = 2.0, readout: float = 16.0, stride: int = 2,
                       reference: str = "first_row", progress: bool = True) -> dict:
    """Write GRR / GS pairs of one sequence; returns the manifest.

    Args:
        frames: (T, 3, H, W) float in [0, 1] sharp frames (e.g. :func:`read_frames`).
        out: dataset root. seq, split: names of the sequence and split folders.
        factor: temporal interpolation factor (intermediate frames per original interval).
        exposure: first row's integration time, in interpolated frames.
        readout: extra integration time of the last row, in interpolated frames.
        stride: original frames between consecutive samples.
        reference: ``"first_row"`` (default), ``"start"`` or ``"middle"`` (module docstring).

    Raises:
        ValueError: bad parameters, or a clip too short for one sample.
    """
    if reference not in REFERENCES:
        raise ValueError(f"reference must be one of {REFERENCES}, got {reference!r}")
    if exposure <= 0 or readout < 0 or stride < 1:
        raise ValueError("need exposure > 0, readout >= 0, stride >= 1")
    T = frames.shape[0]
    span = exposure + readout
    need = math.ceil(span / factor)  # original frame intervals one sample spans
    starts = [k for k in range(0, T, stride) if k * factor + span <= (T - 1) * factor + 1]
    if not starts:
        raise ValueError(f"clip of {T} frames is too short for exposure + readout = {span} "
                         f"interpolated frames (x{factor})")
    root = Path(out) / split / seq
    it: Iterable = starts
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(starts, desc=f"grr {seq}", unit="pair")
    for n, k in enumerate(it):
        # interpolate only this sample's frames (memory O(window), not O(clip)); index 0 = frame k
        window = interpolate_frames(frames[k:k + need + 1], factor)
        blurry = grr_blur(window, exposure=exposure, readout=readout)
        if reference == "first_row":
            sharp = global_shutter_blur(window, exposure=exposure)
        else:
            sharp = window[0 if reference == "start" else min(int(round(exposure / 2)), window.shape[0] - 1)]
        save_image(root / "RSGR" / "PNG" / f"{n:05d}.png", blurry)
        save_image(root / "GS" / "PNG" / f"{n:05d}.png", sharp)
    manifest = {"format": "deblurkit-grr", "layout": "<split>/<seq>/{RSGR,GS}/PNG/<n>.png", "seq": seq,
                "split": split, "num_pairs": len(starts), "factor": factor, "exposure": exposure,
                "readout": readout, "stride": stride, "reference": reference,
                "interpolation": "OpenCV DIS flow, Super SloMo linear intermediate flows"}
    write_text_atomic(root / "manifest.json", json.dumps(manifest, indent=1) + "\n")
    return manifest
