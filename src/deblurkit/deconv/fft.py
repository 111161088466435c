"""FFT conventions shared by every deconvolution routine in :mod:`deblurkit.deconv`.

One convention for the whole package (the same as :func:`deblurkit.synth.blur.blur`): a kernel
``k`` of shape (kh, kw) is applied by *true* convolution with its centre pixel at
``(kh // 2, kw // 2)``. :func:`psf2otf` turns such a kernel into the transfer function of the
circular convolution on an (H, W) grid (MATLAB's ``psf2otf``, which Krishnan & Fergus 2009,
Xu & Jia 2010 and Pan et al. 2016 all use); :func:`otf2psf` is its inverse (crop back to the
kernel support). Real-input FFTs (``rfft2``) are used throughout: spectra have W // 2 + 1
columns.

The finite-difference operators are forward differences with circular wrap-around,
``dx(x)[..., i, j] = x[..., i, j + 1] - x[..., i, j]`` and ``dy`` likewise down the rows; their
transfer functions are :func:`grad_otfs`. The adjoint of ``dx`` is ``-`` the backward
difference, computed by :func:`grad_adjoint`. (Research note: a gradient operator inconsistent
with its FFT transfer function -- a sign or one-pixel offset -- collapses a blind kernel
estimate to a delta; ``tests/test_deconv_fft.py`` checks these identities.)
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..synth.blur import fast_len

__all__ = [
    "fast_len",
    "fast_shape",
    "psf2otf",
    "otf2psf",
    "grad",
    "grad_adjoint",
    "grad_otfs",
    "conv_circular",
]


def fast_shape(h: int, w: int) -> tuple[int, int]:
    """(fast_len(h), fast_len(w))."""
    return fast_len(h), fast_len(w)


def psf2otf(kernel: Tensor, shape: tuple[int, int]) -> Tensor:
    """Transfer function (``rfft2``) of circular convolution with ``kernel`` on an ``shape`` grid.

    Args:
        kernel: (..., kh, kw) real kernel(s), centre pixel at ``(kh // 2, kw // 2)``.
        shape: (H, W) of the grid, each at least the kernel's size.

    Returns:
        (..., H, W // 2 + 1) complex tensor (complex64 for float32 input, complex128 for float64).

    Raises:
        ValueError: the kernel is larger than the grid.
    """
    h, w = int(shape[0]), int(shape[1])
    kh, kw = kernel.shape[-2:]
    if kh > h or kw > w:
        raise ValueError(f"kernel {kh}x{kw} is larger than the FFT grid {h}x{w}")
    pad = torch.zeros(*kernel.shape[:-2], h, w, dtype=kernel.dtype, device=kernel.device)
    pad[..., :kh, :kw] = kernel
    pad = torch.roll(pad, shifts=(-(kh // 2), -(kw // 2)), dims=(-2, -1))
    return torch.fft.rfft2(pad)


def otf2psf(otf: Tensor, kernel_shape: tuple[int, int], shape: tuple[int, int]) -> Tensor:
    """Inverse of :func:`psf2otf`: the (kh, kw) kernel whose circular convolution on the
    ``shape`` grid has transfer function ``otf`` (entries outside the support are dropped).

    Args:
        otf: (..., H, W // 2 + 1) complex spectrum.
        kernel_shape: (kh, kw).
        shape: (H, W) of the grid (needed because ``rfft2`` loses the parity of W).

    Returns:
        (..., kh, kw) real tensor.
    """
    h, w = int(shape[0]), int(shape[1])
    kh, kw = int(kernel_shape[0]), int(kernel_shape[1])
    full = torch.fft.irfft2(otf, s=(h, w))
    full = torch.roll(full, shifts=(kh // 2, kw // 2), dims=(-2, -1))
    return full[..., :kh, :kw]


def grad(x: Tensor) -> tuple[Tensor, Tensor]:
    """Circular forward differences ``(dx, dy)`` of (..., H, W): ``dx[i, j] = x[i, j+1] - x[i, j]``."""
    dx = torch.roll(x, shifts=-1, dims=-1) - x
    dy = torch.roll(x, shifts=-1, dims=-2) - x
    return dx, dy


def grad_adjoint(gx: Tensor, gy: Tensor) -> Tensor:
    """Adjoint of :func:`grad`: ``D_x^T gx + D_y^T gy`` (minus the circular backward divergence)."""
    return (torch.roll(gx, shifts=1, dims=-1) - gx) + (torch.roll(gy, shifts=1, dims=-2) - gy)


def grad_otfs(shape: tuple[int, int], *, dtype: torch.dtype = torch.float32,
              device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """Transfer functions (rfft2 layout, (H, W // 2 + 1)) of the two :func:`grad` operators."""
    h, w = int(shape[0]), int(shape[1])
    fx = torch.zeros(h, w, dtype=dtype, device=device)
    fx[0, 0], fx[0, -1] = -1.0, 1.0  # dx = x[j+1] - x[j]: impulse response at j = 0 and j = -1
    fy = torch.zeros(h, w, dtype=dtype, device=device)
    fy[0, 0], fy[-1, 0] = -1.0, 1.0
    return torch.fft.rfft2(fx), torch.fft.rfft2(fy)


def conv_circular(x: Tensor, kernel: Tensor) -> Tensor:
    """Circular true convolution of (..., H, W) with a centred (kh, kw) kernel (broadcast over
    leading dimensions), via the FFT at the image's own size."""
    h, w = x.shape[-2:]
    return torch.fft.irfft2(torch.fft.rfft2(x) * psf2otf(kernel.to(x.dtype), (h, w)), s=(h, w))
