"""Atomic training checkpoints and RNG-state capture for exact resume."""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io.atomic import atomic_path


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temp file in the same folder, then ``os.replace`` onto ``path``.

    A run killed while saving leaves the previous checkpoint intact.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return path


def capture_rng_state() -> dict:
    """States of Python's, NumPy's and torch's (CPU and CUDA) generators."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    """Inverse of :func:`capture_rng_state`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_training_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint written by :class:`deblurkit.engine.Trainer`.

    Raises:
        FileNotFoundError / RuntimeError naming the file when it is missing or unreadable.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    try:
        # Trainer checkpoints hold RNG states (numpy arrays, tuples): trusted local files.
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - re-raised with the file named
        raise RuntimeError(f"{path}: unreadable training checkpoint ({e})") from e
