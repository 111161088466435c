"""Blur2Blur's unaligned layout: unknown-domain blurry/sharp sets and a known-domain paired set.

Layout (VinAIResearch/Blur2Blur ``README.md`` and ``data/unaligned_dataset.py``)::

    <root>/trainA/*   blurry images of the unknown camera (the converter's input)
    <root>/trainB/*   sharp images of the unknown camera (re-blurred into the known blur: the
                      discriminator's "real" samples)
    <root>/trainC/*   blurry images of the known blur, aligned with ...
    <root>/trainD/*   ... their sharp versions (same file names); the frozen kernel_wizard
                      extracts the known blur from each (trainD, trainC) pair
    <root>/testA/*    blurry test images of the unknown camera
    <root>/testB/*    (optional, for ``deblurkit evaluate --layout blur2blur``) their sharp
                      references, same file names

:class:`UnalignedDataset` (config ``data.train.type: unaligned``) yields the four images of one
Blur2Blur training step; :class:`KnownPairsDataset` (``type: blur2blur_known``) yields the
(trainC, trainD) pairs as ``{"lq", "gt"}`` for training kernel_wizard on the known domain; the
layout ``blur2blur`` reads ``testA``/``testB`` for evaluation.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..io.images import IMAGE_EXTENSIONS, read_image
from .paired import augment_pair, item_generator, random_aligned_crop
from .registry import register_dataset, register_layout

__all__ = ["UnalignedDataset", "KnownPairsDataset", "UnalignedTestPairs", "list_folder"]


def list_folder(folder: Path) -> list[Path]:
    """Sorted image files of ``folder`` (as the official ``sorted(make_dataset(dir))``).

    Raises:
        FileNotFoundError: the folder is missing. ValueError: it holds no image.
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"folder not found: {folder} (Blur2Blur layout: trainA, trainB, trainC, "
                                "trainD, testA under the data root)")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise ValueError(f"{folder}: no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    return files


def _matched(c_dir: Path, d_dir: Path) -> list[tuple[Path, Path]]:
    c, d = list_folder(c_dir), list_folder(d_dir)
    cn, dn = [p.name for p in c], [p.name for p in d]
    if cn != dn:
        only_c = sorted(set(cn) - set(dn))[:5]
        only_d = sorted(set(dn) - set(cn))[:5]
        raise ValueError(f"{c_dir} and {d_dir} must hold the same file names (aligned blurry/sharp "
                         f"pairs): only in {c_dir.name}: {only_c}, only in {d_dir.name}: {only_d}")
    return list(zip(c, d))


def resize_shorter_side(img: torch.Tensor, size: int) -> torch.Tensor:
    """Resize (C, H, W) so the shorter side is ``size`` (bicubic with antialiasing, clamped to
    [0, 1]); torchvision's ``Resize(size)`` on PIL images, which Blur2Blur's ``get_transform``
    applies for ``preprocess='resize_and_crop'`` (``load_size`` 512)."""
    h, w = img.shape[-2:]
    if min(h, w) == size:
        return img
    if h <= w:
        nh, nw = size, int(size * w / h)
    else:
        nh, nw = int(size * h / w), size
    out = F.interpolate(img[None], size=(nh, nw), mode="bicubic", align_corners=False, antialias=True)[0]
    return out.clamp_(0.0, 1.0)


def _random_crop(img: torch.Tensor, size: int, g: torch.Generator, path: Path) -> torch.Tensor:
    h, w = img.shape[-2:]
    if h < size or w < size:
        raise ValueError(f"{path}: image {h}x{w} (after resizing) is smaller than crop_size {size}")
    top = int(torch.randint(h - size + 1, (), generator=g))
    left = int(torch.randint(w - size + 1, (), generator=g))
    return img[:, top:top + size, left:left + size]


@register_dataset("unaligned")
class UnalignedDataset(Dataset):
    """One Blur2Blur training sample: A (unknown blurry), B (unknown sharp), C/D (known pair).

    Follows ``UnalignedDataset`` of VinAIResearch/Blur2Blur ``data/unaligned_dataset.py`` with
    the ``--dataset_mode unaligned`` defaults of ``options/base_options.py``:

    * A = the first ``int(len(trainA) * ratio)`` sorted files of ``trainA``, B = the last
      ``int(len(trainB) * (1 - ratio))`` of ``trainB`` (``--ratio`` 0.6: when trainA and trainB
      are the blurry and sharp frames of the same videos, A and B then come from different
      frames); ``ratio=None`` uses every file of both.
    * A is item ``index % len(A)``; B is drawn uniformly at random for every item.
    * A and B: ``resize_and_crop`` (shorter side resized to ``load_size`` 512, bicubic; random
      ``crop_size`` 256 crop) and a random horizontal flip (``flip``).
    * C and D: one aligned known pair, cropped at the same random position to A's size, not
      resized, not flipped. ``pair_index="independent"`` (default) draws the pair uniformly from
      all of trainC/trainD, independently of B. ``"official"`` reproduces the official code,
      which reuses B's random index (so only the first ``len(B)`` pairs are ever used and
      trainC/trainD need at least ``len(B)`` files).
    * ``len`` = max(len(A), len(B)).

    Randomness comes from a generator seeded by (seed, epoch, index) (:meth:`set_epoch`), so a
    resumed run sees the same samples.

    Items: ``{"A", "B", "C", "D"}`` float32 RGB (3, crop, crop) in [0, 1] and ``"name"`` (A's file
    name), ``"names"`` (``"A|B|C"`` file names).

    Raises:
        FileNotFoundError: a folder is missing. ValueError: an empty folder or split, trainC and
        trainD with different file names, images smaller than the crop, bad arguments.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        load_size: int | None = 512,
        crop_size: int = 256,
        ratio: float | None = 0.6,
        flip: bool = True,
        pair_index: str = "independent",
        seed: int = 0,
    ) -> None:
        if pair_index not in ("independent", "official"):
            raise ValueError(f"pair_index must be 'independent' or 'official', got {pair_index!r}")
        if ratio is not None and not 0.0 < ratio < 1.0:
            raise ValueError(f"ratio must be in (0, 1) or None, got {ratio}")
        if load_size is not None and load_size < crop_size:
            raise ValueError(f"load_size {load_size} is smaller than crop_size {crop_size}")
        self.root = Path(root)
        self.load_size, self.crop_size, self.flip = load_size, int(crop_size), bool(flip)
        self.pair_index, self.seed, self.epoch = pair_index, int(seed), 0
        a = list_folder(self.root / f"{split}A")
        b = list_folder(self.root / f"{split}B")
        if ratio is not None:
            a = a[: int(len(a) * ratio)]
            nb = int(len(b) * (1.0 - ratio))
            b = b[len(b) - nb:] if nb else []
        if not a or not b:
            raise ValueError(f"{self.root}: ratio {ratio} leaves {len(a)} {split}A and {len(b)} {split}B "
                             "images; add images or set ratio: null")
        self.a_paths, self.b_paths = a, b
        self.pairs = _matched(self.root / f"{split}C", self.root / f"{split}D")
        if pair_index == "official" and len(self.pairs) < len(b):
            raise ValueError(f"pair_index 'official' indexes {split}C/{split}D with B's index: it needs at "
                             f"least {len(b)} pairs, found {len(self.pairs)}")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return max(len(self.a_paths), len(self.b_paths))

    def _unknown(self, path: Path, g: torch.Generator) -> torch.Tensor:
        img = read_image(path, channels=3)
        if self.load_size is not None:
            img = resize_shorter_side(img, self.load_size)
        img = _random_crop(img, self.crop_size, g, path)
        if self.flip and float(torch.rand((), generator=g)) > 0.5:
            img = img.flip(-1)
        return img.contiguous()

    def __getitem__(self, index: int) -> dict:
        g = item_generator(self.seed, self.epoch, index)
        a_path = self.a_paths[index % len(self.a_paths)]
        a = self._unknown(a_path, g)
        ib = int(torch.randint(len(self.b_paths), (), generator=g))
        b_path = self.b_paths[ib]
        b = self._unknown(b_path, g)
        ip = ib if self.pair_index == "official" else int(torch.randint(len(self.pairs), (), generator=g))
        c_path, d_path = self.pairs[ip]
        c, d = read_image(c_path, channels=3), read_image(d_path, channels=3)
        if c.shape != d.shape:
            raise ValueError(f"{c_path} is {tuple(c.shape[-2:])} but {d_path} is {tuple(d.shape[-2:])}")
        c, d = random_aligned_crop(c, d, self.crop_size, g, name=str(c_path))
        return {"A": a, "B": b, "C": c.contiguous(), "D": d.contiguous(), "name": a_path.name,
                "names": f"{a_path.name}|{b_path.name}|{c_path.name}"}


@register_dataset("blur2blur_known")
class KnownPairsDataset(Dataset):
    """The known-domain pairs (``trainC`` blurry, ``trainD`` sharp) as ``{"lq", "gt", "name"}``,
    for training kernel_wizard (BKSE ``data/GOPRO_dataset.py``: aligned random crop of
    ``patch_size`` (``HQ_size`` 256), random flips and rotations ``use_flip``/``use_rot``).

    Raises as :class:`UnalignedDataset`.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", patch_size: int | None = 256,
                 augment: bool = True, seed: int = 0) -> None:
        self.root = Path(root)
        self.pairs = _matched(self.root / f"{split}C", self.root / f"{split}D")
        self.patch_size, self.augment, self.seed, self.epoch = patch_size, bool(augment), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        c_path, d_path = self.pairs[index]
        lq, gt = read_image(c_path, channels=3), read_image(d_path, channels=3)
        if lq.shape != gt.shape:
            raise ValueError(f"{c_path} is {tuple(lq.shape[-2:])} but {d_path} is {tuple(gt.shape[-2:])}")
        g = item_generator(self.seed, self.epoch, index)
        if self.patch_size is not None:
            lq, gt = random_aligned_crop(lq, gt, self.patch_size, g, name=str(c_path))
        if self.augment:
            lq, gt = augment_pair(lq, gt, g)
        return {"lq": lq.contiguous(), "gt": gt.contiguous(), "name": c_path.name}


