"""Evaluation: run a restorer over paired images and tabulate PSNR / SSIM per image and mean.

Protocols are named after the paper whose numbers they reproduce; ``standard`` is the common
full-image protocol (output clamped to [0, 1], PSNR on float RGB with data range 1, Gaussian
``ssim`` equal to scikit-image's). Each protocol also scores the blurry input, so the gain of a
deblurrer over doing nothing is part of every table.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import Tensor

from .. import metrics
from ..io.atomic import write_text_atomic

Restorer = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class Protocol:
    """An evaluation protocol: how a restored image is scored against its reference.

    ``score(restored, gt)`` takes (1, 3, H, W) float tensors in [0, 1] (restored may exceed the
    range; the protocol decides whether to clamp) and returns ``{"psnr": dB, "ssim": value, ...}``
    (extra keys, e.g. a per-region breakdown, become extra columns). ``apply(restore, blurry)``,
    when given, says how the protocol runs the restorer (tiles, padding with a mask, ...); by
    default the whole (1, 3, H, W) image goes through ``restore`` once.
    """

    name: str
    description: str
    score: Callable[[Tensor, Tensor], dict]
    apply: Callable[[Callable[[Tensor], Tensor], Tensor], Tensor] | None = None


def _standard(restored: Tensor, gt: Tensor) -> dict:
    r = restored.clamp(0, 1)
    return {
        "psnr": float(metrics.psnr(r, gt, data_range=1.0)[0]),
        "ssim": float(metrics.ssim(r, gt)[0]),
    }


def _aspdc(restored: Tensor, gt: Tensor) -> dict:
    r = restored.clamp(0, 1)
    return {
        "psnr": float(metrics.psnr(r, gt, data_range=1.0)[0]),
        "ssim": float(metrics.ssim_skimage_legacy(r, gt)[0]),
    }


def _realblur(restored: Tensor, gt: Tensor) -> dict:
    from ..metrics.realblur import realblur_psnr_ssim

    return realblur_psnr_ssim(restored, gt)


PROTOCOLS: dict[str, Protocol] = {
    "standard": Protocol(
        "standard",
        "full image; output clamped to [0,1]; PSNR on float RGB (data range 1); Gaussian SSIM "
        "(sigma 1.5, as skimage with gaussian_weights=True)",
        _standard,
    ),
    "aspdc": Protocol(
        "aspdc",
        "ASPDC's D_testing.py: full frames; output clamped to [0,1]; PSNR on float RGB (data range 1); "
        "SSIM of old skimage compare_ssim(multichannel=True) on float images (7x7 uniform window, "
        "sample covariance, data range 2) = ssim_skimage_legacy",
        _aspdc,
    ),
    "realblur": Protocol(
        "realblur",
        "RealBlur's evaluation_RealBlur_ecc.py: output clamped and rounded to 8 bits, intensity-matched "
        "and aligned to the reference (OpenCV ECC homography), PSNR and Gaussian SSIM over the valid "
        "(warped) region only; extra column ecc_ok. The input column is aligned the same way",
        _realblur,
    ),
}


def register_protocol(protocol: Protocol) -> None:
    """Add a protocol (the system modules register their papers' own)."""
    PROTOCOLS[protocol.name] = protocol


def get_protocol(name: str) -> Protocol:
    """Raises KeyError listing the known protocols.

    The systems register their papers' protocols in their modules under ``engine/recipes/`` and
    ``models/``; those are imported here before an unknown name is refused."""
    if name not in PROTOCOLS:
        from .. import models  # noqa: F401
        from . import recipes  # noqa: F401
    if name not in PROTOCOLS:
        raise KeyError(f"unknown protocol {name!r}; known: {sorted(PROTOCOLS)}")
    return PROTOCOLS[name]


@dataclass
class EvalResult:
    """Per-image rows (``name, psnr, ssim, psnr_input, ssim_input``) and their means."""

    protocol: str
    rows: list[dict] = field(default_factory=list)

    @property
    def mean(self) -> dict:
        keys = [k for k in (self.rows[0] if self.rows else {}) if k != "name"]
        out = {}
        for k in keys:
            vals = [r[k] for r in self.rows if math.isfinite(r[k])]
            out[k] = sum(vals) / len(vals) if vals else float("nan")
        if "psnr" in out and "psnr_input" in out:
            out["psnr_gain"] = out["psnr"] - out["psnr_input"]
        return out

    def to_csv(self) -> str:
        buf = io.StringIO()
        if not self.rows:
            return ""
        w = csv.DictWriter(buf, fieldnames=list(self.rows[0]))
        w.writeheader()
        for r in self.rows:
            w.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in r.items()})
        return buf.getvalue()

    def to_markdown(self, title: str = "") -> str:
        m = self.mean
        lines = [f"# {title or 'Evaluation'}", "", f"Protocol: `{self.protocol}` — "
                 f"{get_protocol(self.protocol).description}", "",
                 f"Images: {len(self.rows)}", "",
                 "| | PSNR (dB) | SSIM |", "|---|---|---|",
                 f"| blurry input | {m.get('psnr_input', float('nan')):.2f} | {m.get('ssim_input', float('nan')):.4f} |",
                 f"| restored | {m.get('psnr', float('nan')):.2f} | {m.get('ssim', float('nan')):.4f} |",
                 f"| gain | {m.get('psnr_gain', float('nan')):+.2f} | "
                 f"{m.get('ssim', float('nan')) - m.get('ssim_input', float('nan')):+.4f} |",
                 "", "## Per image", "", "| image | PSNR | SSIM | PSNR input | SSIM input |",
                 "|---|---|---|---|---|"]
        for r in self.rows:
            lines.append(f"| {r['name']} | {r['psnr']:.2f} | {r['ssim']:.4f} | "
                         f"{r['psnr_input']:.2f} | {r['ssim_input']:.4f} |")
        return "\n".join(lines) + "\n"


