"""deblurkit.metrics: PSNR and SSIM variants, each named after the protocol it reproduces.

=====================  ===================================================================
name                   reproduces
=====================  ===================================================================
``psnr``               BasicSR ``calculate_psnr`` (HINet, MSDI-Net; ``quantize=True``) and
                       the float PSNR of RSS-T, ASPDC, Blur2Blur (``quantize=False``)
``ssim``               standard Gaussian SSIM = skimage ``structural_similarity(...,
                       gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``
``ssim_3d``            3-D Gaussian SSIM of HINet / MSDI-Net / Blur2Blur (``quantize=True``)
                       and RSS-T (``quantize=False``)
``ssim_skimage_legacy`` ASPDC: old skimage ``structural_similarity(..., multichannel=True)``
                       with the float default ``data_range=2``
=====================  ===================================================================

``psnr_pooled`` (not in ``METRICS``: one value per batch) is the event-guided low-light
deblurring PSNR of the batch-pooled MSE.

Every metric takes ``(x, y)`` of shape (N, C, H, W) or (C, H, W) (float RGB, [0, 1] at the API
boundary) and keywords ``data_range``, ``crop_border``, ``y_channel``, ``quantize``; it returns a
float64 tensor (N,) with one value per image.

Example::

    >>> import torch
    >>> from deblurkit.metrics import get_metric
    >>> x = torch.rand(2, 3, 32, 32)
    >>> get_metric("psnr")(x, x)
    tensor([inf, inf], dtype=torch.float64)
"""
from __future__ import annotations

from typing import Callable

from torch import Tensor

from .pooled import psnr_pooled
from .psnr import psnr
from .ssim import ssim, ssim_skimage_legacy
from .ssim3d import ssim_3d

MetricFn = Callable[..., Tensor]

METRICS: dict[str, MetricFn] = {
    "psnr": psnr,
    "ssim": ssim,
    "ssim_3d": ssim_3d,
    "ssim_skimage_legacy": ssim_skimage_legacy,
}


def get_metric(name: str) -> MetricFn:
    """The metric function registered under ``name`` (case-insensitive, ``-`` same as ``_``).

    Raises:
        ValueError: unknown name; the message lists the known ones.
    """
    key = str(name).strip().lower().replace("-", "_")
    try:
        return METRICS[key]
    except KeyError:
        raise ValueError(
            f"unknown metric {name!r}; known metrics: {', '.join(sorted(METRICS))}"
        ) from None


__all__ = ["METRICS", "get_metric", "psnr", "psnr_pooled", "ssim", "ssim_3d", "ssim_skimage_legacy"]
