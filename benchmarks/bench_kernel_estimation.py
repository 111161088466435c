"""Blind kernel estimation: speed and quality (not a timed test).

speed:    time ``estimate_kernel`` on random-content crops of a real photo, per method, region
          size, kernel size and torch thread count.
quality:  Levin et al. (CVPR 2009) style evaluation on real photos: centred crops blurred by
          each kernel of a set (``valid`` blur of the crop padded with real content, Gaussian
          noise, 8-bit), kernel estimated blind, non-blind deconvolution
          (``deconvolve(..., method="hyper_laplacian", boundary="unknown")``) with the estimate
          and with the true kernel, PSNR up to shift (best integer shift within +-8 px, 16 px
          border) and Levin's error ratio SSD(estimate) / SSD(true kernel) (success if < 3).

Examples::

    OMP_NUM_THREADS=1 python benchmarks/bench_kernel_estimation.py speed --threads 1,2
    OMP_NUM_THREADS=1 python benchmarks/bench_kernel_estimation.py quality --photos 'mate_*' \\
        --kernels levin --methods dark_channel,l0 --out quality.jsonl

Kernel sets: ``levin`` (the 8 measured kernels of Levin et al. 2009, as measured), ``defocus``
(8 discs, radius 2.5 to 6 px), ``shake`` (8 long smooth camera-shake paths, 10 to 40 px,
Boracchi & Foi trajectories with little shake, seed 0). The kernel size given to the estimator
is the true support rounded up to odd (``--kernel-size`` overrides it, e.g. 31 to measure an
over-estimated size). ``--out`` appends one JSON line per case and skips cases already there.
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from deblurkit.deconv.blind import estimate_kernel  # noqa: E402
from deblurkit.io.images import read_image  # noqa: E402
from deblurkit.synth.blur import blur  # noqa: E402
from deblurkit.synth.kernels import center_kernel, disk_kernel, levin_kernels, trajectory_kernels  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def load_rgb(path: str) -> torch.Tensor:
    x = torch.as_tensor(read_image(path))
    if x.dim() == 3 and x.shape[-1] in (1, 3) and x.shape[0] not in (1, 3):
        x = x.permute(2, 0, 1)
    x = x.float()
    return x / 255.0 if x.max() > 1.5 else x


def kernel_set(name: str) -> list[tuple[str, torch.Tensor]]:
    if name == "levin":
        bank = levin_kernels(data_root=DATA)
        return [(k, bank[k]) for k in sorted(bank)]
    if name == "defocus":
        return [(f"disk_{r:.2f}", disk_kernel(r)) for r in torch.linspace(2.5, 6.0, 8).tolist()]
    if name == "shake":
        g = torch.Generator().manual_seed(0)
        ks = trajectory_kernels(8, 41, max_length=torch.linspace(10, 40, 8), anxiety=0.02, generator=g)
        out = []
        for i, k in enumerate(ks):
            k = center_kernel(k)
            nz = torch.nonzero(k > 0)
            half = int(max((nz - k.shape[0] // 2).abs().max(), 1))
            c = k.shape[0] // 2
            out.append((f"shake_{i}", k[c - half:c + half + 1, c - half:c + half + 1].contiguous()))
        return out
    raise SystemExit(f"unknown kernel set {name!r}")


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


def score(x: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    from deblurkit.metrics.levin import comp_upto_shift

    s = comp_upto_shift(x.clamp(0, 1)[None], ref[None], max_shift=8, border=16, step=1)
    return float(s.psnr[0]), float(s.ssd[0])


def ncc_upto_shift(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a / a.norm(), b / b.norm()
    pad = (b.shape[1] - 1, b.shape[1] - 1, b.shape[0] - 1, b.shape[0] - 1)
    return float(torch.nn.functional.conv2d(torch.nn.functional.pad(a[None, None], pad), b[None, None]).max())


def run_quality(args) -> None:
    from deblurkit.deconv.nonblind import deconvolve

    paths = sorted(glob.glob(str(DATA / "photos" / "wallpaper" / f"{args.photos}.jpg")))
    if not paths:
        raise SystemExit(f"no photos match {args.photos!r}")
    kernels = kernel_set(args.kernels)
    methods = args.methods.split(",")
    opts = json.loads(args.options)
    done = set()
    if args.out and os.path.exists(args.out):
        for line in open(args.out):
            r = json.loads(line)
            done.add((r["photo"], r["kernel"], r["method"]))
    rows = []
    for pi, path in enumerate(paths):
        img = load_rgb(path)
        name = Path(path).stem
        for ki, (kname, k) in enumerate(kernels):
            sharp, b = make_case(img, k, args.size, args.sigma, seed=1000 * pi + ki)
            base = None
            for method in methods:
                if (name, kname, method) in done:
                    continue
                if base is None:
                    pb = score(b, sharp)[0]
                    pt, st = score(deconvolve(b[None], k, noise_sigma=args.sigma)[0], sharp)
                    base = (pb, pt, st)
                pb, pt, st = base
                ks = args.kernel_size or (max(k.shape) | 1)
                est = estimate_kernel(b, ks, method=method, **opts)
                pe, se = score(deconvolve(b[None], est.kernel, noise_sigma=args.sigma)[0], sharp)
                r = dict(photo=name, kernel=kname, method=method, kernel_size=ks, blurry=pb, true=pt,
                         estimated=pe, gain=pe - pb, true_gain=pt - pb, error_ratio=se / st,
                         ncc=ncc_upto_shift(est.kernel, k), seconds=est.seconds, residual=est.residual)
                rows.append(r)
                print(json.dumps({a: (round(v, 3) if isinstance(v, float) else v) for a, v in r.items()}), flush=True)
                if args.out:
                    with open(args.out, "a") as f:
                        f.write(json.dumps(r) + "\n")
    if args.out and os.path.exists(args.out):
        rows = [json.loads(line) for line in open(args.out)]
    summarise(rows)


def summarise(rows: list[dict]) -> None:
    for method in sorted({r["method"] for r in rows}):
        rs = [r for r in rows if r["method"] == method]
        n = len(rs)
        ratios = sorted(r["error_ratio"] for r in rs)
        print(f"\n{method}: {n} cases, mean gain {sum(r['gain'] for r in rs) / n:+.2f} dB "
              f"(true kernel {sum(r['true_gain'] for r in rs) / n:+.2f}), worst {min(r['gain'] for r in rs):+.2f}, "
              f"error ratio median {ratios[n // 2]:.2f}, success (< 3) {100 * sum(x < 3 for x in ratios) / n:.0f} %, "
              f"mean {sum(r['seconds'] for r in rs) / n:.1f} s")
        print("| kernel | mean gain (dB) | true-kernel gain | min gain | mean error ratio |")
        print("|---|---|---|---|---|")
        for kname in sorted({r["kernel"] for r in rs}):
            q = [r for r in rs if r["kernel"] == kname]
            print(f"| {kname} | {sum(r['gain'] for r in q) / len(q):+.2f} | {sum(r['true_gain'] for r in q) / len(q):+.2f} "
                  f"| {min(r['gain'] for r in q):+.2f} | {sum(r['error_ratio'] for r in q) / len(q):.2f} |")


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
    q.add_argument("--photos", default="mate_*", help="glob under photos/wallpaper (without .jpg)")
    q.add_argument("--kernels", default="levin", choices=["levin", "defocus", "shake"])
    q.add_argument("--methods", default="dark_channel")
    q.add_argument("--size", type=int, default=384)
    q.add_argument("--sigma", type=float, default=0.01)
    q.add_argument("--kernel-size", type=int, default=0)
    q.add_argument("--options", default="{}", help="JSON overrides passed to estimate_kernel")
    q.add_argument("--out", default="")
    args = ap.parse_args()
    (run_speed if args.mode == "speed" else run_quality)(args)


if __name__ == "__main__":
    main()
