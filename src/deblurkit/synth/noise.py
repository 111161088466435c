"""Sensor noise for synthetic pairs: Poisson-Gaussian noise and 8-bit quantisation.

Poisson-Gaussian model (A. Foi et al., "Practical Poissonian-Gaussian noise modeling and fitting
for single-image raw-data", IEEE TIP 2008; used by Boracchi & Foi 2012, Sec. III):
``z = Poisson(peak * y) / peak + sigma * N(0, 1)``, where ``y`` in [0, 1] is the clean
(blurred) intensity, ``peak`` the photon count of a white pixel (shot noise; smaller = noisier)
and ``sigma`` the standard deviation of the signal-independent read noise, in [0, 1] units.
"""
from __future__ import annotations

from typing import Union

import torch

__all__ = ["poisson_gaussian_noise", "gaussian_noise", "quantize_8bit"]

Level = Union[float, torch.Tensor, None]


def _per_image(v, x: torch.Tensor, name: str) -> torch.Tensor:
    """Broadcastable level: scalar, or one value per image of a (N, ...) batch."""
    t = torch.as_tensor(v, dtype=x.dtype, device=x.device)
    if t.dim() == 0:
        return t
    if x.dim() < 2 or t.numel() != x.shape[0]:
        raise ValueError(f"{name}: {t.numel()} values for a batch of shape {tuple(x.shape)}")
    return t.view(-1, *([1] * (x.dim() - 1)))


def poisson_gaussian_noise(
    x: torch.Tensor,
    *,
    peak: Level = None,
    sigma: Level = 0.01,
    generator: torch.Generator | None = None,
    clip: bool = False,
) -> torch.Tensor:
    """Add signal-dependent (Poisson) and signal-independent (Gaussian) noise.

    Args:
        x: clean image(s), any shape, float in [0, 1] (values below 0 are treated as 0 for the
            Poisson part).
        peak: photons at intensity 1 (> 0); ``None`` disables shot noise. A float, or an (N,)
            tensor with one value per image of a batch (first dimension).
        sigma: Gaussian read-noise standard deviation in [0, 1] units (>= 0); float or (N,).
        generator: torch generator (``None``: the global one); same state, same noise.
        clip: clamp the result to [0, 1].

    Returns:
        Noisy tensor, same shape and dtype as ``x``. Its mean equals ``x``; its variance is
        ``x / peak + sigma**2``.

    Raises:
        ValueError: a non-positive ``peak``, negative ``sigma`` or a per-image level whose
        length does not match the batch.
    """
    y = x
    if peak is not None:
        p = _per_image(peak, x, "peak")
        if torch.any(p <= 0):
            raise ValueError("peak must be > 0")
        lam = (x.clamp(min=0) * p).to(torch.float64)
        y = (torch.poisson(lam, generator=generator) / p.to(torch.float64)).to(x.dtype)
    if sigma is not None:
        s = _per_image(sigma, x, "sigma")
        if torch.any(s < 0):
            raise ValueError("sigma must be >= 0")
        if torch.any(s > 0):
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            y = y + s * noise
    return y.clamp(0.0, 1.0) if clip else y


def gaussian_noise(x: torch.Tensor, sigma: Level = 0.01, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Additive white Gaussian noise of standard deviation ``sigma`` ([0, 1] units); see
    :func:`poisson_gaussian_noise` (this is it with ``peak=None``)."""
    return poisson_gaussian_noise(x, peak=None, sigma=sigma, generator=generator)


def quantize_8bit(x: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] and round to the 8-bit grid ``{0, 1/255, ..., 1}`` (round half to even,
    as ``torch.round``), as when the noisy image is saved as an 8-bit PNG. Same shape/dtype."""
    return torch.round(x.clamp(0.0, 1.0) * 255.0) / 255.0
