"""Padding an image batch to a network's size multiple, and cropping the padding off again.

Most deblurring networks downsample by a fixed factor (MIMO-UNet: 4, U-Nets with three
poolings: 8, window attention: the window size times the downsampling), so their input height
and width must be multiples of that factor (``ModelDescriptor.size_multiple``). The official
test scripts of these systems pad at the bottom and right only and crop the output back; this
module does the same, so pixel (0, 0) keeps its position and a network's stride grid lines up
with the unpadded image.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["pad_to_multiple", "crop_padding", "reflect_indices"]

_MODES = ("reflect", "replicate", "constant")


def reflect_indices(size: int, pad: int, *, device: torch.device | None = None) -> torch.Tensor:
    """Source indices for extending a length-``size`` axis by ``pad`` samples at its end.

    Uses "reflect without repeating the edge" (numpy ``reflect``, PyTorch ``reflect``), applied
    periodically when ``pad >= size`` (the signal is mirrored back and forth with period
    ``2 * (size - 1)``), so any pad length is allowed. For ``size == 1`` every index is 0, which
    equals ``replicate``.

    Returns:
        Long tensor of shape ``(size + pad,)`` with values in ``[0, size)``; the first ``size``
        entries are ``0 .. size-1``.
    """
    if size < 1 or pad < 0:
        raise ValueError(f"reflect_indices needs size >= 1 and pad >= 0, got size={size}, pad={pad}")
    idx = torch.arange(size + pad, device=device)
    if size == 1:
        return torch.zeros_like(idx)
    period = 2 * (size - 1)
    m = idx % period
    return torch.where(m < size, m, period - m)


def _pad_amount(size: int, multiple: int) -> int:
    return (-size) % multiple


def pad_to_multiple(
    x: torch.Tensor, multiple: int, mode: str = "reflect", value: float = 0.0
) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Pad height and width of ``x`` up to the next multiple of ``multiple`` (bottom/right only).

    Args:
        x: ``(N, C, H, W)`` tensor (any dtype, any device). ``(C, H, W)`` is accepted too.
        multiple: positive int; ``1`` returns ``x`` unchanged.
        mode: ``"reflect"`` (default, what the official test scripts use), ``"replicate"`` or
            ``"constant"`` (filled with ``value``).
            Reflect padding needs ``pad < size`` in PyTorch; for images smaller than the pad
            (e.g. a 2-pixel-high strip padded to 8) this function falls back to *repeated*
            reflection (the image mirrored back and forth, see :func:`reflect_indices`), and to
            replicate for a 1-pixel axis. The result is the same as PyTorch's reflect whenever
            that is defined.
        value: fill value for ``mode="constant"``.

    Returns:
        ``(padded, pads)`` where ``padded`` has shape ``(N, C, H + pb, W + pr)`` with both sizes
        divisible by ``multiple``, and ``pads = (left, right, top, bottom) = (0, pr, 0, pb)`` in
        the order of :func:`torch.nn.functional.pad`, for :func:`crop_padding`.

    Raises:
        ValueError: ``multiple < 1``, an unknown ``mode``, a tensor that is not 3-D/4-D, or an
            empty spatial axis.
    """
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    if mode not in _MODES:
        raise ValueError(f"unknown padding mode {mode!r}; expected one of {_MODES}")
    if x.dim() not in (3, 4):
        raise ValueError(f"expected a (N,C,H,W) or (C,H,W) tensor, got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h < 1 or w < 1:
        raise ValueError(f"cannot pad an empty image of size {h}x{w}")
    pb, pr = _pad_amount(h, multiple), _pad_amount(w, multiple)
    pads = (0, pr, 0, pb)
    if pb == 0 and pr == 0:
        return x, pads
    if mode == "constant":
        return F.pad(x, pads, mode="constant", value=value), pads
    if mode == "replicate" or (pb < h and pr < w):
        # F.pad handles replicate always and reflect whenever pad < size.
        squeeze = x.dim() == 3
        y = F.pad(x.unsqueeze(0) if squeeze else x, pads, mode=mode)
        return (y.squeeze(0) if squeeze else y), pads
    # Reflect with a pad at least as large as the axis: index-based repeated reflection.
    y = x
    if pb:
        y = y.index_select(-2, reflect_indices(h, pb, device=x.device))
    if pr:
        y = y.index_select(-1, reflect_indices(w, pr, device=x.device))
    return y, pads


def crop_padding(y: torch.Tensor, pads: tuple[int, int, int, int], scale: int = 1) -> torch.Tensor:
    """Remove padding added by :func:`pad_to_multiple` from a (network output) tensor.

    Args:
        y: ``(..., H', W')`` tensor, typically the network output for the padded input.
        pads: ``(left, right, top, bottom)`` as returned by :func:`pad_to_multiple`.
        scale: output/input size ratio of the network (1 for deblurring; an integer for
            super-resolution-like networks), the pads are multiplied by it.

    Returns:
        A view of ``y`` with the padding cropped: ``(..., H' - s*(top+bottom), W' - s*(left+right))``.

    Raises:
        ValueError: if the pads do not fit inside ``y``.
    """
    left, right, top, bottom = (int(p) * scale for p in pads)
    h, w = y.shape[-2:]
    if top + bottom >= h or left + right >= w:
        raise ValueError(f"pads {tuple(pads)} (scale {scale}) do not fit a tensor of size {h}x{w}")
    return y[..., top : h - bottom, left : w - right]
