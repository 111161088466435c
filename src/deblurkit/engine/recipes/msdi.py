"""MSDI-Net's training recipes (Li et al., ECCV 2022; dasongli1/Learning_degradation, commit 9ba7c63).

``msdi_stage1`` - v2 learning of degradation representations by joint reblurring and deblurring
(``MSDINet2e-Train.yml``, ``basicsr/train1.py``, ``image_restoration2_model.py``
``ImageRestorationModel2``). Main network ``msdi2e``; trainable auxiliary ``discriminator``
(``msdi_discriminator``). One iteration::

    deblurred, reblurred = G(blurry, sharp)
    fake, real = D(cat[sharp, reblurred]), D(cat[sharp, blurry])        # one batch, split at N/2
    L_G = gan_weight * hinge_G(fake) + feature_matching_weight * FM(fake, real)
          + vgg_weight * VGG19(reblurred, blurry) + loss(deblurred, sharp)   # 1, 10, 30, 10 x L1
    step G (grad-norm clip train.grad_clip, official 0.01)
    reblurred' = G(blurry, sharp) without gradients (the updated G, training mode, as official)
    L_D = hinge_D(D(cat[sharp, reblurred']), D(cat[sharp, blurry]))
    step D (same clipping; Adam with optim.* as official)

Official quirk (off by default): ``ImageRestorationModel2.setup_optimizers`` only registers the
discriminator's optimiser for the scheduler, so the generator keeps ``lr = 2e-4``; set
``official_constant_generator_lr: true`` to reproduce it. The official cosine period
(``T_max: 250000``) differs from its length (``total_iter: 240000``): ``cosine_period``.

``msdi_stage2`` - deblurring with the learned representations (``MSDINet-Train.yml`` /
``MSDINet2-Train.yml``, ``image_restoration_model.py`` ``ImageRestorationModel``). Main network
``msdi_net`` or ``msdi2_net`` with its frozen degradation parts loaded from ``encoder`` /
``prior`` (``net_E.pth`` + ``prior_upsampling.pth``, or ``net2.pth`` + ``prior_upsampling2.pth``
from :func:`deblurkit.models.msdi.extract_msdi_parts` / ``deblurkit msdi split-parts``)::

    L = sum_{o in [stage-1 image, final image]} loss(o, sharp)            # 0.5 x PSNR loss
        + feature_weight * sum_k |E_k(final) - E_k(sharp)|                # 1.0, frozen net_E.pth

with the gradient norm clipped at ``train.grad_clip`` (official 0.01, hard-coded there).

Both recipes keep every loss network frozen for real: ``eval()`` whatever the trainer does and
``requires_grad=False`` (the VGG19 from ``vgg_weights``; the feature encoder from
``feature_encoder``); neither is saved in the checkpoints (they are re-read from their files).
"""
from __future__ import annotations

import torch
from torch import nn

from ...losses.msdi import (
    DegradationFeatureLoss,
    feature_matching_loss,
    hinge_discriminator_loss,
    hinge_generator_loss,
    msdi_vgg_loss,
)
from ...models import build
from ...models.msdi import load_msdi_parts
from ..schedule import lr_at
from ..trainer import Trainer, register_recipe

__all__ = ["MSDIStage1", "MSDIStage2"]


def _take(args: dict, where: str, defaults: dict) -> dict:
    unknown = sorted(set(args) - set(defaults))
    if unknown:
        raise ValueError(f"{where}: unknown recipe argument(s) {unknown}; allowed: {sorted(defaults)}")
    return {**defaults, **args}


