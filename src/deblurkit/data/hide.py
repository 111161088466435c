"""HIDE (Shen et al., *Human-Aware Motion Deblurring*, ICCV 2019) in its released layout.

``HIDE_dataset/`` as downloaded (the ``HIDE_dataset.zip`` linked by Dong-Huo/ASPDC and
joanshen0508/HA_deblur)::

    <root>/GT/<file>.png                      sharp references of every split, by file name
    <root>/train/<file>.png                   blurry training images
    <root>/test/test-close-ups/<file>.png     blurry test images, close-ups (1063 in the release)
    <root>/test/test-long-shot/<file>.png     blurry test images, long shots (962 in the release)

The blurry image ``X.png`` of any folder pairs with ``GT/X.png``. Evaluation layout ``hide``
(``deblurkit evaluate --layout hide --data HIDE_dataset``) reads split ``test`` (both subsets,
the 2025 images of the papers' HIDE tables), ``test-close-ups``, ``test-long-shot`` or ``train``.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..io.images import IMAGE_EXTENSIONS
from .paired import PairListDataset
from .registry import register_dataset, register_layout

__all__ = ["HIDE_SUBSETS", "find_hide_pairs", "HideDataset"]

#: test subsets of HIDE, in the order they are listed.
HIDE_SUBSETS = ("test-close-ups", "test-long-shot")


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def find_hide_pairs(root: str | os.PathLike, split: str = "test") -> list[tuple[str, Path, Path]]:
    """``(name, blurry, sharp)`` of a HIDE split; ``name`` is ``"<subset>/<file>"`` (``train/<file>``).

    Args:
        root: the ``HIDE_dataset`` folder (holding ``GT/``, ``train/``, ``test/``).
        split: ``"test"`` (both subsets), ``"test-close-ups"``, ``"test-long-shot"`` or ``"train"``.

    Raises:
        ValueError: unknown split; a folder without images; a blurry image without its
            ``GT/`` file (both paths named).
        FileNotFoundError: ``GT/`` or a split folder is missing (path named).
    """
    root = Path(root)
    subsets = {"test": HIDE_SUBSETS, "train": ("train",), **{s: (s,) for s in HIDE_SUBSETS}}
    if split not in subsets:
        raise ValueError(f"HIDE split must be one of {sorted(subsets)}, got {split!r}")
    gt_dir = root / "GT"
    if not gt_dir.is_dir():
        raise FileNotFoundError(f"{gt_dir} not found: expected the HIDE_dataset folder holding GT/, train/, test/")
    pairs = []
    for sub in subsets[split]:
        folder = root / sub if sub == "train" else root / "test" / sub
        if not folder.is_dir():
            raise FileNotFoundError(f"HIDE folder not found: {folder}")
        files = _images(folder)
        if not files:
            raise ValueError(f"{folder}: no images")
        for f in files:
            gt = gt_dir / f.name
            if not gt.is_file():
                raise ValueError(f"{f}: no sharp reference {gt}")
            pairs.append((f"{sub}/{f.name}", f, gt))
    return pairs


class HideDataset(PairListDataset):
    """HIDE pairs as whole images; items ``{"lq": (3,H,W), "gt": (3,H,W), "name", "subset"}`` in
    [0, 1]. Raises as :func:`find_hide_pairs`; ValueError when a pair differs in size (both files
    named); deblurkit.io.ImageReadError for unreadable files."""

    def __init__(self, root: str | os.PathLike, split: str = "test") -> None:
        self.root, self.split = Path(root), split
        super().__init__(find_hide_pairs(root, split))

    def __getitem__(self, index: int) -> dict:
        item = super().__getitem__(index)
        item["subset"] = item["name"].split("/", 1)[0]
        return item


register_dataset("hide", HideDataset)
register_layout("hide", lambda root, split: HideDataset(root, split))
