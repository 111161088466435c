"""Write event-guided low-light deblurring data in the official layout (Zhou et al., IJCV 2023).

Layout (``subdir_mapping`` of ``scripts/make_dataset.py``; read by the official
``data_loader/dataset/dataset_full.py``)::

    out/
      manifest.json                          # how it was made (seed, settings, samples)
      share/APS_blur/<name>.png              # noisy low-light blurry APS, 8-bit grey
      share/APS_blur_clean/<name>.png        # clean blurry APS (HDR values clipped by the PNG)
      share/flow/<name>.npy                  # (h, w, 4) float32 bidirectional flow, APS pixels
      subnetwork1/events_voxel_grid/<name>.npy  # (h, w, 13) float32, NOT normalised
      subnetwork2/APS/<name>.png             # sharp APS (exposure start)
      subnetwork2/RGB/<name>.png             # sharp RGB, source size
      subnetwork2/RGB_blur/<name>.png        # noisy low-light blurry RGB
      subnetwork2/RGB_blur_clean/<name>.png  # clean blurry RGB
      others/events/<name>.npy               # (N, 4) float32 (t, x, y, polarity)
      others/{base_trajectory_APS, patch_wise_trajectory_APS, base_kernel_APS,
              patch_wise_kernel_APS}/<name>.npy   # test mode only

Sample names are ``<photo><flip suffix>_<k:03d>`` as in the official ``Processor``: ``k`` counts
the trajectories of a photo, train mode flips by ``k % 4`` (none, up-down, left-right, both),
test mode never flips. Every sample draws from its own generator seeded by
``(seed, photo, k)``, so a sample does not depend on which other photos are processed.

PNG files store ``round(255 * clip(x, 0, 1))`` (the official ``cv2.imwrite`` of ``x * 255``).
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import numpy as np
import torch

from ..io.atomic import write_bytes_atomic, write_text_atomic
from ..io.images import list_images, read_image, save_image
from .evsample import EventSynthConfig, flip_image, hdr_boost, make_event_sample
from .motion import sample_camera_motion

__all__ = ["LAYOUT", "build_event_dataset", "write_event_sample", "MANIFEST_NAME"]

PathLike = Union[str, os.PathLike]
MANIFEST_NAME = "manifest.json"

# folder -> {item: suffix}; scripts/make_dataset.py saver_args['subdir_mapping']
LAYOUT: dict[str, dict[str, str]] = {
    "share": {"APS_blur": ".png", "APS_blur_clean": ".png", "flow": ".npy"},
    "subnetwork1": {"events_voxel_grid": ".npy"},
    "subnetwork2": {"APS": ".png", "RGB": ".png", "RGB_blur": ".png", "RGB_blur_clean": ".png"},
    "others": {
        "events": ".npy",
        "base_trajectory_APS": ".npy",
        "patch_wise_trajectory_APS": ".npy",
        "base_kernel_APS": ".npy",
        "patch_wise_kernel_APS": ".npy",
    },
}


def _derive_seed(*parts) -> int:
    from .pairs import derive_seed

    return derive_seed(*parts)


def _save_npy(path: Path, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    write_bytes_atomic(path, buf.getvalue())


def _save_png(path: Path, array: np.ndarray) -> None:
    t = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    t = t[None] if t.dim() == 2 else t.permute(2, 0, 1)
    save_image(path, t)


def write_event_sample(out: PathLike, name: str, item: dict[str, np.ndarray]) -> list[Path]:
    """Write the items of one sample (:func:`make_event_sample` output) into the layout.

    Keys not in :data:`LAYOUT` are ignored; missing keys are skipped. Every file is written
    atomically. Returns the written paths.
    """
    written = []
    for folder, items in LAYOUT.items():
        for key, suffix in items.items():
            if key not in item:
                continue
            path = Path(out) / folder / key / f"{name}{suffix}"
            (_save_png if suffix == ".png" else _save_npy)(path, item[key])
            written.append(path)
    return written


def _config_dict(config: EventSynthConfig) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def _check_out(out: Path, overwrite: bool) -> None:
    if overwrite or not out.exists():
        return
    if (out / MANIFEST_NAME).exists() or any((out / f).exists() for f in LAYOUT):
        raise FileExistsError(f"{out} already holds a dataset; pass --overwrite to add to / "
                              f"replace it, or choose another --out")


def build_event_dataset(
    photos: PathLike | Iterable[PathLike],
    out: PathLike,
    *,
    mode: str = "train",
    trajectories_per_photo: int = 20,
    seed: int = 0,
    config: Optional[EventSynthConfig] = None,
    size: Optional[Sequence[int]] = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Synthesise the official training (or synthetic test) set from sharp photographs.

    Args:
        photos: folder(s) / files of sharp images (the official source: the linearised RealBlur
            ``RealBlurSourceFiles/*.png``, 768 x 960).
        out: dataset root (layout in the module docstring).
        mode: ``"train"`` (flips by ``k % 4``) or ``"test"`` (no flips, adds trajectories and
            kernels under ``others/``).
        trajectories_per_photo: samples per photo (official: 20).
        seed: base seed of all random draws.
        config: :class:`~deblurkit.synth.evsample.EventSynthConfig` (official values by default).
        size: optional ``(H, W)``: centre-crop to that aspect ratio and resize (area) every photo,
            e.g. ``(768, 960)`` for arbitrary photos; default: use photos as they are.
        overwrite: allow writing into a folder that already holds a dataset (same-named files are
            replaced, others kept).
        progress: show a progress bar.

    Returns:
        the manifest (also written to ``out/manifest.json``).

    Raises:
        ValueError: bad ``mode`` / counts / size. FileNotFoundError: no photos.
        FileExistsError: ``out`` holds a dataset and ``overwrite`` is False.
        ImageReadError: an unreadable photo (naming it).
    """
    if mode not in ("train", "test"):
        raise ValueError(f"mode must be 'train' or 'test', got {mode!r}")
    if trajectories_per_photo < 1:
        raise ValueError(f"trajectories_per_photo must be >= 1, got {trajectories_per_photo}")
    if size is not None and (len(size) != 2 or min(size) < 48):
        raise ValueError(f"size must be (H, W) with both >= 48, got {size}")
    config = config or EventSynthConfig()
    out = Path(out)
    files = list_images(photos)
    if not files:
        raise FileNotFoundError(f"no images found in {photos}")
    _check_out(out, overwrite)
    jobs = [(f, k) for f in files for k in range(trajectories_per_photo)]
    it = jobs
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(jobs, desc="synth events", unit="sample")
    samples = []
    cache: dict[Path, np.ndarray] = {}
    for f, k in it:
        if f not in cache:
            cache.clear()
            cache[f] = _load_rgb(f, size)
        rng = np.random.default_rng(_derive_seed(seed, f.stem, k))
        base, patchwise = sample_camera_motion(rng, config.arc, config.patches)
        flag = k % 4 if mode == "train" else 0
        rgb = hdr_boost(cache[f], rng)
        rgb, suffix = flip_image(rgb, flag)
        name = f"{f.stem}{suffix}_{k:03d}"
        item = make_event_sample(rgb, base, patchwise, rng, config, with_kernels=(mode == "test"))
        write_event_sample(out, name, item)
        samples.append({"name": name, "photo": f.name, "trajectory": k, "flip": flag,
                        "num_events": int(len(item["events"]))})
    manifest = {
        "format": "deblurkit-evdeblur-synthetic",
        "source": "scripts/make_dataset.py of fourson/Deblurring-Low-Light-Images-with-Events",
        "mode": mode,
        "seed": seed,
        "trajectories_per_photo": trajectories_per_photo,
        "size": list(size) if size is not None else None,
        "config": _config_dict(config),
        "layout": {k: list(v) for k, v in LAYOUT.items()},
        "num_samples": len(samples),
        "samples": samples,
    }
    write_text_atomic(out / MANIFEST_NAME, json.dumps(manifest, indent=1) + "\n")
    return manifest


def _load_rgb(path: Path, size: Optional[Sequence[int]]) -> np.ndarray:
    import cv2

    rgb = read_image(path, channels=3).permute(1, 2, 0).numpy()
    if size is not None:
        th, tw = int(size[0]), int(size[1])
        h, w = rgb.shape[:2]
        scale = min(h / th, w / tw)
        ch, cw = int(round(th * scale)), int(round(tw * scale))
        y0, x0 = (h - ch) // 2, (w - cw) // 2
        rgb = cv2.resize(np.ascontiguousarray(rgb[y0:y0 + ch, x0:x0 + cw]), (tw, th), interpolation=cv2.INTER_AREA)
        rgb = np.clip(rgb, 0, 1)
    return np.ascontiguousarray(rgb, dtype=np.float32)
