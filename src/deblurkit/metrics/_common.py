"""Input checks and the preprocessing shared by every metric (quantise, crop, Y channel).

The order of operations follows BasicSR-style evaluation scripts
(``basicsr/metrics/psnr_ssim.py`` in megvii-model/HINet and dasongli1/Learning_degradation):
the network output is first turned into an 8-bit image (optional ``quantize``), then
``crop_border`` pixels are removed from every edge, then the image is converted to the Y channel
of YCbCr (optional ``y_channel``), and only then is the metric computed.
"""
from __future__ import annotations

import math
from typing import Union

import torch
from torch import Tensor

QuantizeMode = Union[bool, str, None]

# ITU-R BT.601 luma for studio-swing YCbCr, as BasicSR's ``rgb2ycbcr(..., y_only=True)``:
# Y = 16 + 65.481 R + 128.553 G + 24.966 B, with R, G, B in [0, 1] and Y on the [0, 255] scale.
_Y_OFFSET = 16.0
_Y_WEIGHTS = (65.481, 128.553, 24.966)

_QUANTIZE_MODES = {"round": "round", "truncate": "truncate", "floor": "truncate"}


def as_pair(x: Tensor, y: Tensor, fn: str) -> tuple[Tensor, Tensor]:
    """Validate a pair of images and return them as float64 batches (N, C, H, W).

    Raises:
        TypeError: ``x`` or ``y`` is not a real-valued ``torch.Tensor``.
        ValueError: the shapes differ (both shapes are named), or an input is not 3-D / 4-D,
            or has an empty dimension.
    """
    for name, t in (("x", x), ("y", y)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{fn}: {name} must be a torch.Tensor, got {type(t).__name__}")
        if t.is_complex() or t.dtype == torch.bool:
            raise TypeError(f"{fn}: {name} must be real-valued, got dtype {t.dtype}")
    if x.shape != y.shape:
        raise ValueError(
            f"{fn}: x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if x.dim() == 3:
        x, y = x.unsqueeze(0), y.unsqueeze(0)
    elif x.dim() != 4:
        raise ValueError(
            f"{fn}: expected images of shape (C,H,W) or (N,C,H,W), got {tuple(x.shape)}"
        )
    if x.numel() == 0:
        raise ValueError(f"{fn}: empty images of shape {tuple(x.shape)}")
    return x, y


def check_range(value: float, what: str, fn: str) -> float:
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{fn}: {what} must be a positive finite number, got {value}")
    return value


def quantize_mode(quantize: QuantizeMode, fn: str) -> str | None:
    """Normalise the ``quantize`` option: False/None -> None, True -> "round"."""
    if quantize is None or quantize is False:
        return None
    if quantize is True:
        return "round"
    if isinstance(quantize, str) and quantize.lower() in _QUANTIZE_MODES:
        return _QUANTIZE_MODES[quantize.lower()]
    raise ValueError(
        f"{fn}: quantize must be False, True, 'round' or 'truncate', got {quantize!r}"
    )


def to_uint8_grid(x: Tensor, input_range: float, mode: str) -> Tensor:
    """Map values on [0, input_range] to 8-bit codes 0..255 (returned as float64).

    ``round``: clamp to [0, 1], multiply by 255, round half to even — BasicSR's
    ``tensor2img`` (``basicsr/utils/img_util.py``). ``truncate``: the same but dropping the
    fraction, as ``ndarray.astype(np.uint8)`` does in pix2pix-style ``tensor2im``
    (VinAIResearch/Blur2Blur ``util/util.py``), used when result images were saved that way.
    The arithmetic runs in at least float32, like the official scripts, so that values exactly
    at a rounding boundary land on the same code.
    """
    work = torch.promote_types(x.dtype, torch.float32) if x.is_floating_point() else torch.float64
    v = x.to(work)
    if input_range != 1.0:
        v = v / input_range
    v = v.clamp(0.0, 1.0) * 255.0
    v = torch.round(v) if mode == "round" else torch.floor(v)
    return v.to(torch.float64)


def crop(x: Tensor, crop_border: int, fn: str) -> Tensor:
    """Remove ``crop_border`` pixels from each spatial edge of (N, C, H, W) images."""
    if isinstance(crop_border, bool) or int(crop_border) != crop_border or crop_border < 0:
        raise ValueError(f"{fn}: crop_border must be a non-negative integer, got {crop_border!r}")
    c = int(crop_border)
    if c == 0:
        return x
    h, w = x.shape[-2:]
    if 2 * c >= h or 2 * c >= w:
        raise ValueError(
            f"{fn}: crop_border={c} leaves nothing of images of size {h}x{w}"
        )
    return x[..., c:h - c, c:w - c]


def rgb_to_y(x: Tensor, input_range: float, fn: str) -> Tensor:
    """Y of YCbCr (BT.601, studio swing) of RGB images on [0, input_range].

    Returns (N, 1, H, W) on the same scale: ``input_range * (16 + 65.481 r + 128.553 g +
    24.966 b) / 255`` with r, g, b = channel / input_range, i.e. BasicSR's ``to_y_channel``
    (``basicsr/metrics/metric_util.py``; no rounding). One-channel images are returned unchanged,
    as BasicSR does; any other channel count raises ``ValueError``.
    """
    c = x.shape[1]
    if c == 1:
        return x
    if c != 3:
        raise ValueError(f"{fn}: y_channel needs RGB images (3 channels), got {c} channels")
    w = x.new_tensor(_Y_WEIGHTS).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True) / 255.0 + _Y_OFFSET / 255.0 * input_range


def prepare(
    x: Tensor,
    y: Tensor,
    *,
    fn: str,
    input_range: float,
    quantize: QuantizeMode,
    crop_border: int,
    y_channel: bool,
) -> tuple[Tensor, Tensor, float]:
    """Validate and preprocess a pair; return float64 (N, C', H', W') images and the scale.

    The scale is the factor by which values were multiplied (255 / input_range when quantised,
    1 otherwise); metrics multiply their value-range constant (peak, SSIM's L) by it.
    """
    x, y = as_pair(x, y, fn)
    mode = quantize_mode(quantize, fn)
    if mode is None:
        x, y, scale, rng = x.to(torch.float64), y.to(torch.float64), 1.0, input_range
    else:
        x = to_uint8_grid(x, input_range, mode)
        y = to_uint8_grid(y, input_range, mode)
        scale, rng = 255.0 / input_range, 255.0
    x, y = crop(x, crop_border, fn), crop(y, crop_border, fn)
    if y_channel:
        x, y = rgb_to_y(x, rng, fn), rgb_to_y(y, rng, fn)
    return x, y, scale


def gaussian_1d(size: int, sigma: float, *, device=None) -> Tensor:
    """Normalised 1-D Gaussian of ``size`` taps (odd), float64.

    Same weights as ``cv2.getGaussianKernel(size, sigma)``, scipy's ``gaussian_filter1d`` with
    radius ``size // 2`` and RSS-T's ``gaussian(window_size, 1.5)``.
    """
    r = size // 2
    t = torch.arange(-r, r + 1, dtype=torch.float64, device=device)
    g = torch.exp(-(t * t) / (2.0 * sigma * sigma))
    return g / g.sum()


def correlate_valid(x: Tensor, taps: Tensor, dim: int) -> Tensor:
    """'Valid' 1-D correlation of ``x`` with ``taps`` along ``dim`` (length shrinks by k - 1).

    A sum of k shifted views: for float64 on CPU it is an order of magnitude faster than
    ``F.conv2d``/``F.conv3d`` with a 1-D kernel, and exact to rounding.
    """
    weights = [float(t) for t in taps]
    n = x.shape[dim] - len(weights) + 1
    out = x.narrow(dim, 0, n) * weights[0]
    for i, wt in enumerate(weights[1:], start=1):
        out = out.add_(x.narrow(dim, i, n), alpha=wt)
    return out
