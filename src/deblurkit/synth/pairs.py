"""Build a paired blurry/sharp dataset from sharp photos, in the GoPro layout.

Output layout (read by :class:`deblurkit.data.PairedImageDataset`)::

    out/
      manifest.json                      # how it was made: seed, kernels, noise, every pair
      train/<scene>/blur/<name>.png      # blurry + noisy, 8-bit RGB
      train/<scene>/sharp/<name>.png     # sharp ground truth, 8-bit RGB, aligned pixel to pixel
      train/<scene>/kernel/<name>.npy    # the exact kernel, float32 (k, k), sums to 1
      train/<scene>/kernel/<name>.png    # the same kernel for viewing: 16-bit grey, scaled so max = 1
      test/<scene>/...                   # same, held-out scenes

One scene per source photo (scene name = file stem, characters outside ``[A-Za-z0-9._-]``
replaced by ``_``), ``crops_per_photo`` crops per scene named ``000000.png``, ``000001.png`` ...
Splits are by scene, so no photo contributes to both train and test.

Each pair is made as in camera-shake benchmarks built from sharp frames: a sharp region
larger than the crop by ``k - 1`` is blurred with ``valid`` boundary (no invented border), the
sharp image is cropped to the same pixels (:func:`deblurkit.synth.blur.blur_valid_pair`),
Poisson-Gaussian noise is added (:mod:`deblurkit.synth.noise`) and both are quantised to 8 bits.
Kernels are Boracchi & Foi 2012 camera-shake trajectories, the Levin et al. 2009 measured
kernels, a 50/50 mix of both, defocus discs (``disk``) or long smooth camera-shake paths
(``shake``, :func:`deblurkit.synth.kernels.shake_kernels`). Everything is deterministic given ``seed``: each scene draws from its
own generator seeded by ``(seed, scene name)``, so adding photos does not change other scenes.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import math
import os
import re
import shutil
import warnings
from pathlib import Path
from typing import Callable, Iterable, Sequence, Union

import cv2
import numpy as np
import torch

from ..io.atomic import write_bytes_atomic
from ..io.images import IMAGE_EXTENSIONS, list_images, read_image, save_image
from .blur import blur_valid_pair
from .kernels import (LEVIN_FILE, _resolve_kernel_file, center_kernel, disk_kernel, load_kernel_bank, shake_kernels,
                      trajectory_kernels, trim_kernel)
from .noise import poisson_gaussian_noise, quantize_8bit

__all__ = ["build_pairs", "scene_name", "derive_seed", "kernel_label", "pair_labels", "MANIFEST_NAME",
           "KERNEL_SOURCES"]

MANIFEST_NAME = "manifest.json"
KERNEL_SOURCES = ("trajectory", "levin", "mixed", "disk", "shake")
RANDOM_SOURCES = ("trajectory", "disk", "shake")
PathLike = Union[str, os.PathLike]
Range = Union[float, Sequence[float]]


def derive_seed(*parts) -> int:
    """A stable 63-bit seed from any printable parts (sha256 of their repr, joined by ':')."""
    h = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


def scene_name(path: PathLike) -> str:
    """Scene name of a photo: its file stem with characters outside [A-Za-z0-9._-] -> '_'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(path).stem) or "scene"


def _uniform(value: Range, g: torch.Generator) -> float:
    if isinstance(value, (tuple, list)):
        lo, hi = float(value[0]), float(value[1])
        return lo + (hi - lo) * float(torch.rand((), generator=g, dtype=torch.float64))
    return float(value)


