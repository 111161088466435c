"""RSS-T training recipe and evaluation protocol (Ji et al., ICCV 2023; jixiang2016/RSS-T).

Recipe ``rsst`` (``model/trainer.py`` ``Model.update``, ``train.py``):

* every full frame is zero-padded centred to multiples of (32, 128) with a padding mask
  (``Model.expand2square_new``; the network gets the mask, so in fixed mode its row-index channel
  counts the image rows 0..h-1), the target likewise;
* loss over the four outputs ``[out/8, out/4, out/2, out]`` against the target resized bilinearly
  by 1/8, 1/4, 1/2 (each directly from the full-resolution target, as the official code):
  ``sum_k Charbonnier(out_k, gt_k; eps=1e-3) + 0.1 * sum_k L1(FFT2(out_k), FFT2(gt_k))`` with the
  FFT's real and imaginary parts stacked (:func:`rsst_loss`). Outputs and targets are multiplied
  by the valid-pixel mask first, so the padding adds no error and no gradient (the official code
  trains on unpadded frames and pads only for validation);
* Adam (lr 1e-4, no weight decay), 5000-step linear warm-up then cosine to 1e-6
  (``train.py`` ``get_learning_rate``), ``epochs`` (official 600) fixing the step count from the
  training set size; horizontal flip and RGB/BGR swap, no vertical flip (the dataset, see
  :class:`deblurkit.data.grr.GRRPairedDataset`);
* validation on whole frames (no centre crop) with protocol ``rsst``; the best checkpoint
  maximises ``(PSNR + SSIM) / 2`` (``train.py``: ``best_monitored_value``).

Protocol ``rsst`` (``test.py``): whole frames, restored by the network's own padding
(:meth:`deblurkit.models.rsst.RSST.restore_frame`: centred zero padding to (32, 128) multiples
with the mask, cropped back; ``deblurkit evaluate`` and the recipe both go through it); PSNR
``10 log10(1 / MSE)`` on RGB [0, 1] of the raw (unclamped) output; SSIM = ``ssim_3d`` (the
official ``ssim_matlab``); the same two metrics on the top / middle / bottom thirds of the rows
(``v1 = H // 3``, ``v2 = 2 * (H // 3)``) as extra columns ``psnr_top`` ... ``ssim_bottom``.
Saved images are rounded to 8 bits (``deblurkit.io.save_image``); the official script truncates.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ... import metrics
from ...models.rsst import pad_centred
from ..evaluator import Protocol, evaluate, register_protocol
from ..trainer import Trainer, register_recipe

__all__ = ["rsst_loss", "rsst_score", "row_thirds", "RSSTRecipe", "PAD_FACTOR"]

#: Official padding factor for 4x16 windows (``trainer.py``: ``factor=(32,128)``).
PAD_FACTOR = (32, 128)


def rsst_loss(outputs: list[Tensor], target: Tensor, valid: Tensor | None = None, *, eps: float = 1e-3,
              fft_weight: float = 0.1) -> tuple[Tensor, dict[str, float]]:
    """RSS-T's multi-scale loss (official ``Model.update``).

    Args:
        outputs: the four outputs, coarsest first: (N, 3, H/8, W/8) ... (N, 3, H, W).
        target: (N, 3, H, W) sharp frame (zero where padded).
        valid: optional (N or 1, 1, H, W) mask, 1 on image pixels, 0 on padding; outputs and
            targets are multiplied by it (nearest-resized per scale) so padding carries no error.
        eps: Charbonnier epsilon (``CharbonnierLoss(eps=1e-3)``: ``mean(sqrt(d^2 + eps^2))``).
        fft_weight: weight of the frequency term (0.1).

    Returns:
        ``(loss, {"charbonnier": ..., "fft_l1": ...})`` (sums over the scales).
    """
    if len(outputs) != 4:
        raise ValueError(f"RSS-T has 4 outputs, got {len(outputs)}")
    content = target.new_zeros(())
    freq = target.new_zeros(())
    for out, scale in zip(outputs, (0.125, 0.25, 0.5, 1.0)):
        out = out.float()
        gt = target if scale == 1.0 else F.interpolate(target, scale_factor=scale, mode="bilinear")
        if valid is not None:
            v = F.interpolate(valid.to(out.dtype), size=out.shape[-2:])
            out, gt = out * v, gt * v
        content = content + torch.sqrt((out - gt) ** 2 + eps * eps).mean()
        fo = torch.view_as_real(torch.fft.fft2(out, dim=(-2, -1)))
        fg = torch.view_as_real(torch.fft.fft2(gt, dim=(-2, -1)))
        freq = freq + F.l1_loss(fo, fg)
    loss = content + fft_weight * freq
    return loss, {"charbonnier": float(content.detach()), "fft_l1": float(freq.detach())}


def row_thirds(height: int) -> dict[str, slice]:
    """Row ranges of the official top / middle / bottom breakdown (``test.py``)."""
    v1, v2 = height // 3, height // 3 * 2
    return {"top": slice(0, v1), "middle": slice(v1, v2), "bottom": slice(v2, height)}


def rsst_score(restored: Tensor, gt: Tensor) -> dict:
    """Protocol ``rsst``: PSNR (data range 1, unclamped) and ``ssim_3d`` on the whole frame and on
    its top / middle / bottom thirds. Inputs (1, 3, H, W), H >= 3."""
    out = {"psnr": float(metrics.psnr(restored, gt)[0]), "ssim": float(metrics.ssim_3d(restored, gt)[0])}
    for part, rows in row_thirds(gt.shape[-2]).items():
        r, g = restored[..., rows, :], gt[..., rows, :]
        out[f"psnr_{part}"] = float(metrics.psnr(r, g)[0])
        out[f"ssim_{part}"] = float(metrics.ssim_3d(r, g)[0])
    return out


register_protocol(Protocol(
    "rsst",
    "RSS-T test.py: whole frames (rsst networks pad centred with zeros to (32,128) multiples with the "
    "padding mask, never tiled); raw output, not clamped; PSNR on RGB [0,1]; SSIM = ssim_3d (ssim_matlab); "
    "also per top/middle/bottom third of the rows",
    rsst_score,
))


def _pad_pair(lq: Tensor, gt: Tensor, factor: tuple[int, int]) -> tuple[Tensor, Tensor, Tensor]:
    lq_p, mask, _ = pad_centred(lq, factor)
    gt_p, _, _ = pad_centred(gt, factor)
    return lq_p, gt_p, mask


@register_recipe("rsst")
class RSSTRecipe(Trainer):
    """RSS-T training (module docstring).

    Recipe args: ``pad_factor`` ([32, 128]), ``charbonnier_eps`` (1e-3), ``fft_weight`` (0.1),
    ``epochs`` (optional; sets ``train.total_steps = epochs * (len(train) // batch_size)``, the
    official schedule length ``args.epoch * args.step_per_epoch``), ``zero_init_output`` (False;
    not official: zero the four output convolutions so training starts from the identity
    ``out = input``, which helps CPU runs of a few hundred steps).
    """

    def setup(self) -> None:
        args = dict(self.recipe_args)
        self.pad_factor = tuple(int(v) for v in args.pop("pad_factor", PAD_FACTOR))
        self.eps = float(args.pop("charbonnier_eps", 1e-3))
        self.fft_weight = float(args.pop("fft_weight", 0.1))
        epochs = args.pop("epochs", None)
        zero_init_output = bool(args.pop("zero_init_output", False))
        if args:
            raise ValueError(f"{self.cfg.name}: recipe 'rsst' got unknown arguments {sorted(args)}")
        if len(self.pad_factor) != 2 or min(self.pad_factor) < 1:
            raise ValueError(f"{self.cfg.name}: recipe.pad_factor must be two positive ints, got {self.pad_factor}")
        if not callable(getattr(self.net, "restore_frame", None)):
            raise ValueError(f"{self.cfg.name}: recipe 'rsst' trains RSS-T networks (rsst, rsst_lewin), "
                             f"not {self.cfg.model.name!r}")
        if zero_init_output:  # not official: start at out = input (identity) for very short runs
            for k in range(4):
                conv = getattr(self.net, f"out_proj{k}").main[0]
                nn.init.zeros_(conv.weight)
                if conv.bias is not None:
                    nn.init.zeros_(conv.bias)
        if epochs is not None:
            self.cfg.train.total_steps = int(epochs) * (len(self.train_set) // self.cfg.data.batch_size)

    def train_step(self, batch: dict) -> dict:
        lr = self.apply_lr()
        lq, gt = batch["lq"], batch["gt"]
        if not isinstance(lq, Tensor):
            raise ValueError(f"{self.cfg.name}: frames of one batch differ in size ({batch.get('name')}); "
                             f"use data.batch_size=1 or frames of one size")
        lq_p, gt_p, mask = _pad_pair(lq.to(self.device), gt.to(self.device), self.pad_factor)
        self.net.train()
        with self.autocast():
            out = self.fwd["net"](lq_p, mask)
        loss, parts = rsst_loss(out, gt_p, 1 - mask, eps=self.eps, fft_weight=self.fft_weight)
        return self.optimise(loss, parts, lr)

    def restore(self, x: Tensor) -> Tensor:
        return self.eval_net.restore_frame(x)

    @torch.no_grad()
    def validate(self) -> dict:
        """Protocol ``eval.protocol`` (``rsst``) on whole validation frames (no centre crop); adds
        ``score = (psnr + ssim) / 2``, the official best-checkpoint criterion."""
        self.eval_net.eval()
        n = self.val_count()

        def pairs():
            for i in range(n):
                it = self.val_set[i]
                yield it["name"], it["lq"], it["gt"]

        def restore(x):
            with self.autocast():
                return self.restore(x.to(self.device)).float()

        mean = evaluate(restore, pairs(), self.cfg.eval.protocol, progress=False).mean
        mean["score"] = (mean["psnr"] + mean["ssim"]) / 2
        return mean

    def val_score(self, val: dict) -> float:
        return val["score"]
