"""Writes tiny folders in the official layouts of fourson/Deblurring-Low-Light-Images-with-Events
(scripts/make_dataset.py: share/, subnetwork1/, subnetwork2/; real/hybrid: APS_blur/,
events_voxel_grid/, RGB_blur/) with random content, for loader, recipe and CLI tests."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def _png(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if img.ndim == 3:
        img = img[..., ::-1]  # RGB -> BGR for OpenCV
    assert cv2.imwrite(str(path), img)


def _npy(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, arr)


def voxel(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(h, w, 13) float32 grid, ~20 % non-zero cells, as the official .npy files."""
    v = rng.normal(0, 1.5, (h, w, 13)).astype(np.float32)
    return np.where(rng.random((h, w, 13)) < 0.2, v, 0).astype(np.float32)


def write_synthetic(root: Path, names=("a_000", "b_001"), h: int = 16, w: int = 40, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for n in names:
        _npy(root / "subnetwork1/events_voxel_grid" / f"{n}.npy", voxel(rng, h, w))
        _npy(root / "share/flow" / f"{n}.npy", rng.normal(0, 2, (h, w, 4)).astype(np.float32))
        for sub in ("share/APS_blur", "share/APS_blur_clean", "subnetwork2/APS"):
            _png(root / sub / f"{n}.png", rng.integers(0, 256, (h, w), dtype=np.uint8))
        for sub in ("subnetwork2/RGB", "subnetwork2/RGB_blur", "subnetwork2/RGB_blur_clean"):
            _png(root / sub / f"{n}.png", rng.integers(0, 256, (3 * h, 3 * w, 3), dtype=np.uint8))
    return root


def write_real(root: Path, names=("r0", "r1"), h: int = 13, w: int = 47, rgb: bool = False, seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    for n in names:
        _npy(root / "events_voxel_grid" / f"{n}.npy", voxel(rng, h, w))
        _png(root / "APS_blur" / f"{n}.png", rng.integers(0, 256, (h, w), dtype=np.uint8))
        if rgb:
            _png(root / "RGB_blur" / f"{n}.png", rng.integers(0, 256, (3 * h, 3 * w, 3), dtype=np.uint8))
    return root
