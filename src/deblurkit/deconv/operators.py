"""Uniform blur as a linear operator (forward and exact adjoint) and kernel validation.

The forward operator is :func:`deblurkit.synth.blur.blur` (true convolution, kernel centre at
``(kh // 2, kw // 2)``), so a blurry image synthesised with ``synth`` and the model a
deconvolution inverts are the same operator. The adjoint is written as ``E^T V^T`` where ``E``
extends the image by the boundary rule (an index map: reflect or circular) and ``V`` is the
``valid`` convolution; ``V^T`` is the full correlation (zero-padded true convolution with the
flipped kernel) and ``E^T`` scatter-adds every extended pixel back onto the pixel it copies.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..synth.blur import blur, extend

__all__ = ["BlurOperator", "validate_kernel", "normalize_kernel", "OPERATOR_BOUNDARIES"]

OPERATOR_BOUNDARIES = ("valid", "circular", "reflect")
_SUM_TOL = 1e-3


def validate_kernel(kernel: Tensor, image_hw: tuple[int, int] | None = None) -> Tensor:
    """Check a blur kernel and return it unchanged.

    Args:
        kernel: (kh, kw) or (N, kh, kw) real tensor: non-negative, finite, each kernel summing
            to 1 (within 1e-3).
        image_hw: (H, W) of the image the kernel will be applied to; when given the kernel
            must not be larger than it.

    Returns:
        ``kernel`` itself.

    Raises:
        ValueError (one line) for: a non-tensor or wrong number of dimensions, an empty or
        zero-size kernel, non-finite entries, negative entries, an all-zero kernel, a kernel
        larger than the image, or a sum different from 1 (the message says to normalise, e.g.
        with :func:`normalize_kernel`).
    """
    if not isinstance(kernel, Tensor):
        raise ValueError(f"kernel must be a torch.Tensor, got {type(kernel).__name__}")
    if kernel.dim() not in (2, 3):
        raise ValueError(f"kernel must be (kh, kw) or (N, kh, kw), got shape {tuple(kernel.shape)}")
    if kernel.numel() == 0:
        raise ValueError(f"kernel is empty (shape {tuple(kernel.shape)})")
    if kernel.is_complex() or not kernel.is_floating_point():
        kernel_f = kernel.real.double() if kernel.is_complex() else kernel.double()
    else:
        kernel_f = kernel
    if not bool(torch.isfinite(kernel_f).all()):
        raise ValueError("kernel has non-finite entries (NaN or inf)")
    if bool((kernel_f < 0).any()):
        raise ValueError(f"kernel has negative entries (min {float(kernel_f.min()):.3g}); blur kernels must be >= 0")
    flat = kernel_f.reshape(-1, kernel_f.shape[-2] * kernel_f.shape[-1]).double()
    if bool((flat.abs().sum(-1) == 0).any()):
        raise ValueError("kernel is all zeros")
    kh, kw = kernel.shape[-2:]
    if image_hw is not None:
        h, w = int(image_hw[0]), int(image_hw[1])
        if kh > h or kw > w:
            raise ValueError(f"kernel {kh}x{kw} is larger than the image {h}x{w}")
    sums = flat.sum(-1)
    bad = (sums - 1).abs() > _SUM_TOL
    if bool(bad.any()):
        s = float(sums[bad][0])
        raise ValueError(f"kernel sums to {s:.6g}, not 1: normalise it (kernel / kernel.sum(), or normalize_kernel)")
    return kernel


def normalize_kernel(kernel: Tensor, *, clip_negative: bool = True) -> Tensor:
    """Return the kernel(s) scaled to sum 1 (negative entries set to 0 first by default).

    Args:
        kernel: (kh, kw) or (N, kh, kw) real, finite.
        clip_negative: set negative entries to zero before normalising.

    Returns:
        Same shape and dtype, each kernel summing to 1.

    Raises:
        ValueError: wrong shape, empty, non-finite, or a kernel with no positive mass.
    """
    if not isinstance(kernel, Tensor) or kernel.dim() not in (2, 3) or kernel.numel() == 0:
        shape = tuple(kernel.shape) if isinstance(kernel, Tensor) else type(kernel).__name__
        raise ValueError(f"kernel must be a non-empty (kh, kw) or (N, kh, kw) tensor, got {shape}")
    if not bool(torch.isfinite(kernel).all()):
        raise ValueError("kernel has non-finite entries (NaN or inf)")
    k = kernel.clamp(min=0) if clip_negative else kernel
    s = k.sum(dim=(-2, -1), keepdim=True)
    if bool((s <= 0).any()):
        raise ValueError("kernel has no positive mass to normalise")
    return k / s


def _ext_pad(kh: int, kw: int) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) extension that ``blur`` uses for a non-valid boundary."""
    return (kw - 1 - kw // 2, kw // 2, kh - 1 - kh // 2, kh // 2)


class BlurOperator:
    """Uniform blur ``A x = k * x`` (true convolution) with a boundary rule, and its adjoint.

    Args:
        kernel: (kh, kw) shared by the batch, or (N, kh, kw) one per image; validated by
            :func:`validate_kernel` (non-negative, sum 1).
        boundary: ``valid`` (no boundary invented; (H, W) -> (H - kh + 1, W - kw + 1), the
            model of a real photograph), ``circular`` (wrap-around; the FFT model) or
            ``reflect`` (``... c b | a b c d | c b ...``); the other two keep the size.

    ``op(x)`` / ``op.forward(x)`` equals ``deblurkit.synth.blur.blur(x, kernel, boundary)`` for
    x of shape (N, C, H, W) (any real dtype; the kernel is cast to it and moved to its device).
    ``op.adjoint(y)`` satisfies ``<A x, y> = <x, A^T y>`` exactly (up to rounding); for ``valid``
    it needs the image size, taken from ``y`` (``(h + kh - 1, w + kw - 1)``).

    Raises:
        ValueError: unknown boundary, bad kernel, or (in the calls) shapes that do not fit.
    """

    def __init__(self, kernel: Tensor, boundary: str = "valid") -> None:
        if boundary not in OPERATOR_BOUNDARIES:
            raise ValueError(f"boundary must be one of {OPERATOR_BOUNDARIES}, got {boundary!r}")
        validate_kernel(kernel)
        self.kernel = kernel
        self.boundary = boundary

    @property
    def kernel_size(self) -> tuple[int, int]:
        return int(self.kernel.shape[-2]), int(self.kernel.shape[-1])

    def _check(self, x: Tensor, what: str) -> None:
        if not isinstance(x, Tensor) or x.dim() != 4:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{what} must be (N, C, H, W), got {shape}")
        if self.kernel.dim() == 3 and self.kernel.shape[0] not in (1, x.shape[0]):
            raise ValueError(f"{self.kernel.shape[0]} kernels for a batch of {x.shape[0]} images")

    def _k(self, x: Tensor) -> Tensor:
        return self.kernel.to(device=x.device, dtype=x.dtype)

    def forward(self, x: Tensor) -> Tensor:
        """A x: (N, C, H, W) -> (N, C, H, W), or (N, C, H - kh + 1, W - kw + 1) for ``valid``."""
        self._check(x, "x")
        kh, kw = self.kernel_size
        if kh > x.shape[-2] or kw > x.shape[-1]:
            raise ValueError(f"kernel {kh}x{kw} is larger than the image {x.shape[-2]}x{x.shape[-1]}")
        return blur(x, self._k(x), self.boundary)

    __call__ = forward

    def adjoint(self, y: Tensor, image_hw: tuple[int, int] | None = None) -> Tensor:
        """A^T y.

        Args:
            y: (N, C, h, w) in the range space of :meth:`forward`.
            image_hw: (H, W) of the domain; defaults to ``(h + kh - 1, w + kw - 1)`` for
                ``valid`` and ``(h, w)`` otherwise (the only consistent choices).

        Returns:
            (N, C, H, W).
        """
        self._check(y, "y")
        kh, kw = self.kernel_size
        k = self._k(y)
        kf = torch.flip(k, dims=(-2, -1))
        h, w = y.shape[-2:]
        # V^T: full correlation = valid true convolution of the zero-padded y with the flipped kernel
        full = blur(F.pad(y, (kw - 1, kw - 1, kh - 1, kh - 1)), kf, "valid")
        if self.boundary == "valid":
            if image_hw is not None and tuple(image_hw) != (h + kh - 1, w + kw - 1):
                raise ValueError(f"valid adjoint of a {h}x{w} image has size {(h + kh - 1, w + kw - 1)}, not {tuple(image_hw)}")
            return full
        if image_hw is not None and tuple(image_hw) != (h, w):
            raise ValueError(f"{self.boundary} adjoint keeps the size {h}x{w}, not {tuple(image_hw)}")
        # E^T: scatter-add each extended pixel onto the image pixel it was copied from
        pad = _ext_pad(kh, kw)
        idx = torch.arange(h * w, device=y.device, dtype=torch.float64).view(1, h, w)
        src = extend(idx, pad, self.boundary)[0].round().long().reshape(-1)
        out = torch.zeros(*full.shape[:2], h * w, dtype=full.dtype, device=full.device)
        out.index_add_(-1, src, full.reshape(*full.shape[:2], -1))
        return out.view(*full.shape[:2], h, w)

    def __repr__(self) -> str:
        return f"BlurOperator(kernel={tuple(self.kernel.shape)}, boundary={self.boundary!r})"
