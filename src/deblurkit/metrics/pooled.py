"""PSNR of a batch from its pooled MSE, as the event-guided low-light deblurring code scores.

``model/metric_utils/psnr.py`` of fourson/Deblurring-Low-Light-Images-with-Events computes
``10 log10(data_range^2 / mean((X - Y)^2))`` with the mean over the *whole batch* (N, C, H, W),
not per image: a training / validation batch of 8 gives one PSNR of the pooled MSE, which is
not the mean of the 8 per-image PSNRs. For a batch of one (the official inference) both agree.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ._common import check_range

__all__ = ["psnr_pooled", "OFFICIAL_IDENTICAL_DB"]

#: What the official ``psnr`` returns when the MSE is exactly 0 (instead of infinity).
OFFICIAL_IDENTICAL_DB = 50.0


def psnr_pooled(x: Tensor, y: Tensor, *, data_range: float = 1.0, identical_db: float | None = None) -> Tensor:
    """PSNR in dB of the MSE pooled over the whole batch.

    Args:
        x, y: (N, C, H, W) or (C, H, W) tensors of the same shape, values on [0, data_range].
        data_range: peak value (1.0 for [0, 1] images).
        identical_db: value returned when the MSE is 0. ``None`` (default): ``inf``;
            :data:`OFFICIAL_IDENTICAL_DB` (50) reproduces the official function
            (official-compatibility setting).

    Returns:
        0-dim float64 tensor, in dB.

    Raises:
        ValueError: shapes differ, bad ``data_range``. TypeError: inputs are not tensors.
    """
    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        raise TypeError("psnr_pooled: inputs must be torch tensors")
    if x.shape != y.shape:
        raise ValueError(f"psnr_pooled: shapes differ: {tuple(x.shape)} and {tuple(y.shape)}")
    peak = check_range(data_range, "data_range", "psnr_pooled")
    mse = (x.double() - y.double()).pow(2).mean()
    if float(mse) == 0.0:
        return torch.tensor(float("inf") if identical_db is None else float(identical_db), dtype=torch.float64)
    return 10.0 * torch.log10(peak * peak / mse)
