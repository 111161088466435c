#!/usr/bin/env python
"""Non-blind deconvolution with the TRUE kernel: methods and boundary handling compared
(a benchmark script, not a test).

Protocol: the 12 held-out ``photos/wallpaper/mate_*.jpg``; from each a centred crop of
``size + k - 1`` pixels is blurred by Levin kernel ``i % 8`` with ``valid`` convolution
(:func:`deblurkit.synth.blur.blur_valid_pair`: the blurry image mixes in real scene content
beyond its frame, as a photograph does), Gaussian noise of ``--sigma`` is added, then clip and
8-bit quantisation. Each method deconvolves with the true kernel; the noise level is estimated
by :func:`deblurkit.deconv.noise.estimate_noise_level` unless ``--true-noise``. Reported: mean
and worst PSNR gain over the blurry input (RGB, [0, 1], output clamped, whole image) and
seconds per image (wall clock, ``--threads`` threads).

Usage::

    python benchmarks/bench_deconv_boundary.py                    # full table (~2-4 min, 1 thread)
    python benchmarks/bench_deconv_boundary.py --images 4 --pnp-images 2 --size 256   # quick

Prints a Markdown table (paste into docs/deconv.md) and, with ``--json PATH``, writes the numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("DEBLURKIT_SHARED", REPO.parent / "shared")) / "data"

# (label, method, boundary, extra keyword arguments)
CASES = [
    ("Wiener (gradient prior)", "wiener", "unknown", {}),
    ("Wiener (gradient prior)", "wiener", "smooth", {}),
    ("hyper-Laplacian alpha 0.8", "hyper_laplacian", "unknown", {}),
    ("hyper-Laplacian alpha 0.8", "hyper_laplacian", "smooth", {}),
    ("hyper-Laplacian alpha 0.8", "hyper_laplacian", "reflect", {}),
    ("hyper-Laplacian alpha 0.8", "hyper_laplacian", "circular", {}),
    ("hyper-Laplacian alpha 2/3", "hyper_laplacian", "unknown", {"alpha": 2.0 / 3.0}),
    ("TV (isotropic)", "tv", "unknown", {}),
    ("PnP-HQS, TV denoiser", "pnp", "unknown", {}),
]


def _cases(selected: str | None):
    if not selected:
        return CASES
    keep = {s.strip() for s in selected.split(",")}
    return [c for c in CASES if f"{c[1]}:{c[2]}" in keep or c[1] in keep]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--images", type=int, default=12, help="first N mate_* photos (max 12)")
    ap.add_argument("--pnp-images", type=int, default=12, help="PnP (slow) on the first N only")
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--sigma", type=float, default=0.01)
    ap.add_argument("--true-noise", action="store_true", help="pass the true sigma instead of estimating it")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cases", default=None, help="comma list of method or method:boundary")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from deblurkit.deconv.noise import estimate_noise_level
    from deblurkit.deconv.nonblind import deconvolve
    from deblurkit.io.images import read_image
    from deblurkit.synth.blur import blur_valid_pair
    from deblurkit.synth.kernels import levin_kernels

    photos = sorted((args.data_root / "photos" / "wallpaper").glob("mate_*.jpg"))[: args.images]
    if not photos:
        print(f"no mate_*.jpg photos under {args.data_root / 'photos' / 'wallpaper'}", file=sys.stderr)
        return 2
    kernels = list(levin_kernels(data_root=args.data_root).values())

    def psnr(a, b):
        return float(-10 * torch.log10(((a.clamp(0, 1) - b) ** 2).mean()))

    data = []
    for i, path in enumerate(photos):
        im = read_image(path)
        k = kernels[i % 8]
        ch, cw = args.size + k.shape[0] - 1, args.size + k.shape[1] - 1
        h, w = im.shape[-2:]
        t, l = (h - ch) // 2, (w - cw) // 2
        blurry, sharp = blur_valid_pair(im[None, :, t:t + ch, l:l + cw], k)
        g = torch.Generator().manual_seed(1000 + i)
        blurry = ((blurry + args.sigma * torch.randn(blurry.shape, generator=g)).clamp(0, 1) * 255).round() / 255
        data.append((path.stem, blurry, sharp, k))
    est = torch.cat([estimate_noise_level(b) for _, b, _, _ in data])
    print(f"{len(data)} images {args.size}x{args.size}, sigma {args.sigma}; estimated sigma mean "
          f"{float(est.mean()):.4f} (min {float(est.min()):.4f}, max {float(est.max()):.4f})", flush=True)

    rows = []
    for label, method, boundary, extra in _cases(args.cases):
        subset = data[: args.pnp_images] if method == "pnp" else data
        gains, secs = [], []
        for _, blurry, sharp, k in subset:
            sig = args.sigma if args.true_noise else None
            deconvolve(blurry[..., :64, :64], k, method=method, boundary=boundary, noise_sigma=0.01, **extra) \
                if not secs else None  # warm-up (LUT tables, allocator)
            t0 = time.perf_counter()
            out = deconvolve(blurry, k, method=method, boundary=boundary, noise_sigma=sig, **extra)
            secs.append(time.perf_counter() - t0)
            gains.append(psnr(out, sharp) - psnr(blurry, sharp))
        row = dict(label=label, method=method, boundary=boundary, n=len(subset),
                   mean_gain=sum(gains) / len(gains), worst_gain=min(gains),
                   seconds=sum(secs) / len(secs), gains=gains)
        rows.append(row)
        print(f"  {label} / {boundary}: mean {row['mean_gain']:+.2f} dB, worst {row['worst_gain']:+.2f} dB, "
              f"{row['seconds']:.2f} s/image", flush=True)

    blurry_psnr = sum(psnr(b, s) for _, b, s, _ in data) / len(data)
    print()
    print(f"Mean blurry PSNR {blurry_psnr:.2f} dB; {len(data)} images {args.size}x{args.size}, "
          f"sigma {args.sigma}, noise {'true' if args.true_noise else 'estimated'}, {args.threads} thread(s).")
    print()
    print("| method | boundary | images | mean gain (dB) | worst gain (dB) | s / image |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['label']} | {r['boundary']} | {r['n']} | {r['mean_gain']:+.2f} | {r['worst_gain']:+.2f} | "
              f"{r['seconds']:.2f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(dict(args={k: str(v) for k, v in vars(args).items()},
                                             blurry_psnr=blurry_psnr, images=[d[0] for d in data], rows=rows),
                                        indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
