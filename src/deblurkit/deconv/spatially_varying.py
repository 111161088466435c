"""Spatially varying blur by overlapping regions: the efficient filter flow (EFF) model.

Hirsch, Sra, Schoelkopf & Harmeling, *Efficient Filter Flow for Space-Variant Multiframe Blind
Deconvolution*, CVPR 2010 (Sec. 2, Eq. 5) and Hirsch, Schuler, Harmeling & Schoelkopf, *Fast
Removal of Non-uniform Camera Shake*, ICCV 2011 (Sec. 3): the image is covered by overlapping
regions r with windows ``w_r >= 0`` that sum to one at every pixel, and the blur is

    y = sum_r k_r * (w_r . x)                                   (EFF forward model)

i.e. each region is blurred by its own kernel and the results are added; the blur varies
smoothly between region centres. :func:`eff_blur` is this forward model; :func:`region_windows`
builds the windows (separable ``sin^2`` profiles, normalised to a partition of unity).

:func:`deblur_spatially_varying` inverts it approximately, as Hirsch et al. 2011 (Sec. 4)
initialise: each region, enlarged by a margin, is deconvolved with its own kernel (estimated
there, or the global kernel where the region's estimate fails the reliability check of
:func:`deblurkit.deconv.pipeline.check_kernel`), and the deconvolved regions are blended with
the same windows, ``x = sum_r w_r . deconv(y_r, k_r)``.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..synth.blur import blur
from .pipeline import (
    DEFAULT_KERNEL_SIZE,
    DeblurResult,
    _as_kernel,
    _check_image,
    _estimate_noise,
    _odd,
    crop_kernel_to_support,
    deconvolve_masked,
    estimate_checked_kernel,
)
from .region import DEFAULT_REGION_SIZE, luminance, saturation_mask

__all__ = ["region_layout", "region_windows", "eff_blur", "deblur_spatially_varying"]


def _axis_layout(n_pixels: int, n_regions: int, overlap: float) -> list[tuple[int, int]]:
    """(start, length) of ``n_regions`` equal regions covering [0, n_pixels) with the given
    overlap (fraction of a region's length shared with its neighbour)."""
    size = n_pixels / (n_regions - (n_regions - 1) * overlap)
    stride = size * (1.0 - overlap)
    out = []
    for i in range(n_regions):
        a = int(round(i * stride))
        b = n_pixels if i == n_regions - 1 else min(n_pixels, int(round(i * stride + size)))
        out.append((a, max(1, b - a)))
    return out


def _check_grid(grid: tuple[int, int], overlap: float, h: int, w: int) -> tuple[int, int]:
    if not isinstance(grid, (tuple, list)) or len(grid) != 2:
        raise ValueError(f"grid must be (rows, cols), got {grid!r}")
    gh, gw = int(grid[0]), int(grid[1])
    if gh < 1 or gw < 1:
        raise ValueError(f"grid must have at least one row and one column, got {grid!r}")
    if not 0.0 <= float(overlap) < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if gh > h or gw > w:
        raise ValueError(f"grid {gh}x{gw} has more regions than the image {h}x{w} has pixels")
    return gh, gw


def region_layout(shape: tuple[int, int], grid: tuple[int, int] = (3, 3),
                  overlap: float = 0.5) -> list[tuple[int, int, int, int]]:
    """The overlapping regions of the EFF model, row-major.

    Along each axis ``n`` regions of equal length ``L / (n - (n - 1) overlap)`` step by
    ``(1 - overlap)`` of their length, so they cover the image exactly.

    Args:
        shape: (H, W) of the image.
        grid: (rows, cols) of regions.
        overlap: fraction in [0, 1) of a region shared with its neighbour.

    Returns:
        ``rows * cols`` tuples ``(top, left, h, w)``.

    Raises:
        ValueError: bad grid or overlap.
    """
    h, w = int(shape[0]), int(shape[1])
    gh, gw = _check_grid(grid, overlap, h, w)
    rows, cols = _axis_layout(h, gh, overlap), _axis_layout(w, gw, overlap)
    return [(t, l, rh, rw) for (t, rh) in rows for (l, rw) in cols]


def _axis_windows(n_pixels: int, n_regions: int, overlap: float, device, dtype) -> Tensor:
    """(n_regions, n_pixels) non-negative profiles summing to one at every pixel."""
    prof = torch.zeros(n_regions, n_pixels, dtype=torch.float64, device=device)
    for i, (a, length) in enumerate(_axis_layout(n_pixels, n_regions, overlap)):
        t = (torch.arange(length, dtype=torch.float64, device=device) + 0.5) / length
        prof[i, a: a + length] = torch.sin(math.pi * t) ** 2  # > 0 inside the region
    prof = prof / prof.sum(0, keepdim=True)
    return prof.to(dtype)


def region_windows(shape: tuple[int, int], grid: tuple[int, int] = (3, 3), overlap: float = 0.5, *,
                   device: torch.device | str | None = None,
                   dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """Separable EFF windows: ``w_{ij}(y, x) = a_i(y) b_j(x)``.

    Each 1-D profile is ``sin^2`` over its region (zero outside), divided by the sum of all
    profiles, so ``sum_i a_i = sum_j b_j = 1`` and the 2-D windows sum to one at every pixel
    (Hirsch et al. 2010, Sec. 2: "windows ... that sum to one"). With ``overlap = 0.5`` the
    interior profiles are the usual overlapping Hann windows.

    Args:
        shape: (H, W); grid: (rows, cols); overlap: in [0, 1).
        device, dtype: of the returned tensors.

    Returns:
        ``(a, b)``: (rows, H) and (cols, W) tensors; region ``r = i * cols + j`` has window
        ``a[i][:, None] * b[j][None, :]``.

    Raises:
        ValueError: bad grid or overlap.
    """
    h, w = int(shape[0]), int(shape[1])
    gh, gw = _check_grid(grid, overlap, h, w)
    return (_axis_windows(h, gh, overlap, device, dtype), _axis_windows(w, gw, overlap, device, dtype))


def _kernel_stack(kernels: Any, n: int, fn: str) -> list[Tensor]:
    if isinstance(kernels, Tensor):
        if kernels.dim() == 2:
            ks = [kernels] * n
        elif kernels.dim() == 3:
            ks = list(kernels)
        else:
            raise ValueError(f"{fn}: kernels must be (R, K, K) or a list of (K, K), got {tuple(kernels.shape)}")
    else:
        ks = list(kernels)
    if len(ks) != n:
        raise ValueError(f"{fn}: {len(ks)} kernels for {n} regions")
    return [_as_kernel(k, fn) for k in ks]


def eff_blur(image: Tensor, kernels: Tensor | list[Tensor], grid: tuple[int, int] = (3, 3),
             overlap: float = 0.5, *, boundary: str = "reflect") -> Tensor:
    """The EFF forward model ``y = sum_r k_r * (w_r . x)`` (Hirsch et al. 2010, Eq. 5).

    Args:
        image: (N, C, H, W) float image.
        kernels: (R, K, K) tensor or list of R (K_r, K_r) kernels (each normalised here),
            ``R = rows * cols``, row-major over the grid; a single (K, K) kernel is used
            everywhere (then the result equals ``blur(image, k, boundary)``).
        grid, overlap: as :func:`region_windows`.
        boundary: boundary mode of :func:`deblurkit.synth.blur.blur` (not ``valid``).

    Returns:
        (N, C, H, W) blurred image. Cost: R full-image convolutions.

    Raises:
        ValueError: bad image, grid, kernels or boundary.
    """
    if not isinstance(image, Tensor) or image.dim() != 4:
        raise ValueError(f"eff_blur: image must be (N,C,H,W), got {getattr(image, 'shape', type(image))}")
    if boundary == "valid":
        raise ValueError("eff_blur: boundary 'valid' changes the size; use reflect, symmetric, replicate, "
                         "circular or zero")
    h, w = image.shape[-2:]
    a, b = region_windows((h, w), grid, overlap, device=image.device, dtype=image.dtype)
    ks = _kernel_stack(kernels, a.shape[0] * b.shape[0], "eff_blur")
    out = torch.zeros_like(image)
    for r, k in enumerate(ks):
        i, j = divmod(r, b.shape[0])
        win = a[i][:, None] * b[j][None, :]
        out = out + blur(image * win, k.to(image.device, image.dtype), boundary)
    return out


def deblur_spatially_varying(
    image: Tensor,
    *,
    grid: tuple[int, int] = (3, 3),
    overlap: float = 0.5,
    kernels: Tensor | list[Tensor] | None = None,
    global_kernel: Tensor | None = None,
    kernel_size: int | None = None,
    method: str = "dark_channel",
    fallback: bool = True,
    estimator: Callable | None = None,
    noise_sigma: float | None = None,
    deconv_method: str = "hyper_laplacian",
    saturation: float = 0.98,
    region_size: int = DEFAULT_REGION_SIZE,
    margin: int | None = None,
    estimator_options: dict[str, Any] | None = None,
    deconv_options: dict[str, Any] | None = None,
    check_thresholds: dict[str, float] | None = None,
) -> DeblurResult:
    """Deblur an image whose blur varies across it: one kernel per overlapping region, blended.

    Steps: noise level; a global kernel (given, or estimated and checked as
    :func:`deblurkit.deconv.pipeline.blind_deblur` does); per region of the ``grid`` a kernel
    (given in ``kernels``, or estimated on the region at the global kernel's size and checked
    with :func:`~deblurkit.deconv.pipeline.check_kernel` -- a failed region uses the global
    kernel, and with no reliable global kernel either it keeps its input pixels); each region,
    enlarged by ``margin`` pixels, is deconvolved with its kernel
    (:func:`~deblurkit.deconv.pipeline.deconvolve_masked`) and the results are blended with
    the EFF windows (:func:`region_windows`), which sum to one.

    Args:
        image: (1, C, H, W) or (C, H, W) float in [0, 1], C in (1, 3).
        grid: (rows, cols) of regions; overlap: fraction in [0, 1) shared by neighbours.
        kernels: known per-region kernels (R, K, K) or list (row-major): non-blind only.
        global_kernel: known global kernel (skips the global estimate).
        kernel_size: kernel side (pixels) or None for automatic (as ``blind_deblur``).
        method, fallback, estimator, noise_sigma, deconv_method, saturation, region_size,
        estimator_options, deconv_options, check_thresholds: as ``blind_deblur``.
        margin: pixels added around each region before deconvolving it (default twice the
            largest kernel).

    Returns:
        :class:`~deblurkit.deconv.pipeline.DeblurResult`; ``kernel`` is the global kernel (None
        if there is none), ``diagnostics["kernels"]`` the (R, K, K) per-region kernels actually
        used (None entries for regions left as they were) and ``diagnostics["regions"]`` their
        layout and per-region verdicts. ``fell_back`` is True when no region was deconvolved
        with a kernel of its own or the global one (output = input).

    Raises:
        ValueError: bad image, grid, overlap or kernels.
    """
    t_start = time.perf_counter()
    x = _check_image(image, "deblur_spatially_varying")
    _, c, h, w = x.shape
    layout = region_layout((h, w), grid, overlap)
    gh, gw = int(grid[0]), int(grid[1])
    timings: dict[str, float] = {"estimate": 0.0, "check": 0.0, "deconvolve": 0.0}
    deconv_options = dict(deconv_options or {})
    grey = luminance(x)
    sigma = float(noise_sigma) if noise_sigma is not None else _estimate_noise(grey)
    notes: list[str] = []

    # ------------------------------------------------------------- kernels per region
    per_region: list[Tensor | None]
    verdicts: list[str]
    given = kernels is not None
    if given:
        per_region = list(_kernel_stack(kernels, len(layout), "deblur_spatially_varying"))
        verdicts = ["given"] * len(layout)
        g_kernel = _as_kernel(global_kernel, "deblur_spatially_varying") if global_kernel is not None else None
    else:
        if global_kernel is not None:
            g_kernel = _as_kernel(global_kernel, "deblur_spatially_varying")
            notes.append("global kernel given")
        else:
            choice = estimate_checked_kernel(
                x, noise_sigma=sigma, kernel_size=kernel_size, method=method, region_size=region_size,
                fallback=fallback, estimator=estimator, deconv_method=deconv_method, saturation=saturation,
                estimator_options=estimator_options, deconv_options=deconv_options,
                check_thresholds=check_thresholds)
            g_kernel = choice.kernel
            for key, v in choice.timings.items():
                timings[key] = timings.get(key, 0.0) + v
            notes.append(f"global: {choice.reason}")
        k_size = g_kernel.shape[0] if g_kernel is not None else (
            _odd(kernel_size) if kernel_size is not None else DEFAULT_KERNEL_SIZE)
        per_region, verdicts = [], []
        for (t, l, rh, rw) in layout:
            crop = x[..., t: t + rh, l: l + rw]
            if min(rh, rw) < max(32, 2 * k_size):
                per_region.append(g_kernel)
                verdicts.append("region too small for an estimate: global kernel")
                continue
            t0 = time.perf_counter()
            choice_r = estimate_checked_kernel(
                crop, noise_sigma=sigma, kernel_size=k_size, method=method,
                region_size=min(region_size, rh, rw), fallback=False, estimator=estimator,
                deconv_method=deconv_method, saturation=saturation, second_method=None,
                estimator_options=estimator_options, deconv_options=deconv_options,
                check_thresholds=check_thresholds)
            timings["estimate"] += time.perf_counter() - t0
            k_r = choice_r.kernel
            ok = bool(choice_r.diagnostics["attempts"]) and bool(choice_r.diagnostics["attempts"][-1].get("ok"))
            if k_r is not None and ok:
                if kernel_size is None:
                    k_r = crop_kernel_to_support(k_r)
                per_region.append(k_r)
                verdicts.append("own kernel")
            else:
                per_region.append(g_kernel)
                verdicts.append("own estimate unreliable: " + ("global kernel" if g_kernel is not None
                                                               else "left as it was"))
    # ------------------------------------------------------------- deconvolve and blend
    a, b = region_windows((h, w), grid, overlap, device=x.device, dtype=x.dtype)
    kmax = max([k.shape[0] for k in per_region if k is not None] or [1])
    m = 2 * kmax if margin is None else int(margin)
    if m < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    out = torch.zeros_like(x)
    t0 = time.perf_counter()
    for r, ((t, l, rh, rw), k_r) in enumerate(zip(layout, per_region)):
        i, j = divmod(r, gw)
        win = (a[i][t: t + rh, None] * b[j][None, l: l + rw])
        if k_r is None:
            out[..., t: t + rh, l: l + rw] += win * x[..., t: t + rh, l: l + rw]
            continue
        t2, l2 = max(0, t - m), max(0, l - m)
        b2, r2 = min(h, t + rh + m), min(w, l + rw + m)
        crop = x[..., t2:b2, l2:r2]
        if k_r.shape[0] > crop.shape[-2] or k_r.shape[1] > crop.shape[-1]:
            out[..., t: t + rh, l: l + rw] += win * x[..., t: t + rh, l: l + rw]
            verdicts[r] += " (kernel larger than the region: left as it was)"
            per_region[r] = None
            continue
        clipped = saturation_mask(crop, threshold=saturation, dilate=1)
        lat = deconvolve_masked(crop, k_r, noise_sigma=sigma, clipped=clipped, estimated=not given,
                                method=deconv_method, **deconv_options)
        out[..., t: t + rh, l: l + rw] += win * lat[..., t - t2: t - t2 + rh, l - l2: l - l2 + rw]
    timings["deconvolve"] += time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start
    n_own = sum(v.startswith("own kernel") or v == "given" for v in verdicts)
    n_none = sum(k is None for k in per_region)
    fell_back = n_none == len(per_region)
    reason = (f"{gh}x{gw} regions: {n_own} with their own kernel, "
              f"{len(per_region) - n_own - n_none} with the global kernel, {n_none} left as they were")
    if notes:
        reason += "; " + "; ".join(notes)
    diag = {"regions": [{"box": box, "verdict": v} for box, v in zip(layout, verdicts)],
            "kernels": per_region, "grid": (gh, gw), "overlap": float(overlap)}
    return DeblurResult(out.clamp(0, 1), g_kernel, fell_back, reason, sigma, None, timings, diag)
