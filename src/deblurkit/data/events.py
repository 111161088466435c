"""Datasets of the event-guided low-light deblurring system (Zhou et al., IJCV 2023).

Official layouts (``data_loader/dataset/dataset_full.py`` and ``scripts/make_dataset.py`` of
fourson/Deblurring-Low-Light-Images-with-Events); sample ``<name>`` is present in every folder::

    synthetic (train / test):                real (DAVIS346) and hybrid (RGB-DAVIS):
      <root>/share/APS_blur/<name>.png         <root>/APS_blur/<name>.png
      <root>/share/APS_blur_clean/<name>.png   <root>/events_voxel_grid/<name>.npy
      <root>/share/flow/<name>.npy  (H,W,4)    <root>/RGB_blur/<name>.png   (hybrid)
      <root>/subnetwork1/events_voxel_grid/<name>.npy  (H,W,13)
      <root>/subnetwork2/APS/<name>.png        (sharp APS)
      <root>/subnetwork2/RGB/<name>.png, RGB_blur/, RGB_blur_clean/  (hybrid-size RGB, 3x)

Items (float32 tensors; images linear in [0, 1], 8- or 16-bit PNGs):

* ``E`` (13, h, w): voxel grid, normalised on reading (:func:`deblurkit.synth.voxel.normalize_voxel_grid`),
* ``B`` (1, h, w): blurry APS frame; ``Bi``: the image to restore (``B``, or the RGB frame
  (3, 3h, 3w) with ``rgb=True``), also under ``lq``;
* with targets: ``S`` (= ``gt``, sharp APS or RGB), ``Bi_clean`` (noise-free blurry image),
  ``F`` (4, h, w) flows in APS pixels;
* ``name``.

Fix of the official loader: under NumPy 2, ``normalize_events`` (``utils/util.py``) returns
float64 (the float64 mean/std scalars now promote the float32 grid, NEP 50), ``ToTensor`` makes
a DoubleTensor and the float32 network fails ("Input type (double) and bias type (float) should
be the same"). Here every array is float32, whatever the NumPy version or the file's dtype.

Also :class:`RecordingFrames`: the APS frames of a real recording (``.aedat4``/``.npz``/``.h5``)
with the voxel grid of the events in each frame's exposure window.

Registered: dataset ``evdeblur`` (training, synthetic layout with targets); layouts
``evdeblur_synthetic``, ``evdeblur_synthetic_rgb`` (paired, with ``gt``), ``evdeblur_real``,
``evdeblur_hybrid`` (no ``gt``).
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..io.images import read_image
from ..synth.voxel import NUM_BINS, events_to_voxel_grid, from_official_layout, normalize_voxel_grid
from .paired import item_generator
from .registry import register_dataset, register_layout

__all__ = ["EventDeblurDataset", "RecordingFrames", "evdeblur_train_dataset", "load_voxel_grid", "official_folders"]

RGB_SCALE = 3


def official_folders(kind: str, rgb: bool) -> dict[str, str]:
    """Sub-folders of an official layout: ``kind`` ``"synthetic"`` or ``"real"`` (real and
    hybrid data). Keys: ``E``, ``B``, ``Bi`` (RGB only) and, synthetic only, the targets ``S``,
    ``Bi_clean``, ``F``. Follows ``TrainDataset`` / ``InferDataset`` of ``dataset_full.py``."""
    if kind == "real":
        out = {"E": "events_voxel_grid", "B": "APS_blur"}
        if rgb:
            out["Bi"] = "RGB_blur"
        return out
    if kind != "synthetic":
        raise ValueError(f"kind must be 'synthetic' or 'real', got {kind!r}")
    out = {"E": "subnetwork1/events_voxel_grid", "B": "share/APS_blur", "F": "share/flow"}
    if rgb:
        out.update(Bi="subnetwork2/RGB_blur", Bi_clean="subnetwork2/RGB_blur_clean", S="subnetwork2/RGB")
    else:
        out.update(Bi_clean="share/APS_blur_clean", S="subnetwork2/APS")
    return out


def load_voxel_grid(path: str | os.PathLike, num_bins: int = NUM_BINS, normalize: bool = True) -> torch.Tensor:
    """Read an official ``(H, W, bins)`` ``.npy`` voxel grid as a float32 (bins, H, W) tensor,
    E2VID-normalised unless ``normalize=False``.

    Raises:
        FileNotFoundError: missing file. ValueError: unreadable file, not 3-D, not ``num_bins``
        bins in the last axis, or non-finite values (naming the file).
    """
    path = Path(path)
    arr = _load_hw_array(path, "voxel grid", num_bins, " as the official .npy files").astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        raise ValueError(f"'{path}': voxel grid contains NaN or infinite values")
    if normalize:
        arr = normalize_voxel_grid(arr)
    return torch.from_numpy(from_official_layout(arr).astype(np.float32, copy=False))


def _load_hw_array(path: Path, what: str, channels: int, note: str = "") -> np.ndarray:
    """An (H, W, ``channels``) array from a ``.npy`` file of the official layouts.

    Raises:
        FileNotFoundError: no such file. ValueError: unreadable, or not (H, W, channels) (the file
        and ``what`` it should hold named).
    """
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: '{path}'")
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"'{path}': cannot read the {what}: {exc}") from exc
    if arr.ndim != 3 or arr.shape[-1] != channels:
        raise ValueError(f"'{path}': {what} must be (H, W, {channels}){note}, got shape {arr.shape}")
    return arr


def _load_flow(path: Path) -> torch.Tensor:
    """Official flow label (H, W, 4) ``.npy`` -> (4, H, W) float32 (see :func:`_load_hw_array`)."""
    arr = _load_hw_array(path, "flow", 4)
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(arr.astype(np.float32), -1, 0)))


class EventDeblurDataset(Dataset):
    """One of the official layouts (see the module docstring).

    Args:
        root: the layout's folder (e.g. ``data/train``, ``data/test``, ``data/real``).
        kind: ``"synthetic"`` (``share/``, ``subnetwork1/``, ``subnetwork2/``) or ``"real"``
            (``events_voxel_grid/``, ``APS_blur/``, ``RGB_blur/``; real DAVIS346 and hybrid data).
        rgb: restore the RGB frame (hybrid model, ``Bi`` (3, 3h, 3w)) instead of the APS frame.
        targets: also read ``S`` / ``Bi_clean`` / ``F`` (synthetic only): the official
            ``TrainDataset``; without it, ``S`` only is read when present (as ``gt``).
        patch_size: ``(h, w)`` (or one int for both) random crop in APS pixels for training
            (deblurkit extension; official: whole frames, ``None``). Must fit the network's
            size rule (h a multiple of 8, w of 40). RGB images are cropped at 3x.
        seed: crops of item ``i`` in epoch ``e`` come from a generator seeded by (seed, e, i).

    Raises:
        FileNotFoundError: a folder of the layout is missing (named). ValueError: the folders
        hold different sample names, no samples, or (per item) sizes that disagree (named files).
    """

    def __init__(self, root: str | os.PathLike, kind: str = "synthetic", rgb: bool = False, targets: bool = False,
                 patch_size: int | tuple[int, int] | list | None = None, seed: int = 0) -> None:
        self.root = Path(root)
        self.kind, self.rgb, self.targets, self.seed, self.epoch = kind, bool(rgb), bool(targets), seed, 0
        if targets and kind != "synthetic":
            raise ValueError(f"{self.root}: targets (S, Bi_clean, F) exist only in the synthetic layout")
        self.folders = {k: self.root / v for k, v in official_folders(kind, self.rgb).items()}
        if not targets:
            self.folders = {k: v for k, v in self.folders.items() if k not in ("Bi_clean", "F")}
            if "S" in self.folders and not self.folders["S"].is_dir():
                del self.folders["S"]
        for key, folder in self.folders.items():
            if not folder.is_dir():
                raise FileNotFoundError(
                    f"{self.root}: missing folder {folder.relative_to(self.root)}/ of the official {kind} layout "
                    f"(expected {', '.join(sorted(str(f.relative_to(self.root)) + '/' for f in self.folders.values()))})"
                )
        self.names = sorted(p.stem for p in self.folders["E"].glob("*.npy"))
        if not self.names:
            raise ValueError(f"{self.folders['E']}: no voxel grids (*.npy)")
        for key, folder in self.folders.items():
            if key == "E":
                continue
            ext = ".npy" if key == "F" else ".png"
            have = {p.stem for p in folder.glob("*" + ext)}
            missing = sorted(set(self.names) - have)
            if missing:
                raise ValueError(f"{folder}: no {ext} for {len(missing)} sample(s) of {self.folders['E']}, "
                                 f"e.g. {missing[:3]}")
        if isinstance(patch_size, int):
            patch_size = (patch_size, patch_size)
        self.patch_size = tuple(int(v) for v in patch_size) if patch_size is not None else None
        if self.patch_size is not None and (self.patch_size[0] % 8 or self.patch_size[1] % 40):
            raise ValueError(f"patch_size {self.patch_size}: height must be a multiple of 8 and width of 40 "
                             "(the network's size rule, deblurkit.models.evdeblur.aps_size_rule)")

    def set_epoch(self, epoch: int) -> None:
        """Change the random crops of each index (called once per epoch by the trainer)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.names)

    def _png(self, key: str, name: str) -> torch.Tensor:
        return read_image(self.folders[key] / f"{name}.png", channels=3 if (self.rgb and key != "B") else 1)

    def __getitem__(self, index: int) -> dict:
        name = self.names[index]
        item: dict = {"E": load_voxel_grid(self.folders["E"] / f"{name}.npy"), "B": self._png("B", name)}
        item["Bi"] = self._png("Bi", name) if self.rgb else item["B"]
        for key in ("S", "Bi_clean"):
            if key in self.folders:
                item[key] = self._png(key, name)
        if "F" in self.folders:
            item["F"] = _load_flow(self.folders["F"] / f"{name}.npy")
        h, w = item["B"].shape[-2:]
        scale = RGB_SCALE if self.rgb else 1
        for key, t in item.items():
            want = (h, w) if key in ("E", "B", "F") else (scale * h, scale * w)
            if tuple(t.shape[-2:]) != want and not (self.rgb and key in ("Bi", "S", "Bi_clean")
                                                     and max(abs(t.shape[-2] - want[0]), abs(t.shape[-1] - want[1])) <= 2):
                raise ValueError(f"{self.root}: sample '{name}': {key} is {tuple(t.shape[-2:])}, expected {want} "
                                 f"(APS {h}x{w})")
        if self.patch_size is not None:
            item = self._crop(item, index, name, h, w, scale)
        item["lq"] = item["Bi"]
        if "S" in item:
            item["gt"] = item["S"]
        item["name"] = name
        return item

    def _crop(self, item: dict, index: int, name: str, h: int, w: int, scale: int) -> dict:
        ph, pw = self.patch_size
        if h < ph or w < pw:
            raise ValueError(f"{self.root}: sample '{name}' ({h}x{w}) is smaller than patch_size {self.patch_size}")
        g = item_generator(self.seed, self.epoch, index)
        top = int(torch.randint(h - ph + 1, (), generator=g))
        left = int(torch.randint(w - pw + 1, (), generator=g))
        out = {}
        for key, t in item.items():
            s = 1 if key in ("E", "B", "F") else scale
            out[key] = t[..., s * top:s * (top + ph), s * left:s * (left + pw)].contiguous()
        return out