def _split(pred: list) -> tuple[list, list]:
    """Split every discriminator output at N/2 into (fake, real) (``divide_pred``)."""
    fake = [[t[: t.shape[0] // 2] for t in p] for p in pred]
    real = [[t[t.shape[0] // 2:] for t in p] for p in pred]
    return fake, real


def _set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for g in opt.param_groups:
        g["lr"] = lr


@register_recipe("msdi_stage1")
class MSDIStage1(Trainer):
    """Stage 1 of MSDI-Net v2 (see the module docstring). ``model.name`` must be ``msdi2e``.

    Recipe arguments (official values as defaults):
        vgg_weights: path of torchvision's ``vgg19-dcbb9e9d.pth`` (required; nothing is downloaded).
        discriminator: overrides of ``msdi_discriminator`` (official ``{}``: 6 inputs, ndf 64, 2 scales).
        gan_weight (1), feature_matching_weight (10), vgg_weight (30): the generator's loss
            weights; the deblurred image's pixel term is the config's ``loss`` (official ``l1`` x 10).
        cosine_period: steps of the cosine schedule (default ``train.total_steps``; official 250000).
        official_constant_generator_lr: keep the generator at ``optim.lr`` (official quirk).

    Raises:
        ValueError: another model, unknown arguments, or no ``vgg_weights``.
        FileNotFoundError / CheckpointMismatchError: from the VGG19 file.
    """

    def setup(self) -> None:
        a = _take(self.recipe_args, f"{self.cfg.name}: recipe msdi_stage1", {
            "vgg_weights": None, "discriminator": {}, "gan_weight": 1.0, "feature_matching_weight": 10.0,
            "vgg_weight": 30.0, "cosine_period": None, "official_constant_generator_lr": False})
        if self.cfg.model.name != "msdi2e":
            raise ValueError(f"{self.cfg.name}: recipe msdi_stage1 trains 'msdi2e', not {self.cfg.model.name!r}")
        if a["vgg_weights"] is None:
            raise ValueError(f"{self.cfg.name}: recipe.vgg_weights is not set: give the path of torchvision's "
                             "VGG19 file vgg19-dcbb9e9d.pth (https://download.pytorch.org/models/vgg19-dcbb9e9d.pth)")
        self.args = a
        self.vgg = msdi_vgg_loss(a["vgg_weights"]).to(self.device).eval()
        o = self.cfg.optim
        self.add_aux("discriminator", build("msdi_discriminator", **dict(a["discriminator"])), trainable=True,
                     lr=o.lr, betas=tuple(o.betas))

    def apply_lr(self) -> float:
        cfg = self.cfg
        period = int(self.args["cosine_period"] or cfg.train.total_steps)
        lr = lr_at(self.step, base_lr=cfg.optim.lr, total_steps=period, warmup_steps=cfg.schedule.warmup_steps,
                   min_lr=cfg.schedule.min_lr, kind=cfg.schedule.type)
        _set_lr(self.optimizer, cfg.optim.lr if self.args["official_constant_generator_lr"] else lr)
        for opt in self.aux_optimizers.values():
            for g in opt.param_groups:
                g["lr"] = g["initial_lr"] * lr / cfg.optim.lr
        return lr

    def _discriminate(self, sharp, image, blurry):
        d = self.fwd["discriminator"]
        both = torch.cat([torch.cat([sharp, image], 1), torch.cat([sharp, blurry], 1)], 0)
        return _split(d(both))

    def train_step(self, batch: dict) -> dict:
        a, clip = self.args, self.cfg.train.grad_clip
        lr = self.apply_lr()
        lq = batch["lq"].to(self.device, non_blocking=True)
        gt = batch["gt"].to(self.device, non_blocking=True)
        disc = self.aux["discriminator"]
        self.net.train()
        disc.train()

        # generator
        disc.requires_grad_(False)
        with self.autocast():
            deblurred, reblurred = self.fwd["net"](lq, gt)
            fake, real = self._discriminate(gt, reblurred, lq)
        deblurred, reblurred = deblurred.float(), reblurred.float()
        g_gan = hinge_generator_loss(fake).float()
        g_fm = feature_matching_loss(fake, real).float()
        g_vgg = self.vgg(reblurred, lq)
        g_pix, pix_parts = self.criterion(deblurred, gt)
        loss_g = a["gan_weight"] * g_gan + a["feature_matching_weight"] * g_fm + a["vgg_weight"] * g_vgg + g_pix
        parts = {"g_gan": float(g_gan.detach()), "g_feature_matching": float(g_fm.detach()),
                 "g_vgg": float(g_vgg.detach()), **pix_parts}
        logs = self.optimise(loss_g, parts, lr, finish=False)

        # discriminator, on a reblurred image of the updated generator
        disc.requires_grad_(True)
        with torch.no_grad(), self.autocast():
            _, reblurred_d = self.fwd["net"](lq, gt)
        with self.autocast():
            fake, real = self._discriminate(gt, reblurred_d.float(), lq)
        d_fake, d_real = hinge_discriminator_loss(fake, real)
        loss_d = (d_fake + d_real).float()
        self.check_finite(loss_d, {"d_fake": float(d_fake.detach()), "d_real": float(d_real.detach())})
        opt_d = self.aux_optimizers["discriminator"]
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        if clip:
            logs["d_grad_norm"] = float(nn.utils.clip_grad_norm_(disc.parameters(), clip))
        opt_d.step()
        logs.update({"d_fake": float(d_fake.detach()), "d_real": float(d_real.detach())})
        self.finish_step()
        return logs

    def restore(self, x: torch.Tensor) -> torch.Tensor:
        """Validation: the deblurring generator on the degradation maps of ``x`` (no sharp input)."""
        net = self.eval_net
        return net.generator(x, net.degradation_maps(x))


@register_recipe("msdi_stage2")
class MSDIStage2(Trainer):
    """Stage 2 of MSDI-Net (v1 ``msdi_net`` or v2 ``msdi2_net``; see the module docstring).

    Recipe arguments:
        encoder, prior: the degradation parts loaded into the network's frozen ``net_prior`` /
            ``prior_upsampling`` (:func:`deblurkit.models.msdi.load_msdi_parts`); required unless
            ``model.weights`` gives a whole network.
        feature_encoder: degradation-encoder weights of the feature loss (official ``net_E.pth``
            for both versions; a v2 ``net2.pth`` also fits, see
            :class:`deblurkit.losses.msdi.DegradationFeatureLoss`); required when
            ``feature_weight`` > 0.
        feature_weight: weight of the feature loss (official 1.0).
        official_parts_train_mode: keep the frozen ``net_prior`` / ``prior_upsampling`` in training
            mode as the official ``model.train()`` does, so their spectral-norm ``weight_u`` /
            ``weight_v`` buffers keep updating and the degradation parts drift from the loaded
            files (False by default: frozen parts stay in eval mode).

    The pixel loss is the config's ``loss`` (official ``psnr`` x 0.5) on each of the two outputs.

    Raises:
        ValueError: another model, unknown arguments, or a missing file setting.
        FileNotFoundError / CheckpointMismatchError: from the files.
    """

    def setup(self) -> None:
        a = _take(self.recipe_args, f"{self.cfg.name}: recipe msdi_stage2",
                  {"encoder": None, "prior": None, "feature_encoder": None, "feature_weight": 1.0,
                   "official_parts_train_mode": False})
        if self.cfg.model.name not in ("msdi_net", "msdi2_net"):
            raise ValueError(f"{self.cfg.name}: recipe msdi_stage2 trains 'msdi_net' or 'msdi2_net', "
                             f"not {self.cfg.model.name!r}")
        if (a["encoder"] is None or a["prior"] is None) and not self.cfg.model.weights:
            raise ValueError(
                f"{self.cfg.name}: set recipe.encoder and recipe.prior to the degradation parts (net_E.pth and "
                "prior_upsampling.pth for msdi_net; net2.pth and prior_upsampling2.pth, e.g. from "
                "'deblurkit msdi split-parts', for msdi2_net), or model.weights to a whole network")
        if a["encoder"] is not None or a["prior"] is not None:
            load_msdi_parts(self.net, encoder=a["encoder"], prior=a["prior"])
            if self.ema:  # the average started from the parts before loading
                self.ema.module.load_state_dict(self.net.state_dict())
        self.feature_loss = None
        if a["feature_weight"]:
            if a["feature_encoder"] is None:
                raise ValueError(f"{self.cfg.name}: recipe.feature_encoder is not set: give net_E.pth (the "
                                 "official loss network), or set recipe.feature_weight=0")
            self.feature_loss = DegradationFeatureLoss(a["feature_encoder"]).to(self.device)
        self.args = a

    def train_step(self, batch: dict) -> dict:
        lr = self.apply_lr()
        lq = batch["lq"].to(self.device, non_blocking=True)
        gt = batch["gt"].to(self.device, non_blocking=True)
        self.net.train()
        if not self.args["official_parts_train_mode"]:
            for part in (self.net.net_prior, self.net.prior_upsampling):
                if not any(p.requires_grad for p in part.parameters()):
                    part.eval()  # frozen for real: no spectral-norm power iterations either
        with self.autocast():
            outs = self.fwd["net"](lq)
        loss = gt.new_zeros(())
        parts: dict[str, float] = {}
        for i, o in enumerate(outs):
            term, p = self.criterion(o.float(), gt)
            loss = loss + term
            parts.update({f"{k}_{i + 1}": v for k, v in p.items()})
        if self.feature_loss is not None:
            feat = self.feature_loss(outs[-1].float(), gt)
            loss = loss + self.args["feature_weight"] * feat
            parts["feature"] = float(feat.detach())
        return self.optimise(loss, parts, lr)
