"""Non-blind deconvolution of uniformly blurred images: Wiener, hyper-Laplacian, TV and
plug-and-play, each with four ways of handling the image border. Pure torch, batched over
images and channels (one FFT for all), float32, on the input's device.

Model: ``y = k * x + n`` (true convolution, kernel centre ``(kh // 2, kw // 2)``, white
Gaussian noise of standard deviation sigma), the same operator as
:func:`deblurkit.synth.blur.blur`. Every method minimises, channel by channel,

    (lambda / 2) ||M (k * x - y)||^2 + R(x)

where ``R`` is the prior and ``M`` selects the observed pixels (see ``boundary``). The output is
aligned with the input pixel for pixel (the kernel centre maps each blurry pixel onto its sharp
pixel, as :func:`deblurkit.synth.blur.blur_valid_pair` crops it) and is *not* clamped.

Boundary handling (:mod:`.padding`; the research note measured it as the largest single factor,
about 8 dB between the naive and the exact model on photo crops):

- ``unknown`` (default): the latent image lives on a grid larger than the observation by about
  twice the kernel size, and the data term acts only on the observed pixels -- the exact
  ``valid`` model of a photograph, whose blur mixed in scene content beyond the frame. Solved
  by majorise-minimise: before each x-step the unobserved part of the data is refilled,
  ``z = M y + (1 - M) (k * x_e)`` with the heavy-ball extrapolation
  ``x_e = x + MOMENTUM (x - x_prev)``, and the circular problem for ``z`` is solved by FFT
  (``REFILLS`` x-steps per w-step; the refill, not the w-step, is what converges slowly).
- ``smooth``: smooth periodic padding (Liu & Jia 2008 idea), circular deconvolution, crop.
- ``reflect``: mirror padding, circular deconvolution, crop.
- ``circular``: the image is assumed periodic (naive FFT deconvolution; rings at the border).

Regularisation weight: ``lambda = c / max(sigma, SIGMA_FLOOR)^p`` per image (sigma from
:func:`deblurkit.deconv.noise.estimate_noise_level` unless given); ``(c, p)`` per method in
:data:`WEIGHT_RULES` (all ``p = 1``), calibrated with the true kernel (``docs/deconv.md``). A blind kernel
estimate is imperfect, and its error acts like extra noise: pass ``kernel_error`` (an
equivalent noise level added in quadrature, e.g. :data:`ESTIMATED_KERNEL_ERROR`) or an explicit
``weight``.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable

import torch
from torch import Tensor

from .fft import grad_otfs, psf2otf
from .noise import estimate_noise_level
from .operators import validate_kernel
from .padding import BOUNDARIES, Domain, make_domain

__all__ = [
    "deconvolve",
    "wiener",
    "hyper_laplacian",
    "tv_deconvolution",
    "pnp_hqs",
    "default_weight",
    "shrink_lp",
    "METHODS",
    "BOUNDARIES",
    "WEIGHT_RULES",
    "SIGMA_FLOOR",
    "ESTIMATED_KERNEL_ERROR",
]

METHODS = ("wiener", "hyper_laplacian", "tv", "pnp")

#: lambda = c / sigma^2 (sigma in [0, 1] units), per method; calibrated with the true kernel.
#: lambda = c / s^p per method: (c, p), s the noise level in [0, 1] units (with the kernel error
#: in quadrature, floored); calibrated with the true kernel and a 1-px-blurred one on the
#: ``mate_*`` crops, sigma 0.0025-0.04 (docs/deconv.md). For every method the optimum
#: follows 1 / sigma, not 1 / sigma^2 (for the sparse priors the few-step HQS traps noise when
#: lambda is large, so the rule keeps to the low side of the optimum, where the loss is gentle).
WEIGHT_RULES = {"wiener": (0.1, 1.0), "hyper_laplacian": (6.0, 1.0), "tv": (3.0, 1.0)}
#: sigma below this is treated as this (8-bit quantisation alone reads ~0.001).
SIGMA_FLOOR = 0.002
#: noise-equivalent error of a blind kernel estimate, added in quadrature to sigma: with the
#: hyper-Laplacian rule it gives lambda ~ 115 at sigma 0.005-0.02 (6 / 0.051), the weight the
#: research note found best for estimated kernels (~100, against ~1000 for the true one).
ESTIMATED_KERNEL_ERROR = 0.05
#: Krishnan & Fergus 2009 continuation: beta from 1 to 256, times 2 sqrt(2) per step.
BETA_SCHEDULE = (1.0, 256.0, 2.0 * math.sqrt(2.0))
#: extrapolation of the unknown-boundary refill (0 = plain majorise-minimise).
MOMENTUM = 0.95
#: x-steps (each after a refill) per w-step for the unknown boundary.
REFILLS = 2

Denoiser = Callable[[Tensor, "Tensor | float"], Tensor]


# ----------------------------------------------------------------------------------- inputs
def _prepare(image: Tensor, kernel: Tensor) -> tuple[Tensor, Tensor, bool]:
    """Validate; return (N, C, H, W) float32 image, (Nk, kh, kw) float32 kernel on its device,
    and whether the input was 3-D."""
    if not isinstance(image, Tensor) or image.dim() not in (3, 4):
        shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(f"image must be (N, C, H, W) or (C, H, W), got {shape}")
    single = image.dim() == 3
    y = (image[None] if single else image).float()
    if y.numel() == 0:
        raise ValueError(f"image is empty (shape {tuple(image.shape)})")
    if not bool(torch.isfinite(y).all()):
        raise ValueError("image has non-finite values (NaN or inf)")
    validate_kernel(kernel, tuple(y.shape[-2:]))
    k = kernel.to(device=y.device, dtype=torch.float32)
    if k.dim() == 2:
        k = k[None]
    if k.shape[0] not in (1, y.shape[0]):
        raise ValueError(f"{k.shape[0]} kernels for a batch of {y.shape[0]} images")
    return y, k, single


def _per_image(value: "Tensor | float | None", n: int, device, what: str) -> Tensor | None:
    """A scalar or (N,) value as an (N,) float32 tensor."""
    if value is None:
        return None
    t = torch.as_tensor(value, dtype=torch.float32, device=device).reshape(-1)
    if t.numel() == 1:
        t = t.expand(n)
    if t.numel() != n:
        raise ValueError(f"{what} must be a number or have one value per image ({n}), got {t.numel()}")
    if not bool(torch.isfinite(t).all()) or bool((t < 0).any()):
        raise ValueError(f"{what} must be finite and >= 0")
    return t


def default_weight(method: str, noise_sigma: "Tensor | float", *, kernel_error: float = 0.0) -> Tensor:
    """The data weight ``lambda = c / s^p``, ``s = sqrt(max(sigma, SIGMA_FLOOR)^2 + kernel_error^2)``,
    ``(c, p) = WEIGHT_RULES[method]`` (hyper-Laplacian ``6 / s``, TV ``3 / s``, Wiener ``0.1 / s``;
    at sigma = 0.01 with the true kernel: 600, 300, 10).

    Args:
        method: a key of :data:`WEIGHT_RULES` (``wiener``, ``hyper_laplacian``, ``tv``).
        noise_sigma: scalar or (N,) noise standard deviation in [0, 1] units.
        kernel_error: noise-equivalent error of the kernel (0 for the true kernel;
            :data:`ESTIMATED_KERNEL_ERROR` for a blind estimate).

    Returns:
        (N,) (or 0-d for a scalar) float32 tensor.

    Raises:
        ValueError: unknown method.
    """
    if method not in WEIGHT_RULES:
        raise ValueError(f"no weight rule for method {method!r}; known: {sorted(WEIGHT_RULES)}")
    s = torch.as_tensor(noise_sigma, dtype=torch.float32).clamp(min=SIGMA_FLOOR)
    c, p = WEIGHT_RULES[method]
    return c / (s * s + float(kernel_error) ** 2) ** (0.5 * p)


def _weights(y: Tensor, method: str, noise_sigma, weight, kernel_error: float) -> Tensor:
    n = y.shape[0]
    w = _per_image(weight, n, y.device, "weight")
    if w is not None:
        if bool((w <= 0).any()):
            raise ValueError("weight must be > 0")
        return w.view(n, 1, 1, 1)
    sig = _per_image(noise_sigma, n, y.device, "noise_sigma")
    if sig is None:
        sig = estimate_noise_level(y.clamp(0, 1))
    return default_weight(method, sig, kernel_error=kernel_error).to(y.device).view(n, 1, 1, 1)


def _noise(y: Tensor, noise_sigma) -> Tensor:
    sig = _per_image(noise_sigma, y.shape[0], y.device, "noise_sigma")
    return estimate_noise_level(y.clamp(0, 1)) if sig is None else sig


# ----------------------------------------------------------------------------- FFT helpers
class _Spectra:
    """Transfer functions on the domain grid: K (Nk, 1, Hf, Wf//2+1), |K|^2, |D|^2."""

    def __init__(self, k: Tensor, dom: Domain) -> None:
        hf, wf = dom.grid.shape[-2:]
        self.shape = (hf, wf)
        self.K = psf2otf(k, (hf, wf))[:, None]
        self.Kc = self.K.conj().resolve_conj()
        self.K2 = self.K.real ** 2 + self.K.imag ** 2
        fx, fy = grad_otfs((hf, wf), dtype=k.dtype, device=k.device)
        self.D2 = fx.real ** 2 + fx.imag ** 2 + fy.real ** 2 + fy.imag ** 2

    def rfft(self, x: Tensor) -> Tensor:
        return torch.fft.rfft2(x)

    def irfft(self, X: Tensor) -> Tensor:
        return torch.fft.irfft2(X, s=self.shape)


class _Data:
    """The data term's right-hand side ``conj(K) Z``, refilled each step for ``unknown``."""

    def __init__(self, sp: _Spectra, dom: Domain) -> None:
        self.sp, self.dom = sp, dom
        self.KtZ = sp.rfft(dom.grid).mul_(sp.Kc)
        self.X_prev: Tensor | None = None

    def refill(self, X: Tensor) -> None:
        """Majorise-minimise: ``z = M y + (1 - M) (k * x_e)`` with the extrapolated estimate
        ``x_e = x + MOMENTUM (x - x_prev)`` (heavy-ball acceleration of the refill, which alone
        converges slowly in the unobserved band), then ``conj(K) Z``."""
        if self.dom.mask is None:
            return
        if MOMENTUM > 0 and self.X_prev is not None:
            KXe = torch.lerp(self.X_prev, X, 1.0 + MOMENTUM).mul_(self.sp.K)
        else:
            KXe = X * self.sp.K
        self.X_prev = X
        kx = self.sp.irfft(KXe)
        z = torch.where(self.dom.mask, self.dom.observed, kx)
        self.KtZ = self.sp.rfft(z).mul_(self.sp.Kc)


def _finish(x: Tensor, dom: Domain, single: bool) -> Tensor:
    out = dom.crop(x).contiguous()
    return out[0] if single else out


# -------------------------------------------------------------------------- w-subproblem
@lru_cache(maxsize=64)
def _lp_table(alpha: float, beta: float, vmax: float, n: int, device: str) -> tuple[Tensor, Tensor]:
    """Shrinkage ``d(v) = v - w*(v)`` of the exact minimiser w* of ``|w|^alpha + beta/2 (w - v)^2``
    on a grid v in [0, vmax] (float64 bisection on the larger root of the stationarity condition
    ``alpha w^(alpha-1) + beta (w - v) = 0``, then the comparison with w = 0), as float32
    (values, slopes per grid step); the last slope is 0 so lookups beyond vmax keep d(vmax)."""
    v = torch.linspace(0.0, vmax, n, dtype=torch.float64)
    wm = (alpha * (1 - alpha) / beta) ** (1.0 / (2.0 - alpha))  # where g'(w) = 0

    def g(w):
        return alpha * w.clamp(min=1e-300) ** (alpha - 1) + beta * (w - v)

    lo = torch.full_like(v, wm)
    hi = torch.maximum(v, lo)
    has_root = g(lo) < 0
    for _ in range(64):
        mid = 0.5 * (lo + hi)
        neg = g(mid) < 0
        lo = torch.where(neg, mid, lo)
        hi = torch.where(neg, hi, mid)
    w = 0.5 * (lo + hi)
    better = w ** alpha + 0.5 * beta * (w - v) ** 2 < 0.5 * beta * v ** 2
    w = torch.where(has_root & better, w, torch.zeros_like(w))
    d = v - w
    slope = torch.diff(d, append=d[-1:])
    return d.float().to(device), slope.float().to(device)


_LUT_N = 16384


def _lut_vmax(alpha: float, beta: float) -> float:
    """Table range: at least 4 (4x the largest gradient of a [0, 1] image) and 4x the scale
    ``beta^(-1 / (2 - alpha))`` of the thresholding region, so the jump is inside the table."""
    return max(4.0, 4.0 * beta ** (-1.0 / (2.0 - alpha)))


def _closed_form_half(a: Tensor, beta: float) -> Tensor:
    """alpha = 1/2, a = |v| >= 0: with u = sqrt(w) the stationarity condition is the depressed
    cubic ``u^3 - a u + 1 / (2 beta) = 0``; its largest root by the trigonometric formula
    (three real roots exist iff ``a^3 > 27 / (16 beta^2)``)."""
    a_safe = a.clamp(min=1e-12)
    arg = (-(3.0 * math.sqrt(3.0)) / (4.0 * beta)) * a_safe.pow(-1.5)
    real = arg >= -1.0
    u = 2.0 * torch.sqrt(a_safe / 3.0) * torch.cos(torch.arccos(arg.clamp(min=-1.0)) / 3.0)
    return torch.where(real, u * u, torch.zeros_like(a))


def _closed_form_two_thirds(a: Tensor, beta: float) -> Tensor:
    """alpha = 2/3, a = |v| >= 0: with u = w^(1/3) the condition is the quartic
    ``u^4 - a u + c = 0``, ``c = 2 / (3 beta)``, solved by Ferrari's method: the resolvent cubic
    ``m^3 - c m - a^2 / 8 = 0`` (largest root; Cardano or trigonometric), then
    ``u = (sqrt(2m) + sqrt(a sqrt(2 / m) - 2m)) / 2``."""
    c = 2.0 / (3.0 * beta)
    a2 = a * a
    disc = a2 * a2 / 256.0 - c ** 3 / 27.0  # > 0: one real root (Cardano)
    sq = torch.sqrt(disc.clamp(min=0))
    s = torch.pow(a2 / 16.0 + sq, 1.0 / 3.0).clamp(min=1e-20)
    cardano = s + (c / 3.0) / s  # the two Cardano cube roots multiply to c / 3 (no cancellation)
    trig_arg = (3.0 * a2 / (16.0 * c) * math.sqrt(3.0 / c)).clamp(max=1.0)
    trig = 2.0 * math.sqrt(c / 3.0) * torch.cos(torch.arccos(trig_arg) / 3.0)
    m = torch.where(disc > 0, cardano, trig).clamp(min=1e-20)
    inner = a * torch.sqrt(2.0 / m) - 2.0 * m
    u = 0.5 * (torch.sqrt(2.0 * m) + torch.sqrt(inner.clamp(min=0)))
    return torch.where(inner >= 0, u * u * u, torch.zeros_like(a))


def shrink_lp(v: Tensor, alpha: float, beta: float, *, exact: bool = False) -> Tensor:
    """Elementwise ``argmin_w |w|^alpha + (beta / 2) (w - v)^2`` (the w-step of Krishnan &
    Fergus 2009, Sec. 3).

    ``alpha = 1``: soft-thresholding by ``1 / beta``; ``alpha = 2``: ``v beta / (beta + 2)``;
    other ``alpha`` in (0, 1): a 16384-entry lookup table of the exact shrinkage ``v - w*(v)``
    on ``|v| <= max(4, 4 beta^(-1/(2-alpha)))`` (linear interpolation; beyond the table the
    shrinkage at the table's end, which varies slowly there), as in Krishnan & Fergus' own code.
    Agrees with brute-force minimisation to ~1e-5 except in the one grid cell holding the
    threshold jump. With ``exact=True`` and ``alpha`` 1/2 or 2/3: the analytic roots of
    Krishnan & Fergus Sec. 3.1 (cubic and quartic; here by the trigonometric/Cardano formulas
    and Ferrari's method), then the comparison with w = 0 (slower than the table on CPU).

    Args:
        v: any shape, real.
        alpha: exponent in (0, 1] or 2.
        beta: > 0.
        exact: closed forms for alpha 1/2 and 2/3 (other alphas use the table).

    Raises:
        ValueError: alpha or beta out of range.
    """
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    if alpha == 1.0:
        return torch.sign(v) * (v.abs() - 1.0 / beta).clamp(min=0)
    if alpha == 2.0:
        return v * (beta / (beta + 2.0))
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1] or 2, got {alpha}")
    if exact and (abs(alpha - 0.5) < 1e-9 or abs(alpha - 2.0 / 3.0) < 1e-9):
        a = v.abs()
        w = _closed_form_half(a, beta) if alpha < 0.6 else _closed_form_two_thirds(a, beta)
        keep = w.pow(alpha) + 0.5 * beta * (w - a) ** 2 < 0.5 * beta * a * a
        return torch.copysign(torch.where(keep, w, torch.zeros_like(w)), v)
    vmax = _lut_vmax(float(alpha), float(beta))
    d, slope = _lp_table(float(alpha), float(beta), vmax, _LUT_N, str(v.device))
    a = v.abs()
    pos = a * ((_LUT_N - 1) / vmax)
    pos.clamp_(max=_LUT_N - 1)
    idx = pos.to(torch.int32)
    frac = pos.sub_(idx)
    flat = idx.reshape(-1)
    shrink = d.index_select(0, flat).view_as(v).addcmul_(frac, slope.index_select(0, flat).view_as(v))
    return torch.copysign(a.sub_(shrink), v)