def write_results(result: EvalResult, out_dir: str | Path, title: str = "") -> tuple[Path, Path]:
    """Write ``results.csv`` and ``results.md`` atomically into ``out_dir``; return both paths."""
    out_dir = Path(out_dir)
    csv_path, md_path = out_dir / "results.csv", out_dir / "results.md"
    write_text_atomic(csv_path, result.to_csv())
    write_text_atomic(md_path, result.to_markdown(title))
    return csv_path, md_path


@torch.no_grad()
def evaluate(restore: Restorer, pairs: Iterable[tuple[str, Tensor, Tensor]], protocol: str = "standard",
             progress: bool = True, total: int | None = None,
             on_image: Callable[[str, Tensor], None] | None = None) -> EvalResult:
    """Score ``restore`` on ``(name, blurry, sharp)`` pairs.

    Args:
        restore: maps a (1, 3, H, W) blurry tensor in [0, 1] to the restored (1, 3, H, W) tensor.
        pairs: iterable of (name, blurry (3,H,W), sharp (3,H,W)) float32 [0, 1].
        protocol: a name in :data:`PROTOCOLS`.
        on_image: called with (name, restored (1,3,H,W)) e.g. to save outputs.

    Returns:
        :class:`EvalResult` with one row per pair.

    Raises:
        KeyError: unknown protocol. ValueError: a blurry / sharp size mismatch (naming the pair).
    """
    proto = get_protocol(protocol)
    result = EvalResult(protocol=protocol)
    it = pairs
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(pairs, total=total, desc=f"evaluate [{protocol}]", unit="img")
    for name, lq, gt in it:
        lq4, gt4 = lq.unsqueeze(0) if lq.dim() == 3 else lq, gt.unsqueeze(0) if gt.dim() == 3 else gt
        if lq4.shape != gt4.shape:
            raise ValueError(f"{name}: blurry {tuple(lq4.shape)} and sharp {tuple(gt4.shape)} differ in size")
        restored = (proto.apply(restore, lq4) if proto.apply else restore(lq4)).float().cpu()
        s = proto.score(restored, gt4)
        s_in = proto.score(lq4, gt4)
        result.rows.append({"name": name, **s, **{f"{k}_input": v for k, v in s_in.items()}})
        if on_image is not None:
            on_image(name, restored)
    return result


def evaluate_indexed(restore: Restorer, pair: Callable[[int], tuple[str, Tensor, Tensor]], n: int,
                     protocol: str = "standard", progress: bool = True,
                     on_image: Callable[[str, Tensor], None] | None = None) -> EvalResult:
    """:func:`evaluate` on items ``pair(0), ..., pair(n - 1)``, sharded over processes.

    Under ``torch.distributed`` (e.g. ``torchrun ... deblurkit evaluate``) rank ``r`` of ``W``
    scores items ``r, r + W, ...`` and the rows are gathered in item order, so every rank
    returns the same :class:`EvalResult` as a one-process run (rows computed per image, so the
    table is identical). ``on_image`` runs on the rank that restored the image. Every rank must
    call it. Without a process group it is exactly :func:`evaluate` over the items in order.

    Args:
        pair: ``i -> (name, blurry (3,H,W), sharp (3,H,W))`` float32 in [0, 1].
        n: number of items.
        Others: as in :func:`evaluate` (the progress bar shows on rank 0, over its share).
    """
    from . import distributed as ddp

    d = ddp.info()
    idx = ddp.shard_indices(n, d.rank, d.world_size)
    res = evaluate(restore, (pair(i) for i in idx), protocol, progress=progress and d.main,
                   total=len(idx), on_image=on_image)
    if d.active:
        parts = ddp.all_gather_objects(list(zip(idx, res.rows)))
        rows = sorted((item for part in parts for item in part), key=lambda t: t[0])
        res = EvalResult(protocol=protocol, rows=[r for _, r in rows])
    return res
