"""2-D SSIM as computed by scikit-image: the standard Gaussian variant and ASPDC's legacy call.

Both compute, per channel, local means, variances and covariance with a window filter, the SSIM
map ``(2 ux uy + C1)(2 vxy + C2) / ((ux^2 + uy^2 + C1)(vx + vy + C2))`` with
``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``, average it over the *valid* region (skimage crops
``(win_size - 1) // 2`` pixels from every border before averaging, so only windows fully inside
the image count) and average the channels. Arithmetic is float64.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ._common import QuantizeMode, check_range, correlate_valid, gaussian_1d, prepare

K1 = 0.01
K2 = 0.03


def _filter_valid(maps: Tensor, taps: Tensor) -> Tensor:
    """Separable 'valid' filtering of (..., H, W) with the 1-D ``taps`` along H, then W."""
    return correlate_valid(correlate_valid(maps, taps, -2), taps, -1)


def _ssim_valid(x: Tensor, y: Tensor, taps: Tensor, L: float, cov_norm: float, fn: str) -> Tensor:
    """Mean SSIM over the valid region, averaged over channels: (N, C, H, W) -> (N,)."""
    h, w = x.shape[-2:]
    k = taps.numel()
    if h < k or w < k:
        raise ValueError(
            f"{fn}: images of size {h}x{w} (after crop_border) are smaller than the "
            f"{k}x{k} window"
        )
    maps = torch.stack((x, y, x * x, y * y, x * y), dim=0)
    ux, uy, uxx, uyy, uxy = _filter_valid(maps, taps).unbind(0)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1, c2 = (K1 * L) ** 2, (K2 * L) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.mean(dim=(-2, -1)).mean(dim=1)


def ssim(
    x: Tensor,
    y: Tensor,
    *,
    data_range: float = 1.0,
    crop_border: int = 0,
    y_channel: bool = False,
    quantize: QuantizeMode = False,
) -> Tensor:
    """Standard Gaussian SSIM (Wang et al. 2004), exactly as scikit-image computes it.

    Equals ``skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=data_range, channel_axis=-1)`` on the HWC images
    (within 1e-6; float64 here). Window: per channel, 11x11 Gaussian with sigma 1.5 (skimage
    truncates at radius ``int(3.5 * sigma + 0.5) = 5``), population covariance, K1 = 0.01,
    K2 = 0.03, SSIM map averaged over the valid region (5-pixel border excluded), then over
    channels. This is the protocol-neutral "standard" SSIM reported next to each paper's own.

    Args:
        x, y: images (N, C, H, W) or (C, H, W) (taken as N=1), values on [0, data_range]; H and
            W (after ``crop_border``) must be at least 11. Symmetric in ``x`` and ``y``.
        data_range: value range L of the inputs (1.0 for [0, 1] images).
        crop_border: pixels removed from every edge first.
        y_channel: SSIM of Y of YCbCr (BT.601, ``16 + 65.481 R + 128.553 G + 24.966 B`` on the
            [0, 255] scale); needs C == 3 (C == 1 is used as is).
        quantize: ``True``/``"round"`` (or ``"truncate"``): compare the 8-bit images
            ``round(clamp(x / data_range, 0, 1) * 255)`` with L = 255, i.e. SSIM of the saved
            PNGs.

    Returns:
        Tensor (N,) float64, in [-1, 1]; 1 for identical images.

    Raises:
        ValueError: shapes differ (both named), wrong dimensions, images smaller than the
            window, bad ``data_range`` / ``crop_border`` / ``quantize``, ``y_channel`` with C
            not in {1, 3}.
        TypeError: inputs are not real tensors.
    """
    fn = "ssim"
    data_range = check_range(data_range, "data_range", fn)
    x, y, scale = prepare(
        x, y, fn=fn, input_range=data_range, quantize=quantize,
        crop_border=crop_border, y_channel=y_channel,
    )
    sigma = 1.5
    radius = int(3.5 * sigma + 0.5)
    taps = gaussian_1d(2 * radius + 1, sigma, device=x.device)
    return _ssim_valid(x, y, taps, data_range * scale, 1.0, fn)


def ssim_skimage_legacy(
    x: Tensor,
    y: Tensor,
    *,
    data_range: float = 2.0,
    crop_border: int = 0,
    y_channel: bool = False,
    quantize: QuantizeMode = False,
) -> Tensor:
    """SSIM of ASPDC's evaluation: skimage's defaults with the old float ``data_range`` of 2.

    Dong-Huo/ASPDC ``D_testing.py`` calls ``structural_similarity(deblurred, sharp,
    multichannel=True)`` on float32 HWC images in [0, 1] (network output clamped to [-1, 1]
    then ``(x + 1) / 2``; no 8-bit quantisation) and passes no ``data_range``. scikit-image
    before 0.22 then took the float dtype range (-1, 1), i.e. ``data_range = 2``, so C1 and C2
    are 4x the usual ones (newer releases refuse the call). The other settings are skimage's
    defaults: 7x7 uniform window, sample covariance (``use_sample_covariance=True``, factor
    49/48), K1 = 0.01, K2 = 0.03, mean over the valid region (3-pixel border excluded),
    channels averaged. Equals ``skimage.metrics.structural_similarity(a, b, data_range=2,
    channel_axis=-1)`` within 1e-6 (float64 here).

    Args:
        x, y: images (N, C, H, W) or (C, H, W) (taken as N=1), values on [0, 1]; H and W (after
            ``crop_border``) must be at least 7. Symmetric in ``x`` and ``y``.
        data_range: skimage's ``data_range`` L used in C1, C2 (not the range of the inputs,
            which is [0, 1]); 2.0 reproduces ASPDC.
        crop_border: pixels removed from every edge first.
        y_channel: SSIM of Y of YCbCr (BT.601, on [0, 1]: ``(16 + 65.481 R + 128.553 G +
            24.966 B) / 255``); needs C == 3 (C == 1 is used as is).
        quantize: ``True``/``"round"`` (or ``"truncate"``): snap the inputs to the 8-bit grid
            first (computed on 0..255 with L scaled by 255, the same value as on [0, 1]).

    Returns:
        Tensor (N,) float64; 1 for identical images.

    Raises:
        ValueError: shapes differ (both named), wrong dimensions, images smaller than 7x7, bad
            ``data_range`` / ``crop_border`` / ``quantize``, ``y_channel`` with C not in {1, 3}.
        TypeError: inputs are not real tensors.
    """
    fn = "ssim_skimage_legacy"
    data_range = check_range(data_range, "data_range", fn)
    x, y, scale = prepare(
        x, y, fn=fn, input_range=1.0, quantize=quantize,
        crop_border=crop_border, y_channel=y_channel,
    )
    win = 7
    taps = torch.full((win,), 1.0 / win, dtype=torch.float64, device=x.device)
    np_ = win * win
    return _ssim_valid(x, y, taps, data_range * scale, np_ / (np_ - 1), fn)