def _grad(x: Tensor) -> tuple[Tensor, Tensor]:
    """:func:`deblurkit.deconv.fft.grad` (circular forward differences) by slicing (no rolls)."""
    dx, dy = torch.empty_like(x), torch.empty_like(x)
    torch.sub(x[..., 1:], x[..., :-1], out=dx[..., :-1])
    torch.sub(x[..., :1], x[..., -1:], out=dx[..., -1:])
    torch.sub(x[..., 1:, :], x[..., :-1, :], out=dy[..., :-1, :])
    torch.sub(x[..., :1, :], x[..., -1:, :], out=dy[..., -1:, :])
    return dx, dy


def _grad_adjoint(gx: Tensor, gy: Tensor) -> Tensor:
    """:func:`deblurkit.deconv.fft.grad_adjoint` by slicing (no rolls)."""
    out = torch.empty_like(gx)
    torch.sub(gx[..., :-1], gx[..., 1:], out=out[..., 1:])
    torch.sub(gx[..., -1:], gx[..., :1], out=out[..., :1])
    out[..., 1:, :] += gy[..., :-1, :]
    out[..., :1, :] += gy[..., -1:, :]
    out -= gy
    return out


def _shrink_tv(gx: Tensor, gy: Tensor, beta: float) -> tuple[Tensor, Tensor]:
    """Isotropic TV w-step: vector soft-thresholding of (gx, gy) by 1 / beta."""
    mag = torch.sqrt(gx * gx + gy * gy)
    s = (1.0 - 1.0 / (beta * mag.clamp(min=1e-12))).clamp(min=0)
    return gx * s, gy * s


