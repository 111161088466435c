"""Blind kernel estimation: speed and quality (not a timed test).

speed:    time ``estimate_kernel`` on crops of a real photo blurred by a Levin kernel, per
          method, region size, kernel size and torch thread count.
quality:  Levin et al. (CVPR 2009) style evaluation on a ``deblurkit synth pairs`` dataset
          (the layout ``deblurkit evaluate`` reads: ``<split>/<scene>/{blur,sharp,kernel}``):
          kernel estimated blind from each blurry image (kernel size = the true support
          rounded up to odd, or ``--kernel-size``), non-blind deconvolution
          ``deconvolve(..., method="hyper_laplacian", boundary="unknown", noise_sigma=0.01)``
          with the estimate (both with the blind-kernel weight ``kernel_error =
          ESTIMATED_KERNEL_ERROR`` the pipeline uses and with ``kernel_error = 0``) and with the
          true kernel; PSNR up to shift and SSD with the ``levin`` protocol's settings
          (``comp_upto_shift``, max shift 5, border 15, step 1/4); Levin's error ratio
          SSD(estimate) / SSD(true kernel), success if < 3.

Examples::

    deblurkit synth pairs --photos ../shared/data/photos/wallpaper --include 'mate_*' \
        --test 'mate_*' --out /tmp/levin_mate --kernels levin --levin \
        ../shared/data/kernels/levin09_kernels.npz --every-kernel --crop 384 \
        --texture-candidates 16 --noise-sigma 0.01
    OMP_NUM_THREADS=1 python benchmarks/bench_kernel_estimation.py quality --data /tmp/levin_mate \
        --methods dark_channel,l0 --out quality.jsonl
    OMP_NUM_THREADS=1 python benchmarks/bench_kernel_estimation.py speed --threads 1,2

``--out`` appends one JSON line per case and skips cases already there (resumable);
``--select a:b:c`` takes a slice of the dataset's pairs.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from deblurkit.deconv.blind import estimate_kernel  # noqa: E402
from deblurkit.io.images import read_image  # noqa: E402
from deblurkit.synth.blur import blur  # noqa: E402
from deblurkit.synth.kernels import levin_kernels  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def load_rgb(path: str) -> torch.Tensor:
    x = torch.as_tensor(read_image(path))
    if x.dim() == 3 and x.shape[-1] in (1, 3) and x.shape[0] not in (1, 3):
        x = x.permute(2, 0, 1)
    x = x.float()
    return x / 255.0 if x.max() > 1.5 else x


def make_case(img: torch.Tensor, k: torch.Tensor, size: int, sigma: float, seed: int):
    """Centred size x size crop and its `valid` blur (real content beyond the crop), noisy, 8-bit."""
    _, h, w = img.shape
    kh, kw = k.shape
    top, left = (h - size) // 2, (w - size) // 2
    sharp = img[:, top:top + size, left:left + size]
    big = img[:, top - kh // 2:top + size + kh - 1 - kh // 2, left - kw // 2:left + size + kw - 1 - kw // 2]
    b = blur(big[None], k, "valid")[0]
    g = torch.Generator().manual_seed(seed)
    b = torch.round((b + sigma * torch.randn(b.shape, generator=g)).clamp(0, 1) * 255) / 255
    return sharp.contiguous(), b.contiguous()


LEVIN_OPTIONS = {"max_shift": 5, "border": 15, "step": 0.25}


def score(x: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    from deblurkit.metrics.levin import comp_upto_shift

    s = comp_upto_shift(x.clamp(0, 1), ref, **LEVIN_OPTIONS)
    return float(s.psnr[0]), float(s.ssd[0])


def ncc_upto_shift(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a / a.norm(), b / b.norm()
    pad = (b.shape[1] - 1, b.shape[1] - 1, b.shape[0] - 1, b.shape[0] - 1)
    return float(torch.nn.functional.conv2d(torch.nn.functional.pad(a[None, None], pad), b[None, None]).max())


def run_quality(args) -> None:
    from deblurkit.deconv.nonblind import ESTIMATED_KERNEL_ERROR, deconvolve

    root = Path(args.data)
    man = json.loads((root / "manifest.json").read_text())
    pairs = man["pairs"]
    if args.select:
        pairs = pairs[slice(*[int(v) if v else None for v in args.select.split(":")])]
    methods = args.methods.split(",")
    opts = json.loads(args.options)
    done = set()
    if args.out and os.path.exists(args.out):
        done = {(r["id"], r["method"]) for r in map(json.loads, open(args.out))}
    for p in pairs:
        pid = f"{p['scene']}/{p['name']}"
        if all((pid, m) in done for m in methods):
            continue
        d = root / p["split"] / p["scene"]
        b = load_rgb(str(d / "blur" / p["name"]))[None]
        gt = load_rgb(str(d / "sharp" / p["name"]))[None]
        k = torch.from_numpy(np.load(d / "kernel" / (Path(p["name"]).stem + ".npy"))).float()
        pb = score(b, gt)[0]
        pt, st = score(deconvolve(b, k, noise_sigma=args.sigma), gt)
        for method in methods:
            if (pid, method) in done:
                continue
            ks = args.kernel_size or (max(k.shape) | 1)
            est = estimate_kernel(b, ks, method=method, **opts)
            pe, se = score(deconvolve(b, est.kernel, noise_sigma=args.sigma, kernel_error=ESTIMATED_KERNEL_ERROR), gt)
            p0, s0 = score(deconvolve(b, est.kernel, noise_sigma=args.sigma), gt)
            r = dict(id=pid, label=p.get("label", ""), method=method, kernel_size=ks, blurry=pb, true=pt,
                     gain=pe - pb, error_ratio=se / st, gain_ke0=p0 - pb, error_ratio_ke0=s0 / st,
                     true_gain=pt - pb, ncc=ncc_upto_shift(est.kernel, k), seconds=est.seconds,
                     residual=est.residual)
            print(json.dumps({a: (round(v, 3) if isinstance(v, float) else v) for a, v in r.items()}), flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(r) + "\n")
    if args.out and os.path.exists(args.out):
        summarise([json.loads(line) for line in open(args.out)])


def summarise(rows: list[dict]) -> None:
    for method in sorted({r["method"] for r in rows}):
        rs = [r for r in rows if r["method"] == method]
        n = len(rs)

        def line(q, g, e):
            ratios = sorted(r[e] for r in q)
            return (f"{sum(r[g] for r in q) / len(q):+.2f} | {min(r[g] for r in q):+.2f} | "
                    f"{ratios[len(q) // 2]:.2f} | {100 * sum(x < 3 for x in ratios) / len(q):.0f} %")

        print(f"\n{method}: {n} cases, true-kernel gain {sum(r['true_gain'] for r in rs) / n:+.2f} dB, "
              f"mean {sum(r['seconds'] for r in rs) / n:.1f} s per estimate, mean NCC {sum(r['ncc'] for r in rs) / n:.3f}")
        print("| kernel | n | true-kernel gain | gain | worst | ratio median | success | gain (ke 0) | worst | ratio median | success |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for lab in sorted({r["label"] for r in rs}) + ["all"]:
            q = rs if lab == "all" else [r for r in rs if r["label"] == lab]
            print(f"| {lab} | {len(q)} | {sum(r['true_gain'] for r in q) / len(q):+.2f} | "
                  f"{line(q, 'gain', 'error_ratio')} | {line(q, 'gain_ke0', 'error_ratio_ke0')} |")


def run_speed(args) -> None:
    img = load_rgb(str(DATA / "photos" / "wallpaper" / "palapeli_castle-maintenon.jpg"))
    bank = levin_kernels(data_root=DATA)
    k = bank["levin09_4"]
    print("| method | region | kernel size | threads | seconds |")
    print("|---|---|---|---|---|")
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        for method in args.methods.split(","):
            for size in [int(s) for s in args.sizes.split(",")]:
                _, b = make_case(img, k, size, 0.01, seed=0)
                for ks in [int(s) for s in args.kernel_sizes.split(",")]:
                    t0 = time.perf_counter()
                    estimate_kernel(b, ks, method=method, **json.loads(args.options))
                    print(f"| {method} | {size}x{size} | {ks} | {threads} | {time.perf_counter() - t0:.1f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    sp = sub.add_parser("speed")
    sp.add_argument("--methods", default="dark_channel,l0")
    sp.add_argument("--sizes", default="256,400")
    sp.add_argument("--kernel-sizes", default="15,25,35")
    sp.add_argument("--threads", default="1")
    sp.add_argument("--options", default="{}", help="JSON overrides passed to estimate_kernel")
    q = sub.add_parser("quality")
    q.add_argument("--data", required=True, help="a `deblurkit synth pairs` dataset folder (manifest.json)")
    q.add_argument("--select", default="", help="slice a:b:c of the dataset's pairs")
    q.add_argument("--methods", default="dark_channel")
    q.add_argument("--sigma", type=float, default=0.01, help="noise sigma given to the non-blind step")
    q.add_argument("--kernel-size", type=int, default=0)
    q.add_argument("--options", default="{}", help="JSON overrides passed to estimate_kernel")
    q.add_argument("--out", default="")
    args = ap.parse_args()
    (run_speed if args.mode == "speed" else run_quality)(args)


if __name__ == "__main__":
    main()
