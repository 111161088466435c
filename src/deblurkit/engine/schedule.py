"""Learning-rate schedules and the exponential moving average of weights."""
from __future__ import annotations

import copy
import math

import torch
from torch import nn


def lr_at(step: int, *, base_lr: float, total_steps: int, warmup_steps: int = 0,
          min_lr: float = 0.0, kind: str = "cosine", decay_steps: int | None = None) -> float:
    """Learning rate at optimiser step ``step`` (0-based).

    Linear warm-up from ``base_lr / warmup_steps`` to ``base_lr`` over ``warmup_steps``, then
    ``cosine`` annealing to ``min_lr`` at ``total_steps`` (SGDR without restarts, as BasicSR's
    ``CosineAnnealingRestartLR`` with one period), ``constant``, or ``linear``: constant for
    ``total_steps - decay_steps`` steps, then linear decay towards ``min_lr`` over the last
    ``decay_steps`` (pix2pix/CycleGAN ``lr_policy='linear'`` of ``models/networks.py``
    ``get_scheduler``, counted in steps instead of epochs: factor
    ``1 - max(0, step + 1 - n_const) / (decay_steps + 1)``; ``decay_steps=None`` = 2/3 of
    ``total_steps``, Blur2Blur's 100 constant + 200 decaying epochs).
    """
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if kind == "constant":
        return base_lr
    if kind == "linear":
        n_decay = (2 * total_steps) // 3 if decay_steps is None else int(decay_steps)
        n_const = max(warmup_steps, total_steps - n_decay)
        frac = max(0, step + 1 - n_const) / float(n_decay + 1)
        return base_lr - (base_lr - min_lr) * min(1.0, frac)
    span = max(1, total_steps - warmup_steps)
    t = min(1.0, (step - warmup_steps) / span)
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * t))


class EMA:
    """Exponential moving average of a model's parameters and buffers.

    ``ema = d * ema + (1 - d) * param`` after every optimiser step, with the warm-up
    ``d = min(decay, (1 + n) / (10 + n))`` at update ``n`` (as TensorFlow's
    ``ExponentialMovingAverage(num_updates=...)``), so short runs do not keep the random
    initialisation in the average; integer buffers are copied.
    """

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.num_updates = 0
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = min(self.decay, (1.0 + self.num_updates) / (10.0 + self.num_updates))
        self.num_updates += 1
        src = model.state_dict()
        for k, v in self.module.state_dict().items():
            s = src[k].detach()
            if v.dtype.is_floating_point:
                v.mul_(d).add_(s.to(v.dtype), alpha=1.0 - d)
            else:
                v.copy_(s)

    def state_dict(self) -> dict:
        return {**self.module.state_dict(), "__ema_num_updates__": torch.tensor(self.num_updates)}

    def load_state_dict(self, state: dict) -> None:
        state = dict(state)
        n = state.pop("__ema_num_updates__", None)
        self.module.load_state_dict(state)
        self.num_updates = int(n) if n is not None else 0
