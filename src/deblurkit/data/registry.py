"""Registries of dataset classes (for training configs) and of evaluation layouts (for
``deblurkit evaluate --layout``).

* :data:`DATASETS` maps a config's ``data.train.type`` / ``data.val.type`` to a Dataset class.
* :data:`LAYOUTS` maps a layout name (``gopro``, ``hide``, ``realblur_j``, ...) to a function
  ``(root, split) -> Dataset`` whose items are ``{"lq": (3,H,W), "gt": (3,H,W), "name": str}``
  in [0, 1], whole images (no cropping), so every protocol sees the frames the paper scored.

System modules register their layouts/datasets at import time.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from torch.utils.data import Dataset

DATASETS: dict[str, type] = {}
LAYOUTS: dict[str, Callable[[Path, str], Dataset]] = {}


def register_dataset(name: str, cls: type | None = None):
    """Register ``cls`` as training dataset ``name`` (usable as a decorator)."""
    def deco(c):
        DATASETS[name] = c
        return c
    return deco(cls) if cls is not None else deco


def register_layout(name: str, fn: Callable[[Path, str], Dataset] | None = None):
    """Register an evaluation layout reader ``fn(root, split) -> Dataset`` (usable as a decorator)."""
    def deco(f):
        LAYOUTS[name] = f
        return f
    return deco(fn) if fn is not None else deco


def open_layout(name: str, root: str | Path, split: str = "test") -> Dataset:
    """Open evaluation data in layout ``name``.

    Raises:
        KeyError: unknown layout (listing the known ones).
        FileNotFoundError / ValueError: from the reader, naming the folder and the problem.
    """
    if name not in LAYOUTS:
        raise KeyError(f"unknown layout {name!r}; known: {sorted(LAYOUTS)}")
    return LAYOUTS[name](Path(root), split)
