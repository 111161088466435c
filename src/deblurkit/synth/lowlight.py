"""Low-light noise model of Zhou et al., *Deblurring Low-Light Images with Events* (IJCV 2023).

Follows ``LowLightNoise`` in ``scripts/script_utils/LowLightNoise.py`` of
fourson/Deblurring-Low-Light-Images-with-Events (equations and constants; the code is ours).
Per sample, ``sigma1, sigma2, sigma3 ~ U(0.01, 0.02)`` and ``w ~ U(0.65, 0.75)`` are drawn once
and shared by the RGB and the APS image. With ``N(x, s x)`` a signal-dependent Gaussian:

* RGB (Bayer branch): ``n1 = demosaic(uint8(255 * clip(N(bayer_RGGB(x), sigma1 bayer), 0, 1))) / 255``
  (OpenCV's bilinear ``COLOR_BayerBG2RGB``, i.e. an RGGB mosaic), ``n2 = N(x, sigma2 x)``,
  ``y = w n1 + (1 - w) n2``;
* grey (APS): ``y = N(x, sigma2 x)``;
* then both: ``y = clip(y, 0, 1)``, ``y = clip(N(y, sigma3 y), 0, 1)`` and 8-bit quantisation
  ``floor(255 y) / 255``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import cv2
import numpy as np

__all__ = ["LowLightNoise", "rgb_to_bayer_rggb", "demosaic_rggb", "quantize_floor_8bit"]

RandomSource = Union[np.random.Generator, np.random.RandomState]


def rgb_to_bayer_rggb(rgb: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` RGB -> ``(H, W)`` RGGB mosaic (R at even row/even column, B at odd/odd)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {rgb.shape}")
    raw = np.empty(rgb.shape[:2], dtype=rgb.dtype)
    raw[0::2, 0::2] = rgb[0::2, 0::2, 0]
    raw[0::2, 1::2] = rgb[0::2, 1::2, 1]
    raw[1::2, 0::2] = rgb[1::2, 0::2, 1]
    raw[1::2, 1::2] = rgb[1::2, 1::2, 2]
    return raw


def demosaic_rggb(raw: np.ndarray) -> np.ndarray:
    """``(H, W)`` RGGB mosaic in [0, 1] -> ``(H, W, 3)`` float32 RGB in [0, 1].

    Truncates to 8 bits first (``uint8(255 raw)``, as the official code; OpenCV demosaics 8-bit).
    """
    raw8 = (np.clip(raw, 0, 1) * 255).astype(np.uint8)
    return cv2.cvtColor(raw8, cv2.COLOR_BAYER_BG2RGB).astype(np.float32) / np.float32(255)


def quantize_floor_8bit(x: np.ndarray) -> np.ndarray:
    """``floor(255 x) / 255`` as float32 (the official 8-bit quantisation; ``x`` in [0, 1])."""
    return (np.floor(np.asarray(x, np.float32) * np.float32(255)) / np.float32(255)).astype(np.float32)


@dataclass
class LowLightNoise:
    """The official low-light noise; parameters drawn by :meth:`draw`.

    Attributes: ``sigma1`` (Bayer), ``sigma2`` (image), ``sigma3`` (after clipping) relative
    standard deviations, ``w`` weight of the Bayer branch.
    """

    sigma1: float
    sigma2: float
    sigma3: float
    w: float

    @classmethod
    def draw(cls, rng: RandomSource) -> "LowLightNoise":
        """Draw ``sigma1, sigma2, sigma3 ~ U(0.01, 0.02)``, ``w ~ U(0.65, 0.75)`` (in that order)."""
        s1 = float(rng.uniform(0.01, 0.02))
        s2 = float(rng.uniform(0.01, 0.02))
        s3 = float(rng.uniform(0.01, 0.02))
        w = float(rng.uniform(0.65, 0.75))
        return cls(s1, s2, s3, w)

    def apply(self, image: np.ndarray, rng: RandomSource) -> np.ndarray:
        """Add the noise to a clean (blurry) image.

        Args:
            image: ``(H, W, 3)`` RGB (Bayer branch) or ``(H, W)`` grey APS, float, >= 0 (HDR
                values above 1 allowed; they saturate).
            rng: random source (draw order as the official code).

        Returns:
            float32 array of the same shape on the 8-bit grid ``k / 255``, in [0, 1].

        Raises:
            ValueError: other shapes, negative or non-finite values.
        """
        img = np.asarray(image, dtype=np.float32)
        if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
            raise ValueError(f"expected an (H, W) grey or (H, W, 3) RGB image, got shape {img.shape}")
        if not np.isfinite(img).all() or (img < 0).any():
            raise ValueError("image must be finite and >= 0")
        if img.ndim == 3:
            bayer = rgb_to_bayer_rggb(img)
            noisy_bayer = np.clip(rng.normal(bayer, self.sigma1 * bayer).astype(np.float32), 0, 1)
            n1 = demosaic_rggb(noisy_bayer)
            n2 = rng.normal(img, self.sigma2 * img).astype(np.float32)
            y = n1 * np.float32(self.w) + n2 * np.float32(1 - self.w)
        else:
            y = rng.normal(img, self.sigma2 * img).astype(np.float32)
        y = np.clip(y, 0, 1)
        y = np.clip(rng.normal(y, self.sigma3 * y).astype(np.float32), 0, 1)
        return quantize_floor_8bit(y)
