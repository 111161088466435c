"""Latent-image steps of the blind estimators: L0 gradient and L0 dark-channel restoration.

Both solve, on a periodic (smoothly wrap-padded) grid, by half-quadratic splitting (HQS) with
closed-form FFT solves and hard-thresholding auxiliary steps:

- :func:`l0_restore` (Pan, Hu, Su & Yang, CVPR 2014, Eq. 5 with the intensity term off; Xu,
  Lu, Xu & Jia, SIGGRAPH Asia 2011): ``min_S ||k * S - B||^2 + lam_grad ||grad S||_0``;
  official ``L0Restoration.m``: ``beta`` from ``2 lam_grad`` to ``1e5`` times ``kappa`` (2),
  ``(h, v)`` = grad S zeroed where ``h^2 + v^2 < lam_grad / beta``.
- :func:`l0_dark_restore` (Pan, Sun, Pfister & Yang, CVPR 2016, Eq. 4 and Sec. 4.1; official
  ``L0Deblur_dark_chanel.m``): ``min_S ||k * S - B||^2 + lam_dark ||D(S)||_0 +
  lam_grad ||grad S||_0``, with ``D`` the dark channel (minimum over a 35 x 35 patch). Outer
  loop on the dark-channel weight ``mu`` from ``lam_dark / otsu(S^2)`` (MATLAB ``graythresh``)
  to 8 times ``kappa``: ``u = D(S)`` zeroed where ``u^2 < lam_dark / mu`` and assigned back to
  the pixels that realise the minimum (Eq. 10, the linear operator ``M``: official
  ``assign_dark_channel_to_pixel.m``, which leaves a 17-pixel border band untouched); inner
  loop as :func:`l0_restore` with the extra quadratic term ``mu ||S - u||^2``.

Gradients are the circular forward differences of :mod:`deblurkit.deconv.fft` (the official
``[1, -1]`` filters through ``psf2otf``), so the FFT denominators and the spatial steps use the
same operator (research note, bug 1).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..fft import grad, grad_adjoint, grad_otfs, psf2otf

__all__ = ["dark_channel", "assign_dark_channel", "otsu_threshold", "l0_restore", "l0_dark_restore"]


def dark_channel(x: Tensor, patch: int = 35) -> Tensor:
    """Minimum of a grey image over the ``patch x patch`` window centred at each pixel.

    Replicate padding at the border (official ``dark_channel.m``); separable running minima.

    Args:
        x: (H, W) float tensor.
        patch: odd window size.

    Returns:
        (H, W) window minima.

    Raises:
        ValueError: even ``patch`` or a non-2-D input.
    """
    if x.dim() != 2:
        raise ValueError(f"dark_channel: expected an (H, W) tensor, got {tuple(x.shape)}")
    if patch % 2 == 0 or patch < 1:
        raise ValueError(f"dark_channel: patch must be a positive odd size, got {patch}")
    r = patch // 2
    xp = F.pad(x[None, None], (r, r, r, r), mode="replicate")[0, 0]
    return _window_extreme(_window_extreme(xp, patch, -1, torch.minimum), patch, -2, torch.minimum)


def _window_extreme(x: Tensor, size: int, dim: int, op) -> Tensor:
    """Running min/max (``op``) of ``size`` consecutive entries along ``dim`` (valid: the
    length shrinks by size - 1), by doubling windows: O(log size) element-wise ops instead of
    the O(size) of a pooling layer."""
    w, y = 1, x
    while 2 * w <= size:
        n = y.shape[dim]
        y = op(y.narrow(dim, 0, n - w), y.narrow(dim, w, n - w))
        w *= 2
    if w < size:
        n, d = y.shape[dim], size - w
        y = op(y.narrow(dim, 0, n - d), y.narrow(dim, d, n - d))
    return y


def assign_dark_channel(x: Tensor, j: Tensor, zeroed: Tensor, patch: int) -> Tensor:
    """The image ``M^T u`` of Pan et al. 2016 (Eq. 10): ``x`` with the minimum pixel of every
    window whose dark-channel value was thresholded to 0 set to 0; the ``patch // 2`` border
    band keeps ``x``.

    A pixel p is the minimum of a thresholded window w iff ``x[p] == j[w]`` for some
    thresholded w within the window around p (``j[w] <= x[p]`` for every such w), so the
    pixels to zero are where the windowed maximum of ``j`` over thresholded windows equals
    ``x``: separable running maxima, no index bookkeeping. The official ``assign_dark_channel_to_pixel.m``
    walks the windows in order and skips a window that already holds a zero from an earlier
    one; here every thresholded window's minimum is zeroed (a superset; the same in all but
    rare overlaps; tied minima are all zeroed).

    Args:
        x: (H, W) image. j: (H, W) its :func:`dark_channel`. zeroed: (H, W) bool, windows
            whose dark channel is set to 0. patch: window size used for ``j``.

    Returns:
        (H, W) tensor.
    """
    if not bool(zeroed.any()):
        return x.clone()
    r = patch // 2
    t = torch.where(zeroed, j, torch.full_like(j, -float("inf")))
    t = F.pad(t[None, None], (r, r, r, r), value=-float("inf"))[0, 0]
    m = _window_extreme(_window_extreme(t, patch, -1, torch.maximum), patch, -2, torch.maximum)
    out = torch.where(m == x, torch.zeros_like(x), x)
    if r > 0:
        out[:r], out[-r:], out[:, :r], out[:, -r:] = x[:r], x[-r:], x[:, :r], x[:, -r:]
    return out


def otsu_threshold(x: Tensor) -> float:
    """MATLAB ``graythresh``: Otsu's threshold of ``x`` clipped to [0, 1] and quantised to 8 bits,
    returned in [0, 1] (mean of the maximising levels on ties; 0 for a constant image)."""
    q = torch.round(x.detach().clamp(0, 1).reshape(-1).double() * 255)
    counts = torch.bincount(q.long(), minlength=256).double()
    p = counts / counts.sum()
    levels = torch.arange(256, dtype=torch.float64, device=p.device)
    omega = p.cumsum(0)
    mu = (p * levels).cumsum(0)
    mu_t = mu[-1]
    den = omega * (1 - omega)
    sigma_b = torch.where(den > 0, (mu_t * omega - mu) ** 2 / den.clamp_min(1e-300), torch.zeros_like(den))
    best = sigma_b.max()
    if not bool(best > 0):
        return 0.0
    idx = torch.nonzero(sigma_b == best).double().mean()
    return float(idx) / 255.0


def _hqs_gradient_loop(s: Tensor, numer_const: Tensor, den_base: Tensor, den_g: Tensor,
                       lam_grad: float, kappa: float, beta_max: float) -> Tensor:
    """Inner L0-gradient HQS loop: beta from 2 lam_grad to beta_max (x kappa); ``den_base`` is
    the real part of the denominator without the gradient term (``|K|^2 + mu``)."""
    shape = s.shape[-2:]
    beta = 2.0 * lam_grad
    while True:
        h, v = grad(s)
        if lam_grad > 0:
            keep = (h * h).add_(v * v).ge_(lam_grad / beta)  # 1.0 where the gradient is kept
            h.mul_(keep)
            v.mul_(keep)
        num = torch.fft.rfft2(grad_adjoint(h, v)).mul_(beta).add_(numer_const)
        num.mul_(torch.add(den_base, den_g, alpha=beta).reciprocal_())
        s = torch.fft.irfft2(num, s=shape)
        beta *= kappa
        if lam_grad == 0 or beta >= beta_max:
            return s


def _spectra(blurred: Tensor, kernel: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Fixed parts of every HQS latent solve on ``blurred``'s grid: ``conj(K) B``, ``|K|^2`` and
    ``|D_x|^2 + |D_y|^2`` (rfft2 layout)."""
    shape = blurred.shape[-2:]
    kf = psf2otf(kernel.to(blurred.dtype), shape)
    fx, fy = grad_otfs(shape, dtype=blurred.dtype, device=blurred.device)
    return kf.conj() * torch.fft.rfft2(blurred), kf.abs() ** 2, fx.abs() ** 2 + fy.abs() ** 2


