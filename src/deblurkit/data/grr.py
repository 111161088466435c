"""GRR_real and RSGR-GS_v1: paired global-reset-release (GRR, "RSGR") / global-shutter (GS) frames.

Layout (README of jixiang2016/RSS-T; ``dataset/GRRreal.py``; also written by
``deblurkit synth grr``)::

    <root>/<split>/<seq>/RSGR/PNG/<n>.png    GRR-blurred frame (input)
    <root>/<split>/<seq>/GS/PNG/<n>.png      global-shutter frame (target)
    <root>/<split>/<seq>/{RSGR,GS}/RAW/...   the same frames as camera RAW files (optional)

Splits are ``train`` / ``validate`` / ``test`` (GRR_real: 50 / 7 / 7 sequences). Pairs are
matched by file name inside each sequence, as the official loader does (it asserts that
``GS/PNG/<name>`` exists for every ``RSGR/PNG/<name>``).

``image_format="raw"`` reads the ``RAW`` folders with `rawpy <https://pypi.org/project/rawpy/>`_
(LibRaw; optional dependency, ``pip install rawpy``), demosaicked to 16-bit RGB with the camera
white balance, no auto-brightening, linear (gamma 1) output, then scaled to [0, 1]. Only camera
RAW files LibRaw reads are supported (:data:`RAW_EXTENSIONS`); anything else raises an error
naming the folder, what it holds and what is supported.

Training augmentation (``augment=True``), as ``GRRreal.__getitem__``: horizontal flip and RGB/BGR
channel reversal, each with probability 1/2; **no vertical flip** (it would reverse the direction
in which the blur grows, which the network reads from its row-index channel) and no cropping (full
frames; the recipe pads them, see ``deblurkit.engine.recipes.rsst``).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..io.images import ImageReadError, read_image
from .paired import PairListDataset, _check_same_names, _split_subfolders
from .registry import register_dataset, register_layout

__all__ = ["GRRPairedDataset", "find_grr_pairs", "read_raw", "RAW_EXTENSIONS", "GRR_SPLITS"]

#: Camera RAW suffixes handed to rawpy/LibRaw (lower case).
RAW_EXTENSIONS = frozenset({
    ".dng", ".nef", ".nrw", ".cr2", ".cr3", ".crw", ".arw", ".srf", ".sr2", ".raf", ".orf", ".rw2",
    ".pef", ".srw", ".erf", ".kdc", ".dcr", ".mrw", ".3fr", ".iiq", ".mos", ".x3f", ".raw", ".rwl",
})
#: Split folder names of the official datasets.
GRR_SPLITS = ("train", "validate", "test")
_FOLDER = {"png": "PNG", "raw": "RAW"}


def _files(folder: Path, suffixes: frozenset[str] | tuple[str, ...]) -> dict[str, Path]:
    return {p.name: p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes}


def _check_raw_folder(folder: Path) -> dict[str, Path]:
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    raw = {p.name: p for p in files if p.suffix.lower() in RAW_EXTENSIONS}
    if not raw:
        kinds = sorted({p.suffix.lower() or "(no suffix)" for p in files})
        raise ValueError(
            f"{folder}: holds no camera RAW files (found {kinds or 'nothing'}); image_format='raw' reads "
            f"camera RAW files with rawpy/LibRaw ({', '.join(sorted(RAW_EXTENSIONS))}); use "
            f"image_format='png' for the PNG folders"
        )
    return raw


def find_grr_pairs(root: str | os.PathLike, split: str = "test", image_format: str = "png") -> list[tuple[str, Path, Path]]:
    """List ``(name, rsgr_path, gs_path)`` of ``<root>/<split>/<seq>/{RSGR,GS}/{PNG|RAW}/``, sorted;
    ``name`` is ``"<seq>/<file stem>"``.

    Raises:
        FileNotFoundError: missing split folder, or a sequence without ``RSGR/<fmt>`` / ``GS/<fmt>``.
        ValueError: unknown ``image_format``; a sequence whose two folders hold different file
            names (naming the folder and the unmatched files); a RAW folder without camera RAW
            files (saying what is supported); no pairs at all.
    """
    if image_format not in _FOLDER:
        raise ValueError(f"image_format must be 'png' or 'raw', got {image_format!r}")
    sub = _FOLDER[image_format]
    base = Path(root) / split
    seqs = _split_subfolders(base, split, "sequence", "seq", f"{{RSGR,GS}}/{sub}/",
                             note=f"; splits are {', '.join(GRR_SPLITS)}")
    pairs: list[tuple[str, Path, Path]] = []
    for seq in seqs:
        folders = [seq / "RSGR" / sub, seq / "GS" / sub]
        for f in folders:
            if not f.is_dir():
                raise FileNotFoundError(f"{seq}: missing folder {f.relative_to(seq)}/")
        if image_format == "png":
            lq, gt = (_files(f, (".png",)) for f in folders)
        else:
            lq, gt = (_check_raw_folder(f) for f in folders)
        _check_same_names(seq, lq, gt, f"RSGR/{sub}", f"GS/{sub}", "RSGR", "GS")
        pairs.extend((f"{seq.name}/{Path(n).stem}", lq[n], gt[n]) for n in sorted(lq))
    return pairs


def read_raw(path: str | os.PathLike) -> torch.Tensor:
    """Read a camera RAW file with rawpy (LibRaw) as (3, H, W) float32 RGB in [0, 1].

    Demosaicked with the camera white balance, ``no_auto_bright``, linear output (gamma 1) at
    16 bits per sample, divided by 65535.

    Raises:
        ImportError: rawpy is not installed (with the pip command).
        ImageReadError: LibRaw cannot read the file (naming it).
    """
    try:
        import rawpy
    except ImportError:
        raise ImportError(
            f"reading camera RAW files ({path}) needs the optional package rawpy: pip install rawpy "
            "(or read the PNG folders: image_format='png')"
        ) from None
    try:
        with rawpy.imread(str(path)) as raw:
            rgb = raw.postprocess(use_camera_wb=True, no_auto_bright=True, gamma=(1, 1), output_bps=16)
    except Exception as e:  # LibRaw errors have several classes across rawpy versions
        raise ImageReadError(f"{path}: cannot read camera RAW file ({type(e).__name__}: {e})") from None
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ImageReadError(f"{path}: rawpy returned an array of shape {arr.shape}, expected (H, W, 3)")
    return torch.from_numpy(arr.astype(np.float32) / 65535.0).permute(2, 0, 1).contiguous()


class GRRPairedDataset(PairListDataset):
    """GRR / GS pairs of GRR_real or RSGR-GS_v1 (official ``dataset/GRRreal.py`` ``GRRreal``).

    Args:
        root: dataset root (the folder holding ``train/``, ``validate/``, ``test/``).
        split: split folder.
        image_format: ``"png"`` (the official loader's) or ``"raw"`` (camera RAW via rawpy).
        augment: horizontal flip and RGB/BGR swap, each with probability 1/2 (official training
            augmentation; no vertical flip, no crop).
        seed: base seed; item ``i`` of epoch ``e`` draws from a generator seeded by ``(seed, e, i)``.

    Items:
        ``{"lq": (3, H, W) GRR frame, "gt": (3, H, W) GS frame, "name": "<seq>/<stem>"}``, float32
        RGB in [0, 1], whole frames.

    Raises:
        FileNotFoundError / ValueError from :func:`find_grr_pairs`; ValueError when a pair's frames
        differ in size (naming both files); ImageReadError / ImportError when reading.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", image_format: str = "png",
                 augment: bool = False, seed: int = 0) -> None:
        self.root = Path(root)
        self.split = split
        self.image_format = image_format
        super().__init__(find_grr_pairs(self.root, split, image_format), None, augment, seed)

    def read(self, path: Path) -> torch.Tensor:
        return read_raw(path) if self.image_format == "raw" else read_image(path, channels=3)

    def transform(self, lq: torch.Tensor, gt: torch.Tensor, g: torch.Generator,
                  name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Official augmentation when ``augment``: horizontal flip, RGB/BGR swap (each p = 1/2)."""
        if self.augment:
            r = torch.rand(2, generator=g)
            if r[0] < 0.5:  # horizontal flip
                lq, gt = lq.flip(-1), gt.flip(-1)
            if r[1] < 0.5:  # RGB <-> BGR
                lq, gt = lq.flip(0), gt.flip(0)
            lq, gt = lq.contiguous(), gt.contiguous()
        return lq, gt


register_dataset("grr", GRRPairedDataset)
register_layout("grr_real", lambda root, split: GRRPairedDataset(root, split=split))
register_layout("rsgr_gs_v1", lambda root, split: GRRPairedDataset(root, split=split))
register_layout("grr_real_raw", lambda root, split: GRRPairedDataset(root, split=split, image_format="raw"))
