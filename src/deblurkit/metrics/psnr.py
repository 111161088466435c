"""PSNR (peak signal-to-noise ratio), per image, in dB."""
from __future__ import annotations

import torch
from torch import Tensor

from ._common import QuantizeMode, check_range, prepare


def psnr(
    x: Tensor,
    y: Tensor,
    *,
    data_range: float = 1.0,
    crop_border: int = 0,
    y_channel: bool = False,
    quantize: QuantizeMode = False,
) -> Tensor:
    """PSNR in dB of each image pair: ``10 log10(peak^2 / MSE)``, MSE over all of C, H, W.

    Reproduces ``calculate_psnr`` of ``basicsr/metrics/psnr_ssim.py`` as used by
    megvii-model/HINet and dasongli1/Learning_degradation (MSDI-Net): those scripts get uint8
    images from ``tensor2img`` (clamp to [0, 1], x255, round), hence ``quantize=True`` gives their
    numbers; ``y_channel=True`` is their ``test_y_channel`` and ``crop_border`` their
    ``crop_border``. RSS-T (jixiang2016/RSS-T ``test.py``), ASPDC (Dong-Huo/ASPDC
    ``D_testing.py``, skimage ``peak_signal_noise_ratio`` on [0, 1] floats) and Blur2Blur's
    ``test.py`` use float images: ``quantize=False``. (BasicSR guesses the peak from the image,
    ``1 if img1.max() <= 1 else 255``; here the peak is explicit.)

    Args:
        x, y: images (N, C, H, W) or (C, H, W) (taken as N=1) with values on [0, data_range]
            (float32 RGB [0, 1] at the API boundary). The order of ``x`` and ``y`` does not
            matter.
        data_range: the peak value of the inputs (1.0 for [0, 1] images).
        crop_border: pixels removed from every edge before the comparison.
        y_channel: compare only Y of YCbCr (BT.601: ``16 + 65.481 R + 128.553 G + 24.966 B``
            on the [0, 255] scale, no rounding); needs C == 3 (C == 1 is used as is).
        quantize: ``True``/``"round"``: map to 8-bit codes ``round(clamp(x / data_range, 0, 1)
            * 255)`` and compare on the 0-255 grid with peak 255 — identical to the PSNR of the
            uint8 images. ``"truncate"``: drop the fraction instead of rounding
            (``astype(np.uint8)``). ``False``: use the values as given.

    Returns:
        Tensor (N,) float64, in dB; ``inf`` where the (processed) images are identical.

    Raises:
        ValueError: shapes differ (both are named), wrong number of dimensions, bad
            ``data_range`` / ``crop_border`` / ``quantize``, ``y_channel`` with C not in {1, 3}.
        TypeError: inputs are not real tensors.
    """
    fn = "psnr"
    data_range = check_range(data_range, "data_range", fn)
    x, y, scale = prepare(
        x, y, fn=fn, input_range=data_range, quantize=quantize,
        crop_border=crop_border, y_channel=y_channel,
    )
    peak = data_range * scale
    mse = (x - y).pow(2).mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(peak * peak / mse)
