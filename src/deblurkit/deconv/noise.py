"""Noise-level estimation for additive white Gaussian noise.

Immerkaer's operator (J. Immerkaer, "Fast noise variance estimation", CVIU 64(2), 1996): the
3x3 mask ``N = [[1,-2,1],[-2,4,-2],[1,-2,1]]`` is the difference of two discrete Laplacians,
so it annihilates constant, linear and (separable) quadratic image structure; on white noise of
standard deviation sigma its response has standard deviation ``6 sigma`` (``||N||_2 = 6``).
Image structure (edges, texture) still leaks into the response, so -- following Tai & Yang,
"A fast method for image noise estimation using Laplacian operator and adaptive edge
detection", ISCCSP 2008 -- pixels whose Sobel gradient magnitude is in the top fraction
``edge_fraction`` are excluded, as are pixels whose 3x3 neighbourhood touches 0 or 1 (clipped
values carry no noise). The scale of the remaining responses is Immerkaer's mean absolute value
times ``sqrt(pi / 2) / 6``; the median rule ``median|r| / (0.6745 * 6)`` (Donoho & Johnstone's
MAD) is an option, but on 8-bit images the median snaps to multiples of 1/255 and the mean
does not.

Measured (``/work/scratch`` study, 12 ``mate_*`` 384x384 crops blurred by the Levin kernels
with ``valid`` blur, noise, clip, 8-bit): estimate / truth = 1.00-1.03 for sigma 0.005, 0.01
and 0.02; on the same crops *unblurred* (sharp texture leaks in) 1.01-1.5 at sigma 0.01.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["estimate_noise_level"]

_CLIP_EPS = 0.5 / 255
_MAD_TO_SIGMA = 1.0 / 0.6744897501960817  # 1 / Phi^-1(3/4)


def _conv3(x: Tensor, k: Tensor) -> Tensor:
    """Valid 3x3 correlation of (M, 1, H, W) with a (3, 3) mask."""
    return F.conv2d(x, k.to(x)[None, None])


def estimate_noise_level(image: Tensor, *, edge_fraction: float = 0.3,
                         statistic: str = "mean") -> Tensor:
    """Standard deviation of additive white Gaussian noise, per image.

    Args:
        image: (N, C, H, W) or (C, H, W) float tensor with values in [0, 1] (grey or RGB; H, W
            >= 3). Channels are pooled (the noise is assumed to have the same level in each).
        edge_fraction: fraction of pixels (the strongest Sobel gradients, per image) left out
            as edges, in [0, 0.9].
        statistic: ``mean`` (Immerkaer's mean absolute response) or ``median`` (MAD).

    Returns:
        (N,) float32 tensor, sigma in [0, 1] intensity units (e.g. 0.01 = 2.55/255), on the
        input's device.

    Raises:
        ValueError: wrong shape, image smaller than 3x3, non-finite values or a bad
            ``edge_fraction``.

    Source: Immerkaer 1996 (operator, Eq. 4 scaling ``sqrt(pi/2) / 6``); Tai & Yang 2008 (edge
    exclusion by the Sobel magnitude). An 8-bit image without added noise reads about 0.001
    (the quantisation noise, 1/255/sqrt(12) = 0.0011).
    """
    if not isinstance(image, Tensor) or image.dim() not in (3, 4):
        shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(f"image must be (N, C, H, W) or (C, H, W), got {shape}")
    x = image[None] if image.dim() == 3 else image
    n, c, h, w = x.shape
    if h < 3 or w < 3:
        raise ValueError(f"image must be at least 3x3 for noise estimation, got {h}x{w}")
    if statistic not in ("mean", "median"):
        raise ValueError(f"statistic must be 'mean' or 'median', got {statistic!r}")
    if not 0.0 <= edge_fraction <= 0.9:
        raise ValueError(f"edge_fraction must be in [0, 0.9], got {edge_fraction}")
    x = x.float()
    if not bool(torch.isfinite(x).all()):
        raise ValueError("image has non-finite values")
    m = x.reshape(n * c, 1, h, w)
    lap = torch.tensor([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])
    sob = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    resp = _conv3(m, lap).abs().reshape(n, -1)
    gmag = (_conv3(m, sob).abs() + _conv3(m, sob.t()).abs()).reshape(n, -1)
    # clipped (saturated) neighbourhoods carry no noise: leave them out
    lo = -F.max_pool2d(-m, 3, stride=1).reshape(n, -1)
    hi = F.max_pool2d(m, 3, stride=1).reshape(n, -1)
    valid = (lo > _CLIP_EPS) & (hi < 1.0 - _CLIP_EPS)
    gmag = torch.where(valid, gmag, torch.full_like(gmag, float("inf")))
    if edge_fraction > 0:
        kth = max(1, int(round((1.0 - edge_fraction) * gmag.shape[1])))
        thr = gmag.kthvalue(kth, dim=1, keepdim=True).values
        valid = valid & (gmag <= thr)
    if statistic == "mean":
        # Immerkaer: E|r| = sqrt(2/pi) * 6 sigma for Gaussian r
        sigma = (resp * valid).sum(1) / valid.sum(1).clamp(min=1) * (math.sqrt(math.pi / 2) / 6.0)
    else:
        med = torch.nanmedian(torch.where(valid, resp, torch.full_like(resp, float("nan"))), dim=1).values
        sigma = med * (_MAD_TO_SIGMA / 6.0)
    return sigma.float()
