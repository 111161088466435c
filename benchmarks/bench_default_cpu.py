#!/usr/bin/env python
"""CPU speed and memory of a deblurring network, by default the embedded ``mimo_unet_small``
(a benchmark script, not a test). The classical pipeline, deblurkit's default since issue 13,
has its own benchmark: ``benchmarks/bench_classical.py`` (which also runs this network side by side).

Measures, for photos of a few sizes (default 1 MP and 12 MP), the end-to-end time of
``Deblurrer.deblur_file`` (read, deblur with ``tile="auto"``, write PNG) and of the deblurring
itself, the seconds per megapixel, and the peak resident set size (RSS) of the process. Each
size runs in its own subprocess so that memory peaks are separate; the input photos are made
beforehand by the parent (a real blurry example photo resized to the target size) so their
creation does not count.

Goals (docs/ and the issue): <= 15 s per megapixel on a 2-core CPU, and a 12-megapixel photo
within 4 GB peak RSS.

Usage::

    python benchmarks/bench_default_cpu.py                        # embedded network mimo_unet_small
    python benchmarks/bench_default_cpu.py --model mimo_unet --random-init   # before weights exist
    python benchmarks/bench_default_cpu.py --sizes 1 --threads 2 --check

Prints one JSON document and writes it to ``benchmarks/results/default_cpu.json`` (or
``benchmarks/results/<model>_random_cpu.json`` with ``--random-init``; see ``--out``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
EXAMPLE = REPO / "examples" / "real_blur" / "licenseplate_motion.jpg"
GOAL_SECONDS_PER_MP = 15.0
GOAL_PEAK_RSS_MB_12MP = 4096.0


def _peak_rss_mb() -> float:
    """Peak RSS of this process in MiB (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


def _size_for(megapixels: float) -> tuple[int, int]:
    """(height, width) of a 4:3 landscape photo of about ``megapixels`` MP, multiples of 8."""
    w = (megapixels * 1e6 * 4 / 3) ** 0.5
    h = w * 3 / 4
    return int(round(h / 8) * 8), int(round(w / 8) * 8)


def _make_photo(path: Path, h: int, w: int) -> None:
    import cv2

    img = cv2.imread(str(EXAMPLE), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"example photo missing: {EXAMPLE}")
    img = cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC)
    if not cv2.imwrite(str(path), img):
        raise OSError(f"cannot write {path}")


def _build(args: argparse.Namespace):
    from deblurkit.inference import Deblurrer

    overrides = json.loads(args.overrides) if args.overrides else None
    return Deblurrer(
        model=args.model,
        weights=args.weights,
        device="cpu",
        precision=args.precision,
        tile=args.tile if args.tile == "auto" or args.tile is None else int(args.tile),
        tile_overlap=args.overlap,
        progress=False,
        model_overrides=overrides,
        allow_random=args.random_init,
    )