def _betas(beta_min: float, beta_max: float, rate: float) -> list[float]:
    out, b = [], beta_min
    while b < beta_max:
        out.append(b)
        b *= rate
    return out


def _hqs(y: Tensor, k: Tensor, lam: Tensor, boundary: str, shrink, iterations: int | None, refills: int | None,
         pad: int | None, single: bool) -> Tensor:
    """Half-quadratic splitting (Krishnan & Fergus 2009, Alg. 1) with the boundary model.

    ``shrink(gx, gy, beta) -> (wx, wy)`` is the w-step. The x-step solves
    ``(lambda |K|^2 + beta |D|^2) X = lambda conj(K) Z + beta conj(D) W`` by FFT; for the
    ``unknown`` boundary it is repeated ``refills`` times per w-step, each time after a refill of
    the unobserved data (the refill, not the w-step, is what converges slowly).
    """
    dom = make_domain(y, tuple(k.shape[-2:]), boundary, pad=pad)
    sp = _Spectra(k, dom)
    data = _Data(sp, dom)
    inner = 1 if iterations is None else int(iterations)
    n_refill = REFILLS if refills is None else int(refills)
    if inner < 1 or n_refill < 1:
        raise ValueError(f"iterations and refills must be >= 1, got {iterations}, {refills}")
    x = dom.grid
    for beta in _betas(*BETA_SCHEDULE):
        r = beta / lam  # (N, 1, 1, 1)
        den = sp.K2 + r * sp.D2
        for _ in range(inner):
            gx, gy = _grad(x)
            wx, wy = shrink(gx, gy, beta)
            DtW = sp.rfft(_grad_adjoint(wx, wy)).mul_(r)
            for j in range(n_refill if dom.mask is not None else 1):
                if j:
                    data.refill(X)
                X = (data.KtZ + DtW).div_(den)
            x = sp.irfft(X)
            data.refill(X)
    return _finish(x, dom, single)


