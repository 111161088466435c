"""Training recipe ``evdeblur`` and evaluation protocol ``evdeblur`` of Zhou et al., *Deblurring
Low-Light Images with Events* (IJCV 2023), after fourson/Deblurring-Low-Light-Images-with-Events
(``config/full.json``, ``config/full_rgb.json``, ``model/loss_full.py``,
``model/loss_utils/total_variation_loss.py``, ``model/metric_full.py``, ``trainer/trainer_full.py``).

Loss (``loss_full``), for outputs ``(F, Bi_clean, S)`` of the network and targets from the
synthetic layout (:class:`deblurkit.data.events.EventDeblurDataset` with ``targets=True``)::

    L = Lf * (flow_l1 * L1(F, F_gt) + flow_tv * TV(F))                      0.01 x (L1 + 0.1 TV)
      + Ld * (denoise_l1 * L1(Bi_clean, Bi_clean_gt) + denoise_l2 * MSE(...)) 10 x (L1 + MSE)
      + Lr * (recon_l2 * MSE(S, S_gt) + perceptual * MSE(phi(S), phi(S_gt)))  100 x MSE + 0.1 x VGG

``TV(x) = 2 (sum dy^2 / (C (H-1) W) + sum dx^2 / (C H (W-1))) / N`` (``TVLoss``); ``phi`` is VGG19
up to ``conv3_3`` (``features[0:15]``, before its ReLU) on the raw [0, 1] image (no ImageNet
normalisation), grey images repeated to 3 channels; its weights (torchvision's
``vgg19-dcbb9e9d.pth``) come from the user's file ``recipe.vgg19_weights``. Adam(lr 1e-3, betas
(0.5, 0.999), amsgrad) at a constant rate, weights initialised N(0, 0.02) (``init="official"``).

Protocol ``evdeblur``: PSNR of the MSE pooled over the batch (``metric_utils/psnr.py``; one image
per batch at test time, so per image) and Gaussian SSIM (``metric_utils/ssim.py``: 11x11 window,
sigma 1.5, valid region, population covariance, K1 0.01, K2 0.03 = :func:`deblurkit.metrics.ssim`),
on the network output clamped to [0, 1].
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ... import metrics
from ..evaluator import Protocol, register_protocol
from ..trainer import Trainer, register_recipe

__all__ = ["EvDeblurTrainer", "total_variation_loss", "evdeblur_loss", "DEFAULT_LAMBDAS"]

#: Loss weights of ``config/full.json`` (``loss.args``).
DEFAULT_LAMBDAS = {
    "flow_lambda": 0.01, "flow_l1": 1.0, "flow_tv": 0.1,
    "denoise_lambda": 10.0, "denoise_l1": 1.0, "denoise_l2": 1.0,
    "recon_lambda": 1.0, "recon_l2": 100.0, "perceptual": 0.1,
}


def total_variation_loss(x: Tensor) -> Tensor:
    """Squared total variation of (N, C, H, W) ``x`` as the official ``TVLoss`` (weight 1):
    ``2 (sum (x[:, :, 1:] - x[:, :, :-1])^2 / (C (H-1) W) + sum (x[..., 1:] - x[..., :-1])^2 /
    (C H (W-1))) / N``. Needs H, W >= 2 (ValueError otherwise)."""
    n, c, h, w = x.shape
    if h < 2 or w < 2:
        raise ValueError(f"total_variation_loss needs H, W >= 2, got {tuple(x.shape)}")
    dh = (x[:, :, 1:, :] - x[:, :, :-1, :]).pow(2).sum() / (c * (h - 1) * w)
    dw = (x[:, :, :, 1:] - x[:, :, :, :-1]).pow(2).sum() / (c * h * (w - 1))
    return 2.0 * (dh + dw) / n


def evdeblur_loss(out: tuple[Tensor, Tensor, Tensor], F_gt: Tensor, Bi_clean_gt: Tensor, S_gt: Tensor,
                  vgg=None, **lambdas: float) -> tuple[Tensor, dict[str, float]]:
    """The official ``loss_full`` (see the module docstring) -> (total, {term: value}).

    ``vgg`` maps (N, 3, H, W) to the conv3_3 feature map (or a dict holding it); ``None`` needs
    ``perceptual=0``. Unknown lambda names raise ValueError.
    """
    bad = sorted(set(lambdas) - set(DEFAULT_LAMBDAS))
    if bad:
        raise ValueError(f"unknown evdeblur loss weight(s) {bad}; known: {sorted(DEFAULT_LAMBDAS)}")
    lam = {**DEFAULT_LAMBDAS, **lambdas}
    F_pred, Bi_clean, S = out
    parts: dict[str, Tensor] = {
        "flow_l1": F.l1_loss(F_pred, F_gt),
        "flow_tv": total_variation_loss(F_pred),
        "denoise_l1": F.l1_loss(Bi_clean, Bi_clean_gt),
        "denoise_l2": F.mse_loss(Bi_clean, Bi_clean_gt),
        "recon_l2": F.mse_loss(S, S_gt),
    }
    if lam["perceptual"]:
        if vgg is None:
            raise ValueError("the perceptual term needs the VGG19 feature extractor (perceptual > 0)")
        rgb = lambda t: t if t.shape[1] == 3 else t.expand(-1, 3, -1, -1)  # noqa: E731
        feat = lambda t: (lambda o: o["conv3_3"] if isinstance(o, dict) else o)(vgg(rgb(t)))  # noqa: E731
        with torch.no_grad():
            target = feat(S_gt)
        parts["perceptual"] = F.mse_loss(feat(S), target)
    Lf = lam["flow_lambda"] * (lam["flow_l1"] * parts["flow_l1"] + lam["flow_tv"] * parts["flow_tv"])
    Ld = lam["denoise_lambda"] * (lam["denoise_l1"] * parts["denoise_l1"] + lam["denoise_l2"] * parts["denoise_l2"])
    Lr = lam["recon_lambda"] * (lam["recon_l2"] * parts["recon_l2"]
                                + (lam["perceptual"] * parts["perceptual"] if "perceptual" in parts else 0.0))
    total = Lf + Ld + Lr
    logs = {k: float(v.detach()) for k, v in parts.items()}
    logs.update(Lf=float(Lf.detach()), Ld=float(Ld.detach()), Lr=float(Lr.detach()))
    return total, logs


@register_recipe("evdeblur")
class EvDeblurTrainer(Trainer):
    """Official training of ``evdeblur`` / ``evdeblur_rgb`` (``trainer/trainer_full.py``).

    Recipe args (config ``recipe:``): the loss weights of :data:`DEFAULT_LAMBDAS` and
    ``vgg19_weights`` (path of torchvision's VGG19 ImageNet file; required unless
    ``perceptual: 0``). The data set must give ``E``, ``B``, ``Bi``, ``F``, ``Bi_clean``, ``S``
    (dataset type ``evdeblur``). The frozen VGG is not saved in checkpoints (it is the user's
    file, reloaded on resume).

    Raises (at construction): ValueError for unknown args or a missing ``vgg19_weights``;
    FileNotFoundError (with where to get it) when the VGG file does not exist.
    """

    def setup(self) -> None:
        args = dict(self.recipe_args)
        vgg_path = args.pop("vgg19_weights", None)
        bad = sorted(set(args) - set(DEFAULT_LAMBDAS))
        if bad:
            raise ValueError(f"{self.cfg.name}: unknown recipe arg(s) {bad}; known: "
                             f"{sorted(DEFAULT_LAMBDAS) + ['vgg19_weights']}")
        self.lambdas = {k: float(v) for k, v in args.items()}
        self.vgg = None
        if {**DEFAULT_LAMBDAS, **self.lambdas}["perceptual"]:
            if not vgg_path:
                raise ValueError(
                    f"{self.cfg.name}: recipe.vgg19_weights is required for the perceptual loss: the path of "
                    "torchvision's VGG19 ImageNet weights (vgg19-dcbb9e9d.pth); or set recipe.perceptual=0"
                )
            from ...losses import VGGFeatureExtractor

            self.vgg = VGGFeatureExtractor(("conv3_3",), arch="vgg19", weights=vgg_path).to(self.device)

    def _inputs(self, batch: dict) -> tuple[Tensor, Tensor, Tensor]:
        d = self.device
        return batch["E"].to(d), batch["B"].to(d), batch["Bi"].to(d)

    def train_step(self, batch: dict) -> dict:
        lr = self.apply_lr()
        E, B, Bi = self._inputs(batch)
        targets = [batch[k].to(self.device) for k in ("F", "Bi_clean", "S")]
        self.net.train()
        with self.autocast():
            out = self.fwd["net"](E, B, Bi)
        out = tuple(o.float() for o in out)
        loss, parts = evdeblur_loss(out, *targets, vgg=self.vgg, **self.lambdas)
        parts["psnr"] = float(metrics.psnr_pooled(out[2].detach().clamp(0, 1), targets[2]))
        return self.optimise(loss, parts, lr)

    @torch.no_grad()
    def validate(self) -> dict:
        """``eval.protocol`` on ``data.val`` (items with ``E``, ``B``, ``Bi``, ``S``), frames of any
        size (padded and cropped back)."""
        from ...models.evdeblur import crop_event_outputs, pad_event_inputs
        from ..evaluator import evaluate

        net = self.eval_net.eval()
        n = self.val_count()
        current: dict = {}

        def pairs():
            for i in range(n):
                current.clear()
                current.update(self.val_set[i])
                yield current["name"], current["Bi"], current["S"]

        def restore(lq: Tensor) -> Tensor:
            p = pad_event_inputs(current["E"][None], current["B"][None], lq, rgb=net.rgb, grid=net.grid)
            with self.autocast():
                out = net(p.E.to(self.device), p.B.to(self.device), p.Bi.to(self.device))
            return crop_event_outputs(out, p.padding)[2].float()

        return evaluate(restore, pairs(), self.cfg.eval.protocol, progress=False).mean


def _score(restored: Tensor, gt: Tensor) -> dict:
    r = restored.clamp(0, 1)
    return {"psnr": float(metrics.psnr_pooled(r, gt)), "ssim": float(metrics.ssim(r, gt).mean())}


register_protocol(Protocol(
    "evdeblur",
    "event-guided low-light deblurring (fourson/Deblurring-Low-Light-Images-with-Events model/metric_full.py): "
    "output clamped to [0,1]; PSNR of the batch-pooled MSE (data range 1; one image per batch at test time); "
    "Gaussian SSIM (11x11, sigma 1.5, valid region), grey APS or RGB",
    _score,
))