def child(args: argparse.Namespace) -> dict:
    """One measurement in a fresh process: prints a JSON line."""
    import warnings

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the random-init warning; recorded in the JSON instead
        d = _build(args)
    load_s = time.perf_counter() - t0
    d.deblur_tensor(torch.rand(3, 64, 64))  # warm-up (allocator, kernels)
    rss_model = _peak_rss_mb()

    photo = Path(args.photo)
    timing = {}
    inner = d.deblur_tensor

    def timed(x, **kw):
        t = time.perf_counter()
        y = inner(x, **kw)
        timing["deblur_s"] = time.perf_counter() - t
        return y

    d.deblur_tensor = timed  # type: ignore[method-assign]
    out_dir = Path(args.out_dir)
    t1 = time.perf_counter()
    written = d.deblur_file(photo, out_dir)
    total_s = time.perf_counter() - t1
    h, w = args.hw
    mp = h * w / 1e6
    return {
        "megapixels": round(mp, 3),
        "height": h,
        "width": w,
        "tile": d.tile_for(h, w),
        "tile_overlap": d.tile_overlap,
        "threads": torch.get_num_threads(),
        "model_load_s": round(load_s, 3),
        "deblur_s": round(timing["deblur_s"], 3),
        "end_to_end_s": round(total_s, 3),
        "seconds_per_mp": round(timing["deblur_s"] / mp, 3),
        "end_to_end_seconds_per_mp": round(total_s / mp, 3),
        "rss_after_model_mb": round(rss_model, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "output_bytes": written["deblurred"].stat().st_size,
        "model": d.model_name,
        "model_overrides": d.model_overrides,
        "weights": str(d.weights) if d.weights else None,
        "num_parameters": sum(p.numel() for p in d.net.parameters()),
    }


def parent(args: argparse.Namespace) -> dict:
    import torch

    sizes = [float(s) for s in args.sizes.split(",") if s.strip()]
    results = []
    with tempfile.TemporaryDirectory(prefix="deblurkit_bench_") as tmp:
        tmp_path = Path(tmp)
        for mp in sizes:
            h, w = _size_for(mp)
            photo = tmp_path / f"photo_{h}x{w}.png"
            _make_photo(photo, h, w)
            cmd = [sys.executable, __file__, "--_child", "--photo", str(photo), "--hw", str(h), str(w),
                   "--out-dir", str(tmp_path / "out")] + _forward_flags(args)
            env = dict(os.environ)
            src = str(REPO / "src")
            env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
            print(f"[bench] {mp:g} MP ({w}x{h}) ...", file=sys.stderr, flush=True)
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                results.append({"megapixels": mp, "height": h, "width": w, "error": proc.stderr.strip()[-2000:]})
                print(f"[bench] {mp:g} MP failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
                continue
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            results.append(res)
            print(f"[bench] {mp:g} MP: {res['seconds_per_mp']} s/MP, peak RSS {res['peak_rss_mb']} MB",
                  file=sys.stderr, flush=True)

    ok_speed = [r["seconds_per_mp"] <= GOAL_SECONDS_PER_MP for r in results if "seconds_per_mp" in r]
    big = [r for r in results if r.get("megapixels", 0) >= 11.5]
    ok_mem = [r["peak_rss_mb"] <= GOAL_PEAK_RSS_MB_12MP for r in big if "peak_rss_mb" in r]
    return {
        "benchmark": "bench_default_cpu",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "processor": platform.processor(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "setup": {
            "model": args.model or "(embedded default)",
            "weights": args.weights,
            "random_init": bool(args.random_init),
            "precision": args.precision,
            "tile": args.tile,
            "tile_overlap": args.overlap,
            "threads": args.threads or torch.get_num_threads(),
            "input": f"{EXAMPLE.relative_to(REPO)} resized (bicubic) to each size, 8-bit PNG",
        },
        "goals": {"seconds_per_mp_max": GOAL_SECONDS_PER_MP, "peak_rss_mb_12mp_max": GOAL_PEAK_RSS_MB_12MP},
        "results": results,
        "meets_goals": {
            "speed": bool(ok_speed) and all(ok_speed),
            "memory_12mp": (all(ok_mem) if ok_mem else None),
            "errors": sum("error" in r for r in results),
        },
    }


def _forward_flags(args: argparse.Namespace) -> list[str]:
    flags = ["--precision", args.precision, "--tile", str(args.tile), "--overlap", str(args.overlap)]
    if args.model:
        flags += ["--model", args.model]
    if args.weights:
        flags += ["--weights", args.weights]
    if args.overrides:
        flags += ["--overrides", args.overrides]
    if args.random_init:
        flags += ["--random-init"]
    if args.threads:
        flags += ["--threads", str(args.threads)]
    return flags


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="registry name (default: the embedded network mimo_unet_small)")
    p.add_argument("--weights", default=None, help="checkpoint for --model")
    p.add_argument("--overrides", default=None, help='constructor overrides as JSON, e.g. \'{"base_channel": 16}\'')
    p.add_argument("--random-init", action="store_true", help="allow --model without --weights (same compute)")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--tile", default="auto", help="'auto' (default), 'None' or a tile side in pixels")
    p.add_argument("--overlap", type=int, default=32)
    p.add_argument("--sizes", default="1,12", help="comma-separated megapixel sizes (default 1,12)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's default)")
    p.add_argument("--out", default=None, help="result JSON (default benchmarks/results/default_cpu.json)")
    p.add_argument("--check", action="store_true", help="exit with status 1 if a goal is missed")
    p.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--photo", help=argparse.SUPPRESS)
    p.add_argument("--hw", type=int, nargs=2, help=argparse.SUPPRESS)
    p.add_argument("--out-dir", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.tile == "None":
        args.tile = None

    if args._child:
        print(json.dumps(child(args)))
        return 0

    if args.model is None and args.random_init:
        p.error("--random-init needs --model")
    report = parent(args)
    if args.out:
        out = Path(args.out)
    elif args.random_init:
        out = RESULTS / f"{args.model}_random_cpu.json"
    else:
        out = RESULTS / "default_cpu.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, out)
    print(json.dumps(report, indent=2))
    print(f"[bench] written {out}", file=sys.stderr)
    if args.check and not (report["meets_goals"]["speed"] and report["meets_goals"]["memory_12mp"] is not False
                           and not report["meets_goals"]["errors"]):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
