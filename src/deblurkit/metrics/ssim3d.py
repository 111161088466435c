"""3-D Gaussian SSIM: colour images treated as (H, W, C) volumes.

Facts taken from the official evaluation code (re-implemented, not copied):

* megvii-model/HINet and dasongli1/Learning_degradation (MSDI-Net),
  ``basicsr/metrics/psnr_ssim.py``: ``calculate_ssim`` -> ``_ssim_3d``. The HWC image is one
  volume; the window is the outer product of three ``cv2.getGaussianKernel(11, 1.5)`` vectors
  (11x11x11); ``Conv3d(padding=(5, 5, 5), padding_mode='replicate')`` filters it, so the output
  has the size of the input and the borders (also along the 3 colour channels) are replicated;
  ``C1 = (0.01 * max_value)^2``, ``C2 = (0.03 * max_value)^2``; population (co)variances
  ``E[xy] - E[x]E[y]``; the SSIM map is averaged over *all* H x W x C positions. The inputs are
  the uint8 images of ``tensor2img`` (clamp [0, 1], x255, round), so values are on 0..255 and
  ``max_value = 255``; arithmetic is float32 on the GPU. With ``test_y_channel`` they call
  ``_ssim_cly`` instead: 2-D Gaussian 11x11 with ``cv2.BORDER_REPLICATE`` on Y (float, not
  rounded), C1/C2 for 255 and the mean over the whole map — which is exactly this 3-D SSIM on a
  one-channel volume (replicating a single slice leaves the 2-D result unchanged).
* VinAIResearch/Blur2Blur ``psnr_ssim.py`` (and ``util/psnr_ssim.py``): the same ``_ssim_3d``,
  on 8-bit images read back from disk with ``cv2.imread``.
* jixiang2016/RSS-T ``model/pytorch_msssim.py`` ``ssim_matlab`` called from ``test.py``: the same
  11x11x11 Gaussian (sigma 1.5) and ``F.pad(..., (5,)*6, mode='replicate')`` over (C, H, W),
  but on the float [0, 1] network output and ground truth (no 8-bit step) with ``L = 1`` (its
  range guess gives 1 for [0, 1] ground truth), float32.

Known differences, on purpose: arithmetic is float64 (the float32 official values differ by
about 1e-6..1e-5 from it); the peak is explicit, whereas BasicSR guesses it
(``1 if img1.max() <= 1 else 255``, which only matters for almost-black uint8 images) and RSS-T
guesses it from the ground truth; RSS-T shrinks the window to ``min(11, H, W)`` for images
smaller than 11 pixels, this keeps 11.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import QuantizeMode, check_range, correlate_valid, gaussian_1d, prepare

WINDOW = 11
SIGMA = 1.5
K1 = 0.01
K2 = 0.03


def _gaussian_filter_3d_replicate(vol: Tensor, taps: Tensor) -> Tensor:
    """Filter (B, 1, D, H, W) with the separable 3-D window ``taps`` (x) ``taps`` (x) ``taps``,
    replicate-padding every axis by ``len(taps) // 2`` so the output keeps the input's size
    (what ``Conv3d(padding=5, padding_mode='replicate')`` computes)."""
    r = taps.numel() // 2
    out = F.pad(vol, (r, r, r, r, r, r), mode="replicate")
    for dim in (-3, -2, -1):
        out = correlate_valid(out, taps, dim)
    return out


def ssim_3d(
    x: Tensor,
    y: Tensor,
    *,
    data_range: float = 1.0,
    crop_border: int = 0,
    y_channel: bool = False,
    quantize: QuantizeMode = False,
) -> Tensor:
    """3-D Gaussian SSIM of HINet / MSDI-Net / Blur2Blur / RSS-T evaluation scripts.

    Each image is a (C, H, W) volume filtered by an 11x11x11 Gaussian (sigma 1.5, outer product
    of three normalised 1-D Gaussians) with 5-voxel replicate padding on all three axes; SSIM map
    ``(2 ux uy + C1)(2 vxy + C2) / ((ux^2 + uy^2 + C1)(vx + vy + C2))`` with population
    (co)variances, ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``, averaged over the whole C x H x W
    map (no border excluded). See the module docstring for the official files
    (``basicsr/metrics/psnr_ssim.py`` ``_ssim_3d`` in megvii-model/HINet and
    dasongli1/Learning_degradation; ``psnr_ssim.py`` in VinAIResearch/Blur2Blur;
    ``model/pytorch_msssim.py`` ``ssim_matlab`` in jixiang2016/RSS-T).

    Protocols: HINet, MSDI-Net and Blur2Blur compare 8-bit images -> ``quantize=True``
    (``y_channel=True`` gives their ``test_y_channel`` number, ``crop_border`` theirs); RSS-T
    compares float outputs -> ``quantize=False``.

    Args:
        x, y: images (N, C, H, W) or (C, H, W) (taken as N=1), values on [0, data_range]; any
            H, W >= 1. Symmetric in ``x`` and ``y``. RGB and BGR order give the same value
            (the window and the padding are symmetric along C).
        data_range: value range L of the inputs (1.0 for [0, 1] images). SSIM is invariant to
            scaling inputs and L together, so [0, 1] with L=1 equals [0, 255] with L=255.
        crop_border: pixels removed from every spatial edge first.
        y_channel: 3-D SSIM of the Y of YCbCr (BT.601, ``16 + 65.481 R + 128.553 G +
            24.966 B`` on [0, 255]), i.e. BasicSR's ``_ssim_cly``; needs C == 3 (C == 1 is used
            as is).
        quantize: ``True``/``"round"``: compare ``round(clamp(x / data_range, 0, 1) * 255)`` with
            L = 255 (BasicSR ``tensor2img``); ``"truncate"``: floor instead of round (images
            saved with ``astype(np.uint8)``, as Blur2Blur's ``util.tensor2im``).

    Returns:
        Tensor (N,) float64; 1 for identical images.

    Raises:
        ValueError: shapes differ (both named), wrong dimensions, bad ``data_range`` /
            ``crop_border`` / ``quantize``, ``y_channel`` with C not in {1, 3}.
        TypeError: inputs are not real tensors.
    """
    fn = "ssim_3d"
    data_range = check_range(data_range, "data_range", fn)
    x, y, scale = prepare(
        x, y, fn=fn, input_range=data_range, quantize=quantize,
        crop_border=crop_border, y_channel=y_channel,
    )
    n, c, h, w = x.shape
    taps = gaussian_1d(WINDOW, SIGMA, device=x.device)
    vol = torch.stack((x, y, x * x, y * y, x * y), dim=1).reshape(n * 5, 1, c, h, w)
    ux, uy, uxx, uyy, uxy = _gaussian_filter_3d_replicate(vol, taps).reshape(n, 5, c, h, w).unbind(1)
    vx = uxx - ux * ux
    vy = uyy - uy * uy
    vxy = uxy - ux * uy
    L = data_range * scale
    c1, c2 = (K1 * L) ** 2, (K2 * L) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.mean(dim=(1, 2, 3))