def _layout_root(root: Path, split: str) -> Path:
    """``root/split`` when that folder exists (``data/test``), else ``root`` itself."""
    return root / split if split and (root / split).is_dir() else root


def evdeblur_train_dataset(root: str | os.PathLike, rgb: bool = False,
                           patch_size: int | tuple[int, int] | list | None = None, seed: int = 0) -> EventDeblurDataset:
    """The official ``TrainDataset``: synthetic layout with targets (config ``data.train.type: evdeblur``)."""
    return EventDeblurDataset(root, "synthetic", rgb=rgb, targets=True, patch_size=patch_size, seed=seed)


register_dataset("evdeblur", evdeblur_train_dataset)
register_layout("evdeblur_synthetic", lambda root, split: EventDeblurDataset(_layout_root(root, split), "synthetic"))
register_layout("evdeblur_synthetic_rgb",
                lambda root, split: EventDeblurDataset(_layout_root(root, split), "synthetic", rgb=True))
register_layout("evdeblur_real", lambda root, split: EventDeblurDataset(_layout_root(root, split), "real"))
register_layout("evdeblur_hybrid", lambda root, split: EventDeblurDataset(_layout_root(root, split), "real", rgb=True))


class RecordingFrames(Dataset):
    """The APS frames of a real event recording with the voxel grid of each frame's events.

    Args:
        path: ``.aedat4`` / ``.npz`` / ``.h5`` recording (:func:`deblurkit.io.events.read_event_recording`).
        window: ``"exposure"`` (default: the frame's exposure window, what its blur integrates),
            ``"frame"`` (start to end of the frame's readout) or a length in microseconds centred
            on the exposure (see :func:`deblurkit.io.events.frame_event_windows`).
        num_bins: voxel-grid bins (official 13).
        normalize: E2VID-normalise the voxel grid (as the official loaders do).
        frames: optional ``slice`` or list of frame indices to keep.

    Items: ``{"E": (bins, h, w), "B": (1, h, w) in [0, 1], "Bi": B, "lq": B, "voxel": raw
    (bins, h, w) grid, "name": "frame_<index>", "t0", "t1": window (us), "n_events": int}``.

    Warns:
        UserWarning: when the windows hold almost no events (median below
        :data:`SPARSE_EVENTS_PER_PIXEL` per sensor pixel, e.g. 0-25 events in the 0.5 ms exposures
        of the shared DAVIS346 recording): the voxel grids then carry almost no motion; the
        message names the option that widens the window (``--event-window``).

    Raises:
        FileNotFoundError / deblurkit.io.events.EventReadError: as the reader (naming the file),
        also when the recording has no APS frames.
    """

    #: Median events per window per sensor pixel below which the windows count as (almost) empty.
    SPARSE_EVENTS_PER_PIXEL = 1e-3

    def __init__(self, path: str | os.PathLike, window: str | float = "exposure", num_bins: int = NUM_BINS,
                 normalize: bool = True, frames: slice | list | None = None) -> None:
        from ..io.events import frame_event_windows, read_event_recording

        self.path = Path(path)
        self.recording = read_event_recording(self.path)
        windows = list(frame_event_windows(self.recording, window))
        if frames is not None:
            windows = windows[frames] if isinstance(frames, slice) else [windows[i] for i in frames]
        self.windows = windows
        self.num_bins, self.normalize, self.window = int(num_bins), bool(normalize), window
        self._warn_if_sparse()

    def _warn_if_sparse(self) -> None:
        """See *Warns* in the class docstring."""
        if not self.windows:
            return
        counts = sorted(int(w.events.shape[0]) for w in self.windows)
        median = counts[len(counts) // 2]
        h, w = self.recording.sensor_size
        if median >= self.SPARSE_EVENTS_PER_PIXEL * h * w:
            return
        longest = max(win.duration for win in self.windows) * 1e6
        kind = f"{self.window}" if isinstance(self.window, str) else f"{longest:.0f} us"
        warnings.warn(
            f"'{self.path}': the {kind} windows hold almost no events (median {median}, range "
            f"{counts[0]}-{counts[-1]} per frame on a {w}x{h} sensor), so the voxel grids carry almost no "
            "motion; widen the window with --event-window frame (the frame's readout) or --event-window "
            f"MICROSECONDS (e.g. {max(20000, int(longest) * 10)})", UserWarning, stacklevel=3)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict:
        win = self.windows[index]
        h, w = self.recording.sensor_size
        voxel = events_to_voxel_grid(win.events, h, w, self.num_bins, t_start=0.0, duration=win.duration)
        E = normalize_voxel_grid(voxel) if self.normalize else voxel
        B = torch.from_numpy(win.frame.image_float())[None]
        return {"E": torch.from_numpy(E), "B": B, "Bi": B, "lq": B, "voxel": torch.from_numpy(voxel),
                "name": f"frame_{win.index:06d}", "t0": win.t0, "t1": win.t1, "n_events": int(win.events.shape[0])}
