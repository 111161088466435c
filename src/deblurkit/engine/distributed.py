"""Multi-process training and evaluation with PyTorch's own stack (``torch.distributed``).

A command started by ``torchrun`` (which sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``) runs as one process per device: :func:`init_from_env` joins
the process group (NCCL when the processes use CUDA, gloo on the CPU) and returns where this
process stands; without those variables (or with ``WORLD_SIZE=1``) everything is single-process
and every helper below is a no-op. See ``docs/distributed.md``.

Conventions used by :class:`deblurkit.engine.Trainer` and ``deblurkit evaluate``:

* ``data.batch_size`` is the **global** batch: each of the ``W`` processes takes a contiguous
  ``batch_size / W`` slice of every batch of indices (:func:`shard_batch`), so a run on ``W``
  processes follows the same trajectory as a one-process run (up to float summation order).
* Rank 0 alone writes (checkpoints, TensorBoard, exported weights, evaluation tables); the
  others wait at barriers where they would otherwise read what rank 0 is writing.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

__all__ = [
    "DistInfo",
    "env_world_size",
    "init_from_env",
    "info",
    "is_main",
    "barrier",
    "shard_batch",
    "shard_indices",
    "all_gather_objects",
    "mean_across_ranks",
    "cleanup",
    "GradDDP",
    "wrap",
    "convert_sync_batchnorm",
]


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job: ``rank`` in ``[0, world_size)``, ``local_rank`` on its
    node, and whether a process group is active (``world_size > 1``)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def env_world_size() -> int:
    """``WORLD_SIZE`` set by ``torchrun`` (1 when unset)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def info() -> DistInfo:
    """The current process's :class:`DistInfo` (single process when no group is initialised)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0") or 0))
    return DistInfo()


def is_main() -> bool:
    """True on rank 0 (and in a single-process run)."""
    return info().main


def init_from_env(device: str | torch.device = "auto", timeout_s: float = 1800.0) -> tuple[DistInfo, str]:
    """Join the process group described by the ``torchrun`` environment, if any.

    Args:
        device: the requested device (``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:i"``). Under
            ``torchrun`` with CUDA, ``"auto"``/``"cuda"`` become ``cuda:LOCAL_RANK`` (one GPU per
            process); an explicit ``"cuda:i"`` is kept.
        timeout_s: collective timeout.

    Returns:
        ``(DistInfo, device)``: ``device`` is the string this process should use.

    Raises:
        RuntimeError: ``WORLD_SIZE > 1`` but ``torch.distributed`` is unavailable, or CUDA was
            asked for on a node with fewer GPUs than local processes.
    """
    device = str(device)
    ws = env_world_size()
    if ws <= 1 and not (dist.is_available() and dist.is_initialized()):
        return DistInfo(), device
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
    local_rank = int(os.environ.get("LOCAL_RANK", "0") or 0)
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        if device in ("auto", "cuda"):
            if local_rank >= torch.cuda.device_count():
                raise RuntimeError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} "
                                   f"CUDA device(s) on this node; start fewer processes per node")
            device = f"cuda:{local_rank}"
        torch.cuda.set_device(torch.device(device))
    elif device == "auto":
        device = "cpu"
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo",
                                timeout=datetime.timedelta(seconds=timeout_s))
    return info(), device


def barrier() -> None:
    """Wait for every process (no-op in a single-process run)."""
    if info().active:
        dist.barrier()


def cleanup() -> None:
    """Leave the process group (call at the end of a ``torchrun`` command)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def shard_batch(batch: list[int], rank: int, world_size: int) -> list[int]:
    """This rank's contiguous slice of a global batch of indices.

    Raises:
        ValueError: ``len(batch)`` is not divisible by ``world_size``.
    """
    if len(batch) % world_size:
        raise ValueError(f"global batch of {len(batch)} cannot be split evenly over {world_size} processes; "
                         f"make data.batch_size a multiple of the number of processes")
    per = len(batch) // world_size
    return batch[rank * per:(rank + 1) * per]


def shard_indices(n: int, rank: int, world_size: int) -> list[int]:
    """Indices ``rank, rank + W, rank + 2W, ...`` below ``n`` (round-robin, so ranks get work of
    similar size when items are sorted by size); every index belongs to exactly one rank."""
    return list(range(rank, n, world_size))


def all_gather_objects(obj: Any) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank (``[obj]`` without a group)."""
    if not info().active:
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def mean_across_ranks(values: dict[str, float], device: torch.device | str = "cpu") -> dict[str, float]:
    """Average the numeric entries of ``values`` (same keys on every rank) over the processes;
    other entries are kept as they are."""
    if not info().active or not values:
        return values
    keys = sorted(k for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    t /= dist.get_world_size()
    return {**values, **{k: float(v) for k, v in zip(keys, t.tolist())}}


class GradDDP(DistributedDataParallel):
    """:class:`~torch.nn.parallel.DistributedDataParallel` that steps aside when no gradient of
    the wrapped network can be produced: with autograd off (validation under ``no_grad``) or with
    every parameter's ``requires_grad`` off (a GAN's generator step that freezes the
    discriminator), the call goes straight to the wrapped module, so no gradient reduction is
    scheduled that would never complete, and no collective runs on one rank only."""

    def forward(self, *args, **kwargs):
        if not torch.is_grad_enabled() or not any(p.requires_grad for p in self.module.parameters()):
            return self.module(*args, **kwargs)
        self.training = self.module.training  # recipes switch modes on the wrapped module
        return super().forward(*args, **kwargs)


def wrap(module: nn.Module, device: torch.device, find_unused_parameters: bool = True) -> nn.Module:
    """Wrap a trainable network for data-parallel training in a :class:`GradDDP` (returned
    unchanged without a process group or when no parameter requires a gradient).

    Rank 0's parameters and buffers are broadcast to every process at construction.
    ``find_unused_parameters=True`` lets a recipe use only part of a network in an iteration
    (multi-scale heads, optional branches) at the cost of a graph traversal per step.
    """
    if not info().active or not any(p.requires_grad for p in module.parameters()):
        return module
    ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    return GradDDP(module, device_ids=ids, find_unused_parameters=find_unused_parameters)


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """BatchNorm layers of ``module`` replaced by :class:`torch.nn.SyncBatchNorm` (batch
    statistics over all processes; CUDA only). Same state-dict keys; returns the module itself
    unless it is a BatchNorm layer."""
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules()):
        return module
    return nn.SyncBatchNorm.convert_sync_batchnorm(module)
