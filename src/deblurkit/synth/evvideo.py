"""Event-deblurring samples from real video with the ideal event simulator.

For clips instead of still photos (no synthetic camera motion): the clip is interpolated
``factor`` times with optical flow (:func:`deblurkit.synth.interpolate.interpolate_frames`), so
an exposure of ``window`` original frames holds ``window * factor + 1`` sharp frames (defaults
2 x 12 + 1 = 25, the official sample count). Per sample starting at original frame ``s``:

* blurry RGB / APS = mean of the sharp frames of the exposure (APS = grey, bilinear 1/3 size as
  :func:`deblurkit.synth.evsample.aps_from_rgb`), then the official low-light noise;
* sharp targets = the frame at the exposure start (as the official synthetic data);
* events = :class:`~deblurkit.synth.events_ideal.IdealEventSimulator` over the APS frames of
  the exposure, started at the exposure start (as the official per-sample simulator), then the
  13-bin voxel grid over the exposure (event times relative to the exposure start);
* flow labels = DIS optical flow (APS pixels) start -> middle and middle -> end frame.

Written in the official layout (:func:`deblurkit.synth.evdataset.write_event_sample`) with names
``<seq>_<n:05d>``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Optional, Union

import numpy as np
import torch

from ..io.atomic import write_text_atomic
from .events_ideal import IdealEventSimulator
from .evdataset import MANIFEST_NAME, _check_out, _derive_seed, write_event_sample
from .evsample import aps_from_rgb
from .interpolate import dis_flow, interpolate_frames
from .lowlight import LowLightNoise
from .voxel import events_to_voxel_grid, to_official_layout

__all__ = ["build_event_dataset_from_video"]

PathLike = Union[str, os.PathLike]


def build_event_dataset_from_video(
    frames: torch.Tensor,
    out: PathLike,
    *,
    fps: float = 25.0,
    seq: str = "seq0",
    factor: int = 12,
    window: int = 2,
    stride: Optional[int] = None,
    threshold: float = 0.3,
    downsampling: int = 3,
    num_bins: int = 13,
    hdr: bool = True,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Write samples of one clip (see the module docstring); returns the manifest.

    Args:
        frames: ``(T, 3, H, W)`` float RGB in [0, 1] (e.g. :func:`deblurkit.synth.grr.read_frames`).
        out: dataset root. fps: frame rate of the clip (sets the time axis in seconds).
        seq: sample name prefix. factor: interpolation factor. window: exposure in original
        frames. stride: original frames between sample starts (default ``window``).
        threshold: contrast threshold of the ideal simulator (log intensity).
        downsampling: RGB / APS size ratio (official 3). num_bins: voxel bins (official 13).
        hdr: apply the official HDR boost to saturated pixels. seed: noise / HDR seed.
        overwrite: allow writing into an existing dataset folder.

    Raises:
        ValueError: bad parameters, or a clip shorter than one exposure.
        FileExistsError: ``out`` holds a dataset and ``overwrite`` is False.
    """
    stride = stride or window
    if factor < 1 or window < 1 or stride < 1 or fps <= 0:
        raise ValueError("need factor, window, stride >= 1 and fps > 0")
    if frames.dim() != 4 or frames.shape[1] != 3:
        raise ValueError(f"frames must be (T, 3, H, W) RGB, got {tuple(frames.shape)}")
    if frames.shape[0] < window + 1:
        raise ValueError(f"clip of {frames.shape[0]} frames is shorter than one exposure of {window} frames")
    out = Path(out)
    _check_out(out, overwrite)
    rng_hdr = np.random.default_rng(_derive_seed(seed, seq, "hdr"))
    src = frames.float().clamp(0, 1)
    gain = np.float32(rng_hdr.uniform(1.25, 2.5)) if hdr else None  # one gain per clip
    span = window * factor
    starts = list(range(0, frames.shape[0] - window, stride))
    it: Iterable = starts
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(starts, desc=f"synth events {seq}", unit="sample")
    samples = []
    for n, s in enumerate(it):
        clip = src[s:s + window + 1]
        dense = interpolate_frames(clip, factor) if factor > 1 else clip
        dense_rgb = np.ascontiguousarray(dense.permute(0, 2, 3, 1).numpy())
        if gain is not None:  # after interpolation, which clips to [0, 1]
            dense_rgb = (dense_rgb + (dense_rgb >= 1 - 1e-6).astype(np.float32) * gain).astype(np.float32)
        aps = np.stack([aps_from_rgb(f, downsampling) for f in dense_rgb])
        ah, aw = aps.shape[1:]
        times = np.arange(span + 1) / (fps * factor)
        sim = IdealEventSimulator(threshold)
        sim.initialize(aps[0] * 255, 0.0)
        ev = np.concatenate([np.zeros((0, 4))] + [sim.simulate(a * 255, t) for a, t in zip(aps[1:], times[1:])])
        t0, t1 = 0.0, float(times[-1])
        rng = np.random.default_rng(_derive_seed(seed, seq, n))
        noise = LowLightNoise.draw(rng)
        rgb_blur_clean = dense_rgb.mean(0).astype(np.float32)
        aps_blur_clean = aps.mean(0).astype(np.float32)
        mid = span // 2
        f1 = dis_flow(aps[0], aps[mid])
        f2 = dis_flow(aps[mid], aps[-1])
        item = {
            "RGB": dense_rgb[0],
            "RGB_blur_clean": rgb_blur_clean,
            "RGB_blur": noise.apply(rgb_blur_clean, rng),
            "APS": aps[0],
            "APS_blur_clean": aps_blur_clean,
            "APS_blur": noise.apply(aps_blur_clean, rng),
            "flow": np.concatenate([f1, f2], axis=2).astype(np.float32),
            "events": ev.astype(np.float32),
            "events_voxel_grid": to_official_layout(
                events_to_voxel_grid(ev, ah, aw, num_bins, t_start=t0, duration=t1 - t0)),
        }
        name = f"{seq}_{n:05d}"
        write_event_sample(out, name, item)
        samples.append({"name": name, "start_frame": s, "exposure_s": t1 - t0, "num_events": int(len(ev))})
    manifest = {
        "format": "deblurkit-evdeblur-video",
        "simulator": "ideal threshold crossings (deblurkit.synth.events_ideal)",
        "seq": seq, "fps": fps, "factor": factor, "window": window, "stride": stride, "threshold": threshold,
        "downsampling": downsampling, "num_bins": num_bins, "hdr": hdr, "seed": seed,
        "interpolation": "OpenCV DIS flow, Super SloMo linear intermediate flows",
        "num_samples": len(samples), "samples": samples,
    }
    write_text_atomic(out / MANIFEST_NAME, json.dumps(manifest, indent=1) + "\n")
    return manifest