class UnalignedTestPairs(Dataset):
    """``<root>/<split>A`` blurry images with their references in ``<root>/<split>B`` (same file
    names), whole images: the ``blur2blur`` evaluation layout. Items ``{"lq", "gt", "name"}``.

    Raises:
        FileNotFoundError: a folder is missing. ValueError: file names differ, sizes differ.
    """

    def __init__(self, root: str | os.PathLike, split: str = "test") -> None:
        self.root = Path(root)
        self.pairs = _matched(self.root / f"{split}A", self.root / f"{split}B")

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        a, b = self.pairs[index]
        lq, gt = read_image(a, channels=3), read_image(b, channels=3)
        if lq.shape != gt.shape:
            raise ValueError(f"{a} is {tuple(lq.shape[-2:])} but {b} is {tuple(gt.shape[-2:])}")
        return {"lq": lq, "gt": gt, "name": a.stem}


register_layout("blur2blur", lambda root, split: UnalignedTestPairs(root, split))


def rank_pairs_by_psnr(blur_dir: str | os.PathLike, sharp_dir: str | os.PathLike) -> list[tuple[str, float]]:
    """Rank blurry/sharp pairs (same file names in both folders) by the PSNR of the blurry image
    against its sharp one, highest first: the least blurry pairs first.

    Follows VinAIResearch/Blur2Blur ``data/filter_blurimg.py`` (``cv2.imread`` of both files,
    ``calculate_psnr(img1, img2, 0)`` on the 8-bit values with peak 255, sorted by PSNR in
    descending order); identical images get ``inf``.

    Returns:
        ``[(file name, PSNR in dB), ...]``, highest PSNR first (ties by name).

    Raises:
        FileNotFoundError: a folder is missing. ValueError: file names differ, or a pair differs
        in size (naming both files). deblurkit.io.ImageReadError: unreadable image.
    """
    from ..metrics import psnr

    pairs = _matched(Path(blur_dir), Path(sharp_dir))
    scores = []
    for b, s in pairs:
        x, y = read_image(b, channels=3), read_image(s, channels=3)
        if x.shape != y.shape:
            raise ValueError(f"{b} is {tuple(x.shape[-2:])} but {s} is {tuple(y.shape[-2:])}")
        scores.append((b.name, float(psnr(x, y, data_range=1.0, quantize=True)[0])))
    return sorted(scores, key=lambda t: (-t[1], t[0]))
