"""Losses: pixel and frequency (:mod:`.pixel`), VGG perceptual (:mod:`.vgg`, :mod:`.perceptual`)."""
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
from .perceptual import BLUR2BLUR_VGG_LAYERS, BLUR2BLUR_VGG_WEIGHTS, VGGPerceptualLoss, blur2blur_perceptual_loss
from .vgg import VGGFeatureExtractor

__all__ = [
    "LOSSES",
    "WeightedLoss",
    "charbonnier_loss",
    "fft_l1_loss",
    "l1_loss",
    "mse_loss",
    "multiscale_targets",
    "psnr_loss",
    "BLUR2BLUR_VGG_LAYERS",
    "BLUR2BLUR_VGG_WEIGHTS",
    "VGGPerceptualLoss",
    "blur2blur_perceptual_loss",
    "VGGFeatureExtractor",
]
