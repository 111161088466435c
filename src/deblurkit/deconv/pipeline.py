"""Blind deblurring of one photo: region -> kernel estimate -> reliability check -> deconvolution.

:func:`blind_deblur` is the classical pipeline of Fergus et al. (SIGGRAPH 2006, Sec. 3: estimate
the kernel on a user- or auto-selected patch of the luminance, then deconvolve every channel of
the whole image with it) with the parts later work added:

- the patch is chosen automatically (:func:`deblurkit.deconv.region.select_region`: strong edges
  in many orientations, after Hu & Yang, *Good Regions to Deblur*, ECCV 2012) and has a bounded
  size, so the estimate costs the same for any photo;
- clipped highlights are masked out of the estimate and of the deconvolution's data term
  (Cho, Wang & Lee, *Handling Outliers in Non-blind Image Deconvolution*, ICCV 2011; Whyte,
  Sivic & Zisserman, *Deblurring Shaken and Partially Saturated Images*, IJCV 2014);
- large kernels are estimated on a downscaled copy (at most ``max_kernel`` pixels wide at the
  working resolution) and the kernel is rescaled to the image's resolution;
- every estimate passes :func:`check_kernel` before it is used; an unreliable estimate is retried
  (smaller kernel, second estimator) and finally replaced by a conservative result -- the input
  itself -- so the output is never clearly worse than the input (``fell_back`` / ``reason``).

Conventions (the package's): images float32 (N, C, H, W) in [0, 1]; kernels (K, K), >= 0, sum
1, true convolution with the centre at ``(K // 2, K // 2)``.
"""
from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..synth.blur import blur
from .region import DEFAULT_REGION_SIZE, luminance, saturation_mask, select_region

__all__ = [
    "DeblurResult",
    "blind_deblur",
    "check_kernel",
    "estimate_checked_kernel",
    "KernelChoice",
    "deconvolve_masked",
    "image_diagnostics",
    "CHECK_THRESHOLDS",
    "assumed_noise_level",
    "kernel_diagnostics",
    "rescale_kernel",
    "crop_kernel_to_support",
    "DEFAULT_KERNEL_SIZE",
    "MAX_KERNEL",
]

#: Kernel side (pixels, at the working resolution) estimated when ``kernel_size=None``; the
#: estimate is then cropped to its support (:func:`crop_kernel_to_support`).
DEFAULT_KERNEL_SIZE = 31
#: Largest kernel side estimated at the working resolution; larger requested kernels make the
#: pipeline estimate on a copy downscaled by ``MAX_KERNEL / kernel_size``.
MAX_KERNEL = 41


@dataclass
class DeblurResult:
    """What :func:`blind_deblur` (and :func:`~deblurkit.deconv.spatially_varying.deblur_spatially_varying`)
    return.

    Attributes:
        image: (1, C, H, W) float32 in [0, 1], the restored image (the input itself when the
            pipeline fell back to it).
        kernel: (K, K) float32 kernel (>= 0, sum 1, centred) used for the deconvolution, at the
            input's resolution; ``None`` when no kernel was used (fell back to the input).
        fell_back: the estimated kernel was judged unreliable and a conservative result was
            returned instead.
        reason: one line saying what was done and why (e.g. which check failed).
        noise_sigma: estimated (or given) noise standard deviation, [0, 1] intensity units.
        region: ``(top, left, h, w)`` of the region the kernel was estimated on, in the input's
            pixels; ``None`` when no estimate was made.
        timings: seconds per stage (``region``, ``estimate``, ``check``, ``deconvolve``, ``total``).
        diagnostics: per-attempt details (kernel sizes, methods, check values, scale).
    """

    image: Tensor
    kernel: Tensor | None
    fell_back: bool
    reason: str
    noise_sigma: float
    region: tuple[int, int, int, int] | None
    timings: dict[str, float] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------


def _odd(n: float) -> int:
    m = max(1, int(round(n)))
    return m if m % 2 == 1 else m + 1


def _check_image(image: Tensor, fn: str) -> Tensor:
    if not isinstance(image, Tensor):
        raise ValueError(f"{fn}: image must be a torch.Tensor, got {type(image).__name__}")
    x = image[None] if image.dim() == 3 else image
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"{fn}: image must be (1,C,H,W) or (C,H,W) with C in (1, 3), got {tuple(image.shape)}")
    if x.shape[0] != 1:
        raise ValueError(f"{fn}: one image at a time (N = 1), got a batch of {x.shape[0]}")
    if not x.is_floating_point():
        raise ValueError(f"{fn}: image must be float in [0, 1], got {x.dtype}")
    if x.shape[-1] < 16 or x.shape[-2] < 16:
        raise ValueError(f"{fn}: image is too small ({x.shape[-2]}x{x.shape[-1]}); need at least 16x16")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{fn}: image has non-finite values")
    return x.float()


def _check_sizes(kernel_size, region_size, max_kernel, saturation, fn: str) -> None:
    if kernel_size is not None and int(kernel_size) < 3:
        raise ValueError(f"{fn}: kernel_size must be >= 3 pixels, got {kernel_size}")
    if int(region_size) < 32:
        raise ValueError(f"{fn}: region_size must be >= 32 pixels, got {region_size}")
    if int(max_kernel) < 9:
        raise ValueError(f"{fn}: max_kernel must be >= 9 pixels, got {max_kernel}")
    if not 0.0 < float(saturation) <= 1.0:
        raise ValueError(f"{fn}: saturation must be in (0, 1], got {saturation}")


def _as_kernel(kernel: Any, fn: str) -> Tensor:
    k = getattr(kernel, "kernel", kernel)  # a KernelEstimate or a tensor
    if not isinstance(k, Tensor):
        raise ValueError(f"{fn}: kernel must be a tensor (or have a .kernel tensor), got {type(kernel).__name__}")
    k = k.reshape(k.shape[-2:]) if k.dim() > 2 and all(s == 1 for s in k.shape[:-2]) else k
    if k.dim() != 2 or k.numel() == 0:
        raise ValueError(f"{fn}: kernel must be 2-D (K, K), got shape {tuple(k.shape)}")
    if not bool(torch.isfinite(k).all()):
        raise ValueError(f"{fn}: kernel has non-finite values")
    k = k.float().clamp(min=0)
    s = float(k.sum())
    if not s > 0:
        raise ValueError(f"{fn}: kernel has no positive mass")
    return k / s


