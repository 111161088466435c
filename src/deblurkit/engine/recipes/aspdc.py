"""ASPDC training recipes (Huo et al., CVPRW 2022; Dong-Huo/ASPDC ``DR_training.py``,
``networks/DR_network.py``, ``networks/losses.py``).

Three stages, one config each (``configs/aspdc_*_gopro.yaml``):

1. ``aspdc_reblur`` - the reblurring network R (``aspdc_reblur``) learns to map a sharp image S
   back to its blurry B from the pair: ``L(B, R(B, S))``. The official repository ships the
   trained ``ReBlurringNet.pth`` but not how it was trained; this choice is argued in
   ``docs/models/aspdc.md``.
2. ``aspdc_deblur`` - the deblurring network D (``aspdc``) alone: ``lambda_A * L(D(B), S)``.
3. ``aspdc_consistency`` - fine-tuning D with the frozen R (``DR_network.Whole_Network``):
   ``lambda_A * L(D(B), S) + lambda_B * L(B, R(B, D(B)))``, lambda_A = 1, lambda_B = 0.1.

``L`` is the official ``PerceptualLoss`` with ``nn.MSELoss``: despite its name, a pixel MSE of
the images mapped to [0, 1] and normalised with the ImageNet mean and std
(:func:`imagenet_normalized_mse`, registered as loss ``imagenet_mse``). The networks work in
[-1, 1]; the recipes map the [0, 1] batches there and back.

Learning rate: the official ``StepLR(step_size=200, gamma=0.5)`` (epochs) is created but never
stepped in ``DR_training.py``, so the official runs kept ``lr`` constant. Here it is stepped:
``lr = optim.lr * gamma ** (epoch // step_epochs)`` with an epoch of ``len(data) // batch_size``
steps; ``official_unstepped_scheduler: true`` reproduces the constant rate, and
``step_epochs: null`` uses the config's ``schedule`` section instead.

Frozen R: ``Trainer.add_aux(..., trainable=False)`` puts it in eval mode with
``requires_grad=False`` on every parameter (the official R stayed in train mode with gradients
on, which changed nothing but wasted memory); gradients still flow through R into D.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from ... import metrics
from ...losses import LOSSES
from ...models import build, load_checkpoint, read_state_dict
from ...models.aspdc import infer_aspdc_reblur_config
from ..trainer import Trainer, register_recipe

__all__ = ["imagenet_normalized_mse", "AspdcReblurRecipe", "AspdcDeblurRecipe", "AspdcConsistencyRecipe",
           "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_normalized_mse(pred: Tensor, target: Tensor) -> Tensor:
    """ASPDC's loss ``L``: MSE of ``(x - mean) / std`` with the ImageNet mean/std per channel.

    Official ``PerceptualLoss.get_loss`` (``networks/losses.py``) maps its [-1, 1] inputs to
    [0, 1] and applies ``transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224,
    0.225])`` before ``nn.MSELoss``; this takes the [0, 1] images directly.

    Args:
        pred, target: (N, 3, H, W) RGB in [0, 1] (same shape).

    Returns:
        scalar tensor (mean over all elements).

    Raises:
        ValueError: shapes differ or not 3 channels.
    """
    if pred.shape != target.shape or pred.dim() != 4 or pred.shape[1] != 3:
        raise ValueError(f"imagenet_mse needs two (N, 3, H, W) tensors of one shape, got "
                         f"{tuple(pred.shape)} and {tuple(target.shape)}")
    std = pred.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    # the means cancel in the difference
    return torch.mean(((pred - target) / std) ** 2)


LOSSES.setdefault("imagenet_mse", imagenet_normalized_mse)


def to_net(x: Tensor) -> Tensor:
    """[0, 1] -> the networks' [-1, 1] (official ``albu.Normalize(mean=0.5, std=0.5)``)."""
    return x * 2.0 - 1.0


def from_net(x: Tensor) -> Tensor:
    """[-1, 1] -> [0, 1] (not clamped)."""
    return (x + 1.0) / 2.0


