"""Losses: pixel and frequency (this file), perceptual and adversarial (later)."""
from .pixel import (
    LOSSES,
    WeightedLoss,
    charbonnier_loss,
    fft_l1_loss,
    l1_loss,
    mse_loss,
    multiscale_targets,
    psnr_loss,
)

__all__ = [
    "LOSSES",
    "WeightedLoss",
    "charbonnier_loss",
    "fft_l1_loss",
    "l1_loss",
    "mse_loss",
    "multiscale_targets",
    "psnr_loss",
]
