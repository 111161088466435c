"""RealBlur-J and RealBlur-R (Rim et al., *Real-World Blur Dataset for Learning and Benchmarking
Deblurring Algorithms*, ECCV 2020) in their released layout, read through the official lists.

``RealBlur.tar.gz`` of rimchang/RealBlur unpacks to::

    <root>/RealBlur-J_ECC_IMCORR_centroid_itensity_ref/<scene>/{blur,gt}/{blur,gt}_<i>.png
    <root>/RealBlur-R_BM3D_ECC_IMCORR_centroid_itensity_ref/<scene>/{blur,gt}/...
    <root>/RealBlur_J_train_list.txt   RealBlur_J_test_list.txt
    <root>/RealBlur_R_train_list.txt   RealBlur_R_test_list.txt

Each list line is ``<gt path> <blur path>``, relative to ``<root>`` (3758 training and 980 test
pairs per variant). Evaluation layouts ``realblur_j`` / ``realblur_r`` read the ``test`` (or
``train``) list; score them with protocol ``realblur`` (ECC alignment, as the benchmark).
"""
from __future__ import annotations

import os
from pathlib import Path

from .paired import PairListDataset
from .registry import register_dataset, register_layout

__all__ = ["REALBLUR_VARIANTS", "realblur_list", "read_realblur_list", "RealBlurDataset"]

#: ``J`` (camera JPEG) and ``R`` (from raw) variants.
REALBLUR_VARIANTS = ("J", "R")


def realblur_list(root: str | os.PathLike, variant: str, split: str) -> Path:
    """Path of the official list ``<root>/RealBlur_<variant>_<split>_list.txt``.

    Raises: ValueError for an unknown variant or split."""
    if variant not in REALBLUR_VARIANTS:
        raise ValueError(f"RealBlur variant must be one of {REALBLUR_VARIANTS}, got {variant!r}")
    if split not in ("train", "test"):
        raise ValueError(f"RealBlur split must be 'train' or 'test', got {split!r}")
    return Path(root) / f"RealBlur_{variant}_{split}_list.txt"


def read_realblur_list(root: str | os.PathLike, variant: str = "J", split: str = "test") -> list[tuple[str, Path, Path]]:
    """``(name, blurry, sharp)`` from the official list; ``name`` is ``"<scene>/<blur file>"``.

    Raises:
        FileNotFoundError: the list or an image it names is missing (both named).
        ValueError: a line is not ``<gt> <blur>`` (file and line number named), or the list is empty.
    """
    root = Path(root)
    lst = realblur_list(root, variant, split)
    if not lst.is_file():
        raise FileNotFoundError(f"RealBlur list not found: {lst} (expected the unpacked RealBlur folder "
                                f"holding RealBlur_{variant}_{split}_list.txt)")
    pairs = []
    for n, line in enumerate(lst.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(f"{lst}:{n}: expected '<gt path> <blur path>', got {line.strip()!r}")
        gt, lq = root / parts[0], root / parts[1]
        for p in (gt, lq):
            if not p.is_file():
                raise FileNotFoundError(f"{lst}:{n}: image not found: {p}")
        pairs.append((f"{lq.parent.parent.name}/{lq.name}", lq, gt))
    if not pairs:
        raise ValueError(f"{lst}: the list is empty")
    return pairs


class RealBlurDataset(PairListDataset):
    """RealBlur pairs from the official lists.

    Args:
        root: the unpacked RealBlur folder (holding the lists).
        variant: ``"J"`` or ``"R"``.
        split: ``"test"`` or ``"train"``.
        patch_size: random aligned crop (training), ``None`` for whole images (evaluation).
        augment: random flips/transposes (same on both images).
        seed: base seed of the per-item generator (seed, epoch, index).

    Items: ``{"lq": (3,H,W), "gt": (3,H,W), "name": "<scene>/blur_<i>.png"}`` float32 in [0, 1].

    Raises: as :func:`read_realblur_list`; ValueError when a pair differs in size (both files
    named); deblurkit.io.ImageReadError for unreadable files.
    """

    def __init__(self, root: str | os.PathLike, variant: str = "J", split: str = "test",
                 patch_size: int | None = None, augment: bool = False, seed: int = 0) -> None:
        self.root, self.variant, self.split = Path(root), variant, split
        super().__init__(read_realblur_list(root, variant, split), patch_size, augment, seed)


register_dataset("realblur", RealBlurDataset)
register_layout("realblur_j", lambda root, split: RealBlurDataset(root, "J", split))
register_layout("realblur_r", lambda root, split: RealBlurDataset(root, "R", split))
