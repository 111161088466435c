"""Uniform (spatially invariant) blur: true 2-D convolution with boundary handling.

``blur(x, k)[n, c, y, x] = sum_{i,j} k[n, i, j] * x_ext[n, c, y + kh//2 - i, x + kw//2 - j]``,
i.e. true convolution (not the correlation ``conv2d`` computes) with the kernel centre at
``(kh // 2, kw // 2)``, where ``x_ext`` extends the image beyond its border by ``boundary``:

============  ================================  ===========================================
boundary      extension (1-D, image a b c d)     same as
============  ================================  ===========================================
reflect       ... c b | a b c d | c b ...       numpy/torch ``reflect``, scipy.ndimage ``mirror``,
                                                OpenCV ``BORDER_REFLECT_101``
symmetric     ... b a | a b c d | d c ...       numpy ``symmetric``, scipy.ndimage ``reflect``,
                                                MATLAB ``imfilter(..., 'symmetric')``
replicate     ... a a | a b c d | d d ...       scipy.ndimage ``nearest``
circular      ... c d | a b c d | a b ...       scipy.ndimage ``wrap`` (FFT-domain blur)
zero          ... 0 0 | a b c d | 0 0 ...       scipy.ndimage ``constant`` (cval 0)
valid         no extension: output (H-kh+1, W-kw+1)  scipy.signal.convolve2d ``valid``
============  ================================  ===========================================

For synthesising training pairs use ``valid`` (no boundary is invented): blur a sharp region
larger than the target by ``k - 1`` and crop the sharp image to the same region
(:func:`blur_valid_pair`), as done for camera-shake datasets built from larger frames.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["blur", "blur_valid_pair", "BOUNDARY_MODES", "extend", "fast_len"]

BOUNDARY_MODES = ("reflect", "symmetric", "replicate", "circular", "zero", "valid")


def _ext_index(n: int, before: int, after: int, mode: str, device) -> torch.Tensor:
    """Indices into a length-n axis realising the extension ``mode`` by ``before``/``after``."""
    i = torch.arange(-before, n + after, device=device)
    if mode == "circular":
        return i.remainder(n)
    if mode == "replicate":
        return i.clamp(0, n - 1)
    if mode == "reflect":
        if n == 1:
            return torch.zeros_like(i)
        p = 2 * n - 2
        i = i.remainder(p)
        return torch.where(i >= n, p - i, i)
    if mode == "symmetric":
        p = 2 * n
        i = i.remainder(p)
        return torch.where(i >= n, p - 1 - i, i)
    raise ValueError(f"unknown boundary {mode!r}")


def extend(x: torch.Tensor, pad: tuple[int, int, int, int], boundary: str) -> torch.Tensor:
    """Extend (..., H, W) by ``pad = (left, right, top, bottom)`` pixels with ``boundary``
    (any of ``BOUNDARY_MODES`` except ``valid``); pads may exceed the image size."""
    left, right, top, bottom = pad
    if boundary == "zero":
        return F.pad(x, (left, right, top, bottom))
    h, w = x.shape[-2:]
    iy = _ext_index(h, top, bottom, boundary, x.device)
    ix = _ext_index(w, left, right, boundary, x.device)
    return x.index_select(-2, iy).index_select(-1, ix)


def fast_len(n: int) -> int:
    """Smallest m >= n whose prime factors are 2, 3 and 5 (fast FFT sizes)."""
    m = max(int(n), 1)
    while True:
        r = m
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 1


def _valid_conv_direct(xp: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Valid true convolution by grouped conv2d. xp (N,C,Hp,Wp); k (N,kh,kw) or (kh,kw)."""
    n, c = xp.shape[:2]
    kf = torch.flip(k, dims=(-2, -1)).to(xp.dtype)  # conv2d correlates: flip for convolution
    if kf.dim() == 2:
        w = kf[None, None].expand(c, 1, *kf.shape).contiguous()
        return F.conv2d(xp, w, groups=c)
    w = kf[:, None].expand(n, c, *kf.shape[-2:]).reshape(n * c, 1, *kf.shape[-2:])
    out = F.conv2d(xp.reshape(1, n * c, *xp.shape[-2:]), w, groups=n * c)
    return out.view(n, c, *out.shape[-2:])


