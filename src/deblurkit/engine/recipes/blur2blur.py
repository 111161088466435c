"""Blur2Blur's two training recipes: the blur converter (``blur2blur``) and the known-domain
kernel network it relies on (``kernel_wizard``).

``blur2blur`` follows ``Blur2BlurModel`` of VinAIResearch/Blur2Blur
(``models/blur2blur_model.py``, commit ee12450c300e1eed9752b4e8a1a487b2a69f833e) with the
defaults of ``options/base_options.py`` / ``options/train_options.py`` and ``scripts/train.sh``.
Per step, with A (unknown blurry), B (unknown sharp) and a known pair C (blurry) / D (sharp):

1. ``set_input``, frozen kernel_wizard, no gradients: ``(mean, sigma) = kw(D, C)``,
   ``kernel = mean + sigma * randn``, ``real = kw.adaptKernel(B, kernel)`` (B re-blurred with the
   known camera's blur; not clamped, as official).
2. ``forward``: ``fake = G(A)``, the generator's three scales (1/4, 1/2, 1).
3. ``backward_D``: ``D_fake = hinge_neg(D(fake.detach()))``, ``D_real = hinge_pos(D([real_1/4,
   real_1/2, real]))`` (bilinear ``F.interpolate`` by 0.25 / 0.5), each averaged over the three
   scales; ``loss_D = 0.5 (D_fake + D_real) + GP``, ``GP = lambda_gp * mean_n (||grad_x D(x)||_2 -
   1)^2`` at ``x = alpha real + (1 - alpha) fake`` (full scale, one alpha per sample,
   ``lambda_gp`` 1e-4; ``models/losses/__init__.py`` ``cal_gradient_penalty(type='mixed')``).
4. ``backward_G`` with D frozen: ``loss_G = -mean(D(fake))`` (averaged over scales) ``+
   lambda_Perc * sum_s VGG(fake_s, A_s)`` (``lambda_Perc`` 0.8; A at the same three scales).

Hinge terms (``models/losses/gan_loss.py``): ``hinge_pos(x) = mean(relu(1 - x))``,
``hinge_neg(x) = mean(relu(1 + x))``; the generator's term is ``-mean(x)``.

Deviation (a fix, not an option): the official gradient penalty calls the discriminator on a
tensor, which its ``forward`` iterates over the batch, and passes one ``grad_outputs`` entry, so
it fails for batch sizes > 1; here D is called as ``D([x])`` and the penalty is the same for
batch size 1 and correct for any batch size. The official code also builds the re-blurred
sample without ``no_grad`` (gradients accumulate in the frozen network unused); here it is under
``no_grad``.

``kernel_wizard`` follows ``ImageBaseModel`` of VinAIResearch/blur-kernel-space-exploring
(``models/kernel_encoding/image_base_model.py``, config
``options/kernel_encoding/GOPRO/woVAE.yml``): ``(mean, sigma) = net(sharp, blurry)``,
``kernel = mean + sigma * randn``, ``reblurred = net.adaptKernel(sharp, kernel)``, loss =
``pixel_weight * Charbonnier(reblurred, blurry)`` with BKSE's ``CharbonnierLoss``
(``sum(sqrt(d^2 + 1e-6))``, summed) ``+ kl_weight * KL`` when ``use_vae``.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...losses import blur2blur_perceptual_loss
from ...losses.vgg import VGGFeatureExtractor
from ...models import build, load_checkpoint, read_state_dict
from ...models.blur2blur import infer_kernel_wizard_config
from ..trainer import Trainer, register_recipe

__all__ = ["Blur2BlurTrainer", "KernelWizardTrainer", "hinge_loss", "gradient_penalty",
           "load_kernel_wizard", "charbonnier_sum"]


def hinge_loss(outputs: list[Tensor], target_real: bool, for_discriminator: bool = True) -> Tensor:
    """Blur2Blur's ``GANLoss('hinge')`` over a list of patch-logit maps, averaged over the list.

    Discriminator: ``mean(relu(1 - x))`` for real targets, ``mean(relu(1 + x))`` for fake ones;
    generator (``for_discriminator=False``, real target only): ``-mean(x)``.
    """
    if not for_discriminator and not target_real:
        raise ValueError("the generator's hinge loss takes the real target only")
    terms = []
    for x in outputs:
        if not for_discriminator:
            terms.append(-x.mean())
        elif target_real:
            terms.append(F.relu(1.0 - x).mean())
        else:
            terms.append(F.relu(1.0 + x).mean())
    return torch.stack(terms).mean()


def gradient_penalty(net_d: nn.Module, real: Tensor, fake: Tensor, weight: float,
                     constant: float = 1.0) -> Tensor:
    """WGAN-GP penalty ``weight * mean_n (||grad D(x_n)||_2 - constant)^2`` on random
    interpolates ``x = alpha real + (1 - alpha) fake`` (alpha ~ U(0, 1) per sample).

    real, fake: (N, C, H, W); ``net_d`` is called as ``net_d([x])`` (list form) and the
    gradient of the sum of its output is taken, which works for any N (see the module
    docstring for the official batch-size-1 limitation). Returns a scalar with a graph.
    """
    if weight == 0.0:
        return real.new_zeros(())
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    x = (alpha * real + (1.0 - alpha) * fake).requires_grad_(True)
    out = net_d([x])[0]
    (grad,) = torch.autograd.grad(out, x, grad_outputs=torch.ones_like(out), create_graph=True,
                                  retain_graph=True, only_inputs=True)
    grad = grad.reshape(real.shape[0], -1)
    return ((grad + 1e-16).norm(2, dim=1) - constant).pow(2).mean() * weight


def charbonnier_sum(pred: Tensor, target: Tensor, eps: float = 1e-6, reduction: str = "sum") -> Tensor:
    """BKSE's ``CharbonnierLoss``: ``sum(sqrt((pred - target)^2 + eps))`` (``reduction='mean'``
    averages instead)."""
    v = torch.sqrt((pred - target) ** 2 + eps)
    return v.sum() if reduction == "sum" else v.mean()


def load_kernel_wizard(weights: str | Path, overrides: dict | None = None) -> nn.Module:
    """Build ``kernel_wizard`` for a weights file and load it strictly.

    Constructor options: ``overrides`` when given, else the JSON sidecar written by
    ``deblurkit train`` (``<weights>.json``), else those inferred from the keys
    (:func:`~deblurkit.models.blur2blur.infer_kernel_wizard_config`).

    Raises:
        FileNotFoundError: no such file (the message says how to get one).
        deblurkit.models.CheckpointMismatchError: the file does not fit.
    """
    p = Path(weights)
    if not p.is_file():
        raise FileNotFoundError(
            f"kernel_wizard weights not found: '{p}'. Train one on your known blur domain with "
            "`deblurkit train configs/blur2blur_kernel_wizard_<domain>.yaml` or use BKSE's GOPRO_woVAE.pth"
        )
    ov = dict(overrides) if overrides is not None else None
    if ov is None:
        side = p.with_suffix(".json")
        if side.is_file():
            meta = json.loads(side.read_text(encoding="utf-8"))
            if meta.get("model") == "kernel_wizard":
                ov = dict(meta.get("overrides", {}))
    if ov is None:
        ov = infer_kernel_wizard_config(read_state_dict(p))
    net = build("kernel_wizard", **ov)
    load_checkpoint(net, p)
    return net


@register_recipe("blur2blur")
class Blur2BlurTrainer(Trainer):
    """Blur2Blur's converter training (see the module docstring).

    Recipe arguments (``recipe:`` of the config):
        kernel_wizard: path of the trained kernel_wizard of the known domain (required).
        kernel_wizard_overrides: its constructor options (default: sidecar JSON / inferred).
        vgg_weights: torchvision VGG16 ImageNet weights (``vgg16-397923af.pth`` or safetensors)
            for the perceptual loss (required unless ``vgg_random_init``).
        vgg_random_init: use a VGG16 with random He-normal weights (seeded by ``seed``, zero
            biases) instead: NOT the official loss, only for machines without the ImageNet file.
        lambda_perc: 0.8 (``--lambda_Perc``). lambda_gp: 1e-4 (``--lambda_gp``).
        discriminator: constructor overrides of ``patchgan_b2b`` (default official: ndf 64,
            3 layers, instance norm, N(0, 0.02) init).
        known_blur: instead of kernel_wizard, re-blur B with the known domain's own kernels when
            that domain is synthetic: ``{levin_path, trajectory (bank size), kernel_size,
            noise_sigma, seed}`` (random kernel per sample in one of 8 orientations, reflect
            boundary, Gaussian noise, 8-bit). NOT the official procedure: the oracle that a
            perfectly trained kernel_wizard approximates; C and D are then unused.
        content_loss: ``"perceptual"`` (official) or ``"l1"``: mean absolute difference between
            each output scale and the input at that scale, weighted by ``lambda_perc`` (NOT the
            official loss; a cheap substitute for CPU runs without the VGG16 file).

    The main network (``model:``) is the generator (``mimo_unet`` with ``init: normal``); the
    discriminator ``netD`` is a trainable auxiliary network with the generator's optimiser
    settings (both Adam, lr 2e-4, betas (0.5, 0.999), one schedule).
    """

    def setup(self) -> None:
        a = dict(self.recipe_args)
        known = {"kernel_wizard", "kernel_wizard_overrides", "vgg_weights", "vgg_random_init",
                 "lambda_perc", "lambda_gp", "discriminator", "content_loss", "known_blur"}
        unknown = sorted(set(a) - known)
        if unknown:
            raise ValueError(f"{self.cfg.name}: recipe 'blur2blur' has no argument(s) {unknown}; known: {sorted(known)}")
        self.known_kernels = None
        if a.get("known_blur"):
            self.known_kernels, self.known_noise = self._known_kernel_bank(dict(a["known_blur"]))
        elif not a.get("kernel_wizard"):
            raise ValueError(f"{self.cfg.name}: recipe.kernel_wizard (weights of the known domain's "
                             "kernel_wizard) is required")
        self.lambda_perc = float(a.get("lambda_perc", 0.8))
        self.lambda_gp = float(a.get("lambda_gp", 1e-4))
        d_kw = {"init": "normal", **dict(a.get("discriminator") or {})}
        self.add_aux("netD", build("patchgan_b2b", **d_kw), trainable=True)
        if self.known_kernels is None:
            kw = load_kernel_wizard(a["kernel_wizard"], a.get("kernel_wizard_overrides"))
            self.add_aux("kernel_wizard", kw, trainable=False)
        self.content_loss = a.get("content_loss", "perceptual")
        if self.content_loss not in ("perceptual", "l1"):
            raise ValueError(f"{self.cfg.name}: recipe.content_loss must be 'perceptual' (official) or 'l1', "
                             f"got {self.content_loss!r}")
        if self.content_loss == "l1":
            self.perceptual = nn.L1Loss()
        elif a.get("vgg_random_init"):
            vgg = VGGFeatureExtractor(arch="vgg16")
            g = torch.Generator().manual_seed(self.cfg.seed)
            with torch.no_grad():  # He init keeps the feature scale through the 13 convolutions
                for m in vgg.features:
                    if isinstance(m, nn.Conv2d):
                        fan_in = m.weight[0].numel()
                        m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
                        m.bias.zero_()
            self.perceptual = blur2blur_perceptual_loss(vgg)
        else:
            if not a.get("vgg_weights"):
                raise ValueError(f"{self.cfg.name}: recipe.vgg_weights is required (torchvision's ImageNet "
                                 "VGG16 file vgg16-397923af.pth or a safetensors copy); set "
                                 "recipe.vgg_random_init=true only to try the recipe without it")
            self.perceptual = blur2blur_perceptual_loss(a["vgg_weights"])
        self.perceptual.to(self.device)

    def _known_kernel_bank(self, spec: dict) -> tuple[list[Tensor], object]:
        """Kernels of a synthetic known domain (``known_blur``): the Levin kernels of
        ``levin_path`` and ``trajectory`` Boracchi & Foi kernels of ``kernel_size``, plus
        ``noise_sigma`` (float or [lo, hi])."""
        from ...synth.kernels import levin_kernels, trajectory_kernels

        allowed = {"levin_path", "trajectory", "kernel_size", "noise_sigma", "seed"}
        bad = sorted(set(spec) - allowed)
        if bad:
            raise ValueError(f"{self.cfg.name}: recipe.known_blur has no key(s) {bad}; known: {sorted(allowed)}")
        bank: list[Tensor] = []
        if spec.get("levin_path"):
            bank += [k.float() for k in levin_kernels(spec["levin_path"]).values()]
        n_traj = int(spec.get("trajectory", 0))
        if n_traj:
            g = torch.Generator().manual_seed(int(spec.get("seed", self.cfg.seed)))
            bank += list(trajectory_kernels(n_traj, int(spec.get("kernel_size", 31)), generator=g).unbind(0))
        if not bank:
            raise ValueError(f"{self.cfg.name}: recipe.known_blur needs levin_path and/or trajectory > 0")
        return bank, spec.get("noise_sigma", 0.0)

    def _reblur_with_bank(self, sharp: Tensor) -> Tensor:
        from ...synth.blur import blur
        from ...synth.noise import quantize_8bit

        out = []
        for i in range(sharp.shape[0]):
            k = self.known_kernels[int(torch.randint(len(self.known_kernels), ()))]
            code = int(torch.randint(8, ()))
            k = torch.rot90(k, code % 4, dims=(-2, -1))
            k = k.flip(-1) if code >= 4 else k
            y = blur(sharp[i:i + 1], k.to(sharp.device), "reflect")
            ns = self.known_noise
            sigma = float(ns[0] + (ns[1] - ns[0]) * torch.rand(())) if isinstance(ns, (list, tuple)) else float(ns)
            out.append(quantize_8bit(y + sigma * torch.randn_like(y)))
        return torch.cat(out)

    @torch.no_grad()
    def reblur_known(self, sharp_unknown: Tensor, blur_known: Tensor, sharp_known: Tensor) -> Tensor:
        """B re-blurred with the kernel the frozen kernel_wizard extracts from (D, C) (or, with
        ``known_blur``, with a random kernel of the synthetic known domain)."""
        if self.known_kernels is not None:
            return self._reblur_with_bank(sharp_unknown)
        kw = self.aux["kernel_wizard"]
        mean, sigma = kw(sharp_known, blur_known)
        kernel = mean + sigma * torch.randn_like(mean)
        return kw.adaptKernel(sharp_unknown, kernel)

    def train_step(self, batch: dict) -> dict:
        lr = self.apply_lr()
        dev = self.device
        real_a = batch["A"].to(dev, non_blocking=True)
        real = self.reblur_known(batch["B"].to(dev), batch["C"].to(dev), batch["D"].to(dev))
        net_g, net_d = self.fwd["net"], self.fwd["netD"]
        opt_d = self.aux_optimizers["netD"]
        self.net.train()
        self.aux["netD"].train()
        with self.autocast():
            fake = net_g(real_a)
        fake = [f.float() for f in fake]

        # discriminator
        self.aux["netD"].requires_grad_(True)
        fake_d = [f.detach() for f in fake]
        real_s = [F.interpolate(real, scale_factor=0.25, mode="bilinear"),
                  F.interpolate(real, scale_factor=0.5, mode="bilinear"), real]
        loss_d_fake = hinge_loss(net_d(fake_d), target_real=False)
        loss_d_real = hinge_loss(net_d(real_s), target_real=True)
        gp = gradient_penalty(net_d, real, fake_d[-1], self.lambda_gp)
        loss_d = 0.5 * (loss_d_fake + loss_d_real) + gp
        self.check_finite(loss_d, {"D_fake": float(loss_d_fake.detach()),
                                  "D_real": float(loss_d_real.detach())})
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()

        # generator
        self.aux["netD"].requires_grad_(False)
        loss_g_gan = hinge_loss(net_d(fake), target_real=True, for_discriminator=False)
        a_s = [F.interpolate(real_a, scale_factor=0.25, mode="bilinear"),
               F.interpolate(real_a, scale_factor=0.5, mode="bilinear"), real_a]
        loss_perc = sum(self.perceptual(f, t) for f, t in zip(fake, a_s)) * self.lambda_perc
        loss_g = loss_g_gan + loss_perc
        parts = {"G_GAN": float(loss_g_gan.detach()), "G_Perc": float(loss_perc.detach())}
        logs = self.optimise(loss_g, parts, lr, finish=False)
        logs.update({"D_real": float(loss_d_real.detach()), "D_fake": float(loss_d_fake.detach()),
                     "D_gp": float(gp.detach())})
        self.aux["netD"].requires_grad_(True)
        self.finish_step()
        return logs


@register_recipe("kernel_wizard")
class KernelWizardTrainer(Trainer):
    """BKSE's kernel_wizard training on aligned (blurry ``lq``, sharp ``gt``) pairs of the known
    blur domain (see the module docstring). The main network is ``kernel_wizard``.

    Recipe arguments: ``pixel_weight`` (1.0), ``kl_weight`` (0.0; used with ``use_vae``),
    ``eps`` (1e-6, inside the square root), ``reduction`` (``sum``, official; or ``mean``).

    Validation (``data.val``): PSNR/SSIM of ``adaptKernel(gt, kernel(gt, lq))`` against ``lq``,
    images centre-cropped to multiples of 128: how well the network reproduces the known blur.
    """

    def setup(self) -> None:
        a = dict(self.recipe_args)
        known = {"pixel_weight", "kl_weight", "eps", "reduction"}
        unknown = sorted(set(a) - known)
        if unknown:
            raise ValueError(f"{self.cfg.name}: recipe 'kernel_wizard' has no argument(s) {unknown}; known: {sorted(known)}")
        if self.cfg.model.name != "kernel_wizard":
            raise ValueError(f"{self.cfg.name}: recipe 'kernel_wizard' trains model.name kernel_wizard, "
                             f"got {self.cfg.model.name!r}")
        self.pixel_weight = float(a.get("pixel_weight", 1.0))
        self.kl_weight = float(a.get("kl_weight", 0.0))
        self.eps = float(a.get("eps", 1e-6))
        self.reduction = a.get("reduction", "sum")
        if self.reduction not in ("sum", "mean"):
            raise ValueError(f"{self.cfg.name}: recipe.reduction must be 'sum' or 'mean', got {self.reduction!r}")

    def reblur(self, net: nn.Module, sharp: Tensor, blurry: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """BKSE kernel_wizard training pass: sharp, blurry (N, 3, H, W) in [0, 1], H and W
        multiples of 128 -> (re-blurred sharp (N, 3, H, W), kernel mean, kernel sigma), the kernel
        sampled as mean + sigma * N(0, 1). Goes through ``net.forward`` so a DDP wrapper syncs it."""
        return net(sharp, blurry, reblur=True)

    def train_step(self, batch: dict) -> dict:
        lr = self.apply_lr()
        lq = batch["lq"].to(self.device, non_blocking=True)
        gt = batch["gt"].to(self.device, non_blocking=True)
        self.net.train()
        with self.autocast():
            fake, mean, sigma = self.reblur(self.fwd["net"], gt, lq)
        n = lq.shape[0]
        l_pix = self.pixel_weight * charbonnier_sum(fake.float(), lq, self.eps, self.reduction)
        loss = l_pix
        parts = {"l_pix": float(l_pix.detach()) / n}
        if self.net.kernel_extractor.use_vae and self.kl_weight:
            m, s = mean.float(), sigma.float()
            kl = self.kl_weight * (m.pow(2) + s.pow(2) - torch.log(1e-8 + s.pow(2)) - 1).sum()
            loss = loss + kl
            parts["l_KL"] = float(kl.detach()) / n
        return self.optimise(loss, parts, lr, loss_scale=1.0 / n)

    @torch.no_grad()
    def validate(self) -> dict:
        from .. import evaluate

        net = self.eval_net
        net.eval()
        n = self.val_count()
        rows = []
        for i in range(n):
            it = self.val_set[i]
            h, w = it["lq"].shape[-2:]
            hh, ww = h - h % 128, w - w % 128
            if min(hh, ww) < 256:
                raise ValueError(f"validation image {it['name']} ({h}x{w}) is too small: kernel_wizard "
                                 "needs at least 256x256")
            t, l = (h - hh) // 2, (w - ww) // 2
            lq = it["lq"][None, :, t:t + hh, l:l + ww].to(self.device)
            gt = it["gt"][None, :, t:t + hh, l:l + ww].to(self.device)
            mean, _ = net(gt, lq)
            rows.append((it["name"], lq.cpu()[0], net.adaptKernel(gt, mean).float().cpu()[0]))

        def pairs():
            for name, lq, fake in rows:
                yield name, fake, lq  # "restored" = the re-blurred sharp image, scored against lq

        res = evaluate(lambda x: x, pairs(), self.cfg.eval.protocol, progress=False)
        return res.mean


# ---------------------------------------------------------------------------- evaluation protocol
def _short_side_256(h: int, w: int) -> tuple[int, int]:
    """(new_h, new_w) of Blur2Blur's ``psnr_ssim.py``: the shorter side becomes 256, the other
    ``int(side * 256 / shorter)``."""
    if h < w:
        return 256, int(w * (256 / h))
    return int(h * (256 / w)), 256


def _resize_area_u8(img_u8: Tensor, size: tuple[int, int]) -> Tensor:
    """(1, 3, H, W) uint8-valued float tensor -> ``cv2.resize(..., INTER_AREA)`` on uint8, as float."""
    import cv2
    import numpy as np

    arr = img_u8[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
    out = cv2.resize(np.ascontiguousarray(arr), (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(out).permute(2, 0, 1)[None].to(torch.float64)


def blur2blur_score(restored: Tensor, gt: Tensor) -> dict:
    """Blur2Blur's ``psnr_ssim.py`` on (1, 3, H, W) tensors in [0, 1].

    The restored image becomes 8-bit as ``util.tensor2im`` saves it (clamp, x255, truncated);
    the reference is 8-bit (it is read from disk) and, when its height is not 256, resized with
    ``cv2.INTER_AREA`` so that its shorter side is 256 (:func:`_short_side_256`). A restored image
    of another size (e.g. the full-resolution blurry input scored as the baseline) is resized the
    same way. PSNR on the 8-bit values with peak 255; SSIM = :func:`deblurkit.metrics.ssim_3d`
    on the 8-bit values (``_ssim_3d``).
    """
    from ... import metrics

    r = torch.floor(restored.detach().float().clamp(0, 1) * 255.0).double()  # float32, as tensor2im
    g = torch.round(gt.detach().double().clamp(0, 1) * 255.0)
    if g.shape[-2] != 256:
        g = _resize_area_u8(g, _short_side_256(*g.shape[-2:]))
    if r.shape[-2:] != g.shape[-2:]:
        r = _resize_area_u8(r, tuple(g.shape[-2:]))
    return {"psnr": float(metrics.psnr(r / 255.0, g / 255.0, data_range=1.0)[0]),
            "ssim": float(metrics.ssim_3d(r / 255.0, g / 255.0, data_range=1.0)[0])}


def blur2blur_apply(restore, lq: Tensor) -> Tensor:
    """Run ``restore`` on the blurry input resized (``cv2.INTER_AREA``) to the size the protocol
    scores at (shorter side 256 unless the height already is 256)."""
    import cv2
    import numpy as np

    h, w = lq.shape[-2:]
    if h == 256:
        return restore(lq)
    nh, nw = _short_side_256(h, w)
    arr = lq[0].detach().float().cpu().permute(1, 2, 0).numpy()
    small = cv2.resize(np.ascontiguousarray(arr), (nw, nh), interpolation=cv2.INTER_AREA)
    x = torch.from_numpy(small).permute(2, 0, 1)[None].clamp(0, 1).to(lq.device)
    return restore(x)


def _register_protocol() -> None:
    from ..evaluator import Protocol, register_protocol

    register_protocol(Protocol(
        "blur2blur",
        "Blur2Blur psnr_ssim.py: reference (8-bit) resized with cv2.INTER_AREA to a 256-pixel shorter "
        "side (when its height is not 256), the input resized the same way before restoring; output "
        "saved as 8-bit (truncated, util.tensor2im); PSNR on 8-bit values (peak 255); 3-D Gaussian "
        "SSIM (ssim_3d) on 8-bit values",
        blur2blur_score, blur2blur_apply))


_register_protocol()