def kernel_label(kernel_record: dict) -> str:
    """A short label of a pair's kernel (its manifest record ``pair["kernel"]``), for per-kernel
    summaries: the bank key of a measured kernel (``levin09_3``); for random families the
    family and a size bin: ``disk r3-4`` (radius in [3, 4) px), ``shake L20-30`` /
    ``trajectory L20-30`` (path length in [20, 30) px). Unknown records give their source."""
    src = str(kernel_record.get("source", "?"))
    if src == "levin":
        return str(kernel_record.get("name", "levin"))
    if src == "disk" and "radius" in kernel_record:
        r = math.floor(float(kernel_record["radius"]))
        return f"disk r{r}-{r + 1}"
    length = kernel_record.get("length", kernel_record.get("max_length"))
    if src in ("shake", "trajectory") and isinstance(length, (int, float)):
        lo = 10 * math.floor(float(length) / 10)
        return f"{src} L{lo}-{lo + 10}"
    return src


def pair_labels(root: PathLike) -> dict[str, str]:
    """``"<scene>/<name>" -> kernel label`` (:func:`kernel_label`) for every pair of the
    dataset written by :func:`build_pairs` in ``root`` (read from its ``manifest.json``); ``{}``
    when ``root`` holds no such manifest (other datasets).

    Raises:
        ValueError: the manifest exists but is not valid JSON (the file is named).
    """
    path = Path(root) / MANIFEST_NAME
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: unreadable manifest ({e})") from e
    if not isinstance(manifest, dict) or manifest.get("format") != "deblurkit-synth-pairs":
        return {}
    out = {}
    for rec in manifest.get("pairs", []):
        if isinstance(rec, dict) and isinstance(rec.get("kernel"), dict):
            out[f"{rec.get('scene')}/{rec.get('name')}"] = kernel_label(rec["kernel"])
    return out


def _save_npy(path: Path, array: np.ndarray) -> None:
    import io

    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    write_bytes_atomic(path, buf.getvalue())


def _select_photos(photos, include, exclude, recursive: bool = False) -> list[Path]:
    if recursive:
        items = [photos] if isinstance(photos, (str, os.PathLike)) else list(photos)
        files = []
        for item in items:
            p = Path(item)
            if p.is_dir():
                files += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
            else:
                files += list_images([p])
    else:
        files = list_images(photos)
    if include:
        files = [f for f in files if any(fnmatch.fnmatch(f.name, p) or fnmatch.fnmatch(f.stem, p) for p in include)]
    if exclude:
        files = [f for f in files if not any(fnmatch.fnmatch(f.name, p) or fnmatch.fnmatch(f.stem, p) for p in exclude)]
    if not files:
        raise FileNotFoundError(f"no photos selected from {photos} (include={include}, exclude={exclude})")
    return files


def _split_scenes(scenes: list[str], test_fraction: float, test_patterns, seed: int) -> dict[str, str]:
    if test_patterns:
        return {s: ("test" if any(fnmatch.fnmatch(s, p) for p in test_patterns) else "train") for s in scenes}
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(f"test_fraction must lie in [0, 1], got {test_fraction}")
    n = len(scenes)
    n_test = int(round(test_fraction * n))
    if test_fraction > 0 and n >= 2:
        n_test = min(max(n_test, 1), n - 1)
    g = torch.Generator().manual_seed(derive_seed(seed, "split"))
    order = torch.randperm(n, generator=g).tolist()
    test = {scenes[i] for i in order[:n_test]}
    return {s: ("test" if s in test else "train") for s in scenes}


def _prepare_out(out: Path, overwrite: bool) -> None:
    manifest = out / MANIFEST_NAME
    if manifest.exists():
        if not overwrite:
            raise FileExistsError(f"{out} already holds a dataset ({manifest}); pass --overwrite to replace it, or choose another --out")
        try:
            old = json.loads(manifest.read_text())
        except (OSError, ValueError) as e:
            raise FileExistsError(f"{manifest} is unreadable ({e}); remove {out} by hand") from e
        # remove only the scene folders the previous run wrote
        for split, scenes in old.get("splits", {}).items():
            for s in scenes:
                d = out / split / s
                if d.is_dir() and split in ("train", "test") and "/" not in s and s not in ("", ".", ".."):
                    shutil.rmtree(d)
    elif any((out / s).exists() and any((out / s).iterdir()) for s in ("train", "test")):
        if not overwrite:
            raise FileExistsError(f"{out} already has train/ or test/ content without a manifest; pass --overwrite, or choose another --out")


