"""On-the-fly synthetic blur: sharp photo crops blurred by random camera-shake / measured kernels.

Each item follows the recipe of :func:`deblurkit.synth.build_pairs` without touching the disk:
a random crop larger than the patch by ``k - 1`` (optionally from a randomly downscaled
photo), a random kernel (Boracchi & Foi 2012 trajectory or Levin et al. 2009 measured kernel,
randomly flipped / rotated by 90 degrees), a ``valid`` blur so no boundary is invented,
Gaussian or Poisson-Gaussian noise, and 8-bit quantisation.
"""
from __future__ import annotations

import fnmatch
import os
import warnings
from typing import Iterable, Mapping, Sequence, Union

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..io.images import list_images, read_image
from ..synth.blur import blur_valid_pair
from ..synth.kernels import levin_kernels, trajectory_kernels
from ..synth.noise import poisson_gaussian_noise, quantize_8bit
from ..synth.pairs import derive_seed, scene_name
from .paired import item_generator

__all__ = ["SyntheticBlurDataset"]

PathLike = Union[str, os.PathLike]
Range = Union[float, Sequence[float]]


def _uniform(value, g: torch.Generator) -> float:
    if isinstance(value, (tuple, list)):
        lo, hi = float(value[0]), float(value[1])
        return lo + (hi - lo) * float(torch.rand((), generator=g, dtype=torch.float64))
    return float(value)


def _dihedral(k: torch.Tensor, code: int) -> torch.Tensor:
    """One of the 8 flips/rotations by 90 degrees of the last two dims (code in 0..7)."""
    k = torch.rot90(k, code % 4, dims=(-2, -1))
    return k.flip(-1) if code >= 4 else k


