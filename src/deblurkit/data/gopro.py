"""GoPro (Nah et al., CVPR 2017) in its two distributed layouts, and the 512x512 sub-image
preparation MSDI-Net / HINet train on.

Layouts
-------
``gopro_official`` - the flat ``input/target`` layout distributed with MPRNet and used by
MSDI-Net (dasongli1/Learning_degradation ``README.md``, ``MSDINet-*.yml``)::

    <root>/<split>/input/<file>.png     blurry
    <root>/<split>/target/<file>.png    sharp (same file name)

``gopro_large`` - the original ``GOPRO_Large`` archive::

    <root>/<split>/<scene>/blur/<file>.png        blurry (linear average of sharp frames)
    <root>/<split>/<scene>/blur_gamma/<file>.png  blurry (averaged in a gamma-1/2.2 space)
    <root>/<split>/<scene>/sharp/<file>.png       sharp

The papers (and MPRNet's ``input`` folders) use ``blur``; ``blur_gamma`` is selectable.

Sub-images
----------
:func:`extract_subimages` follows ``gopro.py`` of dasongli1/Learning_degradation (itself BasicSR's
``extract_subimages.py``): 512x512 windows every 256 pixels, plus a last window flush with the
bottom / right edge when the remainder exceeds ``thresh_size`` (0), written as
``<stem>_s<index:03d><ext>`` with PNG compression level 3; ``train/blur_crops`` and
``train/sharp_crops`` then feed training (``MSDINet-Train.yml``, there via lmdb; here read as
PNGs by :class:`GoProOfficialDataset` with ``lq_dir="blur_crops", gt_dir="sharp_crops"``).
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ..io.atomic import atomic_path
from .paired import PairedImageDataset, PairListDataset, _check_same_names, _images_in
from .registry import register_dataset, register_layout

__all__ = [
    "GoProOfficialDataset",
    "GoProLargeDataset",
    "find_flat_pairs",
    "subimage_grid",
    "extract_subimages",
    "prepare_gopro_crops",
]


def find_flat_pairs(root: str | os.PathLike, split: str = "train", lq_dir: str = "input",
                    gt_dir: str = "target") -> list[tuple[str, Path, Path]]:
    """List ``(file name, lq_path, gt_path)`` of ``<root>/<split>/{lq_dir,gt_dir}/*``, sorted.

    Raises:
        FileNotFoundError: ``<root>/<split>/<lq_dir>`` or ``<gt_dir>`` is missing (the message shows
            the expected layout and what the split folder holds).
        ValueError: the two folders hold different file names (the first unmatched are named), or
            no images.
    """
    base = Path(root) / split
    lq_f, gt_f = base / lq_dir, base / gt_dir
    for f in (lq_f, gt_f):
        if not f.is_dir():
            have = sorted(p.name for p in base.iterdir()) if base.is_dir() else "no such folder"
            raise FileNotFoundError(
                f"{f}: missing (GoPro official layout is <root>/{split}/{{{lq_dir},{gt_dir}}}/*.png; "
                f"{base} holds: {have})"
            )
    lq, gt = _images_in(lq_f), _images_in(gt_f)
    _check_same_names(base, lq, gt, lq_dir, gt_dir)
    return [(n, lq[n], gt[n]) for n in sorted(lq)]


class GoProOfficialDataset(PairListDataset):
    """GoPro pairs in the flat ``<root>/<split>/{input,target}/`` layout (MPRNet / MSDI-Net).

    Args:
        root: folder holding ``train/`` and ``test/``.
        split: ``"train"`` / ``"test"``.
        patch_size: random aligned square crop (official training: 256, ``gt_size``); ``None``:
            whole images.
        augment: random horizontal flip, vertical flip and transpose, each with probability 1/2,
            the same on both images (BasicSR ``augment(use_flip=True, use_rot=True)``).
        seed: item ``i`` of epoch ``e`` draws from a generator seeded by ``(seed, e, i)``.
        lq_dir, gt_dir: sub-folder names (``blur_crops`` / ``sharp_crops`` for the prepared
            512x512 sub-images).

    Items: ``{"lq": (3,h,w), "gt": (3,h,w), "name": <file>}``, float32 RGB in [0, 1].

    Raises:
        FileNotFoundError / ValueError from :func:`find_flat_pairs`; ValueError (naming both files)
        when a pair's sizes differ or an image is smaller than ``patch_size``;
        deblurkit.io.ImageReadError for unreadable files.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", patch_size: int | None = None,
                 augment: bool = False, seed: int = 0, *, lq_dir: str = "input", gt_dir: str = "target") -> None:
        self.root, self.split = Path(root), split
        super().__init__(find_flat_pairs(self.root, split, lq_dir, gt_dir), patch_size, augment, seed)


class GoProLargeDataset(PairedImageDataset):
    """GoPro pairs in the original ``GOPRO_Large`` layout ``<root>/<split>/<scene>/{blur,blur_gamma,sharp}``.

    Args: as :class:`GoProOfficialDataset`, plus ``blur``: ``"blur"`` (default, the frames the
    papers score) or ``"blur_gamma"``.

    Items: ``{"lq", "gt", "name": "<scene>/<file>"}``. Raises: as
    :class:`deblurkit.data.PairedImageDataset`; ValueError for another ``blur`` value.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", patch_size: int | None = None,
                 augment: bool = False, seed: int = 0, *, blur: str = "blur") -> None:
        if blur not in ("blur", "blur_gamma"):
            raise ValueError(f"blur must be 'blur' or 'blur_gamma', got {blur!r}")
        super().__init__(root, split, patch_size, augment, seed, lq_dir=blur, gt_dir="sharp")


register_dataset("gopro_official", GoProOfficialDataset)
register_dataset("gopro_large", GoProLargeDataset)
register_layout("gopro_official", lambda root, split: GoProOfficialDataset(root, split))
register_layout("gopro_large", lambda root, split: GoProLargeDataset(root, split))


# ------------------------------------------------------------------------------ sub-images
def subimage_grid(size: int, crop_size: int = 512, step: int = 256, thresh_size: int = 0) -> list[int]:
    """Top (or left) coordinates of the windows along one axis of length ``size``.

    ``0, step, 2 step, ...`` while the window fits, plus ``size - crop_size`` when more than
    ``thresh_size`` pixels would be left uncovered (``gopro.py`` ``worker``).

    Raises:
        ValueError: ``size < crop_size`` or non-positive ``crop_size`` / ``step``.
    """
    if crop_size <= 0 or step <= 0 or thresh_size < 0:
        raise ValueError(f"crop_size and step must be > 0 and thresh_size >= 0, got {crop_size}, {step}, {thresh_size}")
    if size < crop_size:
        raise ValueError(f"image side {size} is smaller than crop_size {crop_size}")
    pos = list(range(0, size - crop_size + 1, step))
    if size - (pos[-1] + crop_size) > thresh_size:
        pos.append(size - crop_size)
    return pos


def _read_unchanged(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"{path}: not a readable image")
    return img


def _write_windows(img: np.ndarray, path: Path, out_dir: Path, stem: str, crop_size: int, step: int,
                   thresh_size: int, compression: int) -> list[Path]:
    h, w = img.shape[:2]
    try:
        rows = subimage_grid(h, crop_size, step, thresh_size)
        cols = subimage_grid(w, crop_size, step, thresh_size)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    k = 0
    for top in rows:
        for left in cols:
            k += 1
            dst = out_dir / f"{stem}_s{k:03d}{path.suffix}"
            crop = np.ascontiguousarray(img[top:top + crop_size, left:left + crop_size])
            ok, buf = cv2.imencode(path.suffix, crop, [cv2.IMWRITE_PNG_COMPRESSION, compression])
            if not ok:
                raise ValueError(f"{path}: cannot encode a {path.suffix} crop")
            with atomic_path(dst) as tmp:
                Path(tmp).write_bytes(buf.tobytes())
            written.append(dst)
    return written


def extract_subimages(path: str | os.PathLike, out_dir: str | os.PathLike, *, crop_size: int = 512,
                      step: int = 256, thresh_size: int = 0, compression: int = 3,
                      stem: str | None = None) -> list[Path]:
    """Cut one image into overlapping ``crop_size`` windows saved as ``<stem>_s<k:03d><ext>``.

    Windows start at :func:`subimage_grid` positions (rows outer, columns inner, numbered from 1,
    as ``gopro.py``); pixels are copied unchanged (any bit depth / channel count that
    ``cv2.imread(IMREAD_UNCHANGED)`` reads); PNG compression ``compression`` (official 3). Each
    file is written atomically.

    Returns the written paths. Raises ValueError (naming the file) for an unreadable image or one
    smaller than ``crop_size``.
    """
    path = Path(path)
    return _write_windows(_read_unchanged(path), path, Path(out_dir), stem or path.stem, crop_size, step,
                          thresh_size, compression)


def prepare_gopro_crops(root: str | os.PathLike, out: str | os.PathLike | None = None, *, layout: str = "gopro_official",
                        split: str = "train", crop_size: int = 512, step: int = 256, thresh_size: int = 0,
                        progress: bool = False) -> dict:
    """Write the 512x512 training sub-images of a GoPro split (``gopro.py`` of MSDI-Net).

    Reads the pairs of ``layout`` (``gopro_official``: ``<root>/<split>/{input,target}``;
    ``gopro_large``: ``<root>/<split>/<scene>/{blur,sharp}``, crops named ``<scene>_<file stem>_s<k>``)
    and writes ``<out>/blur_crops/`` and ``<out>/sharp_crops/`` (default ``out``:
    ``<root>/<split>``), the same windows for both images of a pair.

    Returns ``{"pairs": n, "crops": m, "out": path}``.

    Raises:
        FileExistsError: ``blur_crops`` or ``sharp_crops`` already holds files (nothing is
            overwritten; the official script also refuses an existing folder).
        ValueError: unknown layout, a pair of different sizes, or images smaller than the crop.
        FileNotFoundError: from the layout reader.
    """
    if layout == "gopro_official":
        pairs = [(Path(n).stem, lq, gt) for n, lq, gt in find_flat_pairs(root, split)]
    elif layout == "gopro_large":
        ds = GoProLargeDataset(root, split)
        pairs = [(n.replace("/", "_").rsplit(".", 1)[0], lq, gt) for n, lq, gt in ds.pairs]
    else:
        raise ValueError(f"layout must be 'gopro_official' or 'gopro_large', got {layout!r}")
    out = Path(out) if out is not None else Path(root) / split
    lq_out, gt_out = out / "blur_crops", out / "sharp_crops"
    for d in (lq_out, gt_out):
        if d.is_dir() and any(d.iterdir()):
            raise FileExistsError(f"{d} already holds files; remove it or choose another --out")
    it = pairs
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(pairs, desc="crop", unit="pair")
    n_crops = 0
    for stem, lq, gt in it:
        a, b = _read_unchanged(lq), _read_unchanged(gt)
        if a.shape[:2] != b.shape[:2]:
            raise ValueError(f"{lq} is {a.shape[:2]} but {gt} is {b.shape[:2]}")
        n_crops += len(_write_windows(a, lq, lq_out, stem, crop_size, step, thresh_size, 3))
        _write_windows(b, gt, gt_out, stem, crop_size, step, thresh_size, 3)
    return {"pairs": len(pairs), "crops": n_crops, "out": str(out)}