def _accepts(fn: Callable, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return True
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def rescale_kernel(kernel: Tensor, factor: float) -> Tensor:
    """Resample a centred kernel to an image ``factor`` times larger (``factor`` > 1 enlarges).

    ``k_out(u) ~ k_in(u / factor)`` (bilinear, coordinates relative to the centre pixel), then
    clipped to >= 0 and normalised; the centre stays at ``(K // 2, K // 2)``. Used to bring a
    kernel estimated on a downscaled copy back to the photo's resolution.

    Args:
        kernel: (k, k) (any odd size) kernel, >= 0.
        factor: scale factor > 0 (1 returns a normalised copy).

    Returns:
        (K, K) float32 kernel with ``K = odd(ceil(k * factor))``, >= 0, sum 1.

    Raises:
        ValueError: a non-2-D kernel or ``factor`` <= 0.
    """
    k = _as_kernel(kernel, "rescale_kernel")
    if not factor > 0:
        raise ValueError(f"rescale_kernel: factor must be > 0, got {factor}")
    if abs(factor - 1.0) < 1e-6:
        return k.clone()
    kh, kw = k.shape
    size = _odd(math.ceil(max(kh, kw) * factor))
    c = size // 2
    u = (torch.arange(size, dtype=torch.float32, device=k.device) - c) / factor
    # grid_sample coordinates: pixel i of the input is at -1 + (2 i + 1) / n (align_corners=False)
    gy = (2 * (u + kh // 2) + 1) / kh - 1
    gx = (2 * (u + kw // 2) + 1) / kw - 1
    grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), dim=-1)[None]
    out = F.grid_sample(k[None, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0, 0]
    out = out.clamp(min=0)
    if not float(out.sum()) > 0:
        out = torch.zeros(size, size, device=k.device)
        out[c, c] = 1.0
    return out / out.sum()


def crop_kernel_to_support(kernel: Tensor, *, threshold: float = 0.02, margin: int = 2,
                           min_size: int = 3) -> Tensor:
    """Crop a centred kernel to the smallest centred odd square holding its support.

    The support is where the kernel exceeds ``threshold * max``; the square keeps the centre
    pixel at its centre (so the blur is unchanged up to the dropped small values) and adds
    ``margin`` pixels on each side. Values below the threshold outside the square are dropped
    and the kernel is renormalised. Used for ``kernel_size=None``: estimate generously, then
    deconvolve with a kernel no larger than the blur.

    Args:
        kernel: (K, K) kernel >= 0.
        threshold: relative level defining the support, in [0, 1).
        margin: pixels added around the support.
        min_size: smallest side returned.

    Returns:
        (K', K') float32 kernel, K' odd, ``min_size <= K' <= K``, sum 1.

    Raises:
        ValueError: a bad kernel or threshold.
    """
    k = _as_kernel(kernel, "crop_kernel_to_support")
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"crop_kernel_to_support: threshold must be in [0, 1), got {threshold}")
    kh, kw = k.shape
    cy, cx = kh // 2, kw // 2
    ys, xs = torch.nonzero(k > threshold * float(k.max()), as_tuple=True)
    half = int(max((ys - cy).abs().max(), (xs - cx).abs().max())) + int(margin)
    half = max(half, (int(min_size) - 1) // 2)
    half = min(half, cy, cx, kh - 1 - cy, kw - 1 - cx)
    out = k[cy - half: cy + half + 1, cx - half: cx + half + 1].clone()
    return out / out.sum()


# ---------------------------------------------------------------------------------------------
# the reliability check
# ---------------------------------------------------------------------------------------------


def _components_largest_fraction(mask: Tensor, weights: Tensor) -> float:
    """Fraction of ``weights`` in the heaviest 8-connected component of ``mask`` (small kernels:
    label propagation by max-pooling until it settles)."""
    if not bool(mask.any()):
        return 0.0
    h, w = mask.shape
    labels = torch.arange(1, h * w + 1, dtype=torch.float32, device=mask.device).view(h, w) * mask
    for _ in range(h * w):
        grown = F.max_pool2d(labels[None, None], 3, stride=1, padding=1)[0, 0] * mask
        if torch.equal(grown, labels):
            break
        labels = grown
    ids = labels[mask].long()
    sums = torch.zeros(h * w + 1, dtype=torch.float64, device=mask.device)
    sums.index_add_(0, ids, weights[mask].double())
    return float(sums.max() / weights[mask].double().sum().clamp(min=1e-30))


def kernel_diagnostics(kernel: Tensor) -> dict[str, float]:
    """Shape statistics of a kernel used by :func:`check_kernel`.

    Returns a dict with:
        ``peak``: largest entry (1 for a delta);
        ``support_fraction``: fraction of the K*K pixels above 5 % of the peak;
        ``effective_fraction``: ``exp(entropy) / (K*K)`` (entropy of the kernel as a
        distribution; near 1 for a kernel spread evenly over the whole square);
        ``effective_pixels``: ``exp(entropy)``, the number of pixels an evenly spread kernel of
        the same entropy covers (1 for a delta);
        ``main_component``: share of the mass in the heaviest 8-connected component of the
        support (camera-shake paths and defocus disks are one component; noise is many);
        ``centroid_offset``: distance of the centroid from the centre pixel, as a fraction of K;
        ``edge_mass``: mass in the outer border ring of width ``max(1, K // 10)`` (an estimate
        that needs a larger kernel than it was given piles mass there).

    Raises:
        ValueError: as the kernel checks of :func:`rescale_kernel`.
    """
    k = _as_kernel(kernel, "kernel_diagnostics").double()
    kh, kw = k.shape
    peak = float(k.max())
    support = k > 0.05 * peak
    p = k[k > 0]
    entropy = float(-(p * p.log()).sum())
    ys = torch.arange(kh, dtype=torch.float64, device=k.device)
    xs = torch.arange(kw, dtype=torch.float64, device=k.device)
    cy, cx = float((k.sum(1) * ys).sum()), float((k.sum(0) * xs).sum())
    off = math.hypot(cy - kh // 2, cx - kw // 2) / max(kh, kw)
    b = max(1, min(kh, kw) // 10)
    inner = k[b: kh - b, b: kw - b].sum() if kh > 2 * b and kw > 2 * b else torch.zeros((), dtype=k.dtype)
    return {
        "peak": peak,
        "support_fraction": float(support.double().mean()),
        "effective_fraction": math.exp(entropy) / (kh * kw),
        "effective_pixels": math.exp(entropy),
        "main_component": _components_largest_fraction(support, k),
        "centroid_offset": off,
        "edge_mass": float(1.0 - inner),
    }


def _interior(x: Tensor, k: int) -> Tensor:
    """Drop a band of width k from every side (boundary effects of the deconvolution)."""
    h, w = x.shape[-2:]
    b = min(k, max(0, (h - 8) // 2), max(0, (w - 8) // 2))
    return x[..., b: h - b, b: w - b] if b > 0 else x


def assumed_noise_level(noise_sigma: float, *, estimated: bool = True, method: str = "hyper_laplacian") -> float:
    """The noise level the data term of :func:`deconvolve_masked` implies: ``1 / sqrt(lambda)``
    with ``lambda`` the data weight of ``deblurkit.deconv.nonblind.default_weight`` (with
    ``ESTIMATED_KERNEL_ERROR`` for an estimated kernel). It is the unit of the image checks, so
    they follow the non-blind stage's weight rule: a weaker data term leaves a larger residual."""
    from .nonblind import ESTIMATED_KERNEL_ERROR, WEIGHT_RULES, default_weight
    m = method if method in WEIGHT_RULES else "hyper_laplacian"
    lam = float(default_weight(m, float(noise_sigma), kernel_error=ESTIMATED_KERNEL_ERROR if estimated else 0.0))
    return 1.0 / math.sqrt(max(lam, 1e-12))


def image_diagnostics(blurry: Tensor, latent: Tensor, kernel: Tensor, noise_sigma: float,
                      model_sigma: float | None = None) -> dict[str, float]:
    """Image-based statistics of a deconvolution used by :func:`check_kernel`.

    Args:
        blurry: (N, C, H, W) observed image in [0, 1] (luminance is taken if C = 3).
        latent: (N, C, H, W) deconvolution of ``blurry`` with ``kernel``.
        kernel: (K, K).
        noise_sigma: noise standard deviation of ``blurry`` (>= 0).
        model_sigma: the noise level the deconvolution assumed (its data weight), the unit of
            ``residual`` and ``ringing``; default ``max(noise_sigma, 1/255)``.

    Returns a dict with:
        ``residual``: RMS of ``kernel * latent - blurry`` over the interior (valid region minus a
        kernel-wide band), in units of ``model_sigma``: below 1 when the latent explains the
        observation as closely as the deconvolution's data weight asks, larger when the kernel
        cannot;
        ``ringing``: mean absolute gradient of the latent over the *flat* part of the blurry
        image (where its mean absolute gradient over a kernel-wide neighbourhood stays below
        ``3 * noise``; noise alone gives 2.26 noise; a sharp image is flat there too), in units
        of ``model_sigma``;
        ``flat_fraction``: share of the interior that counts as flat;
        ``gain``: ratio of the latent's to the blurry image's mean absolute gradient;
        ``overshoot``: mean amount by which the latent leaves ``[min, max]`` of the blurry image
        over the kernel-sized neighbourhood, in units of ``model_sigma`` (ringing bands of a
        wrong or too large kernel; small for the true kernel).
    """
    y = luminance(blurry).double()
    x = luminance(latent).double()
    k = kernel.double().to(y.device)
    K = max(k.shape)
    s = max(float(noise_sigma), 1.0 / 255)
    unit = s if model_sigma is None else max(float(model_sigma), 1e-6)
    # re-blur consistency on the valid region, away from the image border
    rb = blur(x, k, "valid")
    top, left = k.shape[0] - 1 - k.shape[0] // 2, k.shape[1] - 1 - k.shape[1] // 2
    yv = y[..., top: top + rb.shape[-2], left: left + rb.shape[-1]]
    res = _interior(rb - yv, K)
    residual = float(res.pow(2).mean().sqrt()) / unit
    # flat areas of the blurry image: its mean absolute gradient over a K x K neighbourhood is
    # what noise alone gives (E|dx| + E|dy| = 2 sqrt(2 / pi) sqrt(2) sigma = 2.26 sigma) or less
    gy = (y[..., 1:, :-1] - y[..., :-1, :-1]).abs()
    gx = (y[..., :-1, 1:] - y[..., :-1, :-1]).abs()
    r = K // 2
    local = F.avg_pool2d(gx + gy, 2 * r + 1, stride=1, padding=r, count_include_pad=False)
    flat = local < 3.0 * s
    lx = (x[..., :-1, 1:] - x[..., :-1, :-1]).abs()
    ly = (x[..., 1:, :-1] - x[..., :-1, :-1]).abs()
    lg = lx + ly
    flat_i, lg_i = _interior(flat, K), _interior(lg, K)
    nflat = int(flat_i.sum())
    ringing = float(lg_i[flat_i].mean()) / unit if nflat > 0 else 0.0
    gain = float(_interior(lg, K).mean() / _interior(gx + gy, K).mean().clamp(min=1e-12))
    # overshoot: how far the latent leaves the range the blurry image spans over the kernel's
    # footprint (a blurry pixel is an average of latent pixels, so the latent's values there
    # should mostly stay within it; ringing bands of a wrong kernel leave it)
    hi = F.max_pool2d(y, 2 * r + 1, stride=1, padding=r)
    lo = -F.max_pool2d(-y, 2 * r + 1, stride=1, padding=r)
    over = (x - hi).clamp(min=0) + (lo - x).clamp(min=0)
    overshoot = float(_interior(over, K).mean()) / unit
    # the same two, local: the 99th percentile over 15 x 15 windows, so that a small
    # inconsistent area (one sharp edge in a smooth crop) is not averaged away
    over_i = _interior(over, K)
    res_local = F.avg_pool2d(res.pow(2), min(15, *res.shape[-2:]), stride=4).sqrt().flatten()
    over_local = F.avg_pool2d(over_i, min(15, *over_i.shape[-2:]), stride=4).flatten()
    q = 0.99
    residual_peak = float(torch.quantile(res_local, q)) / unit if res_local.numel() else residual
    overshoot_peak = float(torch.quantile(over_local, q)) / unit if over_local.numel() else overshoot
    return {"residual": residual, "ringing": ringing, "flat_fraction": nflat / max(1, flat_i.numel()),
            "gain": gain, "overshoot": overshoot, "residual_peak": residual_peak,
            "overshoot_peak": overshoot_peak}


#: Thresholds of :func:`check_kernel` (tuned on synthetic cases with true and deliberately wrong
#: kernels; see the module docstring of :mod:`deblurkit.deconv.pipeline` and the report).
CHECK_THRESHOLDS = {
    "peak": 0.9,                # a delta: no blur found
    "main_component": 0.45,     # mass scattered over many specks: a noise kernel
    "effective_fraction": 0.6,  # mass spread evenly over the whole square
    "centroid_offset": 0.2,     # mass far from the centre
    "edge_mass": 0.15,          # mass piled in the outer ring: noise, or a window too small
    "effective_pixels": 3.0,    # (minimum) a kernel this concentrated is no blur worth removing
    "residual": 0.38,           # the latent does not explain the blurry image (x model sigma)
    "residual_peak": 0.55,      # ... somewhere (99th percentile of 15 x 15 windows)
    "ringing": 0.25,            # artefacts where the blurry image is flat (x model sigma)
    "overshoot": 0.12,          # the latent leaves the blurry image's local range (x model sigma)
}


def check_kernel(blurry: Tensor | None, latent: Tensor | None, kernel: Tensor, noise_sigma: float,
                 *, model_sigma: float | None = None,
                 thresholds: dict[str, float] | None = None) -> tuple[bool, str]:
    """Is a kernel estimate reliable enough to deconvolve with?

    Kernel shape checks (:func:`kernel_diagnostics`): a kernel that collapsed to (nearly) a
    delta (``peak``, ``effective_pixels``: no blur found), that spread into noise
    (``main_component``, ``effective_fraction``, ``edge_mass``) or whose mass sits far from the
    centre (``centroid_offset``). Image checks (:func:`image_diagnostics`, only when ``blurry``
    and ``latent`` are given; in units of the noise level the deconvolution assumed): the
    re-blurred latent must explain the blurry image (``residual``; the data term of the MAP
    problem, Levin et al. CVPR 2009 Sec. 2), the latent must not gain gradients where the blurry
    image is flat (``ringing``) nor leave the blurry image's local range around edges
    (``overshoot``); ``residual_peak`` is the residual's 99th percentile over 15 x 15 windows, so
    one inconsistent edge in a smooth crop counts -- ringing and amplified noise are what a wrong kernel produces (Shan, Jia &
    Agarwala, SIGGRAPH 2008, Sec. 1; Levin et al. 2009, Sec. 5). A check fails when its value
    exceeds :data:`CHECK_THRESHOLDS` (``peak``: at or above; ``effective_pixels``: below).

    Tuning (780 synthetic cases: 12 kernels -- Levin's 8, two disks, a Gaussian, a line -- and
    unblurred crops, on 6 photos each, 256 px, noise 0.003-0.02, each kernel in a window
    ``1.2 K + 2`` as the pipeline estimates it, deconvolved with the true kernel and with
    deliberately wrong ones: rotated 90 degrees, delta, Gaussian blob, noise, specks, shifted,
    1.6x and 0.6x scaled, a line): the image thresholds are 1.3 x the largest value any true
    kernel reached; all 72 true kernels pass; of the 276 wrong ones whose result is more than
    1 dB below the input, 232 (84 %) are rejected. What passes is a plausible kernel of the wrong
    length (1.6x) or orientation, a translated one (a PSNR loss from the shift only), or a
    ~3-pixel blur "removed" from a sharp crop. The image values are in units of
    :func:`assumed_noise_level`, so they follow the non-blind weight rule (tuned with
    ``WEIGHT_RULES['hyper_laplacian'] = (6, 1)``, ``ESTIMATED_KERNEL_ERROR = 0.05``; re-tune
    the thresholds if that rule changes form).

    Args:
        blurry: (N, C, H, W) blurry image in [0, 1] (the region the check runs on) or None.
        latent: (N, C, H, W) its deconvolution with ``kernel`` (unclamped is fine) or None.
        kernel: (K, K) kernel, >= 0 (normalised here).
        noise_sigma: noise standard deviation of ``blurry``, [0, 1] units.
        model_sigma: noise level the deconvolution assumed (:func:`assumed_noise_level`), the unit of
            the image checks; default ``max(noise_sigma, 1/255)``.
        thresholds: overrides of :data:`CHECK_THRESHOLDS` entries.

    Returns:
        ``(ok, reason)``: ``reason`` names the first failed check and its value, or summarises
        the values when all pass.

    Raises:
        ValueError: a bad kernel, mismatched image shapes or a negative noise level.
    """
    th = dict(CHECK_THRESHOLDS)
    if thresholds:
        unknown = set(thresholds) - set(th)
        if unknown:
            raise ValueError(f"check_kernel: unknown thresholds {sorted(unknown)}")
        th.update(thresholds)
    if not float(noise_sigma) >= 0:
        raise ValueError(f"check_kernel: noise_sigma must be >= 0, got {noise_sigma}")
    kd = kernel_diagnostics(kernel)
    if kd["peak"] >= th["peak"]:
        return False, f"kernel collapsed to a delta (peak {kd['peak']:.2f}): no blur found"
    if kd["effective_pixels"] < th["effective_pixels"]:
        return False, f"kernel nearly a delta ({kd['effective_pixels']:.1f} effective pixels): no blur found"
    if kd["main_component"] < th["main_component"]:
        return False, f"kernel spread into specks (main component holds {kd['main_component']:.0%} of the mass)"
    if kd["effective_fraction"] > th["effective_fraction"]:
        return False, f"kernel spread over the whole window (effective support {kd['effective_fraction']:.0%})"
    if kd["centroid_offset"] > th["centroid_offset"]:
        return False, f"kernel mass far from its centre (centroid off by {kd['centroid_offset']:.0%} of its size)"
    if kd["edge_mass"] > th["edge_mass"]:
        return False, f"kernel mass piled at the window's edge ({kd['edge_mass']:.0%})"
    if blurry is None or latent is None:
        return True, "kernel shape plausible"
    if blurry.dim() != 4 or latent.shape != blurry.shape:
        raise ValueError(f"check_kernel: blurry {tuple(blurry.shape)} and latent {tuple(latent.shape)} "
                         "must be the same (N,C,H,W) shape")
    k = _as_kernel(kernel, "check_kernel")
    if k.shape[0] > blurry.shape[-2] or k.shape[1] > blurry.shape[-1]:
        raise ValueError(f"check_kernel: kernel {tuple(k.shape)} larger than the image {tuple(blurry.shape[-2:])}")
    d = image_diagnostics(blurry, latent, k, float(noise_sigma), model_sigma)
    if d["residual"] > th["residual"]:
        return False, f"re-blurred result does not match the input (residual {d['residual']:.2f} x noise)"
    if d["residual_peak"] > th["residual_peak"]:
        return False, (f"re-blurred result does not match the input somewhere (local residual "
                       f"{d['residual_peak']:.2f} x noise)")
    if d["ringing"] > th["ringing"]:
        return False, f"ringing in flat areas ({d['ringing']:.1f} x noise)"
    if d["overshoot"] > th["overshoot"]:
        return False, f"ringing around edges (overshoot {d['overshoot']:.2f} x noise)"
    return True, (f"kernel passed the checks (residual {d['residual']:.2f}, ringing {d['ringing']:.2f}, "
                  f"overshoot {d['overshoot']:.2f} x noise)")


# ---------------------------------------------------------------------------------------------
# the pipeline
# ---------------------------------------------------------------------------------------------


def _default_estimator() -> Callable:
    from .blind import estimate_kernel
    return estimate_kernel


def _estimate_noise(grey: Tensor) -> float:
    from .noise import estimate_noise_level
    return float(estimate_noise_level(grey).reshape(-1)[0])


def _light_sources(clipped: Tensor, kernel_size: int) -> Tensor:
    """The clipped pixels that belong to small blown-out blobs (light sources and their blur
    streaks): less than half of the ``(4K + 1)^2`` neighbourhood is clipped. Large clipped
    areas (white paper, blown-out sky) are left to the plain data term: there the scene is
    mostly flat at the clip level and the one-sided constraint only lets ringing grow."""
    r = 2 * int(kernel_size)
    frac = F.avg_pool2d(clipped.float(), 2 * r + 1, stride=1, padding=r, count_include_pad=False)
    return clipped & (frac < 0.5)


def deconvolve_masked(image: Tensor, kernel: Tensor, *, noise_sigma: float, clipped: Tensor | None = None,
                      estimated: bool = True, method: str = "hyper_laplacian", refills: int = 1,
                      **options: Any) -> Tensor:
    """Non-blind deconvolution of every channel, robust to clipped highlights.

    Calls :func:`deblurkit.deconv.nonblind.deconvolve` (unknown boundary; with
    ``kernel_error=ESTIMATED_KERNEL_ERROR`` for an estimated kernel). Clipped pixels obey
    ``y = min(1, k * x)``, not ``y = k * x`` (Whyte, Sivic & Zisserman, IJCV 2014, Sec. 3): the
    observation at the clipped pixels of small blown-out blobs (light sources; see
    ``_light_sources``) is replaced by ``max(y, k * x)`` from the previous solution and the
    problem is solved again, ``refills`` times -- the majorise-minimise refill that the
    unknown-boundary data term uses for pixels outside the frame, applied to clipped pixels
    (Cho, Wang & Lee, ICCV 2011, treat them as outliers of the data term likewise).

    Measured (synthetic, Levin kernels, true kernel): with bright point sources clipped, the
    error away from them drops 5-13 % with one refill; on large white areas that were not
    really clipped a refill cost up to 2 dB, hence the small-blob restriction and one refill.

    Args:
        image: (N, C, H, W) float in [0, 1].
        kernel: (K, K), >= 0, sum 1.
        noise_sigma: noise standard deviation, [0, 1] units.
        clipped: (N, 1, H, W) bool, True on clipped pixels (e.g. ``saturation_mask(image,
            dilate=1)``), or None.
        estimated: the kernel is a blind estimate (weaker data term).
        method: ``method`` of ``deconvolve``.
        refills: outer refill passes when ``clipped`` has light-source pixels (0 disables).
        options: further keyword arguments for ``deconvolve``.

    Returns:
        (N, C, H, W) float32, unclamped.

    Raises:
        ValueError: as ``deconvolve``; a ``clipped`` mask of the wrong shape.
    """
    from .nonblind import ESTIMATED_KERNEL_ERROR, deconvolve
    opts: dict[str, Any] = {"method": method, "boundary": "unknown", "noise_sigma": float(noise_sigma)}
    if estimated and method != "pnp":
        opts["kernel_error"] = ESTIMATED_KERNEL_ERROR
    opts.update(options)
    k = kernel.to(image.device, torch.float32)
    if clipped is not None and (clipped.dim() != 4 or clipped.shape[0] != image.shape[0] or clipped.shape[1] != 1
                                or clipped.shape[-2:] != image.shape[-2:]):
        raise ValueError(f"deconvolve_masked: clipped mask {tuple(clipped.shape)} does not match the image "
                         f"{tuple(image.shape)} (need (N,1,H,W))")
    out = deconvolve(image, k, **opts)
    if clipped is None or refills <= 0 or not bool(clipped.any()):
        return out
    m = _light_sources(clipped.to(image.device).bool(), max(k.shape))
    if not bool(m.any()):
        return out
    for _ in range(int(refills)):
        z = torch.where(m, torch.maximum(image, blur(out, k, "replicate")), image)
        out = deconvolve(z, k, **opts)
    return out


def _run_estimator(estimator: Callable, region: Tensor, kernel_size: int, method: str, saturation: float,
                   options: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
    """Call the estimator on a (1, C, h, w) region (colour, so that it can find pixels clipped in
    one channel only) and return its normalised kernel and a few facts about the run."""
    opts = dict(options)
    if "saturation" not in opts and _accepts(estimator, "saturation"):
        opts["saturation"] = saturation
    est = estimator(region, kernel_size, method=method, **opts)
    info: dict[str, Any] = {}
    for name in ("seconds", "residual", "saturated_fraction"):
        v = getattr(est, name, None)
        if isinstance(v, (int, float)):
            info[name] = float(v)
    return _as_kernel(est, "estimator"), info


def _check_window(shape: tuple[int, int], region: tuple[int, int, int, int], side: int) -> tuple[int, int, int, int]:
    """A window of at most ``side`` pixels centred on the estimation region, inside the image."""
    h, w = shape
    t, l, rh, rw = region
    ch, cw = min(h, max(rh, side)), min(w, max(rw, side))
    top = min(max(0, t + rh // 2 - ch // 2), h - ch)
    left = min(max(0, l + rw // 2 - cw // 2), w - cw)
    return top, left, ch, cw


@dataclass
class KernelChoice:
    """Outcome of :func:`estimate_checked_kernel`.

    Attributes:
        kernel: (K, K) float32 kernel at the input's resolution (>= 0, sum 1), or None when no
            estimate passed the check (and ``fallback`` was on).
        fell_back: True when ``kernel`` is None for that reason.
        reason: one line: the check's verdict per attempt.
        region: ``(top, left, h, w)`` of the estimation region in the input's pixels.
        timings: seconds for ``region``, ``estimate``, ``check``.
        diagnostics: ``scale``, ``kernel_size_work``, ``attempts`` (method, size, check values).
    """

    kernel: Tensor | None
    fell_back: bool
    reason: str
    region: tuple[int, int, int, int]
    timings: dict[str, float]
    diagnostics: dict[str, Any]


def estimate_checked_kernel(
    image: Tensor,
    *,
    noise_sigma: float,
    kernel_size: int | None = None,
    method: str = "dark_channel",
    region_size: int = DEFAULT_REGION_SIZE,
    fallback: bool = True,
    estimator: Callable | None = None,
    deconv_method: str = "hyper_laplacian",
    max_kernel: int = MAX_KERNEL,
    saturation: float = 0.98,
    second_method: str | None = "l0",
    check_side: int = 768,
    estimator_options: dict[str, Any] | None = None,
    deconv_options: dict[str, Any] | None = None,
    check_thresholds: dict[str, float] | None = None,
) -> KernelChoice:
    """The kernel-estimation half of :func:`blind_deblur` (same arguments; see there): working
    scale, clipped mask, region, estimate, check, retries. ``image`` is (1, C, H, W) in [0, 1]
    and ``noise_sigma`` its noise level. Returns a :class:`KernelChoice`.

    Raises:
        ValueError: bad sizes (as :func:`blind_deblur`).
    """
    x = _check_image(image, "estimate_checked_kernel")
    _, _, h, w = x.shape
    _check_sizes(kernel_size, region_size, max_kernel, saturation, "estimate_checked_kernel")
    sigma = float(noise_sigma)
    deconv_options = dict(deconv_options or {})
    timings: dict[str, float] = {}
    estimator = _default_estimator() if estimator is None else estimator
    est_opts = dict(estimator_options or {})
    auto = kernel_size is None
    th_edge = dict(CHECK_THRESHOLDS, **(check_thresholds or {}))["edge_mass"]
    if auto:
        scale0, k_work = 1.0, min(DEFAULT_KERNEL_SIZE, _odd(max_kernel))
    else:
        # estimate in a window a little larger than asked (the estimate is cropped to its
        # support afterwards): the edge-mass check then tells noise from a tight window
        k_need = _odd(kernel_size) * 1.2 + 2
        scale0 = min(1.0, int(max_kernel) / k_need)
        k_work = min(_odd(k_need * scale0), _odd(max_kernel))
    timings["region"] = timings["estimate"] = timings["check"] = 0.0
    contexts: dict[float, dict[str, Any]] = {}

    def context(scale: float, ksz: int) -> dict[str, Any]:
        """Working-resolution copy, its region and check window (cached per scale)."""
        if scale in contexts:
            return contexts[scale]
        t0 = time.perf_counter()
        if scale < 1.0:
            wh, ww = max(16, round(h * scale)), max(16, round(w * scale))
            work = F.interpolate(x, size=(wh, ww), mode="area")
        else:
            work = x
        gwork = luminance(work)
        size = min(int(region_size), *gwork.shape[-2:])
        rt, rl, rh, rw = select_region(work, size, saturation=saturation, margin=ksz // 2)
        ct, cl, chh, cww = _check_window(tuple(gwork.shape[-2:]), (rt, rl, rh, rw), int(check_side))
        ctx = {
            "region_image": work[..., rt: rt + rh, rl: rl + rw],
            "region": (int(round(rt / scale)), int(round(rl / scale)),
                       min(h, int(round(rh / scale))), min(w, int(round(rw / scale)))),
            "check_grey": gwork[..., ct: ct + chh, cl: cl + cww],
            "check_clipped": saturation_mask(work[..., ct: ct + chh, cl: cl + cww], threshold=saturation, dilate=1),
            # area averaging over 1/scale^2 pixels divides white noise by 1/scale
            "sigma": sigma * scale,
            "clipped_fraction": float(saturation_mask(work, threshold=saturation).float().mean()),
        }
        contexts[scale] = ctx
        timings["region"] += time.perf_counter() - t0
        return ctx

    queue: list[tuple[str, int, float]] = [(method, k_work, scale0)]
    if fallback:
        smaller = _odd(k_work * 0.6)
        if 7 <= smaller < k_work:
            queue.append((method, smaller, scale0))
        if second_method and second_method != method:
            queue.append((second_method, k_work, scale0))
    diag: dict[str, Any] = {"scale": scale0, "kernel_size_work": k_work, "attempts": []}
    chosen: tuple[Tensor, float, dict] | None = None
    first: tuple[Tensor, float, dict] | None = None
    reasons: list[str] = []
    while queue and len(diag["attempts"]) < 6:
        meth, ksz, scale = queue.pop(0)
        ctx = context(scale, ksz)
        label = f"{meth} {ksz}px" + (f" at 1/{1 / scale:.3g} scale" if scale < 1.0 else "")
        t0 = time.perf_counter()
        try:
            kw_, info = _run_estimator(estimator, ctx["region_image"], ksz, meth, saturation, est_opts)
        except ValueError as exc:  # e.g. a region too small for the kernel
            timings["estimate"] += time.perf_counter() - t0
            reasons.append(f"{label}: estimator failed ({exc})")
            diag["attempts"].append({"method": meth, "kernel_size": ksz, "scale": scale, "error": str(exc)})
            continue
        timings["estimate"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        s_work = ctx["sigma"]
        lat = deconvolve_masked(ctx["check_grey"], kw_, noise_sigma=s_work, clipped=ctx["check_clipped"],
                                method=deconv_method, **deconv_options)
        ok, why = check_kernel(ctx["check_grey"], lat, kw_, s_work,
                               model_sigma=assumed_noise_level(s_work, method=deconv_method),
                               thresholds=check_thresholds)
        kd = kernel_diagnostics(kw_)
        kw_ = crop_kernel_to_support(kw_)  # checked uncropped: the edge-mass test needs the window
        timings["check"] += time.perf_counter() - t0
        diag["attempts"].append({"method": meth, "kernel_size": ksz, "scale": scale, "ok": ok, "reason": why,
                                 "kernel": kd, "estimator": info})
        reasons.append(f"{label}: {why}")
        if first is None:
            first = (kw_, scale, ctx)
        if ok:
            chosen = (kw_, scale, ctx)
            break
        if not fallback:
            break
        if auto and kd["edge_mass"] > th_edge and scale * 0.5 * max(h, w) >= 2 * ksz + 8:
            # mass piled at the window's edge: the blur is larger than the window, so estimate
            # again on a copy at half the resolution (the same window covers twice the blur)
            queue.insert(0, (meth, ksz, scale * 0.5))

    fell_back = False
    if chosen is None and not fallback and first is not None:
        chosen = first  # use it anyway, as asked
        reason = f"estimate used without fallback although the check failed: {reasons[-1]}"
    elif chosen is None:
        fell_back = True
        reason = "no reliable kernel; returned the input unchanged (" + "; ".join(reasons) + ")"
    else:
        reason = reasons[-1] if len(reasons) == 1 else "retried: " + "; ".join(reasons)
    kernel_out: Tensor | None = None
    if chosen is not None:
        kernel_out, scale, ctx = chosen
        diag["scale"] = scale
        if scale < 1.0:
            kernel_out = rescale_kernel(kernel_out, 1.0 / scale)
        if kernel_out.shape[0] > h or kernel_out.shape[1] > w:
            kernel_out = crop_kernel_to_support(kernel_out)
    else:
        ctx = contexts[scale0] if scale0 in contexts else context(scale0, k_work)
    diag["clipped_fraction"] = ctx["clipped_fraction"]
    return KernelChoice(kernel_out, fell_back, reason, ctx["region"], timings, diag)


def blind_deblur(
    image: Tensor,
    *,
    kernel: Tensor | None = None,
    kernel_size: int | None = None,
    method: str = "dark_channel",
    spatially_varying: bool = False,
    region_size: int = DEFAULT_REGION_SIZE,
    fallback: bool = True,
    estimator: Callable | None = None,
    noise_sigma: float | None = None,
    deconv_method: str = "hyper_laplacian",
    max_kernel: int = MAX_KERNEL,
    saturation: float = 0.98,
    second_method: str | None = "l0",
    check_side: int = 768,
    estimator_options: dict[str, Any] | None = None,
    deconv_options: dict[str, Any] | None = None,
    check_thresholds: dict[str, float] | None = None,
) -> DeblurResult:
    """Deblur one photo: estimate its blur kernel (unless given), check it, deconvolve.

    Steps (blind): noise level of the luminance
    (:func:`deblurkit.deconv.noise.estimate_noise_level`); the estimation window, a little
    larger than the blur (``1.2 * kernel_size + 2``; :data:`DEFAULT_KERNEL_SIZE` when
    ``kernel_size=None``); a working copy downscaled by ``min(1, max_kernel / window)`` (area
    averaging) so the window stays within ``max_kernel``; the most informative ``region_size``
    square of it (:func:`~deblurkit.deconv.region.select_region`, clipped areas avoided); the
    estimate on that (colour) region (``estimator(region, window, method=method,
    saturation=saturation, **estimator_options)``, default
    :func:`deblurkit.deconv.blind.estimate_kernel`, which masks clipped pixels itself); the
    reliability check (:func:`check_kernel`) on the luminance of a window of at most
    ``check_side`` pixels around the region, deconvolved with the candidate; the estimate
    cropped to its support (:func:`crop_kernel_to_support`) and rescaled to the input's
    resolution (:func:`rescale_kernel`); then every channel of the whole image is deconvolved
    (:func:`deconvolve_masked`: hyper-Laplacian, unknown boundary, clipped light sources
    refilled) and clamped to [0, 1]. With ``kernel_size=None``, an estimate whose mass piles up
    at the window's edge (the blur is larger than the window) is redone on a copy at half the
    resolution.

    Fallback (``fallback=True``): a rejected estimate is retried with a kernel of about 60 % of
    the size, then with ``second_method``; if every attempt fails the input is returned
    unchanged (``fell_back=True``, ``kernel=None``, ``reason`` says why). With
    ``fallback=False`` the first estimate is used whatever the check says (the reason reports
    the check).

    Args:
        image: (1, C, H, W) or (C, H, W) float image in [0, 1], C in (1, 3), H, W >= 16.
        kernel: known (K, K) kernel (>= 0; normalised): non-blind deconvolution only.
        kernel_size: kernel side in pixels at the input's resolution (odd; even is rounded up),
            or None for automatic.
        method: estimator method (``dark_channel`` or ``l0`` for the default estimator).
        spatially_varying: estimate kernels per overlapping region and blend
            (:func:`~deblurkit.deconv.spatially_varying.deblur_spatially_varying`).
        region_size: side of the estimation region at the working resolution (pixels, >= 32).
        fallback: allow retries and the conservative result.
        estimator: callable ``(grey (1,1,h,w), kernel_size, *, method, **options)`` returning a
            kernel tensor or an object with ``.kernel`` (e.g. ``KernelEstimate``).
        noise_sigma: known noise level ([0, 1] units); estimated when None.
        deconv_method: ``method`` of ``deblurkit.deconv.nonblind.deconvolve``.
        max_kernel: largest kernel side estimated at the working resolution (odd, >= 9).
        saturation: clip level for the clipped-pixel mask, in (0, 1].
        second_method: estimator method of the last retry (None: no such retry).
        check_side: side of the window the check deconvolves (pixels).
        estimator_options / deconv_options: extra keyword arguments for the two stages.
        check_thresholds: overrides of :data:`CHECK_THRESHOLDS`.

    Returns:
        :class:`DeblurResult`.

    Raises:
        ValueError: bad image (shape, batch > 1, dtype, non-finite, smaller than 16x16), bad
            kernel, kernel larger than the image, or bad sizes.
    """
    t_start = time.perf_counter()
    x = _check_image(image, "blind_deblur")
    _, c, h, w = x.shape
    if spatially_varying:
        if kernel is not None:
            raise ValueError("blind_deblur: a given kernel and spatially_varying=True exclude each other")
        from .spatially_varying import deblur_spatially_varying
        return deblur_spatially_varying(x, kernel_size=kernel_size, method=method, fallback=fallback,
                                        estimator=estimator, noise_sigma=noise_sigma,
                                        deconv_method=deconv_method, saturation=saturation,
                                        estimator_options=estimator_options, deconv_options=deconv_options,
                                        check_thresholds=check_thresholds)
    _check_sizes(kernel_size, region_size, max_kernel, saturation, "blind_deblur")
    timings: dict[str, float] = {}
    deconv_options = dict(deconv_options or {})
    grey = luminance(x)
    t0 = time.perf_counter()
    sigma = float(noise_sigma) if noise_sigma is not None else _estimate_noise(grey)
    timings["noise"] = time.perf_counter() - t0
    if sigma < 0:
        raise ValueError(f"blind_deblur: noise_sigma must be >= 0, got {sigma}")

    # ---------------------------------------------------------------- known kernel: non-blind
    if kernel is not None:
        k = _as_kernel(kernel, "blind_deblur")
        if k.shape[0] > h or k.shape[1] > w:
            raise ValueError(f"blind_deblur: kernel {tuple(k.shape)} is larger than the image {h}x{w}")
        clipped = saturation_mask(x, threshold=saturation, dilate=1)
        t0 = time.perf_counter()
        out = deconvolve_masked(x, k.to(x.device), noise_sigma=sigma, clipped=clipped, estimated=False,
                                method=deconv_method, **deconv_options)
        timings["deconvolve"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - t_start
        return DeblurResult(out.clamp(0, 1), k, False, "kernel given: non-blind deconvolution", sigma, None,
                            timings, {"clipped_fraction": float(clipped.float().mean())})

    # ---------------------------------------------------------------- blind
    choice = estimate_checked_kernel(
        x, noise_sigma=sigma, kernel_size=kernel_size, method=method, region_size=region_size,
        fallback=fallback, estimator=estimator, deconv_method=deconv_method, max_kernel=max_kernel,
        saturation=saturation, second_method=second_method, check_side=check_side,
        estimator_options=estimator_options, deconv_options=deconv_options, check_thresholds=check_thresholds)
    timings.update(choice.timings)
    if choice.kernel is None:
        timings["deconvolve"] = 0.0
        timings["total"] = time.perf_counter() - t_start
        return DeblurResult(x.clone().clamp(0, 1), None, True, choice.reason, sigma, choice.region, timings,
                            choice.diagnostics)
    k = choice.kernel
    t0 = time.perf_counter()
    clipped = saturation_mask(x, threshold=saturation, dilate=1)
    out = deconvolve_masked(x, k.to(x.device), noise_sigma=sigma, clipped=clipped, method=deconv_method,
                            **deconv_options)
    timings["deconvolve"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start
    return DeblurResult(out.clamp(0, 1), k, choice.fell_back, choice.reason, sigma, choice.region, timings,
                        choice.diagnostics)