# ----------------------------------------------------------------------------- the methods
def hyper_laplacian(image: Tensor, kernel: Tensor, *, alpha: float = 0.8, boundary: str = "unknown",
                    noise_sigma: "Tensor | float | None" = None, weight: "Tensor | float | None" = None,
                    kernel_error: float = 0.0, iterations: int | None = None, refills: int | None = None,
                    pad: int | None = None) -> Tensor:
    """Deconvolution with a hyper-Laplacian gradient prior ``R(x) = sum |dx x|^alpha + |dy x|^alpha``.

    Krishnan & Fergus, "Fast image deconvolution using hyper-Laplacian priors", NIPS 2009:
    half-quadratic splitting, beta from 1 to 256 by a factor 2 sqrt(2) (6 steps), the
    w-subproblem by :func:`shrink_lp`, the x-subproblem by FFT (two forward-difference filters).

    Args:
        image: (N, C, H, W) or (C, H, W) float in [0, 1] (grey or RGB, any C).
        kernel: (kh, kw) or (N, kh, kw), non-negative, sum 1, not larger than the image.
        alpha: exponent in (0, 1] (1 = anisotropic TV) or 2 (Gaussian prior).
        boundary: ``unknown`` | ``smooth`` | ``reflect`` | ``circular`` (module docstring).
        noise_sigma: scalar or (N,) noise sigma in [0, 1] units; estimated when None.
        weight: scalar or (N,) data weight lambda; overrides the noise rule.
        kernel_error: noise-equivalent kernel error for the weight rule (:func:`default_weight`).
        iterations: w-steps per beta (default 1, Krishnan & Fergus' choice).
        refills: for ``unknown``: x-steps, each after a refill of the unobserved data, per
            w-step (default :data:`REFILLS` = 2; more converge further at 2 FFTs each, see
            ``docs/deconv.md``).
        pad: extension per side in pixels (default the kernel size).

    Returns:
        (N, C, H, W) float32 (or (C, H, W)), not clamped.

    Raises:
        ValueError: bad image, kernel, boundary, alpha or weight.
    """
    y, k, single = _prepare(image, kernel)
    lam = _weights(y, "hyper_laplacian", noise_sigma, weight, kernel_error)
    a = float(alpha)
    if not (0.0 < a <= 1.0 or a == 2.0):
        raise ValueError(f"alpha must be in (0, 1] or 2, got {alpha}")

    def shrink(gx, gy, beta):
        return shrink_lp(gx, a, beta), shrink_lp(gy, a, beta)

    return _hqs(y, k, lam, boundary, shrink, iterations, refills, pad, single)


