"""Atomic training checkpoints and RNG-state capture for exact resume.

Training checkpoints hold only tensors and plain data (dicts, lists, numbers, strings): the
random-generator states are stored as tensors (:func:`capture_rng_state`) and the config as the
plain dict of :meth:`TrainConfig.to_dict`, so ``torch.load(weights_only=True)`` reads them and a
crafted file cannot run code. Files written before this format (Python/NumPy RNG states as tuples
and arrays) need full unpickling, which can run code stored in the file: they are read only when
the caller passes ``trust_pickle=True`` (the ``--trust-pickle`` option of the commands).

Each save keeps the checkpoint it replaces as ``previous.pt`` beside ``last.pt``
(:func:`save_with_previous`), and :func:`load_resume_checkpoint` falls back to it, with a
warning, when ``last.pt`` is truncated or corrupt.
"""
from __future__ import annotations

import os
import pickle
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io.atomic import atomic_path
from ..models.checkpoint import _sniff_format, pickle_refused

__all__ = [
    "CheckpointUnreadableError",
    "PickleRefusedError",
    "atomic_torch_save",
    "save_with_previous",
    "capture_rng_state",
    "restore_rng_state",
    "load_training_checkpoint",
    "load_resume_checkpoint",
    "PREVIOUS_NAME",
]

#: File name, beside ``last.pt``, of the checkpoint that the latest save replaced.
PREVIOUS_NAME = "previous.pt"


class CheckpointUnreadableError(ValueError):
    """A training checkpoint is missing pieces, truncated, corrupt or not a training checkpoint;
    the message names the file."""


class PickleRefusedError(CheckpointUnreadableError):
    """The file holds Python objects that only full unpickling reads (which can run code stored
    in the file); refused unless the caller trusts it."""


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temp file in the same folder, then ``os.replace`` onto ``path``.

    A run killed while saving leaves the previous checkpoint intact.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return path


def save_with_previous(obj: Any, path: str | Path) -> Path:
    """:func:`atomic_torch_save` that first moves an existing ``path`` to ``previous.pt`` in the
    same folder, so one older resume point survives a damaged ``path`` (see
    :func:`load_resume_checkpoint`)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
        if path.exists():
            os.replace(path, path.with_name(PREVIOUS_NAME))
    return path


def capture_rng_state() -> dict:
    """States of Python's, NumPy's and torch's (CPU and CUDA) generators, as tensors and plain
    numbers only (readable by ``torch.load(weights_only=True)``).

    Returns:
        ``{"python": {"version", "state" (int64 tensor, 625), "gauss"}, "numpy": {"kind",
        "keys" (int64 tensor, 624), "pos", "has_gauss", "cached_gaussian"}, "torch" (uint8
        tensor)[, "cuda" (list of uint8 tensors)]}``.
    """
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": {"version": int(version), "state": torch.tensor(internal, dtype=torch.int64),
                   "gauss": None if gauss is None else float(gauss)},
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    """Inverse of :func:`capture_rng_state`; also takes the tuple/array states of checkpoints
    written before the tensor format."""
    py, npy = state["python"], state["numpy"]
    if isinstance(py, dict):
        py = (py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"])
    random.setstate(py)
    if isinstance(npy, dict):
        npy = (npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
               npy["cached_gaussian"])
    np.random.set_state(npy)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_training_checkpoint(path: str | Path, *, trust_pickle: bool = False) -> dict:
    """Read a checkpoint written by :class:`deblurkit.engine.Trainer` (``ckpt/last.pt``,
    ``best.pt``) with ``torch.load(weights_only=True)``: no code stored in the file runs.

    Args:
        path: the checkpoint.
        trust_pickle: read a file that needs full unpickling (checkpoints written before the
            tensor-only format). Unpickling runs any code stored in the file: trusted files only.

    Returns:
        the training state dict (``step``, ``model``, ``optimizer``, ``ema``, ``rng``, ``config``...).

    Raises:
        FileNotFoundError: no such file.
        PickleRefusedError: the file needs full unpickling and ``trust_pickle`` is False.
        CheckpointUnreadableError: empty, truncated, corrupt, or not a training checkpoint (a
            plain weights file, an image...); the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    if path.stat().st_size == 0:
        raise CheckpointUnreadableError(f"{path}: empty file, not a training checkpoint")
    if _sniff_format(path) == "safetensors":
        raise CheckpointUnreadableError(
            f"{path}: inference weights (safetensors), not a training checkpoint: use them as they are "
            "with --weights")
    try:
        st = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as e:
        if pickle_refused(e):
            raise PickleRefusedError(
                f"{path}: refused: besides tensors it holds Python objects, and unpickling them can run "
                "code stored in the file; only if you trust the file, give --trust-pickle") from None
        raise CheckpointUnreadableError(f"{path}: not a training checkpoint (not a PyTorch file)") from None
    except Exception as e:  # noqa: BLE001 - corrupt files surface as many error types
        raise CheckpointUnreadableError(f"{path}: truncated or corrupt training checkpoint ({str(e)[:200]})") from None
    if not (isinstance(st, dict) and "step" in st and isinstance(st.get("model"), dict)
            and isinstance(st.get("config"), dict)):
        raise CheckpointUnreadableError(
            f"{path}: not a training checkpoint (no 'step', 'model' and 'config' entries); exported or "
            "released weights are used as they are with --weights")
    problem = _state_problem(st)
    if problem:
        raise CheckpointUnreadableError(f"{path}: damaged training checkpoint ({problem})")
    return st


def _state_problem(st: dict) -> str | None:
    """What is wrong with the entries of a training state that its readers rely on, or ``None``."""
    if not isinstance(st["step"], int) or isinstance(st["step"], bool) or st["step"] < 0:
        return f"'step' is {st['step']!r}, not a step count"
    for key in ("model", "ema"):
        sd = st.get(key)
        if sd is None and key == "ema":
            continue
        if not isinstance(sd, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items()):
            return f"'{key}' is not a state dict of named tensors"
    cfg = st["config"]
    model = cfg.get("model")
    if not isinstance(cfg.get("name"), str) or not isinstance(model, dict) or not isinstance(model.get("name"), str) \
            or not isinstance(model.get("overrides", {}), dict):
        return "its 'config' lacks a name, model.name or model.overrides"
    return None


def load_resume_checkpoint(path: str | Path, *, trust_pickle: bool = False) -> tuple[dict, Path]:
    """Read the resume point ``path`` (``ckpt/last.pt``); when it is missing, empty, truncated or
    corrupt, fall back to ``previous.pt`` beside it with a :class:`UserWarning` naming both.

    Returns:
        ``(state, file read)``.

    Raises:
        PickleRefusedError: as :func:`load_training_checkpoint` (never hidden by the fallback).
        CheckpointUnreadableError: neither file is readable (the message names ``path``).
    """
    path = Path(path)
    previous = path.with_name(PREVIOUS_NAME)
    try:
        return load_training_checkpoint(path, trust_pickle=trust_pickle), path
    except PickleRefusedError:
        raise
    except (CheckpointUnreadableError, FileNotFoundError) as e:
        if not previous.is_file():
            raise CheckpointUnreadableError(
                f"{e}; no {PREVIOUS_NAME} to fall back to: start the run again without --resume "
                "in another train.out_dir") from None
        st = load_training_checkpoint(previous, trust_pickle=trust_pickle)
        warnings.warn(f"{path} is unreadable ({e}); resuming from {previous} (step {st['step']})",
                      stacklevel=2)
        return st, previous
