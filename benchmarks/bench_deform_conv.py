#!/usr/bin/env python
"""Speed and memory of the pure-PyTorch modulated deformable convolution on the CPU (a benchmark
script, not a test).

Compares :func:`deblurkit.models.layers.deform_conv.modulated_deform_conv2d` (3x3, dilation 4,
padding 4 -- the widest ASPDC sampling -- with random offsets and masks) with a plain 3x3
``F.conv2d`` of the same size, both at dilation 4 (same geometry) and dilation 1 (the plain
3x3 convolution), on a 1 x 128 x 180 x 320 input (a 720 x 1280 frame at ASPDC's 1/4 feature
resolution), 128 output channels, float32.

For each operator and pass it reports:

- ``forward``: forward under ``torch.no_grad()`` (inference);
- ``forward_grad`` and ``backward``: forward with autograd, then ``backward`` w.r.t. every input
  (input, weight, bias, and for the deformable convolution offset and mask);
- ``train_step`` = forward_grad + backward;
- ``peak_extra_mb``: peak resident memory (RSS) above the inputs, from the first (cold) call, in a
  separate process per operator and pass.

Times are the minimum over ``--repeats`` runs after a warm-up, as CPU time of the process
(``time.process_time``, robust when other jobs share the core) and as wall time. Ratios use CPU
time. Goal (issue "ASPDC with deblurring-reblurring consistency"): the deformable convolution
within 3x of the plain convolution.

Usage::

    taskset -c 1 env OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_deform_conv.py
    python benchmarks/bench_deform_conv.py --threads 2 --repeats 5 --backend gather --check

Prints one JSON document and writes it to ``benchmarks/results/deform_conv_cpu.json`` (see ``--out``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
GOAL_MAX_RATIO = 3.0
OPS = ("deform_conv", "conv2d_dilation4", "conv2d_dilation1")
PASSES = ("forward", "train")


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


def _timed(fn) -> tuple[float, float]:
    c0, w0 = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - c0, time.perf_counter() - w0


def child(args: argparse.Namespace) -> dict:
    """One operator and pass in a fresh process; returns its measurements."""
    import torch
    import torch.nn.functional as F

    from deblurkit.models.layers.deform_conv import modulated_deform_conv2d

    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    n, c, h, w, k, d = 1, args.channels, args.height, args.width, 3, args.dilation
    train = args.pass_ == "train"
    x = torch.randn(n, c, h, w, generator=g)
    weight = torch.randn(c, c, k, k, generator=g) / (c * k * k) ** 0.5
    bias = torch.randn(c, generator=g) * 0.01
    offset = torch.randn(n, 2 * k * k, h, w, generator=g) * args.offset_std
    mask = torch.sigmoid(torch.randn(n, k * k, h, w, generator=g))
    grad_out = torch.randn(n, c, h, w, generator=g)
    leaves = [x, weight, bias] + ([offset, mask] if args.op == "deform_conv" else [])
    for t in leaves:
        t.requires_grad_(train)

    def run():
        if args.op == "deform_conv":
            return modulated_deform_conv2d(
                x, offset, mask, weight, bias, 1, d, d,
                max_chunk_elems=args.max_chunk_elems, backend=args.backend,
            )
        dil = 4 if args.op == "conv2d_dilation4" else 1
        return F.conv2d(x, weight, bias, 1, dil, dil)

    def clear():
        for t in leaves:
            t.grad = None

    base = _peak_rss_mb()
    if train:
        y = run()
        y.backward(grad_out)
        del y
    else:
        with torch.no_grad():
            run()
    peak_extra = _peak_rss_mb() - base

    times: dict[str, list[tuple[float, float]]] = {}
    for rep in range(args.repeats + 1):  # first = warm-up
        if train:
            clear()
            holder = {}
            t_f = _timed(lambda: holder.setdefault("y", run()))
            t_b = _timed(lambda: holder["y"].backward(grad_out))
            del holder
            meas = {"forward_grad": t_f, "backward": t_b, "train_step": (t_f[0] + t_b[0], t_f[1] + t_b[1])}
        else:
            with torch.no_grad():
                meas = {"forward": _timed(run)}
        if rep:
            for key, v in meas.items():
                times.setdefault(key, []).append(v)
    out = {key: {"cpu_s": round(min(v[0] for v in vals), 4), "wall_s": round(min(v[1] for v in vals), 4)}
           for key, vals in times.items()}
    out["peak_extra_mb"] = round(peak_extra, 1)
    out["threads"] = torch.get_num_threads()
    return out


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b > 0 else None


def parent(args: argparse.Namespace) -> dict:
    import torch

    results: dict[str, dict] = {op: {} for op in OPS}
    errors = []
    env = dict(os.environ)
    src = str(REPO / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    for op in OPS:
        for pass_ in PASSES:
            cmd = [sys.executable, __file__, "--_child", "--op", op, "--pass", pass_] + _flags(args)
            print(f"[bench] {op} {pass_} ...", file=sys.stderr, flush=True)
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                errors.append({"op": op, "pass": pass_, "error": proc.stderr.strip()[-2000:]})
                print(proc.stderr[-2000:], file=sys.stderr)
                continue
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            mem = res.pop("peak_extra_mb")
            res.pop("threads")
            results[op].update(res)
            results[op][f"peak_extra_mb_{pass_}"] = mem

    ratios: dict[str, dict] = {}
    dcn = results["deform_conv"]
    for ref in ("conv2d_dilation4", "conv2d_dilation1"):
        r = results[ref]
        ratios[f"deform_conv_vs_{ref}"] = {
            key: _ratio(dcn[key]["cpu_s"], r[key]["cpu_s"])
            for key in ("forward", "forward_grad", "backward", "train_step") if key in dcn and key in r
        } | {
            f"peak_extra_mb_{p}": _ratio(dcn.get(f"peak_extra_mb_{p}", 0), r.get(f"peak_extra_mb_{p}", 0))
            for p in PASSES
        }

    def met(ref: str) -> bool | None:
        rr = ratios.get(f"deform_conv_vs_{ref}", {})
        vals = [rr.get("forward"), rr.get("train_step")]
        return None if None in vals else all(v <= GOAL_MAX_RATIO for v in vals)

    col_mb = args.height * args.width * 9 * args.channels * 4 / 2**20
    return {
        "benchmark": "bench_deform_conv",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "platform": platform.platform(),
            "processor": platform.processor(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "loadavg_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        },
        "setup": {
            "input": [1, args.channels, args.height, args.width],
            "out_channels": args.channels,
            "kernel": 3,
            "dilation": args.dilation,
            "padding": args.dilation,
            "dtype": "float32",
            "offsets": f"N(0, {args.offset_std}^2) pixels",
            "mask": "sigmoid(N(0, 1))",
            "threads": args.threads,
            "max_chunk_elems": args.max_chunk_elems,
            "backend": args.backend,
            "repeats": args.repeats,
            "unchunked_column_buffer_mb": round(col_mb, 1),
            "timing": "min over repeats after one warm-up; cpu_s = process CPU time, wall_s = wall clock",
        },
        "results": results,
        "ratios_cpu_time": ratios,
        "goal": {
            "max_ratio": GOAL_MAX_RATIO,
            "criterion": "deform_conv forward and train_step CPU time <= 3x the plain 3x3 conv",
            "met_vs_conv2d_dilation4": met("conv2d_dilation4"),
            "met_vs_conv2d_dilation1": met("conv2d_dilation1"),
        },
        "errors": errors,
    }


def _flags(args: argparse.Namespace) -> list[str]:
    return [
        "--threads", str(args.threads), "--repeats", str(args.repeats), "--height", str(args.height),
        "--width", str(args.width), "--channels", str(args.channels), "--dilation", str(args.dilation),
        "--offset-std", str(args.offset_std), "--max-chunk-elems", str(args.max_chunk_elems),
        "--backend", args.backend,
    ]


def main(argv: list[str] | None = None) -> int:
    from deblurkit.models.layers.deform_conv import DEFAULT_MAX_CHUNK_ELEMS

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs after one warm-up (default 3)")
    p.add_argument("--height", type=int, default=180)
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--channels", type=int, default=128)
    p.add_argument("--dilation", type=int, default=4)
    p.add_argument("--offset-std", type=float, default=2.0, help="std of the random offsets in pixels")
    p.add_argument("--max-chunk-elems", type=int, default=DEFAULT_MAX_CHUNK_ELEMS)
    p.add_argument("--backend", default="auto", choices=("auto", "sparse", "gather"))
    p.add_argument("--out", type=Path, default=RESULTS / "deform_conv_cpu.json")
    p.add_argument("--check", action="store_true", help="exit 1 if the 3x goal (vs dilation-4 conv) is missed")
    p.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--op", choices=OPS, help=argparse.SUPPRESS)
    p.add_argument("--pass", dest="pass_", choices=PASSES, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.threads < 1 or args.repeats < 1:
        p.error("--threads and --repeats must be >= 1")

    if args._child:
        print(json.dumps(child(args)))
        return 0
    report = parent(args)
    text = json.dumps(report, indent=2)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(args.out.suffix + ".tmp")
    tmp.write_text(text + "\n")
    os.replace(tmp, args.out)
    print(f"[bench] wrote {args.out}", file=sys.stderr)
    if args.check and not report["goal"]["met_vs_conv2d_dilation4"]:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