def tv_deconvolution(image: Tensor, kernel: Tensor, *, boundary: str = "unknown",
                     noise_sigma: "Tensor | float | None" = None, weight: "Tensor | float | None" = None,
                     kernel_error: float = 0.0, iterations: int | None = None, refills: int | None = None,
                     pad: int | None = None) -> Tensor:
    """Deconvolution with isotropic total variation ``R(x) = sum sqrt(dx^2 + dy^2)``.

    Half-quadratic splitting with the TV w-step (vector soft-thresholding; Wang, Yang, Yin &
    Zhang, "A new alternating minimization algorithm for total variation image reconstruction",
    SIAM J. Imaging Sci. 2008, Eq. 2.4), with Krishnan & Fergus' beta continuation.
    Arguments, returns and errors as :func:`hyper_laplacian`.
    """
    y, k, single = _prepare(image, kernel)
    lam = _weights(y, "tv", noise_sigma, weight, kernel_error)
    return _hqs(y, k, lam, boundary, _shrink_tv, iterations, refills, pad, single)


def wiener(image: Tensor, kernel: Tensor, *, boundary: str = "unknown",
           noise_sigma: "Tensor | float | None" = None, weight: "Tensor | float | None" = None,
           kernel_error: float = 0.0, prior: str = "gradient", iterations: int | None = None,
           pad: int | None = None) -> Tensor:
    """Wiener (regularised least-squares) deconvolution.

    ``X = conj(K) Z / (|K|^2 + P / lambda)`` with ``P = |D|^2`` (``prior="gradient"``: a
    Gaussian prior on the two forward differences, the 1/f^2 image spectrum) or ``P = 1``
    (``prior="constant"``: the classical constant noise-to-signal ratio ``1 / lambda``). Closed
    form for the known boundaries; for ``unknown`` the masked quadratic problem is solved by
    ``iterations`` majorise-minimise refills (default 20). Wiener, "Extrapolation,
    interpolation and smoothing of stationary time series", 1949; Gonzalez & Woods Sec. 5.8.
    The default weight rule (``0.1 / sigma``) is calibrated for ``prior="gradient"``; with
    ``"constant"`` pass ``weight`` (the research note's best constant NSR 0.02 is weight 50).
    ``noise_sigma = 0`` (with ``weight`` unset) still regularises at the floor
    :data:`SIGMA_FLOOR`; pass a large ``weight`` for the plain inverse filter.

    Other arguments, returns and errors as :func:`hyper_laplacian`.
    """
    if prior not in ("gradient", "constant"):
        raise ValueError(f"prior must be 'gradient' or 'constant', got {prior!r}")
    y, k, single = _prepare(image, kernel)
    lam = _weights(y, "wiener", noise_sigma, weight, kernel_error)
    dom = make_domain(y, tuple(k.shape[-2:]), boundary, pad=pad)
    sp = _Spectra(k, dom)
    data = _Data(sp, dom)
    den = sp.K2 + (sp.D2 if prior == "gradient" else 1.0) / lam
    steps = 1 if dom.mask is None else (20 if iterations is None else int(iterations))
    if steps < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    for _ in range(steps):
        X = data.KtZ / den
        data.refill(X)
    return _finish(sp.irfft(X), dom, single)


