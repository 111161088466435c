"""Pixel and frequency losses shared by the training recipes.

All losses take predictions and targets of shape (N, C, H, W), float, any range (the recipes use
[0, 1]) and return a scalar tensor (mean reduction).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def l1_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error."""
    return F.l1_loss(pred, target)


def mse_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error."""
    return F.mse_loss(pred, target)


def charbonnier_loss(pred: Tensor, target: Tensor, eps: float = 1e-3) -> Tensor:
    """Charbonnier loss ``mean(sqrt((pred - target)^2 + eps^2))`` (MPRNet / RSS-T, eps 1e-3)."""
    return torch.sqrt((pred - target) ** 2 + eps * eps).mean()


def fft_l1_loss(pred: Tensor, target: Tensor) -> Tensor:
    """L1 distance between 2-D real FFTs (real and imaginary parts), as MIMO-UNet's ``loss_fft``.

    Follows chosj95/MIMO-UNet ``train.py``: ``rfft2`` over (H, W) of prediction and target,
    real and imaginary parts stacked, mean absolute difference.
    """
    fp = torch.view_as_real(torch.fft.rfft2(pred.float()))
    ft = torch.view_as_real(torch.fft.rfft2(target.float()))
    return F.l1_loss(fp, ft)


def psnr_loss(pred: Tensor, target: Tensor, eps: float = 1e-8) -> Tensor:
    """Negative PSNR on [0, 1] images (HINet / MSDI-Net ``PSNRLoss``: ``10 * log10(mse + eps)``).

    Returns the batch mean of ``10 * log10(mean((pred - target)^2) + eps)`` per image, which is
    ``-PSNR`` in dB for data range 1.
    """
    mse = ((pred - target) ** 2).flatten(1).mean(dim=1)
    return (10.0 * torch.log10(mse + eps)).mean()


LOSSES = {
    "l1": l1_loss,
    "mse": mse_loss,
    "charbonnier": charbonnier_loss,
    "fft_l1": fft_l1_loss,
    "psnr": psnr_loss,
}


def multiscale_targets(target: Tensor, n_scales: int) -> list[Tensor]:
    """Targets for multi-scale outputs, coarsest first: bilinear halving as MIMO-UNet's ``train.py``.

    Args:
        target: (N, C, H, W) full-resolution target.
        n_scales: number of outputs; output ``i`` has size ``H / 2**(n_scales-1-i)``.
    """
    out = [target]
    for _ in range(n_scales - 1):
        out.insert(0, F.interpolate(out[0], scale_factor=0.5, mode="bilinear", align_corners=False))
    return out


class WeightedLoss(torch.nn.Module):
    """A weighted sum of named losses, applied to every output of a multi-scale list.

    Args:
        terms: sequence of ``{"type": name, "weight": float, **kwargs}`` with ``name`` in
            :data:`LOSSES`.

    Raises:
        ValueError: an unknown loss name.
    """

    def __init__(self, terms: Sequence[dict]):
        super().__init__()
        self.terms = []
        for t in terms:
            t = dict(t)
            name = t.pop("type")
            if name not in LOSSES:
                raise ValueError(f"unknown loss {name!r}; known: {sorted(LOSSES)}")
            weight = float(t.pop("weight", 1.0))
            self.terms.append((name, weight, t))

    def forward(self, outputs: Tensor | Sequence[Tensor], target: Tensor) -> tuple[Tensor, dict[str, float]]:
        """Return (total loss, per-term values for logging). ``outputs`` is a tensor or a list
        ordered coarsest first (MIMO-UNet / RSS-T convention)."""
        outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
        targets = multiscale_targets(target, len(outs)) if len(outs) > 1 else [target]
        total = torch.zeros((), device=target.device)
        parts: dict[str, float] = {}
        for name, weight, kw in self.terms:
            value = sum(LOSSES[name](o.float(), t.float(), **kw) for o, t in zip(outs, targets))
            parts[name] = float(value.detach())
            total = total + weight * value
        return total, parts
