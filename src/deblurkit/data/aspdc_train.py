"""ASPDC's training data: GoPro-layout pairs with the official albumentations pipeline.

Follows ``TrainSetLoader`` and ``get_transforms`` of Dong-Huo/ASPDC ``utils/data_processing.py``:
the 8-bit sharp and blurry images go through ONE albumentations pipeline (``additional_targets``,
so both get the same random transform), scope ``"geometric"`` by default::

    OneOf([HorizontalFlip, ShiftScaleRotate, Transpose, OpticalDistortion, ElasticTransform],
          p=0.5)            # each member always applied when chosen
    RandomCrop(patch_size, patch_size)
    PadIfNeeded(patch_size, patch_size)

The official code ran albumentations 1.0.x, whose geometric transforms filled borders by
reflection (``cv2.BORDER_REFLECT_101``); albumentations 2 defaults to a constant border, so that
mode is passed explicitly here. Two 1.0.x options no longer exist and are not reproduced:
``ElasticTransform(alpha_affine=50)`` (an extra random affine warp) and
``OpticalDistortion(shift_limit=0.05)`` (a random shift of the distortion centre). ``"weak"``
(horizontal flip) is offered as well; the official ``"strong"`` scope uses transforms removed
from albumentations (``IAASharpen``, ``IAAEmboss``) and is not.

Differences kept on purpose: every scene folder is read (the official loader keeps folders whose
name contains ``GOPR``), and each item's randomness is seeded by ``(seed, epoch, index)`` so
training resumes exactly. Images are returned in [0, 1] (the project's API range); the ASPDC
recipes map them to the networks' [-1, 1] (the official ``albu.Normalize(0.5, 0.5)``).
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from .paired import PairListDataset, find_pairs
from .registry import register_dataset

__all__ = ["AspdcPairedDataset", "aspdc_transforms", "ASPDC_SCOPES"]

#: Augmentation scopes of the official ``get_transforms`` available here.
ASPDC_SCOPES = ("geometric", "weak")


def aspdc_transforms(patch_size: int, scope: str = "geometric", crop: str = "random", seed: int | None = None):
    """The official ``get_transforms(patch_size, scope, crop)`` pipeline (albumentations).

    Args:
        patch_size: crop side in pixels (official 256).
        scope: ``"geometric"`` (official default) or ``"weak"``.
        crop: ``"random"`` (training) or ``"center"``.
        seed: seed of the pipeline's random generator (``Compose(seed=...)``).

    Returns:
        an ``albumentations.Compose`` called as ``pipe(image=sharp, target=blurry)`` on HWC uint8
        arrays; both outputs get the same transform.

    Raises:
        ValueError: unknown scope / crop, patch_size < 1.
    """
    import albumentations as albu
    import cv2

    if scope not in ASPDC_SCOPES:
        raise ValueError(f"scope must be one of {ASPDC_SCOPES}, got {scope!r}")
    if crop not in ("random", "center"):
        raise ValueError(f"crop must be 'random' or 'center', got {crop!r}")
    if int(patch_size) != patch_size or patch_size < 1:
        raise ValueError(f"patch_size must be a positive integer, got {patch_size!r}")
    border = cv2.BORDER_REFLECT_101  # albumentations 1.0.x default, used by the official run
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ShiftScaleRotate is deprecated in favour of Affine
        if scope == "geometric":
            aug = albu.OneOf([
                albu.HorizontalFlip(p=1.0),
                albu.ShiftScaleRotate(shift_limit=0.0625, scale_limit=0.1, rotate_limit=45,
                                      border_mode=border, p=1.0),
                albu.Transpose(p=1.0),
                albu.OpticalDistortion(distort_limit=0.05, border_mode=border, p=1.0),
                albu.ElasticTransform(alpha=1, sigma=50, border_mode=border, p=1.0),
            ], p=0.5)
        else:
            aug = albu.HorizontalFlip(p=0.5)
        cropper = (albu.RandomCrop if crop == "random" else albu.CenterCrop)(patch_size, patch_size, p=1.0)
        pad = albu.PadIfNeeded(patch_size, patch_size, border_mode=border)
        return albu.Compose([aug, cropper, pad], additional_targets={"target": "image"}, seed=seed)


def _to_uint8(t: torch.Tensor) -> np.ndarray:
    return (t.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy())


def _to_tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).float().div_(255.0)


class AspdcPairedDataset(PairListDataset):
    """GoPro-layout pairs ``<root>/<split>/<scene>/{blur,sharp}/*`` with ASPDC's augmentations.

    Args:
        root: dataset root (``GOPRO_Large``), holding ``<split>/``.
        split: sub-folder (``"train"``).
        patch_size: crop side (official ``--patch_size 256``).
        scope: ``"geometric"`` (official) or ``"weak"`` (see :func:`aspdc_transforms`).
        crop: ``"random"`` or ``"center"``.
        seed: base seed; item ``i`` of epoch ``e`` is augmented with a generator seeded by
            ``(seed, e, i)`` (:meth:`set_epoch`), so items are reproducible.
        lq_dir, gt_dir: sub-folder names of the blurry and sharp images.

    Items:
        ``{"lq": (3, p, p), "gt": (3, p, p), "name": "<scene>/<file>"}``, float32 in [0, 1],
        quantised to 8 bits like the official ``cv2.imread``.

    Raises:
        FileNotFoundError / ValueError from :func:`deblurkit.data.find_pairs`; ValueError when a
        pair's images differ in size (both files named); deblurkit.io.ImageReadError.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", patch_size: int = 256,
                 scope: str = "geometric", crop: str = "random", seed: int = 0, *,
                 lq_dir: str = "blur", gt_dir: str = "sharp") -> None:
        self.root = Path(root)
        self.split = split
        self.pipeline = aspdc_transforms(int(patch_size), scope, crop)
        super().__init__(find_pairs(self.root, split, lq_dir, gt_dir), int(patch_size), False, int(seed))

    def transform(self, lq: torch.Tensor, gt: torch.Tensor, g: torch.Generator,
                  name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The albumentations :attr:`pipeline` on both 8-bit images, seeded from ``g``.

        Raises:
            ValueError: the image (named) is smaller than ``patch_size``.
        """
        h, w = lq.shape[-2:]
        if min(h, w) < self.patch_size:
            raise ValueError(f"{name}: image {h}x{w} is smaller than patch_size {self.patch_size}")
        self.pipeline.set_random_seed(int(torch.randint(0, 2**31 - 1, (), generator=g)))
        out = self.pipeline(image=_to_uint8(gt), target=_to_uint8(lq))
        return _to_tensor(out["target"]), _to_tensor(out["image"])


register_dataset("aspdc_paired", AspdcPairedDataset)