def pnp_hqs(image: Tensor, kernel: Tensor, denoiser: Denoiser | None = None, *,
            noise_sigma: "Tensor | float | None" = None, iterations: int = 8, boundary: str = "unknown",
            weight: float = 0.23, sigma_max: float = 49.0 / 255.0, kernel_error: float = 0.0,
            pad: int | None = None) -> Tensor:
    """Plug-and-play half-quadratic splitting with any Gaussian denoiser (DPIR).

    Zhang, Li, Zuo, Zhang, Van Gool & Timofte, "Plug-and-play image restoration with deep
    denoiser prior", TPAMI 2021, Sec. 4 and Eq. 6-7: for k = 1..K,
    ``x_k = argmin ||M (k * x - y)||^2 + alpha_k ||x - z_{k-1}||^2`` (FFT, with the
    ``unknown``-boundary refill), ``z_k = denoiser(x_k, sigma_k)``, with sigma_k log-spaced from
    ``sigma_max`` (49/255) down to the noise level and ``alpha_k = weight * sigma^2 / sigma_k^2``
    (``weight`` is DPIR's lambda, 0.23 for deblurring). ``z_0`` is the padded observation.

    Args:
        image, kernel, boundary, pad: as :func:`hyper_laplacian`.
        denoiser: callable ``denoiser(x, sigma) -> x`` on (N, C, Hf, Wf) with sigma an (N,)
            tensor in [0, 1] units; default :func:`deblurkit.deconv.denoisers.tv_denoise`.
        noise_sigma: scalar or (N,); estimated when None; floored at 0.255/255 (DPIR).
        iterations: K, the number of denoiser calls (DPIR: 8).
        weight: DPIR's lambda.
        sigma_max: first denoiser level.
        kernel_error: added in quadrature to the noise level used in the schedule.

    Returns:
        (N, C, H, W) float32 (or (C, H, W)), not clamped.

    Raises:
        ValueError: bad inputs or iterations < 1.
    """
    if denoiser is None:
        from .denoisers import tv_denoise as denoiser
    if int(iterations) < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    if not weight > 0:
        raise ValueError(f"weight must be > 0, got {weight}")
    y, k, single = _prepare(image, kernel)
    sig = _noise(y, noise_sigma)
    sig = torch.sqrt(sig.clamp(min=0.255 / 255.0) ** 2 + float(kernel_error) ** 2)
    n = y.shape[0]
    dom = make_domain(y, tuple(k.shape[-2:]), boundary, pad=pad)
    sp = _Spectra(k, dom)
    data = _Data(sp, dom)
    K = int(iterations)
    t = torch.linspace(0, 1, K, device=y.device)[None] if K > 1 else torch.ones(1, 1, device=y.device)
    hi = torch.full_like(sig, float(sigma_max)).clamp(min=sig)
    sigmas = torch.exp(torch.log(hi)[:, None] * (1 - t) + torch.log(sig)[:, None] * t)  # (N, K)
    z = dom.grid
    for i in range(K):
        s_k = sigmas[:, i]
        a = (weight * sig ** 2 / s_k ** 2).view(n, 1, 1, 1)
        X = (data.KtZ + a * sp.rfft(z)) / (sp.K2 + a)
        x = sp.irfft(X)
        data.refill(X)
        z = denoiser(x, s_k)
    return _finish(z, dom, single)


