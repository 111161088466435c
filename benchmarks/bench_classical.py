#!/usr/bin/env python
"""Speed and memory of the classical pipeline (the default deblurrer), side by side with the
embedded MIMO-UNet (a benchmark script, not a test).

Measures on the CPU (or ``--device cuda``):

1. **Kernel estimation alone** (``ClassicalDeblurrer(kernel_size=K).estimate``: region
   selection, estimate, reliability check, retries) for kernel sizes up to 35 px and the
   automatic size, on a 1 MP photo (the region is bounded, so the photo size hardly matters).
2. **End to end per photo size** (1, 4 and 12 MP by default): ``deblur_file`` (read, estimate,
   deconvolve -- tiled above 2 MP --, write the PNG) of the classical pipeline; the same with the
   true kernel given (``--kernel``: the non-blind stage alone, which always runs, whereas a blind
   run that falls back skips it); and the embedded network ``mimo_unet_small`` (``tile="auto"``).
   Seconds, seconds per megapixel, peak resident set size (RSS) of the process, and the ratio
   classical / MIMO-UNet.

Each measurement runs in its own subprocess (separate memory peaks, same thread count). The test
photos are built first by the parent: mosaics of the real photos ``photos/wallpaper/mate_*``
(resized, tiled 1x1 / 2x2 / 2x2), blurred with the real Levin et al. 2009 kernel ``levin09_3``
(``valid``: no invented border), Gaussian noise sigma 0.01, 8-bit JPEG-free PNG.

Goals (issue 13): <= 15 s per megapixel from 2 MP up on this CPU, a 12 MP photo within 4 GB.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_classical.py --threads 1
    python benchmarks/bench_classical.py --sizes 1 --kernel-sizes 15 --skip-mimo   # quick look
    python benchmarks/bench_classical.py --markdown docs/benchmarks.md   # update the doc's section

Prints a Markdown table; writes JSON to ``benchmarks/results/classical_cpu.json`` (``--out``).
With ``--markdown FILE`` the section between ``<!-- classical:begin -->`` and
``<!-- classical:end -->`` of FILE is replaced (added at the top when missing).
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
SHARED = Path(os.environ.get("DEBLURKIT_SHARED", REPO.parent / "shared")) / "data"
GOAL_SECONDS_PER_MP = 15.0
GOAL_PEAK_RSS_MB_12MP = 4096.0
BEGIN, END = "<!-- classical:begin -->", "<!-- classical:end -->"
#: (megapixels, mosaic rows, mosaic cols): 4:3 photos of about that size
LAYOUTS = {1: (1, 1), 2: (1, 1), 4: (2, 2), 12: (2, 2), 24: (3, 3)}


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


def _size_for(mp: float) -> tuple[int, int]:
    w = (mp * 1e6 * 4 / 3) ** 0.5
    return int(round(w * 3 / 4 / 8) * 8), int(round(w / 8) * 8)


def _kernel():
    from deblurkit.synth import levin_kernels

    return levin_kernels(SHARED / "kernels" / "levin09_kernels.npz")["levin09_3"]


def _make_photo(path: Path, mp: int, seed: int = 0) -> None:
    """A blurred mosaic of real photos of about ``mp`` megapixels (see the module docstring)."""
    import cv2
    import numpy as np
    import torch

    from deblurkit.io import save_image
    from deblurkit.synth.blur import blur
    from deblurkit.synth.noise import quantize_8bit

    k = _kernel()
    pad = k.shape[0] - 1
    h, w = _size_for(mp)
    rows, cols = LAYOUTS.get(mp, (2, 2))
    photos = sorted((SHARED / "photos" / "wallpaper").glob("mate_*.jpg"))
    ch, cw = -(-(h + pad) // rows), -(-(w + pad) // cols)
    canvas = np.zeros((rows * ch, cols * cw, 3), np.uint8)
    for i in range(rows * cols):
        img = cv2.imread(str(photos[(seed + i) % len(photos)]), cv2.IMREAD_COLOR)
        r, c = divmod(i, cols)
        canvas[r * ch:(r + 1) * ch, c * cw:(c + 1) * cw] = cv2.resize(img, (cw, ch), interpolation=cv2.INTER_AREA)
    x = torch.from_numpy(canvas[: h + pad, : w + pad, ::-1].copy()).permute(2, 0, 1).float().div(255)[None]
    y = blur(x, k, "valid")
    g = torch.Generator().manual_seed(seed)
    y = quantize_8bit((y + 0.01 * torch.randn(y.shape, generator=g)).clamp(0, 1))
    save_image(path, y[0])


# ------------------------------------------------------------------ children (one measurement each)


def _child(args: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    from deblurkit.io import read_image

    out_dir = Path(tempfile.mkdtemp(prefix="bench_classical_"))
    photo = Path(args.photo)
    row: dict = {"kind": args.child, "photo": photo.name}
    if args.child == "estimate":
        from deblurkit.inference import ClassicalDeblurrer

        d = ClassicalDeblurrer(kernel_size=args.kernel_size, device=args.device, progress=False)
        image = read_image(photo)
        t0 = time.perf_counter()
        res = d.estimate(image)
        row.update(seconds=time.perf_counter() - t0, kernel_size=args.kernel_size,
                   kernel=None if res.kernel is None else list(res.kernel.shape), fell_back=res.fell_back,
                   reason=res.reason)
    else:
        if args.child == "mimo":
            from deblurkit.inference import Deblurrer

            d = Deblurrer("mimo_unet_small", device=args.device, tile="auto", progress=False)
        else:
            from deblurkit.inference import ClassicalDeblurrer

            kernel = _kernel() if args.child == "classical_kernel" else None
            d = ClassicalDeblurrer(kernel=kernel, device=args.device, progress=False)
        h, w = read_image(photo).shape[-2:]
        t0 = time.perf_counter()
        d.deblur_file(photo, out_dir)
        row.update(seconds=time.perf_counter() - t0, megapixels=h * w / 1e6, size=f"{w}x{h}")
        res = getattr(d, "last_result", None)
        if res is not None:
            row.update(tiles=res.tiles, fell_back=res.fell_back, reason=res.reason,
                       kernel=None if res.kernel is None else list(res.kernel.shape),
                       estimate_s=res.timings.get("estimate"), deconvolve_s=res.timings.get("deconvolve"))
        else:
            tile = d.tile_for(h, w)
            row["tiles"] = f"{tile}-px tiles" if tile else 1
        row["s_per_mp"] = row["seconds"] / row["megapixels"]
    row["peak_rss_mb"] = _peak_rss_mb()
    for f in out_dir.iterdir():
        f.unlink()
    out_dir.rmdir()
    return row


def _run_child(kind: str, photo: Path, args: argparse.Namespace, **extra) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--photo", str(photo), "--threads", str(args.threads),
           "--device", args.device]
    for k, v in extra.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout)
    if proc.returncode != 0:
        return {"kind": kind, "photo": photo.name, "error": proc.stderr.strip().splitlines()[-1:],
                "wall_s": time.perf_counter() - t0, **extra}
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    print(json.dumps(row), file=sys.stderr)
    return row


# ------------------------------------------------------------------ report


def _fmt(v, spec=".1f") -> str:
    return "" if v is None else format(v, spec)


def markdown(doc: dict) -> str:
    env = doc["environment"]
    lines = [
        "## Classical pipeline (the default deblurrer)",
        "",
        f"`{doc['command']}` ({env['cpu']}, {env['threads']} torch thread(s) of {env['cores']} cores, "
        f"device {env['device']}, torch {env['torch']}, {env['date']}; 1-min load average "
        f"{env['load_before']:.1f} before, {env['load_after']:.1f} after: the machine was shared, so the "
        "absolute seconds are pessimistic; the ratios are measured in the same run). JSON: "
        "`benchmarks/results/classical_cpu.json`.",
        "",
        "Kernel estimation alone (region selection, estimate, reliability check and its retries) on the "
        "1 MP photo:",
        "",
        "| kernel size | seconds | kernel | fell back |",
        "|---|---:|---|---|",
    ]
    for r in doc["estimate"]:
        if "error" in r:
            lines.append(f"| {r.get('kernel_size')} | | | error: {r['error']} |")
            continue
        k = "x".join(map(str, r["kernel"])) if r.get("kernel") else "none"
        lines.append(f"| {r['kernel_size'] or 'auto'} | {r['seconds']:.1f} | {k} | {'yes' if r['fell_back'] else 'no'} |")
    lines += [
        "",
        "Per photo (read, deblur, write PNG): the blind pipeline; the same photo with the true kernel given "
        "(`--kernel`, the non-blind stage alone); the embedded network `mimo_unet_small`; the ratio of the "
        "blind pipeline's time to the network's:",
        "",
        "| photo | pipeline | seconds | s / MP | estimate s | deconvolve s | tiles | fell back | peak RSS (MB) | x MIMO-UNet |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for size in doc["sizes"]:
        mimo = next((r for r in size["rows"] if r["kind"] == "mimo" and "error" not in r), None)
        for r in size["rows"]:
            if "error" in r:
                lines.append(f"| {size['label']} | {r['kind']} | | | | | | | | error: {r['error']} |")
                continue
            ratio = r["seconds"] / mimo["seconds"] if mimo and r["kind"] != "mimo" else None
            fb = "" if r.get("fell_back") is None else ("yes" if r["fell_back"] else "no")
            lines.append(
                f"| {size['label']} ({r['size']}) | {r['kind']} | {r['seconds']:.1f} | {r['s_per_mp']:.1f} | "
                f"{_fmt(r.get('estimate_s'))} | {_fmt(r.get('deconvolve_s'))} | {r.get('tiles') or 1} | {fb} | "
                f"{r['peak_rss_mb']:.0f} | {_fmt(ratio, '.2f')} |")
    lines += ["", f"Goals: <= {GOAL_SECONDS_PER_MP:.0f} s/MP from 2 MP up, 12 MP within {GOAL_PEAK_RSS_MB_12MP:.0f} MB."]
    return "\n".join(lines) + "\n"


def write_markdown(path: Path, text: str) -> None:
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    block = f"{BEGIN}\n{text}{END}\n"
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        new = head + block + rest.split(END, 1)[1].lstrip("\n")
    else:  # after the title line
        first, _, rest = old.partition("\n")
        new = f"{first}\n\n{block}\n{rest.lstrip()}" if old else block
    path.write_text(new, encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1,4,12", help="photo sizes in megapixels (comma-separated)")
    ap.add_argument("--kernel-sizes", default="15,25,35,auto", help="kernel sizes for the estimation timing")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip-mimo", action="store_true")
    ap.add_argument("--skip-kernel", action="store_true", help="skip the true-kernel (non-blind only) runs")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per measurement")
    ap.add_argument("--workdir", type=Path, default=None, help="where the test photos are kept (default: temp)")
    ap.add_argument("--out", type=Path, default=RESULTS / "classical_cpu.json")
    ap.add_argument("--markdown", type=Path, default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--photo", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--kernel-size", type=lambda s: None if s in ("None", "auto") else int(s), default=None,
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(args)))
        return

    import torch

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_classical_photos_"))
    work.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    photos = {}
    for mp in sorted(set(sizes) | {1}):
        p = work / f"photo_{mp}mp.png"
        if not p.is_file():
            print(f"building {p}", file=sys.stderr)
            _make_photo(p, mp)
        photos[mp] = p
    load_before = os.getloadavg()[0]
    doc: dict = {"command": "python benchmarks/bench_classical.py " + " ".join(sys.argv[1:]), "estimate": [], "sizes": []}
    for ks in args.kernel_sizes.split(","):
        ks = None if ks == "auto" else int(ks)
        doc["estimate"].append(_run_child("estimate", photos[1], args, kernel_size=ks))
    for mp in sizes:
        rows = [_run_child("classical", photos[mp], args)]
        if not args.skip_kernel:
            rows.append(_run_child("classical_kernel", photos[mp], args))
        if not args.skip_mimo:
            rows.append(_run_child("mimo", photos[mp], args))
        doc["sizes"].append({"label": f"{mp} MP", "rows": rows})
    doc["environment"] = {
        "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "threads": args.threads,
        "device": args.device, "torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_before": load_before, "load_after": os.getloadavg()[0],
    }
    try:
        with open("/proc/cpuinfo") as fh:
            doc["environment"]["cpu"] = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    text = markdown(doc)
    print(text)
    if args.markdown:
        write_markdown(args.markdown, text)


if __name__ == "__main__":
    main()