def _gradient_energy(region: torch.Tensor) -> float:
    """Mean absolute horizontal + vertical difference of the grey image (texture measure)."""
    grey = region.mean(dim=0)
    return float((grey[:, 1:] - grey[:, :-1]).abs().mean() + (grey[1:] - grey[:-1]).abs().mean())


def _pick_crop(img: torch.Tensor, rh: int, rw: int, candidates: int, g: torch.Generator) -> tuple[int, int]:
    """Top-left corner of an ``rh x rw`` crop of ``img`` (C,H,W): the most textured (highest
    :func:`_gradient_energy`) of ``candidates`` uniformly drawn positions; ``candidates=1`` is a
    plain uniform draw. Skips flat crops such as the out-of-focus backgrounds of the wallpapers
    (``../shared/data/SOURCES.md``: "for evaluation, skip crops with little gradient energy")."""
    h, w = img.shape[-2:]
    best, best_e = (0, 0), -1.0
    for _ in range(max(1, candidates)):
        top = int(torch.randint(h - rh + 1, (), generator=g))
        left = int(torch.randint(w - rw + 1, (), generator=g))
        e = _gradient_energy(img[:, top:top + rh, left:left + rw]) if candidates > 1 else 0.0
        if e > best_e:
            best, best_e = (top, left), e
    return best