def l0_restore(blurred: Tensor, kernel: Tensor, lam_grad: float, *, kappa: float = 2.0,
               beta_max: float = 1e5) -> Tensor:
    """L0-gradient latent image on the periodic grid of ``blurred`` (see module docstring).

    Args:
        blurred: (H, W) grey image, already smoothly wrap-padded (:func:`.boundary.wrap_boundary`).
        kernel: (kh, kw) kernel, centre at (kh // 2, kw // 2).
        lam_grad: L0 gradient weight (official 4e-3, decayed by the caller).
        kappa: HQS continuation factor (official 2). beta_max: final beta (official 1e5).

    Returns:
        (H, W) latent image (same grid).
    """
    numer, den_k, den_g = _spectra(blurred, kernel)
    return _hqs_gradient_loop(blurred.clone(), numer, den_k, den_g, lam_grad, kappa, beta_max)


def l0_dark_restore(blurred: Tensor, kernel: Tensor, lam_dark: float, lam_grad: float, *,
                    kappa: float = 2.0, patch: int = 35, beta_max: float = 1e5,
                    mu_max: float = 8.0, schedule: str = "nested", mu_kappa: float | None = None) -> Tensor:
    """L0 dark-channel + L0 gradient latent image (Pan et al. 2016; see module docstring).

    Args:
        blurred: (H, W) grey image, smoothly wrap-padded.
        kernel: (kh, kw) kernel.
        lam_dark: dark-channel L0 weight (official 4e-3, decayed by the caller); 0 falls back
            to :func:`l0_restore`.
        lam_grad: gradient L0 weight (official 4e-3).
        kappa: continuation factor for both loops (official 2).
        patch: dark-channel window (official 35, fixed at every scale).
        beta_max, mu_max: final weights of the gradient / dark-channel splitting (1e5, 8).
        schedule: ``"nested"`` (official: a full beta continuation inside every mu step) or
            ``"joint"`` (one continuation: mu and beta both multiplied by ``kappa`` every
            step, mu capped at ``mu_max``, the dark channel refreshed every step; about 10x
            cheaper).
        mu_kappa: ``"nested"`` only: factor of the outer (mu) continuation (default ``kappa``;
            4 halves the cost).

    Returns:
        (H, W) latent image.

    Raises:
        ValueError: unknown ``schedule``.
    """
    if lam_dark <= 0:
        return l0_restore(blurred, kernel, lam_grad, kappa=kappa, beta_max=beta_max)
    numer, den_k, den_g = _spectra(blurred, kernel)
    s = blurred.clone()
    level = max(otsu_threshold(s * s), 1.0 / 255.0)
    mu = lam_dark / level
    if schedule == "joint":
        return _joint_loop(s, numer, den_k, den_g, lam_dark, lam_grad, mu, kappa, patch, beta_max, mu_max)
    if schedule != "nested":
        raise ValueError(f"l0_dark_restore: schedule must be 'nested' or 'joint', got {schedule!r}")
    while mu < mu_max:
        j = dark_channel(s, patch)
        u = assign_dark_channel(s, j, j * j < lam_dark / mu, patch)
        s = _hqs_gradient_loop(s, numer + mu * torch.fft.rfft2(u), den_k + mu, den_g, lam_grad, kappa, beta_max)
        mu *= kappa if mu_kappa is None else mu_kappa
    return s


def _joint_loop(s: Tensor, numer: Tensor, den_k: Tensor, den_g: Tensor, lam_dark: float, lam_grad: float,
                mu: float, kappa: float, patch: int, beta_max: float, mu_max: float) -> Tensor:
    """One continuation for both splittings (see :func:`l0_dark_restore`, ``schedule="joint"``)."""
    shape = s.shape[-2:]
    beta = 2.0 * lam_grad
    while True:
        j = dark_channel(s, patch)
        u = assign_dark_channel(s, j, j * j < lam_dark / mu, patch)
        h, v = grad(s)
        if lam_grad > 0:
            keep = (h * h).add_(v * v).ge_(lam_grad / beta)
            h.mul_(keep)
            v.mul_(keep)
        num = torch.fft.rfft2(grad_adjoint(h, v)).mul_(beta).add_(numer).add_(torch.fft.rfft2(u), alpha=mu)
        num.mul_(torch.add(den_k + mu, den_g, alpha=beta).reciprocal_())
        s = torch.fft.irfft2(num, s=shape)
        beta *= kappa
        mu = min(mu * kappa, mu_max)
        if lam_grad == 0 or beta >= beta_max:
            return s