def _valid_conv_fft(xp: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Valid true convolution via the FFT (no wrap-around reaches the valid region)."""
    hp, wp = xp.shape[-2:]
    kh, kw = k.shape[-2:]
    fh, fw = fast_len(hp), fast_len(wp)
    dtype = torch.float64 if xp.dtype == torch.float64 else torch.float32
    X = torch.fft.rfft2(xp.to(dtype), s=(fh, fw))
    K = torch.fft.rfft2(k.to(dtype), s=(fh, fw))
    K = K[None, None] if k.dim() == 2 else K[:, None]
    y = torch.fft.irfft2(X * K, s=(fh, fw))
    return y[..., kh - 1 : hp, kw - 1 : wp].to(xp.dtype)


def blur(
    images: torch.Tensor,
    kernels: torch.Tensor,
    boundary: str = "reflect",
    *,
    method: str = "auto",
) -> torch.Tensor:
    """Blur images with spatially invariant kernels (true convolution), batched.

    Args:
        images: (N, C, H, W) or (C, H, W) float tensor (any range; typically [0, 1]).
        kernels: (kh, kw) shared by all images, or (N, kh, kw) one per image (a (1, kh, kw)
            kernel is broadcast). Kernels are used as given (not renormalised).
        boundary: one of ``reflect``, ``symmetric``, ``replicate``, ``circular``, ``zero``,
            ``valid`` (see the module docstring for the exact extensions).
        method: ``direct`` (grouped ``conv2d`` with the flipped kernel), ``fft`` (zero-padded
            FFT, exact linear convolution of the extended image) or ``auto`` (FFT for kernels
            larger than 11x11).

    Returns:
        Same dtype as ``images``; (N, C, H, W) (or (C, H, W) for a 3-D input), or for
        ``valid`` (N, C, H - kh + 1, W - kw + 1), the region whose every output pixel sees
        only real image pixels.

    Raises:
        ValueError: bad shapes, unknown boundary/method, or a kernel larger than the image
            in ``valid`` mode.
    """
    if boundary not in BOUNDARY_MODES:
        raise ValueError(f"boundary must be one of {BOUNDARY_MODES}, got {boundary!r}")
    if method not in ("auto", "direct", "fft"):
        raise ValueError(f"method must be 'auto', 'direct' or 'fft', got {method!r}")
    single = images.dim() == 3
    x = images[None] if single else images
    if x.dim() != 4:
        raise ValueError(f"images must be (N,C,H,W) or (C,H,W), got {tuple(images.shape)}")
    k = kernels
    if k.dim() == 3 and k.shape[0] == 1:
        k = k[0]
    if k.dim() == 3 and k.shape[0] != x.shape[0]:
        raise ValueError(f"{k.shape[0]} kernels for {x.shape[0]} images")
    if k.dim() not in (2, 3):
        raise ValueError(f"kernels must be (kh,kw) or (N,kh,kw), got {tuple(kernels.shape)}")
    k = k.to(device=x.device)
    kh, kw = k.shape[-2:]
    h, w = x.shape[-2:]
    if boundary == "valid":
        if kh > h or kw > w:
            raise ValueError(f"valid blur needs the image ({h}x{w}) at least as large as the kernel ({kh}x{kw})")
        xp = x
    else:
        # output pixel y sees x[y + kh//2 - i], i in [0, kh): pad top kh-1-kh//2, bottom kh//2
        xp = extend(x, (kw - 1 - kw // 2, kw // 2, kh - 1 - kh // 2, kh // 2), boundary)
    use_fft = method == "fft" or (method == "auto" and kh * kw > 121)
    out = _valid_conv_fft(xp, k) if use_fft else _valid_conv_direct(xp, k)
    return out[0] if single else out


def blur_valid_pair(
    sharp: torch.Tensor, kernel: torch.Tensor, *, method: str = "auto"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Blur without inventing a boundary: return ``(blurry, sharp_cropped)`` on the valid region.

    Args:
        sharp: (C, H, W) or (N, C, H, W) image(s), larger than the wanted output by ``k - 1``.
        kernel: (kh, kw) or (N, kh, kw).

    Returns:
        ``blurry = blur(sharp, kernel, "valid")`` of size (H - kh + 1, W - kw + 1) and the sharp
        image cropped to the same pixels (rows ``kh - 1 - kh//2`` .. , columns likewise), so that
        ``blurry`` is exactly the convolution of the full sharp scene, aligned with the crop
        (the kernel centre ``(kh//2, kw//2)`` maps each blurry pixel onto its sharp pixel).
    """
    kh, kw = kernel.shape[-2:]
    blurry = blur(sharp, kernel, "valid", method=method)
    top, left = kh - 1 - kh // 2, kw - 1 - kw // 2
    hv, wv = blurry.shape[-2:]
    return blurry, sharp[..., top : top + hv, left : left + wv]