class _AspdcRecipe(Trainer):
    """Shared learning-rate rule (the official StepLR, stepped) and argument checks."""

    _ARGS: tuple[str, ...] = ("step_epochs", "gamma", "official_unstepped_scheduler")

    def setup(self) -> None:
        a = self.recipe_args
        unknown = sorted(set(a) - set(self._ARGS))
        if unknown:
            raise ValueError(f"{self.cfg.name}: recipe {self.recipe_name!r}: unknown argument(s) {unknown}; "
                             f"allowed: {sorted(self._ARGS)}")
        self.step_epochs = a.get("step_epochs", 200)
        self.gamma = float(a.get("gamma", 0.5))
        self.unstepped = bool(a.get("official_unstepped_scheduler", False))
        if self.step_epochs is not None and (int(self.step_epochs) != self.step_epochs or self.step_epochs < 1):
            raise ValueError(f"{self.cfg.name}: recipe.step_epochs must be a positive integer or null, "
                             f"got {self.step_epochs!r}")
        self.steps_per_epoch = max(1, len(self.train_set) // self.cfg.data.batch_size)
        if len(self.cfg.loss) != 1 or self.cfg.loss[0].get("type") != "imagenet_mse":
            raise ValueError(f"{self.cfg.name}: the ASPDC recipes use ASPDC's loss; set "
                             f"loss: [{{type: imagenet_mse, weight: 1.0}}] (weight = lambda_A)")

    def apply_lr(self) -> float:
        """Official ``StepLR(n_steps=200 epochs, gamma=0.5)``, stepped once per epoch."""
        if self.step_epochs is None:
            return super().apply_lr()
        base = self.cfg.optim.lr
        if self.unstepped:
            lr = base
        else:
            epoch = self.step // self.steps_per_epoch
            lr = base * self.gamma ** (epoch // int(self.step_epochs))
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        return lr


@register_recipe("aspdc_reblur")
class AspdcReblurRecipe(_AspdcRecipe):
    """Stage 1: train the reblurring network R (``model.name: aspdc_reblur``) on (B, S) pairs.

    Loss ``weight * L(B, R(B, S))`` (L = :func:`imagenet_normalized_mse`). Validation reports the
    PSNR of R(B, S) against B (``psnr``) beside that of S against B (``psnr_input``, the score of
    "no reblurring").
    """

    def setup(self) -> None:
        super().setup()
        if self.cfg.model.name != "aspdc_reblur":
            raise ValueError(f"{self.cfg.name}: recipe aspdc_reblur trains model aspdc_reblur, "
                             f"got model.name {self.cfg.model.name!r}")

    def train_step(self, batch: dict) -> dict:
        lr = self.apply_lr()
        blurry = batch["lq"].to(self.device, non_blocking=True)
        sharp = batch["gt"].to(self.device, non_blocking=True)
        self.net.train()
        with self.autocast():
            reblurred = self.fwd["net"](to_net(blurry), to_net(sharp))
        loss, parts = self.criterion(from_net(reblurred.float()), blurry)
        return self.optimise(loss, {"loss_reblur": parts["imagenet_mse"]}, lr)

    def restore(self, x: Tensor) -> Tensor:
        raise NotImplementedError("the reblurring network needs (blurry, sharp); see AspdcReblurRecipe.validate")

    @torch.no_grad()
    def validate(self) -> dict:
        net = self.eval_net
        net.eval()
        n = self.val_count()
        psnr, psnr_in, ssim = [], [], []
        for i in range(n):
            it = self.val_set[i]
            h, w = it["lq"].shape[-2:]
            hh, ww = h - h % 8, w - w % 8
            b = it["lq"][None, :, :hh, :ww].to(self.device)
            s = it["gt"][None, :, :hh, :ww].to(self.device)
            with self.autocast():
                r = from_net(net(to_net(b), to_net(s)).float()).clamp(0, 1)
            psnr.append(float(metrics.psnr(r, b)[0]))
            ssim.append(float(metrics.ssim(r, b)[0]))
            psnr_in.append(float(metrics.psnr(s, b)[0]))
        mean = lambda v: sum(v) / len(v)  # noqa: E731
        return {"psnr": mean(psnr), "ssim": mean(ssim), "psnr_input": mean(psnr_in)}


def load_reblur_network(weights: str | Path, device: torch.device | str = "cpu", **overrides) -> torch.nn.Module:
    """Build ``aspdc_reblur`` to fit ``weights`` (official ``ReBlurringNet.pth`` or an exported
    ``weights.safetensors``), load them, and freeze it (eval, ``requires_grad=False``).

    Raises:
        FileNotFoundError: ``weights`` missing. deblurkit.models.CheckpointMismatchError: the
        file is not an ``aspdc_reblur`` checkpoint (keys/shapes listed).
    """
    weights = Path(weights)
    if not weights.is_file():
        raise FileNotFoundError(f"reblurring-network weights not found: '{weights}'")
    detected = infer_aspdc_reblur_config(read_state_dict(weights))
    net = build("aspdc_reblur", **{**detected, **overrides})
    load_checkpoint(net, weights)
    net.to(device).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


@register_recipe("aspdc_deblur")
class AspdcDeblurRecipe(_AspdcRecipe):
    """Stage 2 (``lambda_B = 0``, no R) and base of stage 3: train D (``model.name: aspdc``).

    Recipe arguments (besides the learning-rate ones): ``lambda_B`` (weight of the reblurring
    term, official 0.1 in fine-tuning), ``reblur_weights`` (R's weights file, needed when
    ``lambda_B > 0``), ``reblur_overrides`` (constructor options of R, normally detected).
    ``lambda_A`` is the weight of the ``imagenet_mse`` loss term of the config.
    """

    _ARGS = _AspdcRecipe._ARGS + ("lambda_B", "reblur_weights", "reblur_overrides")
    default_lambda_b = 0.0

    def setup(self) -> None:
        super().setup()
        if self.cfg.model.name != "aspdc":
            raise ValueError(f"{self.cfg.name}: recipe {self.recipe_name} trains model aspdc, "
                             f"got model.name {self.cfg.model.name!r}")
        a = self.recipe_args
        self.lambda_b = float(a.get("lambda_B", self.default_lambda_b))
        self.reblur = None
        if self.lambda_b < 0:
            raise ValueError(f"{self.cfg.name}: recipe.lambda_B must be >= 0, got {self.lambda_b}")
        if self.lambda_b > 0:
            w = a.get("reblur_weights")
            if not w:
                raise ValueError(f"{self.cfg.name}: recipe.lambda_B > 0 needs recipe.reblur_weights "
                                 f"(the trained reblurring network, e.g. ReBlurringNet.pth)")
            net = load_reblur_network(w, self.device, **dict(a.get("reblur_overrides") or {}))
            self.reblur = self.add_aux("reblur", net, trainable=False)

    def train_step(self, batch: dict) -> dict:
        lr = self.apply_lr()
        blurry = batch["lq"].to(self.device, non_blocking=True)
        sharp = batch["gt"].to(self.device, non_blocking=True)
        self.net.train()
        b = to_net(blurry)
        with self.autocast():
            deblurred, _ = self.fwd["net"](b)
        loss, parts = self.criterion(from_net(deblurred.float()), sharp)
        logs = {"loss_deblur": parts["imagenet_mse"]}
        if self.reblur is not None:
            self.reblur.eval()
            with self.autocast():
                reblurred = self.reblur(b, deblurred)
            loss_b = imagenet_normalized_mse(blurry, from_net(reblurred.float()))
            logs["loss_reblur"] = float(loss_b.detach())
            loss = loss + self.lambda_b * loss_b
        return self.optimise(loss, logs, lr)

    def restore(self, x: Tensor) -> Tensor:
        """(1, 3, H, W) in [0, 1], H, W multiples of 4 -> D's output in [0, 1] scale, not clamped."""
        return from_net(self.eval_net(to_net(x))[0])


@register_recipe("aspdc_consistency")
class AspdcConsistencyRecipe(AspdcDeblurRecipe):
    """Stage 3: fine-tune D with the deblurring-reblurring consistency (``lambda_B`` default 0.1;
    ``reblur_weights`` required), as ``DR_network.Whole_Network.backward``."""

    default_lambda_b = 0.1

    def setup(self) -> None:
        super().setup()
        if self.reblur is None:
            raise ValueError(f"{self.cfg.name}: recipe aspdc_consistency needs lambda_B > 0 and reblur_weights")
