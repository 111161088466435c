"""Paired blurry/sharp images in the GoPro layout.

Layout (GoPro_Large of Nah et al. 2017, also written by :func:`deblurkit.synth.build_pairs`)::

    <root>/<split>/<scene>/blur/<file>.png
    <root>/<split>/<scene>/sharp/<file>.png

Pairs are matched by file name within each scene. Other sub-folders (``blur_gamma``,
``kernel``) are ignored unless selected with ``lq_dir`` / ``gt_dir``.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..io.images import IMAGE_EXTENSIONS, read_image

__all__ = ["PairListDataset", "PairedImageDataset", "find_pairs", "random_aligned_crop", "augment_pair", "item_generator"]


def item_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """A torch generator seeded by (seed, epoch, index) via sha256: reproducible per item,
    independent of worker count and order."""
    h = hashlib.sha256(f"{seed}:{epoch}:{index}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(h[:8], "little") & ((1 << 63) - 1))


def _images_in(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS}


def _split_subfolders(base: Path, split: str, kind: str, tag: str, inner: str, note: str = "") -> list[Path]:
    """Sorted sub-folders (scenes, sequences) of the split folder ``base``; errors show the
    expected layout ``<root>/<split>/<tag>/<inner>``.

    Raises: FileNotFoundError (``base`` missing), ValueError (no sub-folder)."""
    if not base.is_dir():
        raise FileNotFoundError(f"split folder not found: {base} (expected <root>/{split}/<{tag}>/{inner}{note})")
    subs = sorted(p for p in base.iterdir() if p.is_dir())
    if not subs:
        raise ValueError(f"{base}: no {kind} folders (expected {base}/<{tag}>/{inner})")
    return subs


def _check_same_names(where: Path, lq: dict, gt: dict, lq_dir: str, gt_dir: str,
                      lq_label: str | None = None, gt_label: str | None = None) -> None:
    """Raise ValueError (naming ``where`` and the first unmatched files) unless the blurry and
    sharp folders hold the same, non-empty set of file names."""
    if set(lq) != set(gt):
        raise ValueError(
            f"{where}: {lq_dir}/ and {gt_dir}/ do not match: "
            f"only in {lq_label or lq_dir + '/'}: {sorted(set(lq) - set(gt))[:5]}, "
            f"only in {gt_label or gt_dir + '/'}: {sorted(set(gt) - set(lq))[:5]}"
        )
    if not lq:
        raise ValueError(f"{where}: {lq_dir}/ and {gt_dir}/ hold no images")


def find_pairs(
    root: str | os.PathLike, split: str = "train", lq_dir: str = "blur", gt_dir: str = "sharp"
) -> list[tuple[str, Path, Path]]:
    """List ``(name, lq_path, gt_path)`` of ``<root>/<split>/<scene>/{lq_dir,gt_dir}/*``, sorted.

    ``name`` is ``"<scene>/<file>"``.

    Raises:
        FileNotFoundError: the split folder is missing, or a scene lacks ``lq_dir``/``gt_dir``.
        ValueError: a scene's two folders hold different file names (the message names the
            folder and the first unmatched files), or no pairs at all.
    """
    inner = f"{{{lq_dir},{gt_dir}}}/"
    pairs: list[tuple[str, Path, Path]] = []
    for scene in _split_subfolders(Path(root) / split, split, "scene", "scene", inner):
        lq_folder, gt_folder = scene / lq_dir, scene / gt_dir
        for f in (lq_folder, gt_folder):
            if not f.is_dir():
                have = sorted(p.name for p in scene.iterdir())
                raise FileNotFoundError(f"{scene}: missing folder {f.name}/ (have: {have})")
        lq, gt = _images_in(lq_folder), _images_in(gt_folder)
        _check_same_names(scene, lq, gt, lq_dir, gt_dir)
        pairs.extend((f"{scene.name}/{n}", lq[n], gt[n]) for n in sorted(lq))
    return pairs


def random_aligned_crop(
    lq: torch.Tensor, gt: torch.Tensor, size: int, generator: torch.Generator, name: str = ""
) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop the same random ``size`` x ``size`` window from (C,H,W) ``lq`` and ``gt``.

    Raises ValueError (naming ``name``) if the image is smaller than ``size``."""
    h, w = lq.shape[-2:]
    if h < size or w < size:
        raise ValueError(f"{name}: image {h}x{w} is smaller than patch_size {size}")
    top = int(torch.randint(h - size + 1, (), generator=generator))
    left = int(torch.randint(w - size + 1, (), generator=generator))
    return lq[:, top : top + size, left : left + size], gt[:, top : top + size, left : left + size]


def augment_pair(
    lq: torch.Tensor, gt: torch.Tensor, generator: torch.Generator, transpose: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Same random horizontal flip, vertical flip and (if ``transpose`` and square) transpose
    on both (C,H,W) tensors, each with probability 1/2 (the 8 dihedral transforms)."""
    r = torch.rand(3, generator=generator)
    if r[0] < 0.5:
        lq, gt = lq.flip(-1), gt.flip(-1)
    if r[1] < 0.5:
        lq, gt = lq.flip(-2), gt.flip(-2)
    if transpose and r[2] < 0.5 and lq.shape[-1] == lq.shape[-2]:
        lq, gt = lq.transpose(-2, -1), gt.transpose(-2, -1)
    return lq.contiguous(), gt.contiguous()


class PairListDataset(Dataset):
    """Base of the paired datasets: a list of ``(name, lq_path, gt_path)`` read as whole images,
    then cropped / augmented by :meth:`transform` with a per-item generator.

    Subclasses find their pairs and call ``super().__init__(pairs, patch_size, augment, seed)``;
    they override :meth:`read` (other file formats) or :meth:`transform` (other augmentations).

    Args:
        pairs: ``(name, lq_path, gt_path)`` per item, in item order.
        patch_size: random aligned square crop side in pixels (``None``: full images).
        augment: random flips and transposes (same on both images).
        seed: base seed; item ``i`` of epoch ``e`` draws from a generator seeded by
            ``(seed, e, i)`` (see :meth:`set_epoch`), so crops are reproducible.

    Items:
        ``{"lq": (3,h,w) float32 [0,1], "gt": (3,h,w) float32 [0,1], "name": name}``.

    Raises:
        ValueError when a pair's images differ in size (both files named) or are smaller than
        ``patch_size`` (file named); deblurkit.io.ImageReadError for unreadable files.
    """

    def __init__(self, pairs: list[tuple[str, Path, Path]], patch_size: int | None = None,
                 augment: bool = False, seed: int = 0) -> None:
        self.pairs = pairs
        self.patch_size = patch_size
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Change the random crops/augmentations drawn for each index (call once per epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.pairs)

    def read(self, path: Path) -> torch.Tensor:
        """One image of a pair as (3, H, W) float32 RGB in [0, 1]."""
        return read_image(path, channels=3)

    def transform(self, lq: torch.Tensor, gt: torch.Tensor, g: torch.Generator,
                  name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Random aligned crop (``patch_size``) and flips/transposes (``augment``) drawn from ``g``;
        ``name`` (the blurry file) is named in errors."""
        if self.patch_size is not None:
            lq, gt = random_aligned_crop(lq, gt, self.patch_size, g, name=name)
        if self.augment:
            lq, gt = augment_pair(lq, gt, g)
        return lq, gt

    def __getitem__(self, index: int) -> dict:
        name, lq_path, gt_path = self.pairs[index]
        lq, gt = self.read(lq_path), self.read(gt_path)
        if lq.shape != gt.shape:
            raise ValueError(f"{lq_path} is {tuple(lq.shape[-2:])} but {gt_path} is {tuple(gt.shape[-2:])}")
        lq, gt = self.transform(lq, gt, item_generator(self.seed, self.epoch, index), str(lq_path))
        return {"lq": lq, "gt": gt, "name": name}


class PairedImageDataset(PairListDataset):
    """Blurry/sharp pairs from ``<root>/<split>/<scene>/{blur,sharp}/*`` (GoPro layout).

    Args:
        root: dataset root (the folder holding ``train/`` and ``test/``).
        split: sub-folder to read, e.g. ``"train"`` or ``"test"``.
        patch_size: random aligned square crop side in pixels (``None``: full images).
        augment: random flips and transposes (same on both images).
        seed: base seed; item ``i`` of epoch ``e`` draws from a generator seeded by
            ``(seed, e, i)`` (see :meth:`set_epoch`), so crops are reproducible.
        lq_dir, gt_dir: sub-folder names of the blurry and sharp images.
        with_kernel: whole, unaugmented items also carry ``"kernel"`` ((kh, kw) float32, the true
            kernel) when ``<scene>/kernel/<stem>.npy`` exists (synthetic pairs); used by the
            ``levin`` evaluation protocol. Off by default (kernels differ in size, so batches
            of them would not collate).

    Items:
        ``{"lq": (3,h,w) float32 [0,1], "gt": (3,h,w) float32 [0,1], "name": "<scene>/<file>"}``
        (plus ``"kernel"``, see ``with_kernel``).

    Raises:
        FileNotFoundError / ValueError from :func:`find_pairs` (named folder); ValueError when a
        pair's images differ in size or are smaller than ``patch_size`` (named files);
        deblurkit.io.ImageReadError for unreadable files.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        patch_size: int | None = None,
        augment: bool = False,
        seed: int = 0,
        *,
        lq_dir: str = "blur",
        gt_dir: str = "sharp",
        with_kernel: bool = False,
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.with_kernel = with_kernel
        super().__init__(find_pairs(self.root, split, lq_dir, gt_dir), patch_size, augment, seed)

    def kernel_path(self, index: int) -> Path:
        """``<root>/<split>/<scene>/kernel/<stem>.npy`` of item ``index`` (written by
        :func:`deblurkit.synth.build_pairs`; it may not exist)."""
        _, lq_path, _ = self.pairs[index]
        return Path(lq_path).parent.parent / "kernel" / f"{Path(lq_path).stem}.npy"

    def __getitem__(self, index: int) -> dict:
        item = super().__getitem__(index)
        if self.with_kernel and self.patch_size is None and not self.augment:
            p = self.kernel_path(index)
            if p.is_file():
                import numpy as np

                try:
                    item["kernel"] = torch.from_numpy(np.load(p, allow_pickle=False).astype("float32"))
                except (OSError, ValueError) as e:
                    raise ValueError(f"{p}: unreadable kernel file ({e})") from e
        return item
