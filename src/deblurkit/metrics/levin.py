"""Scores "up to shift": Levin et al.'s ``comp_upto_shift`` and the error ratio, in torch.

A blind deblurrer cannot know where the true kernel's centre lies, so its output may be
translated against the sharp reference by a few pixels (the 8 Levin et al. 2009 kernels have
centroids up to ~4.4 px off their array centre). Levin et al. therefore compare a result with
the reference after the translation that best aligns them:

    A. Levin, Y. Weiss, F. Durand, W. T. Freeman, "Understanding and evaluating blind
    deconvolution algorithms", CVPR 2009, Sec. 5 and the MATLAB evaluation code released with
    the data set, ``comp_upto_shift.m`` (also used by Sun et al., ICCP 2013 and later papers).

Facts followed from ``comp_upto_shift.m``: the reference loses a border of 15 px on every side;
translations from -5 to +5 px in steps of 1/4 px along each axis are tried, the translated
result being resampled by bilinear interpolation (MATLAB ``interp2``) from the result's pixels
around the same cropped window (so no value outside the result is ever needed); the score is
the smallest sum of squared differences (SSD) over the translations. The *error ratio* of a
blind method is ``SSD(its result) / SSD(the result of the same non-blind deconvolution with the
true kernel)``, both up to shift (Levin et al. 2009 Sec. 5; a ratio below 3 is counted as a
success there). PSNR / SSIM "up to shift" are computed on the aligned overlap, as in
``comp_upto_shift`` of cszn/KAIR ``utils/utils_deblur.py`` (which returns PSNR and SSIM).

Differences from the MATLAB code (documented on :func:`comp_upto_shift`): RGB images are
aligned with one translation shared by the channels and the SSD sums the channels (Levin's
images are grey). The search covers the same full grid of translations, computed faster: for
each of the ``(1/step)^2`` fractional offsets the bilinearly resampled image is formed once and
the SSDs of all its whole-pixel translations come from one FFT cross-correlation and an
integral image; the winner's SSD is then recomputed directly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ._common import as_pair, check_range
from .ssim import ssim

__all__ = ["ShiftScore", "comp_upto_shift", "ssd_upto_shift", "error_ratio"]

FN = "comp_upto_shift"


@dataclass
class ShiftScore:
    """Result of :func:`comp_upto_shift` for a batch of N image pairs.

    Attributes:
        psnr: (N,) float64 dB on the aligned overlap (``inf`` when identical there).
        ssim: (N,) float64 standard Gaussian SSIM (:func:`deblurkit.metrics.ssim`) of the
            aligned overlap.
        ssd: (N,) float64 smallest sum of squared differences over the translations (summed
            over channels and pixels, values on the input scale) -- Levin's ``ssde``.
        shift: (N, 2) float64 ``(dy, dx)`` in pixels: ``aligned[y, x] = restored(y + dy + b,
            x + dx + b)`` (bilinear), i.e. the content of ``restored`` sits ``(dy, dx)`` further
            down/right than in the reference.
        aligned: (N, C, H - 2b, W - 2b) float64, the translated result on the overlap.
        reference: (N, C, H - 2b, W - 2b) float64, the reference cropped by the border ``b``.
    """

    psnr: Tensor
    ssim: Tensor
    ssd: Tensor
    shift: Tensor
    aligned: Tensor
    reference: Tensor


def _check_args(max_shift: float, border: int, step: float, h: int, w: int) -> tuple[int, int]:
    """Validate the search parameters; return (integer search radius m, sub-steps per pixel s)."""
    if not (isinstance(max_shift, (int, float)) and math.isfinite(max_shift) and max_shift >= 0):
        raise ValueError(f"{FN}: max_shift must be a finite number >= 0, got {max_shift!r}")
    if int(max_shift) != max_shift:
        raise ValueError(f"{FN}: max_shift must be a whole number of pixels, got {max_shift!r}")
    m = int(max_shift)
    if isinstance(border, bool) or int(border) != border or border < m:
        raise ValueError(f"{FN}: border must be an integer >= max_shift ({m}), got {border!r}")
    if not (isinstance(step, (int, float)) and 0 < step <= 1):
        raise ValueError(f"{FN}: step must lie in (0, 1] (a fraction of a pixel), got {step!r}")
    s = round(1.0 / step)
    if abs(s * step - 1.0) > 1e-9:
        raise ValueError(f"{FN}: step must be 1/k for an integer k (e.g. 0.25), got {step!r}")
    b = int(border)
    if h - 2 * b < 11 or w - 2 * b < 11:
        raise ValueError(f"{FN}: images of size {h}x{w} leave less than 11x11 px inside a border of {b} px")
    return m, s


def _window(src: Tensor, y: float, x: float, h: int, w: int) -> Tensor:
    """Bilinear sample of the (h, w) window of ``src`` (C, Hs, Ws) whose top-left corner lies at
    the (possibly fractional) position (y, x) of ``src``; needs the window inside ``src``."""
    y0, x0 = math.floor(y), math.floor(x)
    fy, fx = y - y0, x - x0
    if fy > 1e-12:
        rows = src[:, y0:y0 + h] * (1.0 - fy) + src[:, y0 + 1:y0 + 1 + h] * fy
    else:
        rows = src[:, y0:y0 + h]
    if fx > 1e-12:
        return rows[:, :, x0:x0 + w] * (1.0 - fx) + rows[:, :, x0 + 1:x0 + 1 + w] * fx
    return rows[:, :, x0:x0 + w]


def _fft_len(n: int) -> int:
    """Smallest length >= n of the form 2^a 3^b (fast FFT sizes)."""
    best = 1 << max(0, (n - 1).bit_length())
    p3 = 1
    while p3 < best:
        v = p3
        while v < n:
            v *= 2
        best = min(best, v)
        p3 *= 3
    return best


def _box_sums(img: Tensor, h: int, w: int, ny: int, nx: int) -> Tensor:
    """Sums of ``img`` (N, H, W) over the (h, w) windows with top-left corners (0..ny-1, 0..nx-1)."""
    ii = torch.nn.functional.pad(img.cumsum(-2).cumsum(-1), (1, 0, 1, 0))
    return ii[:, h:h + ny, w:w + nx] - ii[:, :ny, w:w + nx] - ii[:, h:h + ny, :nx] + ii[:, :ny, :nx]


def _ssd_grid(win_src: Tensor, ref: Tensor, ref_fft: Tensor, fft_size: tuple[int, int], ny: int, nx: int) -> Tensor:
    """``sum window^2 - 2 <ref, window>`` for the (h, w) windows of ``win_src`` (N, C, Hs, Ws) at
    the integer offsets (0..ny-1, 0..nx-1), i.e. the SSD against ``ref`` (N, C, h, w) less the
    constant ``sum ref^2``. Correlations for all offsets come from one FFT product of size
    ``fft_size`` (>= the source: zero-padded, and the offsets keep every window inside the
    source, so nothing wraps around). Returns (N, ny, nx) float64."""
    h, w = ref.shape[-2:]
    corr = torch.fft.irfft2(torch.fft.rfft2(win_src, s=fft_size) * ref_fft.conj(), s=fft_size)
    corr = corr[..., :ny, :nx].sum(dim=1)
    energy = _box_sums(win_src.pow(2).sum(dim=1), h, w, ny, nx)
    return energy - 2.0 * corr


def comp_upto_shift(
    restored: Tensor,
    reference: Tensor,
    *,
    max_shift: int = 5,
    border: int = 15,
    step: float = 0.25,
    data_range: float = 1.0,
) -> ShiftScore:
    """Align ``restored`` to ``reference`` by the best translation and score the overlap.

    Follows Levin et al., CVPR 2009, ``comp_upto_shift.m`` (module docstring): the reference
    is cropped by ``border`` px on every side; for every translation ``(dy, dx)`` with
    ``|dy|, |dx| <= max_shift`` on a grid of ``step`` px the result is resampled bilinearly at
    the reference's pixel positions plus ``(dy, dx)`` and the sum of squared differences is
    taken; the smallest one wins (exhaustive over the grid, as the MATLAB code; among ties up to
    rounding, the smallest translation). Channels share one translation and their SSDs add up
    (Levin's images are grey). ``step=1`` gives a whole-pixel search only.

    Args:
        restored: (N, C, H, W) or (C, H, W) float, e.g. a deblurred image on [0, data_range];
            used as given (clamp it first if the protocol clamps).
        reference: the sharp image, same shape.
        max_shift: largest translation tried along each axis, whole pixels (Levin: 5).
        border: pixels cropped from every side of the reference (Levin: 15); must be
            ``>= max_shift`` so every translated window stays inside ``restored``.
        step: spacing of the translations tried, ``1/k`` px (Levin: 0.25).
        data_range: peak value for the PSNR and SSIM (1.0 for [0, 1] images).

    Returns:
        :class:`ShiftScore` (float64 tensors on the input's device).

    Raises:
        ValueError: shapes differ, not 3-D/4-D, empty, bad ``max_shift`` / ``border`` /
            ``step`` / ``data_range``, or less than 11x11 px left inside the border.
        TypeError: inputs are not real tensors.

    Example:
        >>> import torch
        >>> ref = torch.rand(1, 3, 64, 64)
        >>> moved = torch.roll(ref, shifts=(2, -1), dims=(-2, -1))
        >>> s = comp_upto_shift(moved, ref)
        >>> s.shift.tolist(), bool(torch.isinf(s.psnr).all())
        ([[2.0, -1.0]], True)
    """
    data_range = check_range(data_range, "data_range", FN)
    x, y = as_pair(restored, reference, FN)
    h_full, w_full = x.shape[-2:]
    m, s = _check_args(max_shift, border, step, h_full, w_full)
    b = int(border)
    x, y = x.to(torch.float64), y.to(torch.float64)
    ref = y[..., b:h_full - b, b:w_full - b]
    src = x[..., b - m:h_full - b + m, b - m:w_full - b + m]  # window at offset m == no shift
    n, _, h, w = ref.shape

    hs, ws = src.shape[-2:]
    fft_size = (_fft_len(hs), _fft_len(ws))
    ref_fft = torch.fft.rfft2(ref, s=fft_size)
    ref_energy = ref.pow(2).sum(dim=(1, 2, 3))
    # every translation of the grid: integer part d - m (d = window offset in `src`) plus a
    # fraction f in {0, 1/s, ..., (s-1)/s}; bilinear resampling at fraction f is a fixed image
    # (one per f), whose integer translations are all scored at once
    cand_ssd, cand_shift = [], []
    for ky in range(s):
        for kx in range(s):
            fy, fx = ky / s, kx / s
            rows = src if ky == 0 else src[..., :-1, :] * (1 - fy) + src[..., 1:, :] * fy
            img = rows if kx == 0 else rows[..., :-1] * (1 - fx) + rows[..., 1:] * fx
            ny, nx = img.shape[-2] - h + 1, img.shape[-1] - w + 1  # 2m + 1, or 2m with a fraction
            grid = _ssd_grid(img, ref, ref_fft, fft_size, ny, nx) + ref_energy[:, None, None]
            dy = torch.arange(ny, dtype=torch.float64, device=x.device) - m + fy
            dx = torch.arange(nx, dtype=torch.float64, device=x.device) - m + fx
            cand_ssd.append(grid.reshape(n, -1))
            cand_shift.append(torch.stack(torch.meshgrid(dy, dx, indexing="ij"), dim=-1).reshape(-1, 2))
    all_ssd = torch.cat(cand_ssd, dim=1)  # (N, K)
    all_shift = torch.cat(cand_shift, dim=0)  # (K, 2)
    # the smallest SSD; among values equal to it up to FFT rounding, the smallest translation
    low = all_ssd.min(dim=1, keepdim=True).values
    tol = 1e-9 * (ref_energy[:, None] + 1.0)
    norm = all_shift.pow(2).sum(dim=1)[None, :].expand(n, -1)
    best = torch.where(all_ssd <= low + tol, norm, torch.full_like(norm, math.inf)).argmin(dim=1)
    shifts = all_shift[best]
    aligned = torch.stack([_window(src[i], m + float(shifts[i, 0]), m + float(shifts[i, 1]), h, w)
                           for i in range(n)])
    ssd = (aligned - ref).pow(2).sum(dim=(1, 2, 3))  # exact: 0 for a pure translation
    mse = ssd / float(ref[0].numel())
    psnr = 10.0 * torch.log10(data_range * data_range / mse)
    return ShiftScore(psnr=psnr, ssim=ssim(aligned, ref, data_range=data_range), ssd=ssd,
                      shift=shifts, aligned=aligned, reference=ref)


def ssd_upto_shift(restored: Tensor, reference: Tensor, **options) -> Tensor:
    """Levin's ``ssde``: the smallest SSD over the translations, (N,) float64.

    Same arguments, options (``max_shift``, ``border``, ``step``) and errors as
    :func:`comp_upto_shift`."""
    return comp_upto_shift(restored, reference, **options).ssd


def error_ratio(restored: Tensor, restored_with_true_kernel: Tensor, sharp: Tensor, **options) -> Tensor:
    """Levin et al. 2009's error ratio ``SSD(restored) / SSD(restored_with_true_kernel)``, up to shift.

    Both SSDs are :func:`ssd_upto_shift` against ``sharp`` (each with its own best
    translation). ``restored_with_true_kernel`` must come from the same non-blind deconvolution
    as ``restored``, run with the true kernel; the ratio is then 1 for a perfect kernel estimate
    and grows as the estimate gets worse (Levin et al. count ``<= 3`` as a success).

    Args:
        restored, restored_with_true_kernel, sharp: (N, C, H, W) or (C, H, W), same shape,
            values on [0, 1] (clamp them first if the protocol clamps).
        options: ``max_shift``, ``border``, ``step`` of :func:`comp_upto_shift`.

    Returns:
        (N,) float64; ``inf`` where the true-kernel result matches ``sharp`` exactly and
        ``restored`` does not, ``nan`` where both match exactly.

    Raises:
        ValueError / TypeError: as :func:`comp_upto_shift`.
    """
    if not isinstance(restored_with_true_kernel, Tensor) or not isinstance(restored, Tensor) \
            or restored.shape != restored_with_true_kernel.shape:
        got = getattr(restored_with_true_kernel, "shape", type(restored_with_true_kernel).__name__)
        raise ValueError(f"error_ratio: restored {tuple(getattr(restored, 'shape', ()))} and "
                         f"restored_with_true_kernel {tuple(got) if not isinstance(got, str) else got} differ in shape")
    num = ssd_upto_shift(restored, sharp, **options)
    den = ssd_upto_shift(restored_with_true_kernel, sharp, **options)
    return num / den
