"""Gaussian denoisers for plug-and-play deconvolution (:func:`deblurkit.deconv.nonblind.pnp_hqs`).

A denoiser is any callable ``denoiser(x, sigma) -> x`` taking (N, C, H, W) images and the noise
standard deviation (a float or an (N,) tensor, [0, 1] units).
"""
from __future__ import annotations

import torch
from torch import Tensor

from .fft import grad, grad_adjoint

__all__ = ["tv_denoise", "TV_DENOISE_SCALE"]

#: ROF weight theta = TV_DENOISE_SCALE * sigma (calibrated on noisy photo crops, see docs/deconv.md).
TV_DENOISE_SCALE = 1.0


def tv_denoise(x: Tensor, sigma: "Tensor | float", *, iterations: int = 30, scale: float | None = None,
               tau: float = 0.248) -> Tensor:
    """Total-variation (ROF) denoising by Chambolle's projection algorithm.

    Solves ``min_u ||u - x||^2 / (2 theta) + TV(u)`` per channel with isotropic TV on circular
    forward differences and ``theta = scale * sigma``; the dual iteration (Chambolle, "An
    algorithm for total variation minimization and applications", JMIV 2004, Eq. 9)

        p <- (p + tau grad(div p - x / theta)) / (1 + tau |grad(div p - x / theta)|),
        u = x - theta div p,

    with ``tau <= 1/4`` (Chambolle's Sec. 3 remark; the theorem guarantees 1/8).

    Args:
        x: (N, C, H, W) float (any range; [0, 1] images in the library).
        sigma: noise standard deviation, a float or (N,) tensor, >= 0 ([0, 1] units).
        iterations: dual iterations.
        scale: theta / sigma (default :data:`TV_DENOISE_SCALE`).
        tau: dual step, in (0, 0.25].

    Returns:
        (N, C, H, W), same dtype and device. ``sigma == 0`` returns ``x`` unchanged.

    Raises:
        ValueError: wrong shape, negative sigma, bad tau or iterations.
    """
    if not isinstance(x, Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"x must be (N, C, H, W), got {shape}")
    if not 0 < tau <= 0.25:
        raise ValueError(f"tau must be in (0, 0.25], got {tau}")
    if int(iterations) < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    n = x.shape[0]
    s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1)
    if s.numel() == 1:
        s = s.expand(n)
    if s.numel() != n or bool((s < 0).any()) or not bool(torch.isfinite(s).all()):
        raise ValueError(f"sigma must be finite, >= 0, a number or one per image ({n})")
    theta = (s * (TV_DENOISE_SCALE if scale is None else float(scale))).view(n, 1, 1, 1)
    inv = torch.where(theta > 0, 1.0 / theta.clamp(min=1e-12), torch.zeros_like(theta))
    px = torch.zeros_like(x)
    py = torch.zeros_like(x)
    for _ in range(int(iterations)):
        # div p = -grad^T p
        gx, gy = grad(-grad_adjoint(px, py) - x * inv)
        norm = 1.0 + tau * torch.sqrt(gx * gx + gy * gy)
        px = (px + tau * gx) / norm
        py = (py + tau * gy) / norm
    return x + theta * grad_adjoint(px, py)
