"""Tiny on-disk datasets in the official layouts (GoPro, HIDE, RealBlur), built from real photos of
../shared/data/photos blurred with the real Levin et al. 2009 kernels, for the ASPDC / data tests."""
from __future__ import annotations

from pathlib import Path

import torch

from deblurkit.io import read_image, save_image
from deblurkit.synth.blur import blur
from deblurkit.synth.kernels import levin_kernels

PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "kodim23.png", "monarch.png", "sail.png")


def real_pairs(data: Path, n: int, size: tuple[int, int] = (48, 64)) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``n`` (blurry, sharp) (3, h, w) pairs in [0, 1]: centre crops of real photos, blurred by a
    real camera-shake kernel, quantised to 8 bits by the PNG writer of the callers."""
    kernels = list(levin_kernels(data / "kernels" / "levin09_kernels.npz").values())
    out = []
    h, w = size
    for i in range(n):
        img = read_image(data / "photos" / "classic" / PHOTOS[i % len(PHOTOS)])
        t, l = (img.shape[1] - h) // 2, (img.shape[2] - w) // 2
        sharp = img[:, t:t + h, l:l + w].contiguous()
        blurry = blur(sharp[None], kernels[i % len(kernels)].float(), boundary="reflect")[0].clamp(0, 1)
        out.append((blurry, sharp))
    return out


def make_gopro(root: Path, data: Path, n: int = 4, split: str = "train", size=(48, 64)) -> Path:
    """``<root>/<split>/GOPR0000_00/{blur,sharp}/00000i.png``."""
    for i, (b, s) in enumerate(real_pairs(data, n, size)):
        save_image(root / split / "GOPR0000_00" / "blur" / f"{i:06d}.png", b)
        save_image(root / split / "GOPR0000_00" / "sharp" / f"{i:06d}.png", s)
    return root
