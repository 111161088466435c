"""Evaluation: run a restorer over paired images and tabulate PSNR / SSIM per image and mean.

Protocols are named after the paper whose numbers they reproduce; ``standard`` is the common
full-image protocol (output clamped to [0, 1], PSNR on float RGB with data range 1, Gaussian
``ssim`` equal to scikit-image's). Each protocol also scores the blurry input, so the gain of a
deblurrer over doing nothing is part of every table. ``levin`` scores up to shift (Levin et al.
2009, :mod:`deblurkit.metrics.levin`) and, when the data give each pair's true kernel, adds the
true-kernel ceiling and Levin's error ratio.

A pair may carry a fourth item, a dict ``info``: ``info["kernel"]`` (the true (kh, kw) kernel)
is used by protocols with an ``extra`` step; ``info["group"]`` (e.g. the kernel's name) becomes
the row's ``group`` column and the Markdown table gets per-group means.
"""
from __future__ import annotations

import csv
import io
import math
import re
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
    (extra keys, e.g. a per-region breakdown, become extra columns; it scores the blurry input
    the same way, into ``<key>_input`` columns). ``apply(restore, blurry)``,
    when given, says how the protocol runs the restorer (tiles, padding with a mask, ...); by
    default the whole (1, 3, H, W) image goes through ``restore`` once.

    ``extra(restored, blurry, gt, info, scores)``, when given, adds columns that need more than
    the restored/reference pair (run once per pair, not for the input): ``info`` is the pair's
    optional dict (e.g. ``{"kernel": (kh, kw) tensor}``, ``{}`` when none), ``scores`` what
    ``score`` returned for ``restored``; it returns a dict of extra columns (``{}`` when it has
    nothing to add). ``summary(rows)``, when given, returns Markdown lines added below the means
    table (e.g. a success rate).
    """

    name: str
    description: str
    score: Callable[[Tensor, Tensor], dict]
    apply: Callable[[Callable[[Tensor], Tensor], Tensor], Tensor] | None = None
    extra: Callable[[Tensor, Tensor, Tensor, dict, dict], dict] | None = None
    summary: Callable[[list], list] | None = None


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


LEVIN_OPTIONS = {"max_shift": 5, "border": 15, "step": 0.25}
"""The ``comp_upto_shift`` settings of the ``levin`` protocol (Levin et al. 2009's own)."""

LEVIN_SUCCESS_RATIO = 3.0
"""Levin et al. 2009 (Sec. 5) count a blind result as a success when its error ratio is <= 3."""


def _levin(restored: Tensor, gt: Tensor) -> dict:
    from ..metrics.levin import comp_upto_shift

    r = restored.clamp(0, 1)
    s = comp_upto_shift(r, gt, **LEVIN_OPTIONS)
    dy, dx = (float(v) for v in s.shift[0])
    return {
        "psnr": float(s.psnr[0]),
        "ssim": float(s.ssim[0]),
        "psnr_raw": float(metrics.psnr(r, gt, data_range=1.0)[0]),
        "ssim_raw": float(metrics.ssim(r, gt)[0]),
        "ssd": float(s.ssd[0]),
        "shift": f"{dy:+.2f} {dx:+.2f}",
    }


def _levin_extra(restored: Tensor, blurry: Tensor, gt: Tensor, info: dict, scores: dict) -> dict:
    """True-kernel ceiling and Levin's error ratio, from the classical pipeline's non-blind stage
    run with the pair's true kernel (``deblurkit.deconv.pipeline.blind_deblur(blurry, kernel=k)``).

    Two runs: with the data weight the pipeline uses for a known kernel (the ceiling:
    ``psnr_true_kernel``, ``ssim_true_kernel``), and with the weaker weight it uses for an
    estimated kernel (``kernel_error = deconv.nonblind.ESTIMATED_KERNEL_ERROR``:
    ``psnr_true_kernel_blind_weight``). ``error_ratio`` divides by the SSD of the second, so that,
    as in Levin et al. 2009, only the kernel differs between the two deconvolutions."""
    kernel = info.get("kernel")
    if kernel is None:
        return {}
    from ..deconv.nonblind import ESTIMATED_KERNEL_ERROR
    from ..deconv.pipeline import blind_deblur
    from ..metrics.levin import comp_upto_shift

    device = info.get("device") or blurry.device
    k = torch.as_tensor(kernel, dtype=torch.float32).to(device)
    b = blurry.to(device)
    ceiling = comp_upto_shift(blind_deblur(b, kernel=k).image.float().cpu().clamp(0, 1), gt, **LEVIN_OPTIONS)
    same = blind_deblur(b, kernel=k, deconv_options={"kernel_error": ESTIMATED_KERNEL_ERROR})
    s = comp_upto_shift(same.image.float().cpu().clamp(0, 1), gt, **LEVIN_OPTIONS)
    ssd_true = float(s.ssd[0])
    ratio = scores["ssd"] / ssd_true if ssd_true > 0 else (float("nan") if scores["ssd"] == 0 else float("inf"))
    return {"psnr_true_kernel": float(ceiling.psnr[0]), "ssim_true_kernel": float(ceiling.ssim[0]),
            "psnr_true_kernel_blind_weight": float(s.psnr[0]), "error_ratio": ratio}


def _levin_summary(rows: list) -> list:
    ratios = sorted(r["error_ratio"] for r in rows if isinstance(r.get("error_ratio"), float)
                    and not math.isnan(r["error_ratio"]))
    if not ratios:
        return []
    n = len(ratios)
    med = ratios[n // 2] if n % 2 else 0.5 * (ratios[n // 2 - 1] + ratios[n // 2])
    ok = sum(v <= LEVIN_SUCCESS_RATIO for v in ratios)
    return [f"Error ratio (Levin et al. 2009; SSD up to shift of the result / of the same non-blind "
            f"deconvolution, blind-kernel weight, with the true kernel): median {med:.2f}, "
            f"<= {LEVIN_SUCCESS_RATIO:g} (success) for {ok}/{n} pairs ({100.0 * ok / n:.0f} %)."]


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
    "levin": Protocol(
        "levin",
        "Levin et al. 2009 comp_upto_shift: output clamped to [0,1]; the translation (|dy|,|dx| <= 5 px, "
        "1/4 px steps, bilinear) that best aligns it with the reference; PSNR on float RGB and Gaussian SSIM "
        "of the aligned overlap, 15 px border cropped (psnr, ssim, ssd); psnr_raw / ssim_raw = the standard "
        "protocol (no shift, full image). With the true kernel: the classical pipeline's non-blind stage run "
        "with it (psnr_true_kernel, ssim_true_kernel: the ceiling), and run with the weaker data weight the "
        "pipeline uses for an estimated kernel (psnr_true_kernel_blind_weight); error_ratio = ssd / ssd of "
        "the latter (Levin et al.: the same deconvolution, only the kernel differs)",
        _levin,
        extra=_levin_extra,
        summary=_levin_summary,
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


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, str)


def _means(rows: list[dict]) -> dict:
    """Mean of every numeric column over the rows that have a finite value (text columns such
    as ``name``, ``group`` or ``shift`` are skipped); ``psnr_gain`` = psnr - psnr_input."""
    keys: list[str] = []
    for r in rows:
        keys += [k for k, v in r.items() if k not in keys and _is_number(v)]
    out = {}
    for k in keys:
        vals = [r[k] for r in rows if _is_number(r.get(k)) and math.isfinite(r[k])]
        out[k] = sum(vals) / len(vals) if vals else float("nan")
    if "psnr" in out and "psnr_input" in out:
        out["psnr_gain"] = out["psnr"] - out["psnr_input"]
    return out


def _label(key: str) -> str:
    """Column header of a result key: ``psnr_raw_input`` -> ``PSNR raw input``."""
    return " ".join({"psnr": "PSNR", "ssim": "SSIM"}.get(p, p) for p in key.split("_"))


def _fmt(key: str, v) -> str:
    if isinstance(v, bool) or not _is_number(v):
        return str(v)
    return f"{v:.4f}" if "ssim" in key else f"{v:.2f}"


@dataclass
class EvalResult:
    """Per-image rows (``name, psnr, ssim, ..., psnr_input, ssim_input, ...``, then the protocol's
    extra columns and ``group`` when the data name one) and their means."""

    protocol: str
    rows: list[dict] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        """Every key of the rows, in first-seen order."""
        keys: list[str] = []
        for r in self.rows:
            keys += [k for k in r if k not in keys]
        return keys

    @property
    def mean(self) -> dict:
        return _means(self.rows)

    def group_means(self) -> dict[str, dict]:
        """Means per ``group`` value, each with ``n`` (rows), groups in natural order
        (``levin09_2`` before ``levin09_10``, ``disk r3-4`` before ``disk r4-5``); {} without groups."""
        groups: dict[str, list[dict]] = {}
        for r in self.rows:
            if "group" in r:
                groups.setdefault(str(r["group"]), []).append(r)

        def natural(g: str) -> list:
            return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", g) if t]

        return {g: {"n": len(groups[g]), **_means(groups[g])} for g in sorted(groups, key=natural)}

    def to_csv(self) -> str:
        buf = io.StringIO()
        if not self.rows:
            return ""
        w = csv.DictWriter(buf, fieldnames=self.columns, restval="")
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
                 f"{m.get('ssim', float('nan')) - m.get('ssim_input', float('nan')):+.4f} |"]
        cols = [k for k in self.columns if k not in ("name", "group")]
        more = [k for k in cols if k not in ("psnr", "ssim") and not k.endswith("_input")
                and k in m]
        if more:  # the protocol's other numeric columns: mean for the result (and the input)
            lines += ["", "| mean of | restored | blurry input |", "|---|---|---|"]
            lines += [f"| {_label(k)} | {_fmt(k, m[k])} | "
                      f"{_fmt(k, m[k + '_input']) if k + '_input' in m else ''} |" for k in more]
        proto = get_protocol(self.protocol)
        if proto.summary is not None:
            extra_lines = proto.summary(self.rows)
            if extra_lines:
                lines += [""] + list(extra_lines)
        groups = self.group_means()
        if groups:
            gcols = [k for k in ("psnr_input", "psnr", "psnr_gain", "ssim_input", "ssim") if k in m]
            for k in more:
                if k != "ssd":
                    gcols += [k + "_input", k] if k + "_input" in m else [k]
            lines += ["", "## Per group (mean)", "",
                      "| group | n | " + " | ".join(_label(k) for k in gcols) + " |",
                      "|---|---|" + "---|" * len(gcols)]
            for g, gm in groups.items():
                vals = [(f"{gm[k]:+.2f}" if k == "psnr_gain" else _fmt(k, gm[k])) if k in gm else ""
                        for k in gcols]
                lines.append(f"| {g} | {gm['n']} | " + " | ".join(vals) + " |")
        head = [k for k in ("psnr", "ssim", "psnr_input", "ssim_input") if k in cols]
        head += [k for k in cols if k not in head and k not in ("ssd", "ssd_input")]  # SSD: in the CSV
        lines += ["", "## Per image", "", "| image | " + " | ".join(_label(k) for k in head) + " |",
                  "|---|" + "---|" * len(head)]
        for r in self.rows:
            name = f"{r['name']} ({r['group']})" if "group" in r else r["name"]
            lines.append(f"| {name} | " + " | ".join(_fmt(k, r[k]) if k in r else "" for k in head) + " |")
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
        pairs: iterable of (name, blurry (3,H,W), sharp (3,H,W)) float32 [0, 1], or of
            (name, blurry, sharp, info) with ``info`` a dict: ``kernel`` (the true (kh, kw)
            kernel, for protocols with an ``extra`` step such as ``levin``), ``group`` (a label,
            e.g. the kernel's name: the row's ``group`` column, per-group means in the
            Markdown), ``device`` (where an ``extra`` step may compute).
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
    for item in it:
        name, lq, gt = item[:3]
        info = item[3] if len(item) > 3 and item[3] is not None else {}
        lq4, gt4 = lq.unsqueeze(0) if lq.dim() == 3 else lq, gt.unsqueeze(0) if gt.dim() == 3 else gt
        if lq4.shape != gt4.shape:
            raise ValueError(f"{name}: blurry {tuple(lq4.shape)} and sharp {tuple(gt4.shape)} differ in size")
        restored = (proto.apply(restore, lq4) if proto.apply else restore(lq4)).float().cpu()
        s = proto.score(restored, gt4)
        s_in = proto.score(lq4, gt4)
        row = {"name": name, **s, **{f"{k}_input": v for k, v in s_in.items()}}
        if proto.extra is not None:
            row.update(proto.extra(restored, lq4, gt4, info, s))
        if info.get("group") is not None:
            row["group"] = str(info["group"])
        result.rows.append(row)
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
        pair: ``i -> (name, blurry (3,H,W), sharp (3,H,W))`` float32 in [0, 1], optionally with
            a fourth item ``info`` (see :func:`evaluate`).
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
