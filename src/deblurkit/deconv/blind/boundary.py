"""Smooth circular padding of a blurry image (Liu & Jia, ICIP 2008).

FFT-based latent-image steps treat the image as periodic. Padding the observed (H, W) image to
a larger (Hp, Wp) grid with values that interpolate smoothly from the bottom/right edges back
to the top/left edges removes the strong artificial edges a plain circular wrap would create.

R. Liu and J. Jia, "Reducing boundary artifacts in image deconvolution", ICIP 2008: the pad
is filled with a harmonic (minimum-Laplacian) interpolation whose Dirichlet boundary is the
image's own edges. The official code of Pan et al. (CVPR 2016) pads this way
(``wrap_boundary_liu.m``, by S. Cho: bottom strip, right strip, then the corner, each by a
sine-transform Poisson solve). This module follows that structure; the strips are solved on
exactly the pad rows/columns (the official file keeps one duplicated edge row/column).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["wrap_boundary", "fill_harmonic"]


def _dst1(x: Tensor, dim: int) -> Tensor:
    """Unnormalised DST-I along ``dim``: ``y_k = sum_{n=1..N} x_n sin(pi k n / (N + 1))``."""
    x = x.movedim(dim, -1)
    z = torch.zeros_like(x[..., :1])
    ext = torch.cat([z, x, z, -x.flip(-1)], dim=-1)
    y = -torch.fft.fft(ext, dim=-1).imag[..., 1 : x.shape[-1] + 1] / 2
    return y.movedim(-1, dim)


def fill_harmonic(region: Tensor) -> Tensor:
    """Replace the interior of ``region`` by the harmonic function with its outer ring as boundary.

    Solves the 5-point discrete Laplace equation on the (h-2, w-2) interior with Dirichlet
    values from the one-pixel outer ring (ring corners are not used), by a 2-D sine transform.

    Args:
        region: (..., h, w) real tensor, h, w >= 2.

    Returns:
        Tensor of the same shape: ring unchanged, interior harmonic.
    """
    h, w = region.shape[-2:]
    if h <= 2 or w <= 2:
        return region.clone()
    rhs = torch.zeros_like(region[..., 1:-1, 1:-1])
    # contributions of the boundary ring to the Laplacian at the interior points (moved to rhs)
    rhs[..., 0, :] -= region[..., 0, 1:-1]
    rhs[..., -1, :] -= region[..., -1, 1:-1]
    rhs[..., :, 0] -= region[..., 1:-1, 0]
    rhs[..., :, -1] -= region[..., 1:-1, -1]
    ni, nj = h - 2, w - 2
    dtype, dev = region.dtype, region.device
    ky = torch.arange(1, ni + 1, dtype=dtype, device=dev)
    kx = torch.arange(1, nj + 1, dtype=dtype, device=dev)
    denom = (2 * torch.cos(math.pi * ky / (ni + 1)) - 2)[:, None] + (2 * torch.cos(math.pi * kx / (nj + 1)) - 2)[None, :]
    coef = _dst1(_dst1(rhs, -1), -2) / denom
    sol = _dst1(_dst1(coef, -1), -2) * (4.0 / ((ni + 1) * (nj + 1)))  # inverse DST-I = DST-I * 2/(N+1)
    out = region.clone()
    out[..., 1:-1, 1:-1] = sol
    return out


def _linear(a: Tensor, b: Tensor, n: int) -> Tensor:
    """n + 2 samples from a to b inclusive along a new last axis, (..., n + 2)."""
    t = torch.linspace(0.0, 1.0, n + 2, dtype=a.dtype, device=a.device)
    return a[..., None] * (1 - t) + b[..., None] * t


def wrap_boundary(image: Tensor, shape: tuple[int, int]) -> Tensor:
    """Pad (..., H, W) to (..., Hp, Wp) (image at the top-left) so that it is smoothly periodic.

    The bottom pad (Hp - H rows) interpolates harmonically from the last image row to the first,
    the right pad likewise between the last and first columns, and the corner from the two
    strips (Liu & Jia 2008; official ``wrap_boundary_liu.m`` structure).

    Args:
        image: (..., H, W) float tensor.
        shape: (Hp, Wp) with Hp >= H and Wp >= W.

    Returns:
        (..., Hp, Wp) tensor, ``out[..., :H, :W] == image``.

    Raises:
        ValueError: ``shape`` smaller than the image.
    """
    h, w = image.shape[-2:]
    hp, wp = int(shape[0]), int(shape[1])
    if hp < h or wp < w:
        raise ValueError(f"wrap_boundary: target {hp}x{wp} is smaller than the image {h}x{w}")
    hw, ww = hp - h, wp - w
    lead = image.shape[:-2]
    out = image.new_zeros(*lead, hp, wp)
    out[..., :h, :w] = image
    if hw > 0:  # bottom strip: rows between image[-1] and image[0]
        r = image.new_zeros(*lead, hw + 2, w)
        r[..., 0, :], r[..., -1, :] = image[..., -1, :], image[..., 0, :]
        r[..., :, 0] = _linear(image[..., -1, 0], image[..., 0, 0], hw)
        r[..., :, -1] = _linear(image[..., -1, -1], image[..., 0, -1], hw)
        out[..., h:, :w] = fill_harmonic(r)[..., 1:-1, :]
    if ww > 0:  # right strip: columns between image[:, -1] and image[:, 0]
        r = image.new_zeros(*lead, h, ww + 2)
        r[..., :, 0], r[..., :, -1] = image[..., :, -1], image[..., :, 0]
        r[..., 0, :] = _linear(image[..., 0, -1], image[..., 0, 0], ww)
        r[..., -1, :] = _linear(image[..., -1, -1], image[..., -1, 0], ww)
        out[..., :h, w:] = fill_harmonic(r)[..., :, 1:-1]
    if hw > 0 and ww > 0:  # corner: bounded by the two strips (periodically)
        r = image.new_zeros(*lead, hw + 2, ww + 2)
        r[..., 0, 1:-1], r[..., -1, 1:-1] = out[..., h - 1, w:], out[..., 0, w:]
        r[..., 1:-1, 0], r[..., 1:-1, -1] = out[..., h:, w - 1], out[..., h:, 0]
        out[..., h:, w:] = fill_harmonic(r)[..., 1:-1, 1:-1]
    return out