def build_pairs(
    photos: PathLike | Iterable[PathLike],
    out: PathLike,
    *,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    crops_per_photo: int = 4,
    crop_size: int | None = 256,
    every_kernel: bool = False,
    recursive: bool = False,
    texture_candidates: int = 1,
    center_kernels: bool = False,
    scale: float = 1.0,
    kernels: str = "trajectory",
    kernel_size: int = 31,
    max_length: Range | None = None,
    exposure: Range = 1.0,
    anxiety: Range | None = None,
    disk_radius: Range = (2.5, 6.0),
    shake_length: Range = (10.0, 40.0),
    levin_path: PathLike | None = None,
    data_root: PathLike | None = None,
    noise_sigma: Range = 0.01,
    peak: Range | None = None,
    test_fraction: float = 0.2,
    test_patterns: Sequence[str] | None = None,
    seed: int = 0,
    overwrite: bool = False,
    progress: Callable[[int, int, str], None] | bool | None = None,
) -> dict:
    """Synthesise blurry/sharp pairs from sharp photos into the GoPro layout (see module doc).

    Args:
        photos: a folder of photos, an image file, or a list of both.
        out: output folder (created). Never the photo folder: inputs are protected.
        include: glob patterns on file names/stems to keep (``None``: all).
        exclude: glob patterns on file names/stems to drop (e.g. ``("mate_*",)``).
        crops_per_photo: pairs per scene (random crop positions).
        center_kernels: re-centre the Levin kernels on their centroid
            (:func:`deblurkit.synth.kernels.center_kernel`) so blur does not also shift the
            image; trajectory kernels are always centred.
        texture_candidates: draw this many crop positions per pair and keep the most textured
            (highest mean gradient); 1 (default) is a plain uniform draw. Evaluation sets use
            e.g. 16 so that flat, out-of-focus crops do not dominate the scores.
        crop_size: side of the output pairs in pixels; shrunk for a photo that is too small
            (smaller than ``crop_size + k - 1``), recorded per pair in the manifest. ``None``:
            the whole photo (its valid region, ``(H - kh + 1) x (W - kw + 1)``).
        every_kernel: evaluation sets: one pair per photo and per kernel of the measured bank
            (the Levin file, or whatever ``levin_path`` names), in key order, instead of
            ``crops_per_photo`` random kernels (as in Levin et al. 2009's 4 images x 8 kernels).
            Needs ``kernels`` ``"levin"`` or ``"mixed"``; the random families (``trajectory``,
            ``disk``, ``shake``) make ``crops_per_photo`` pairs per photo instead, each kernel
            drawn from the scene's seeded generator (fixed by ``seed``).
        recursive: search photo folders recursively (scene names must stay unique).
        scale: resize factor applied to every photo first (``cv2.INTER_AREA``), e.g. 0.5.
        kernels: ``"trajectory"`` (Boracchi & Foi 2012 camera shake, ``kernel_size`` square),
            ``"levin"`` (the 8 measured Levin et al. 2009 kernels, chosen at random) or
            ``"mixed"`` (each pair picks one of the two with probability 1/2), ``"disk"``
            (defocus: :func:`deblurkit.synth.kernels.disk_kernel`, radius uniform in
            ``disk_radius``, side ``2 ceil(r) + 1``) or ``"shake"`` (long smooth camera-shake
            paths: :func:`deblurkit.synth.kernels.shake_kernels`, length uniform in
            ``shake_length``, trimmed to their support with :func:`trim_kernel`).
        kernel_size: side of trajectory kernels (odd recommended).
        max_length: trajectory length in pixels, float or ``(lo, hi)`` uniform per pair; keep
            ``<= kernel_size - 1`` so no kernel mass is cut off. ``None``:
            ``(kernel_size / 6, kernel_size - 1)``.
        exposure: exposure fraction (0, 1], float or ``(lo, hi)``.
        anxiety: trajectory shake amount, float, ``(lo, hi)`` or ``None`` (official ``0.1 U``).
        disk_radius: defocus disc radius in pixels, float or ``(lo, hi)`` uniform per pair.
        shake_length: ``shake`` path length in pixels, float or ``(lo, hi)`` uniform per pair.
        levin_path: ``levin09_kernels.npz`` or its folder (``None``: resolved from
            ``data_root`` as in :func:`deblurkit.synth.kernels.default_kernel_dir`); any
            kernel-bank ``.npz`` (e.g. ``kair_kernels12.npz``) may be named instead.
        data_root: shared data folder used when ``levin_path`` is None.
        noise_sigma: Gaussian read noise std in [0, 1] units, float or ``(lo, hi)`` per pair.
        peak: Poisson photon count at white, float, ``(lo, hi)`` or ``None`` (no shot noise).
        test_fraction: fraction of scenes held out as ``test`` (at least one when > 0 and
            there are >= 2 scenes). Ignored when ``test_patterns`` is given.
        test_patterns: glob patterns on scene names that go to ``test``; the rest is ``train``.
        seed: master seed; the output is a deterministic function of it and the inputs.
        overwrite: replace a dataset already in ``out`` (only the scene folders listed in its
            manifest are removed); otherwise ``FileExistsError``.
        progress: ``callable(done, total, scene)`` called after each scene, or ``True`` for a
            tqdm bar.

    Returns:
        The manifest dict that was written to ``out/manifest.json``: ``format``, ``seed``,
        ``kernels``, ``noise``, ``splits`` (split -> scenes), ``counts`` (per split),
        ``num_pairs``, ``skipped`` and ``pairs`` (one record per pair: split, scene, name,
        photo, crop box of the sharp image in the (scaled) photo, kernel source
        (``trajectory`` with its length/exposure/anxiety, ``levin`` with the bank key, ``disk``
        with its radius, ``shake`` with its length), shape and ``label``
        (:func:`kernel_label`), noise sigma/peak).

    Raises:
        FileNotFoundError: no photos, or the Levin kernel file is missing.
        FileExistsError: ``out`` holds a dataset and ``overwrite`` is False.
        ValueError: bad arguments, duplicate scene names, or a photo smaller than a kernel.
        deblurkit.io.ImageReadError: an unreadable photo (named in the message).
    """
    if kernels not in KERNEL_SOURCES:
        raise ValueError(f"kernels must be one of {KERNEL_SOURCES}, got {kernels!r}")
    if crops_per_photo < 1 or (crop_size is not None and crop_size < 8):
        raise ValueError("crops_per_photo must be >= 1 and crop_size >= 8 (or None)")
    if every_kernel and kernels in RANDOM_SOURCES:
        raise ValueError(f"every_kernel needs a measured kernel bank (kernels='levin' or 'mixed'); "
                         f"for kernels={kernels!r} use crops_per_photo pairs per photo")
    for value, what in ((disk_radius, "disk_radius"), (shake_length, "shake_length")):
        bounds = value if isinstance(value, (tuple, list)) else (value, value)
        if len(bounds) != 2 or not 0 < float(bounds[0]) <= float(bounds[1]) or not math.isfinite(float(bounds[1])):
            raise ValueError(f"{what} must be a positive number or a range 0 < lo <= hi, got {value!r}")
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    if max_length is None:
        max_length = (kernel_size / 6.0, kernel_size - 1.0)
    out = Path(out)
    files = _select_photos(photos, include, exclude, recursive)
    names: dict[str, Path] = {}
    for f in files:
        s = scene_name(f)
        if s in names:
            raise ValueError(f"photos {names[s]} and {f} give the same scene name {s!r}; rename one")
        names[s] = f
    levin, levin_file = None, None
    if kernels in ("levin", "mixed"):
        levin_file = _resolve_kernel_file(levin_path, data_root, LEVIN_FILE)
        levin = load_kernel_bank(levin_file)
        if center_kernels:
            levin = {n: center_kernel(k) for n, k in levin.items()}
    levin_names = list(levin) if levin else []
    split_of = _split_scenes(list(names), test_fraction, test_patterns, seed)
    _prepare_out(out, overwrite)
    protected = list(files)

    bar = None
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(names), desc="synth pairs", unit="scene")

    records: list[dict] = []
    skipped: list[dict] = []
    for done, (scene, photo) in enumerate(names.items(), start=1):
        split = split_of[scene]
        g = torch.Generator().manual_seed(derive_seed(seed, "scene", scene))
        img = read_image(photo, channels=3)
        if scale != 1.0:
            h, w = img.shape[-2:]
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            arr = cv2.resize(img.permute(1, 2, 0).numpy(), size, interpolation=cv2.INTER_AREA)
            img = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).clamp(0, 1)
        img = quantize_8bit(img)  # the sharp ground truth is stored at 8 bits
        h, w = img.shape[-2:]
        folder = out / split / scene
        plan = [("levin", n) for n in levin_names] if every_kernel else [(None, None)] * crops_per_photo
        for i, (src, kname) in enumerate(plan):
            name = f"{i:06d}"
            if src is None:
                src = kernels
                if kernels == "mixed":
                    src = "trajectory" if torch.rand((), generator=g) < 0.5 else "levin"
            rec: dict = {"split": split, "scene": scene, "name": f"{name}.png", "photo": str(photo)}
            if src == "trajectory":
                L = _uniform(max_length, g)
                T = _uniform(exposure, g)
                A = None if anxiety is None else _uniform(anxiety, g)
                k = trajectory_kernels(1, kernel_size, exposure=T, max_length=L, anxiety=A, generator=g)[0]
                rec["kernel"] = {"source": "trajectory", "max_length": L, "exposure": T,
                                 "anxiety": A if A is not None else "0.1*U"}
            elif src == "disk":
                r = _uniform(disk_radius, g)
                k = disk_kernel(r)
                rec["kernel"] = {"source": "disk", "radius": r}
            elif src == "shake":
                L = _uniform(shake_length, g)
                k = trim_kernel(shake_kernels(1, length=L, generator=g)[0])
                rec["kernel"] = {"source": "shake", "length": L}
            else:
                if kname is None:
                    kname = levin_names[int(torch.randint(len(levin_names), (), generator=g))]
                k = levin[kname]
                rec["kernel"] = {"source": "levin", "name": kname}
            kh, kw = k.shape
            rec["kernel"]["shape"] = [kh, kw]
            rec["label"] = kernel_label(rec["kernel"])
            ch, cw = h - kh + 1, w - kw + 1
            if crop_size is not None:
                ch, cw = min(crop_size, ch), min(crop_size, cw)
                ch = cw = min(ch, cw)
            if ch < 8 or cw < 8:
                why = f"{h}x{w} px is too small for a {kh}x{kw} kernel"
                skipped.append({"photo": str(photo), "name": f"{name}.png", "reason": why})
                warnings.warn(f"{photo}: {why}; pair {name} skipped", stacklevel=2)
                continue
            rh, rw = ch + kh - 1, cw + kw - 1
            top, left = _pick_crop(img, rh, rw, texture_candidates, g)
            region = img[:, top : top + rh, left : left + rw]
            blurry, sharp = blur_valid_pair(region, k)
            sigma = _uniform(noise_sigma, g)
            pk = None if peak is None else _uniform(peak, g)
            noisy = poisson_gaussian_noise(blurry, peak=pk, sigma=sigma, generator=g)
            noisy = quantize_8bit(noisy)
            ctop, cleft = top + kh - 1 - kh // 2, left + kw - 1 - kw // 2
            rec["crop"] = {"top": ctop, "left": cleft, "height": ch, "width": cw}
            rec["noise"] = {"sigma": sigma, "peak": pk}
            save_image(folder / "blur" / f"{name}.png", noisy, protected=protected)
            save_image(folder / "sharp" / f"{name}.png", sharp, protected=protected)
            k_np = k.numpy().astype(np.float32)
            _save_npy(folder / "kernel" / f"{name}.npy", k_np)
            save_image(folder / "kernel" / f"{name}.png", (k / k.max())[None], bit_depth=16, protected=protected)
            records.append(rec)
        if bar is not None:
            bar.set_postfix_str(scene, refresh=False)
            bar.update(1)
        elif callable(progress):
            progress(done, len(names), scene)
    if bar is not None:
        bar.close()

    splits: dict[str, list[str]] = {"train": [], "test": []}
    for r in records:
        if r["scene"] not in splits[r["split"]]:
            splits[r["split"]].append(r["scene"])
    from .. import __version__

    manifest = {
        "format": "deblurkit-synth-pairs",
        "version": 1,
        "layout": "<split>/<scene>/{blur,sharp}/<name>.png; kernel/<name>.npy (float32, sum 1) "
        "and kernel/<name>.png (16-bit, kernel / max)",
        "deblurkit": __version__,
        "seed": seed,
        "kernels": kernels,
        "kernel_size": kernel_size if kernels in ("trajectory", "mixed") else None,
        "trajectory": {"model": "Boracchi & Foi 2012 (createTrajectory/createPSFs)",
                       "max_length": max_length, "exposure": exposure,
                       "anxiety": anxiety if anxiety is not None else "0.1*U", "num_samples": 2000,
                       "centering": "kernel centroid"} if kernels in ("trajectory", "mixed") else None,
        "disk": {"model": "anti-aliased pillbox (disk_kernel)", "radius": disk_radius} if kernels == "disk" else None,
        "shake": {"model": "deblurkit shake_kernels (drift + low-frequency oscillations of the velocity), "
                           "trimmed to the support, centroid-centred", "length": shake_length}
        if kernels == "shake" else None,
        "levin_path": str(levin_file) if levin_file is not None else None,
        "every_kernel": every_kernel,
        "boundary": "valid",
        "noise": {"model": "poisson-gaussian", "sigma": noise_sigma, "peak": peak, "quantization": "8-bit"},
        "crop_size": crop_size,
        "texture_candidates": texture_candidates,
        "center_kernels": center_kernels,
        "crops_per_photo": crops_per_photo,
        "scale": scale,
        "test_fraction": None if test_patterns else test_fraction,
        "test_patterns": list(test_patterns) if test_patterns else None,
        "splits": splits,
        "counts": {s: sum(r["split"] == s for r in records) for s in ("train", "test")},
        "num_pairs": len(records),
        "skipped": skipped,
        "pairs": records,
    }
    write_bytes_atomic(out / MANIFEST_NAME, (json.dumps(manifest, indent=1) + "\n").encode())
    return manifest
