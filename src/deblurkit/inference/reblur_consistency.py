"""A no-reference score from ASPDC's deblurring-reblurring consistency.

ASPDC (Huo et al., CVPRW 2022, Sec. 3.3; ``networks/DR_network.py``) trains a reblurring network
R (``aspdc_reblur``) that maps a sharp image back to the blurry one, R(B, S) ~ B, with per-pixel
kernels estimated from the pair. Fine-tuning the deblurrer D adds ``L(B, R(B, D(B)))``. The same
quantity scores ANY deblurrer on real blurry photos that have no sharp reference:

    consistency(D, B) = PSNR(B, R(B, D(B)))      (dB, images in [0, 1], data range 1)

A high value means D's output explains the observed blur through R. It is a necessary, not a
sufficient, condition for a good restoration: doing nothing (D(B) = B) is trivially consistent
when R has learned identity kernels for a sharp input equal to the blurry one. Every row
therefore also reports ``psnr_identity = PSNR(B, R(B, B))`` (the do-nothing baseline) and
``psnr_change = PSNR(B, D(B))`` (how far D moved from its input); read the score beside them.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import Tensor

from .padding import crop_padding, pad_to_multiple

__all__ = ["ReblurConsistency", "ConsistencyResult"]

Deblur = Callable[[Tensor], Tensor]


def _psnr(a: Tensor, b: Tensor) -> float:
    mse = float(torch.mean((a.double() - b.double()) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


class ReblurConsistency:
    """Score deblurrers with a trained reblurring network R (``aspdc_reblur``).

    Args:
        reblur_weights: R's weights (official ``ReBlurringNet.pth`` with
            ``{'blurring_state_dict': ...}``, or ``weights.safetensors`` of ``deblurkit train
            configs/aspdc_reblur_gopro.yaml``); its widths are detected from the file.
        device: ``"cpu"``, ``"cuda[:i]"`` or ``"auto"``.

    R runs on the whole image (no tiling), reflection-padded to a multiple of 8 (at least 16).

    Raises:
        FileNotFoundError: ``reblur_weights`` missing.
        deblurkit.models.CheckpointMismatchError: not an ``aspdc_reblur`` checkpoint.
    """

    def __init__(self, reblur_weights: str | os.PathLike, device: str | torch.device = "cpu") -> None:
        from ..engine.recipes.aspdc import load_reblur_network
        from ..engine.trainer import resolve_device

        self.device = resolve_device(device)
        self.weights = Path(reblur_weights)
        self.net = load_reblur_network(self.weights, self.device)

    @torch.inference_mode()
    def reblur(self, blurry: Tensor, sharp: Tensor) -> Tensor:
        """R(B, S): (N, 3, H, W) in [0, 1] each -> (N, 3, H, W) reblurred, clamped to [0, 1].

        Raises: ValueError for shapes that differ or are not (N, 3, H, W)."""
        if blurry.shape != sharp.shape or blurry.dim() != 4 or blurry.shape[1] != 3:
            raise ValueError(f"reblur needs two (N, 3, H, W) tensors of one shape, got {tuple(blurry.shape)} "
                             f"and {tuple(sharp.shape)}")
        h, w = blurry.shape[-2:]
        pair = torch.cat([blurry, sharp], 1).to(self.device, torch.float32)
        if min(h, w) < 16:
            pair = torch.nn.functional.pad(pair, (0, max(0, 16 - w), 0, max(0, 16 - h)), mode="replicate")
        pair, pads = pad_to_multiple(pair, 8)
        pads = (0, pads[1] + max(0, 16 - w), 0, pads[3] + max(0, 16 - h))
        b, s = pair[:, :3] * 2 - 1, pair[:, 3:] * 2 - 1
        out = (self.net(b, s) + 1) / 2
        return crop_padding(out, pads).clamp(0, 1).float().cpu()

    def score(self, blurry: Tensor, deblurred: Tensor) -> dict:
        """One image: ``{"psnr": PSNR(B, R(B, D(B))), "psnr_identity": PSNR(B, R(B, B)),
        "psnr_change": PSNR(B, D(B))}`` in dB; inputs (3, H, W) or (1, 3, H, W) in [0, 1]."""
        b = blurry if blurry.dim() == 4 else blurry[None]
        d = deblurred if deblurred.dim() == 4 else deblurred[None]
        b, d = b.float().cpu(), d.float().cpu().clamp(0, 1)
        return {
            "psnr": _psnr(b, self.reblur(b, d)),
            "psnr_identity": _psnr(b, self.reblur(b, b)),
            "psnr_change": _psnr(b, d),
        }

    def evaluate(self, deblur: Deblur, images: Iterable[tuple[str, Tensor]],
                 on_image: Callable[[str, Tensor], None] | None = None) -> "ConsistencyResult":
        """Score ``deblur`` ((1, 3, H, W) [0, 1] -> same) on ``(name, blurry (3, H, W))`` items."""
        result = ConsistencyResult(str(self.weights))
        for name, blurry in images:
            d = deblur(blurry[None])
            result.rows.append({"name": name, **self.score(blurry, d)})
            if on_image is not None:
                on_image(name, d)
        return result


@dataclass
class ConsistencyResult:
    """Rows ``{"name", "psnr", "psnr_identity", "psnr_change"}`` and their means."""

    reblur_weights: str
    rows: list[dict] = field(default_factory=list)

    @property
    def mean(self) -> dict:
        keys = ("psnr", "psnr_identity", "psnr_change")
        return {k: sum(r[k] for r in self.rows) / len(self.rows) if self.rows else float("nan") for k in keys}

    def to_csv(self) -> str:
        lines = ["name,psnr,psnr_identity,psnr_change"]
        lines += [f"{r['name']},{r['psnr']:.6f},{r['psnr_identity']:.6f},{r['psnr_change']:.6f}" for r in self.rows]
        return "\n".join(lines) + "\n"

    def to_markdown(self, title: str) -> str:
        m = self.mean
        lines = [f"# {title}", "", "Reblurring consistency (no reference): PSNR(B, R(B, D(B))) with the "
                 f"reblurring network `{self.reblur_weights}`; identity = PSNR(B, R(B, B)) (do nothing); "
                 "change = PSNR(B, D(B)).", "",
                 "| image | consistency (dB) | identity (dB) | change (dB) |", "|---|---|---|---|"]
        lines += [f"| {r['name']} | {r['psnr']:.2f} | {r['psnr_identity']:.2f} | {r['psnr_change']:.2f} |"
                  for r in self.rows]
        lines.append(f"| **mean** | {m['psnr']:.2f} | {m['psnr_identity']:.2f} | {m['psnr_change']:.2f} |")
        return "\n".join(lines) + "\n"