def deconvolve(image: Tensor, kernel: Tensor, *, method: str = "hyper_laplacian", boundary: str = "unknown",
               noise_sigma: "Tensor | float | None" = None, weight: "Tensor | float | None" = None,
               alpha: float = 0.8, iterations: int | None = None, denoiser: Denoiser | None = None,
               kernel_error: float = 0.0, refills: int | None = None, pad: int | None = None) -> Tensor:
    """Non-blind deconvolution: the one entry point.

    Args:
        image: (N, C, H, W) (or (C, H, W)) float32 in [0, 1], grey or RGB, batched.
        kernel: (kh, kw) shared or (N, kh, kw) per image; non-negative, sum 1 (within 1e-3),
            finite, not larger than the image (:func:`deblurkit.deconv.operators.validate_kernel`).
        method: ``hyper_laplacian`` (default; Krishnan & Fergus 2009), ``tv``, ``wiener`` or
            ``pnp`` (DPIR-style HQS with ``denoiser``, default TV denoising).
        boundary: ``unknown`` (default, exact ``valid`` model), ``smooth``, ``reflect`` or
            ``circular``.
        noise_sigma: scalar or (N,) sigma in [0, 1] units; estimated when None.
        weight: data weight lambda (scalar or (N,)); default from the noise level by
            :func:`default_weight` (for ``pnp``: DPIR's lambda, default 0.23).
        alpha: hyper-Laplacian exponent.
        iterations: ``hyper_laplacian``/``tv``: inner HQS iterations per beta; ``wiener``:
            refills for ``unknown``; ``pnp``: denoiser calls.
        denoiser: for ``pnp``: ``denoiser(x, sigma) -> x``.
        kernel_error: noise-equivalent kernel error (:data:`ESTIMATED_KERNEL_ERROR` suits a
            blind estimate), folded into the weight rule.
        refills: ``hyper_laplacian``/``tv`` with ``unknown``: x-steps (each after a refill) per
            w-step (default :data:`REFILLS`).
        pad: boundary extension per side (default the kernel size).

    Returns:
        (N, C, H, W) float32 on the image's device, aligned with the input, NOT clamped.

    Raises:
        ValueError: unknown method or boundary, bad image or kernel (one-line messages).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
    common = dict(boundary=boundary, noise_sigma=noise_sigma, kernel_error=kernel_error, pad=pad)
    if method == "hyper_laplacian":
        return hyper_laplacian(image, kernel, alpha=alpha, weight=weight, iterations=iterations, refills=refills,
                               **common)
    if method == "tv":
        return tv_deconvolution(image, kernel, weight=weight, iterations=iterations, refills=refills, **common)
    if method == "wiener":
        return wiener(image, kernel, weight=weight, iterations=iterations, **common)
    extra = {} if weight is None else {"weight": float(weight)}
    return pnp_hqs(image, kernel, denoiser, iterations=8 if iterations is None else iterations, **extra, **common)
