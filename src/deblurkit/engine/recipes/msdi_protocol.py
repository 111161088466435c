"""Evaluation protocol ``msdi``: how MSDI-Net's official test scores GoPro (``MSDINet-Test.yml``,
``basicsr/test.py``, ``image_restoration_model.py`` ``grids`` / ``grids_inverse``,
``basicsr/metrics/psnr_ssim.py``; dasongli1/Learning_degradation commit 9ba7c63).

* The blurry image is cut into ``crop_size`` = 256 square tiles on an adaptive grid:
  ``rows = ceil(H / 256)``, ``cols = ceil(W / 256)``, steps ``ceil((H - 256) / (rows - 1))`` /
  ``ceil((W - 256) / (cols - 1))`` (256 when one tile fits), the last tile flush with the
  bottom / right edge. A 720x1280 GoPro frame gives 3 x 5 = 15 tiles (row starts 0, 232, 464;
  column starts 0, 256, ..., 1024).
* Each tile is restored on its own (the degradation encoder sees only that tile); overlapping
  outputs are averaged (sum / count).
* PSNR and SSIM on the 8-bit RGB images of ``tensor2img`` (clamp to [0, 1], x255, round):
  :func:`deblurkit.metrics.psnr` and :func:`deblurkit.metrics.ssim_3d` with ``quantize=True``
  (``calculate_psnr`` / ``calculate_ssim`` -> ``_ssim_3d``, ``crop_border=0``, RGB).

The released ``msdi_net.pth`` scored this way gives the paper's GoPro 33.28 dB / 0.964.

Extension: an image side shorter than 256 uses a tile of that side along that axis (the
official code would index out of range).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from ... import metrics
from ..evaluator import Protocol, register_protocol

__all__ = ["MSDI_CROP_SIZE", "grid_starts", "tiled_restore"]

#: ``val.crop_size`` of the official test config.
MSDI_CROP_SIZE = 256


def grid_starts(size: int, crop_size: int = MSDI_CROP_SIZE) -> list[int]:
    """Tile starts along one axis of length ``size`` (``grids`` of the official model).

    Raises ValueError for non-positive sizes.
    """
    if size <= 0 or crop_size <= 0:
        raise ValueError(f"size and crop_size must be > 0, got {size}, {crop_size}")
    crop = min(crop_size, size)
    n = (size - 1) // crop + 1
    step = crop if n == 1 else math.ceil((size - crop) / (n - 1) - 1e-8)
    starts, i, last = [], 0, False
    while i < size and not last:
        if i + crop >= size:
            i, last = size - crop, True
        starts.append(i)
        i += step
    return starts


def tiled_restore(restore: Callable[[Tensor], Tensor], lq: Tensor, crop_size: int = MSDI_CROP_SIZE) -> Tensor:
    """Restore ``lq`` (1, C, H, W) tile by tile on the official grid and average the overlaps.

    ``restore`` maps a (1, C, h, w) tile in [0, 1] to its restoration of the same shape.
    Returns (1, C, H, W) float32 on the CPU.

    Raises ValueError when ``lq`` is not a single (1, C, H, W) image or a tile's output has
    another shape.
    """
    if lq.dim() != 4 or lq.shape[0] != 1:
        raise ValueError(f"msdi protocol: expected one image (1, C, H, W), got {tuple(lq.shape)}")
    _, c, h, w = lq.shape
    th, tw = min(crop_size, h), min(crop_size, w)
    acc = torch.zeros(1, c, h, w, dtype=torch.float64)
    count = torch.zeros(1, 1, h, w, dtype=torch.float64)
    for i in grid_starts(h, crop_size):
        for j in grid_starts(w, crop_size):
            out = restore(lq[:, :, i:i + th, j:j + tw])
            if tuple(out.shape) != (1, c, th, tw):
                raise ValueError(f"msdi protocol: a {th}x{tw} tile came back as {tuple(out.shape)}")
            acc[:, :, i:i + th, j:j + tw] += out.detach().double().cpu()
            count[:, :, i:i + th, j:j + tw] += 1.0
    return (acc / count).float()


def _score(restored: Tensor, gt: Tensor) -> dict:
    return {
        "psnr": float(metrics.psnr(restored, gt, quantize=True)[0]),
        "ssim": float(metrics.ssim_3d(restored, gt, quantize=True)[0]),
    }


register_protocol(Protocol(
    "msdi",
    "MSDI-Net's official test (MSDINet-Test.yml): 256x256 tiles on an adaptive overlapping grid "
    "(15 per 720x1280 GoPro frame), overlaps averaged; PSNR and 3-D Gaussian SSIM (ssim_3d) on "
    "8-bit RGB (clamp, x255, round)",
    _score,
    apply=tiled_restore,
))