class SyntheticBlurDataset(Dataset):
    """Sharp photos blurred on the fly with random kernels; items ``{"lq", "gt", "name"}``.

    Photos are read once and kept as 8-bit arrays. For item ``index`` of epoch ``e`` a torch
    generator seeded by ``(seed, e, index)`` draws, in order: the kernel source and kernel,
    its flip/rotation, the photo, the scale, the crop position, the crop's flip/transpose,
    the noise level and the noise. Items are therefore reproducible and independent of the
    order and of DataLoader workers (training can resume mid-epoch); :meth:`set_epoch`
    changes every draw.

    Args:
        photos: folder(s) / file(s) of sharp photos (see :func:`deblurkit.io.list_images`).
        patch_size: side of the returned patches in pixels.
        length: number of items per epoch (``__len__``).
        kernel_sources: ``"trajectory"`` (Boracchi & Foi 2012 camera shake, ``kernel_size``
            square, lengths ``max_length``) and/or ``"levin"`` (the 8 measured Levin et al. 2009
            kernels); a sequence (uniform choice) or a mapping source -> weight.
        levin_path: ``levin09_kernels.npz`` or its folder (``None``: from ``data_root``, see
            :func:`deblurkit.synth.kernels.default_kernel_dir`).
        data_root: shared data folder for the default Levin path.
        kernel_size: trajectory kernel side (odd); Levin kernels keep their 13..27 px sizes.
        max_length: trajectory length range in pixels (``None``: ``(2, kernel_size - 1)``).
        exposure: trajectory exposure fraction (float or range).
        anxiety: trajectory shake amount (``None``: official ``0.1 * U``).
        trajectory_bank: trajectory kernels generated once at construction (seeded by
            ``seed``) and sampled per item with a random dihedral transform (x8 variety);
            generating a 2000-sample trajectory per item would be too slow.
        noise_sigma: Gaussian noise std in [0, 1] units, float or ``(lo, hi)`` uniform per item.
        peak: Poisson photon count at white, float, ``(lo, hi)`` or ``None`` (Gaussian only).
        scale: downscale factor range applied to the photo region per item (``cv2.INTER_AREA``),
            e.g. ``(0.5, 1.0)``; 1.0 keeps the native resolution. Limited per item so the
            region fits the photo.
        max_side: photos whose longer side exceeds this are downscaled once at load.
        include, exclude: glob patterns on photo file names/stems (default excludes
            ``mate_*``, the wallpapers held out for evaluation).
        seed: base seed.
        augment: random flips/transposes of the crop.
        center_kernels: re-centre the Levin kernels on their centroid so blurry and sharp stay
            aligned (:func:`deblurkit.synth.kernels.center_kernel`); off by default.
        kernels: alias of ``kernel_sources`` (interfaces.md name).

    Items:
        ``lq``: (3, P, P) float32 on the 8-bit grid in [0, 1]; ``gt``: (3, P, P) float32 [0, 1],
        pixel-aligned with ``lq`` (the kernel centre maps each blurry pixel to its sharp pixel);
        ``name``: ``"<scene>/<index:06d>"``.

    Raises:
        FileNotFoundError: no photos selected or missing Levin file. ValueError: unknown kernel
        source, or no photo large enough for ``patch_size + kernel - 1``.
    """

    def __init__(
        self,
        photos: PathLike | Iterable[PathLike],
        patch_size: int = 128,
        length: int = 10000,
        *,
        kernel_sources: Sequence[str] | Mapping[str, float] = ("trajectory", "levin"),
        levin_path: PathLike | None = None,
        data_root: PathLike | None = None,
        kernel_size: int = 31,
        max_length: Range | None = None,
        exposure: Range = 1.0,
        anxiety: Range | None = None,
        trajectory_bank: int = 512,
        noise_sigma: Range = (0.0, 0.02),
        peak: Range | None = None,
        scale: Range = (0.5, 1.0),
        max_side: int | None = None,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] = ("mate_*",),
        seed: int = 0,
        augment: bool = True,
        center_kernels: bool = False,
        kernels: Sequence[str] | Mapping[str, float] | None = None,
    ) -> None:
        if kernels is not None:
            kernel_sources = kernels
        if isinstance(kernel_sources, str):
            kernel_sources = (kernel_sources,)
        weights = dict(kernel_sources) if isinstance(kernel_sources, Mapping) else {s: 1.0 for s in kernel_sources}
        unknown = set(weights) - {"trajectory", "levin"}
        if unknown or not weights or sum(weights.values()) <= 0:
            raise ValueError(f"kernel_sources must name 'trajectory' and/or 'levin', got {kernel_sources!r}")
        self.sources = [s for s in ("trajectory", "levin") if weights.get(s, 0) > 0]
        w = torch.tensor([float(weights[s]) for s in self.sources], dtype=torch.float64)
        self._source_cdf = (w.cumsum(0) / w.sum()).tolist()
        self.patch_size = int(patch_size)
        self.length = int(length)
        self.noise_sigma = noise_sigma
        self.peak = peak
        self.scale = scale
        self.seed = int(seed)
        self.augment = augment
        self.epoch = 0

        # kernels
        self.levin: list[torch.Tensor] = []
        if "levin" in self.sources:
            self.levin = list(levin_kernels(levin_path, data_root=data_root, center=center_kernels).values())
        self.bank = torch.zeros(0, kernel_size, kernel_size)
        if "trajectory" in self.sources:
            if max_length is None:
                max_length = (2.0, kernel_size - 1.0)
            g = torch.Generator().manual_seed(derive_seed(self.seed, "trajectory-bank"))
            self.bank = trajectory_kernels(
                trajectory_bank, kernel_size, exposure=exposure, max_length=max_length, anxiety=anxiety, generator=g
            )
        k_max = max([kernel_size] * ("trajectory" in self.sources) + [k.shape[-1] for k in self.levin])
        need = self.patch_size + k_max - 1

        # photos, kept as uint8 HWC arrays
        files = list_images(photos)
        pats = lambda f, ps: any(fnmatch.fnmatch(f.name, p) or fnmatch.fnmatch(f.stem, p) for p in ps)  # noqa: E731
        if include:
            files = [f for f in files if pats(f, include)]
        files = [f for f in files if not pats(f, exclude)]
        if not files:
            raise FileNotFoundError(f"no photos selected from {photos} (include={include}, exclude={exclude})")
        self.images: list[np.ndarray] = []
        self.names: list[str] = []
        small = []
        for f in files:
            img = read_image(f, channels=3)
            arr = np.ascontiguousarray((img.permute(1, 2, 0).numpy() * 255.0 + 0.5).clip(0, 255).astype(np.uint8))
            h, w_ = arr.shape[:2]
            if max_side is not None and max(h, w_) > max_side:
                f_ = max_side / max(h, w_)
                arr = cv2.resize(arr, (max(1, round(w_ * f_)), max(1, round(h * f_))), interpolation=cv2.INTER_AREA)
            if min(arr.shape[:2]) < need:
                small.append(f.name)
                continue
            self.images.append(arr)
            self.names.append(scene_name(f))
        if small:
            warnings.warn(f"skipped {len(small)} photos smaller than {need} px: {small[:5]}", stacklevel=2)
        if not self.images:
            raise ValueError(
                f"no photo from {photos} is at least {need}x{need} px (patch {self.patch_size} + kernel {k_max} - 1)"
            )

    def set_epoch(self, epoch: int) -> None:
        """Use a different set of random draws for every index (call once per epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def _kernel(self, g: torch.Generator) -> torch.Tensor:
        u = float(torch.rand((), generator=g))
        src = next(s for s, c in zip(self.sources, self._source_cdf) if u < c or c >= 1.0)
        bank = self.bank if src == "trajectory" else self.levin
        k = bank[int(torch.randint(len(bank), (), generator=g))]
        return _dihedral(k, int(torch.randint(8, (), generator=g)))

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for length {self.length}")
        g = item_generator(self.seed, self.epoch, index)
        k = self._kernel(g)
        kh, kw = k.shape
        p = self.patch_size
        rh, rw = p + kh - 1, p + kw - 1
        i = int(torch.randint(len(self.images), (), generator=g))
        img = self.images[i]
        h, w = img.shape[:2]
        s = _uniform(self.scale, g)
        s = min(max(s, rh / h, rw / w), 1.0) if s > 0 else 1.0
        sh, sw = min(h, round(rh / s)), min(w, round(rw / s))
        top = int(torch.randint(h - sh + 1, (), generator=g))
        left = int(torch.randint(w - sw + 1, (), generator=g))
        region = img[top : top + sh, left : left + sw]
        if (sh, sw) != (rh, rw):
            region = cv2.resize(region, (rw, rh), interpolation=cv2.INTER_AREA)
        x = torch.from_numpy(np.ascontiguousarray(region)).permute(2, 0, 1).float().div_(255.0)
        if self.augment:
            x = _dihedral(x, int(torch.randint(8, (), generator=g))) if rh == rw else x
        lq, gt = blur_valid_pair(x, k)
        sigma = _uniform(self.noise_sigma, g)
        peak = None if self.peak is None else _uniform(self.peak, g)
        if sigma > 0 or peak is not None:
            lq = poisson_gaussian_noise(lq, peak=peak, sigma=sigma, generator=g)
        lq = quantize_8bit(lq)
        return {"lq": lq.contiguous(), "gt": gt.contiguous(), "name": f"{self.names[i]}/{index:06d}"}
