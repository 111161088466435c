"""Coarse-to-fine schedule of the blind estimators: scales, kernel sizes, image and kernel resizing.

Follows the official MATLAB code of Pan, Sun, Pfister & Yang, "Blind Image Deblurring Using
Dark Channel Prior", CVPR 2016 (``blind_deconv.m``, itself built on Levin et al.'s and Cho &
Lee's code):

- scale ratio ``ret = sqrt(1/2)``; ``floor(log(5 / K) / log(ret)) + 1`` scales so that the
  coarsest kernel is about 5 px; kernel size at scale s (0 = finest) ``ceil(K * ret**s)``,
  made odd (:func:`scale_schedule`);
- the image at each scale is made from the full-resolution image (Levin's ``downSmpImC``): a
  separable Gaussian ``exp(-2 ret^2 n^2)`` truncated to its central part (both tails of the
  cumulative sum > 0.05; *not* renormalised, as in the official code), applied ``valid``, then
  bilinear samples every ``1 / ret`` pixels (:func:`downsample`);
- the kernel passes to the next finer scale by an image-scale resize: MATLAB ``imresize`` by
  ``1 / ret = sqrt(2)`` (bicubic, a = -0.5, symmetric boundary), negatives clipped, then
  trimmed/padded to the next kernel size on its lighter side (Levin's ``fixsize``), normalised
  (:func:`resize_kernel`). Resizing to the new *array* size instead stretches the kernel by
  the wrong factor (research note, bug 4);
- coarsest initial kernel: two pixels of 1/2, horizontally adjacent, just up-left of the
  centre (:func:`initial_kernel`).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "SCALE_RATIO",
    "scale_schedule",
    "downsample",
    "cubic_resize_matrix",
    "imresize",
    "fix_size",
    "resize_kernel",
    "initial_kernel",
]

SCALE_RATIO = math.sqrt(0.5)


def scale_schedule(kernel_size: int, ratio: float = SCALE_RATIO, coarsest: int = 5) -> tuple[list[float], list[int]]:
    """Image scale factors and odd kernel sizes, finest first.

    Args:
        kernel_size: odd kernel size at full resolution (>= 1).
        ratio: scale ratio between consecutive levels (official: sqrt(1/2)).
        coarsest: target kernel size at the coarsest level (official: 5).

    Returns:
        (scales, sizes): ``scales[s] = ratio**s`` and ``sizes[s]`` the odd kernel size there.
    """
    n = max(int(math.floor(math.log(coarsest / kernel_size) / math.log(ratio))), 0) + 1
    scales = [ratio ** s for s in range(n)]
    sizes = []
    for r in scales:
        k = int(math.ceil(kernel_size * r - 1e-9))
        sizes.append(k + 1 if k % 2 == 0 else k)
    return scales, sizes


def _linear_sampling_matrix(n_in: int, step: float, dtype, device) -> Tensor:
    """(n_out, n_in) matrix of linear interpolation at 0, step, 2 step, ... <= n_in - 1."""
    n_out = int(math.floor((n_in - 1) / step + 1e-9)) + 1
    pos = torch.arange(n_out, dtype=torch.float64) * step
    i0 = pos.floor().clamp(max=n_in - 1).long()
    i1 = (i0 + 1).clamp(max=n_in - 1)
    t = pos - i0.to(torch.float64)
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    rows = torch.arange(n_out)
    m.index_put_((rows, i0), 1 - t, accumulate=True)
    m.index_put_((rows, i1), t, accumulate=True)
    return m.to(dtype=dtype, device=device)


def downsample(image: Tensor, scale: float) -> Tensor:
    """Image at ``scale`` (< 1) of (..., H, W) by Levin's ``downSmpImC`` (see module docstring).

    Args:
        image: (..., H, W) float tensor.
        scale: factor in (0, 1]; 1 returns the image unchanged.

    Returns:
        (..., h, w) with h = floor((H - L) * scale) + 1 (L + 1 = Gaussian taps), likewise w.
    """
    if scale >= 1.0:
        return image
    n = torch.arange(-50, 51, dtype=torch.float64)
    sig = scale / math.pi
    sf = torch.exp(-0.5 * (n * 2 * math.pi) ** 2 * sig ** 2)
    sf = sf / sf.sum()
    csf = sf.cumsum(0)
    csf = torch.minimum(csf, csf.flip(0))
    sf = sf[csf > 0.05].to(dtype=image.dtype, device=image.device)  # not renormalised (official)
    t = sf.numel()
    h, w = image.shape[-2:]
    if h < t or w < t:
        raise ValueError(f"downsample: image {h}x{w} too small for scale {scale:.3f} ({t}-tap filter)")
    x = image.unfold(-1, t, 1) @ sf  # valid separable filter (symmetric: conv = correlation)
    x = (x.transpose(-1, -2).unfold(-1, t, 1) @ sf).transpose(-1, -2)
    step = 1.0 / scale
    my = _linear_sampling_matrix(x.shape[-2], step, x.dtype, x.device)
    mx = _linear_sampling_matrix(x.shape[-1], step, x.dtype, x.device)
    return my @ x @ mx.T


def _cubic(x: Tensor) -> Tensor:
    ax = x.abs()
    ax2, ax3 = ax * ax, ax * ax * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))


def cubic_resize_matrix(n_in: int, scale: float) -> Tensor:
    """(ceil(n_in * scale), n_in) float64 matrix of MATLAB ``imresize(..., scale)`` (bicubic,
    upscaling or downscaling without antialiasing; symmetric boundary)."""
    n_out = int(math.ceil(n_in * scale - 1e-9))
    x = torch.arange(1, n_out + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)  # 1-based input coordinate of each output pixel
    left = torch.floor(u - 2)
    ind = left[:, None] + torch.arange(6, dtype=torch.float64)[None, :]
    wts = _cubic(u[:, None] - ind)
    wts = wts / wts.sum(1, keepdim=True)
    aux = torch.cat([torch.arange(n_in), torch.arange(n_in - 1, -1, -1)])  # symmetric extension
    idx = aux[torch.remainder(ind.long() - 1, 2 * n_in)]
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    rows = torch.arange(n_out)[:, None].expand_as(idx)
    m.index_put_((rows.reshape(-1), idx.reshape(-1)), wts.reshape(-1), accumulate=True)
    return m


def imresize(x: Tensor, scale: float) -> Tensor:
    """MATLAB-style bicubic resize of (..., h, w) by ``scale`` (output ceil(h*scale) x ceil(w*scale))."""
    my = cubic_resize_matrix(x.shape[-2], scale).to(dtype=x.dtype, device=x.device)
    mx = cubic_resize_matrix(x.shape[-1], scale).to(dtype=x.dtype, device=x.device)
    return my @ x @ mx.T


def fix_size(k: Tensor, n1: int, n2: int) -> Tensor:
    """Trim or zero-pad a (h, w) kernel one row/column at a time to (n1, n2), always on the side
    with the smaller edge mass (Levin's ``fixsize``)."""
    f = k
    while f.shape[0] != n1 or f.shape[1] != n2:
        h, w = f.shape
        if h > n1:
            s = f.sum(1)
            f = f[1:] if s[0] < s[-1] else f[:-1]
        elif h < n1:
            s = f.sum(1)
            z = f.new_zeros(1, w)
            f = torch.cat([f, z]) if s[0] < s[-1] else torch.cat([z, f])
        h, w = f.shape
        if w > n2:
            s = f.sum(0)
            f = f[:, 1:] if s[0] < s[-1] else f[:, :-1]
        elif w < n2:
            s = f.sum(0)
            z = f.new_zeros(h, 1)
            f = torch.cat([f, z], 1) if s[0] < s[-1] else torch.cat([z, f], 1)
    return f


def resize_kernel(k: Tensor, scale: float, size: int) -> Tensor:
    """Kernel for the next finer level: resize by the image ``scale`` (sqrt(2)), clip negatives,
    fit to (size, size) by :func:`fix_size`, normalise (official ``resizeKer``)."""
    r = imresize(k, scale).clamp_min(0)
    r = fix_size(r, size, size)
    s = r.sum()
    return r / s if s > 0 else r


def initial_kernel(size: int, *, dtype=torch.float32, device=None) -> Tensor:
    """(size, size) coarsest-level kernel: 1/2 at (c-1, c-1) and (c-1, c), c = size // 2
    (official ``init_kernel``; a 1-pixel kernel for size 1)."""
    k = torch.zeros(size, size, dtype=dtype, device=device)
    if size < 3:
        k[size // 2, size // 2] = 1.0
        return k
    c = (size - 1) // 2
    k[c - 1, c - 1 : c + 1] = 0.5
    return k
