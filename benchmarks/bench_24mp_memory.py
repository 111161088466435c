#!/usr/bin/env python
"""Peak memory of deblurring a 24-megapixel photo on the CPU with every image model (a
benchmark script, not a test). Goal (issue 8): within 6 GB peak resident memory, through tiling.

For each registered image model (``deblurkit.bench.image_models``; event models and encoders are
listed as excluded with the reason) a fresh subprocess runs the whole user path
``Deblurrer(tile="auto").deblur_file`` on a 6000x4000 JPEG (read, pad, 512-pixel tiles with
32-pixel blended overlaps, write a PNG), with a randomly initialised network (memory does not
depend on weight values). The parent samples the child's resident memory (``/proc/<pid>/status``
VmRSS / VmHWM) every 0.5 s together with the number of tiles done, and takes the child's own
reading of its VmHWM just before it ends. ``ru_maxrss`` is not used: on Linux it
carries the RSS of the forked parent across ``exec`` into the child's value.

Two modes per model:

* ``full``: the network runs on every tile. On a slow shared CPU a model may not finish within
  ``--cap-s``; it is then stopped and recorded as ``capped`` with the tiles done and the peak so
  far (the RSS trace shows whether memory still grows with the tile count).
* ``memory`` (``--memory-tiles K``): the network runs on the first K tiles and the rest pass
  through unchanged; everything else (image buffers, blending, padding crop, PNG encoding) is the
  full pipeline. All tiles of an image have the same shape (balanced tiles, the last one shifted
  inside the image), so the network's activation peak is reached on the first tile; this mode
  measures the pipeline's peak in minutes instead of hours. It is labelled as such in the JSON.

Usage::

    python benchmarks/bench_24mp_memory.py                       # all image models, full, 15 min cap
    python benchmarks/bench_24mp_memory.py --mode memory --memory-tiles 2
    python benchmarks/bench_24mp_memory.py --models mimo_unet,aspdc --cap-s 600

Writes ``benchmarks/results/bench_24mp_memory_<mode>.json`` (see ``--out``).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "real_blur" / "licenseplate_motion.jpg"
GOAL_MB = 6 * 1000**3 / 2**20  # 6 GB in MiB
HEIGHT, WIDTH = 4000, 6000


def child(args: argparse.Namespace) -> None:
    """Deblur the photo; print ``TILES done total`` lines and a final ``DONE {json}``."""
    import warnings

    import torch

    from deblurkit.bench.cases import status_kb
    from deblurkit.inference import Deblurrer

    torch.set_num_threads(args.threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = Deblurrer(args.model, device="cpu", precision=args.precision, tile="auto", progress=False,
                      allow_random=True)
    calls = [0]
    if args.memory_tiles:
        real = d._forward

        def forward(batch):
            calls[0] += 1
            return real(batch) if calls[0] <= args.memory_tiles else batch.float()

        d._forward = forward  # type: ignore[method-assign]

    def progress(done: int, total: int) -> None:
        print(f"TILES {done} {total}", flush=True)

    t0 = time.perf_counter()
    d.deblur_file(args.photo, args.out_dir, progress=progress)
    print("DONE " + json.dumps({"deblur_file_s": round(time.perf_counter() - t0, 1),
                                "peak_rss_self_mb": round(status_kb("VmHWM") / 1024), "tile": d.tile_for(HEIGHT, WIDTH),
                                "tile_overlap": d.tile_overlap, "size_multiple": d.size_multiple,
                                "parameters": sum(p.numel() for p in d.net.parameters())}), flush=True)


def run_one(args: argparse.Namespace, model: str, photo: Path, out_dir: Path) -> dict:
    from deblurkit.bench.cases import status_kb

    cmd = [sys.executable, __file__, "--_child", "--model", model, "--photo", str(photo), "--out-dir",
           str(out_dir), "--threads", str(args.threads), "--precision", args.precision,
           "--memory-tiles", str(args.memory_tiles if args.mode == "memory" else 0)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    env["PYTHONPATH"] = str(REPO / "src") + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    t0 = time.monotonic()
    err_path = out_dir.parent / f"{model}.stderr"
    with open(err_path, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    done, total, info, trace, hwm = 0, None, None, [], 0.0
    status, usage, seen = "error", None, 0

    def read_lines() -> None:
        nonlocal done, total, info, seen
        for line in lines[seen:]:
            if line.startswith("TILES "):
                done, total = (int(v) for v in line.split()[1:3])
            elif line.startswith("DONE "):
                info = json.loads(line[5:])
        seen = len(lines)

    while True:
        time.sleep(0.5)
        read_lines()
        rss, peak = status_kb("VmRSS", proc.pid), status_kb("VmHWM", proc.pid)
        if peak:
            hwm = max(hwm, peak / 1024)
        now = round(time.monotonic() - t0, 1)
        if rss and (not trace or trace[-1][1] != done or now - trace[-1][0] >= 10):
            trace.append([now, done, round(rss / 1024), round(hwm)])  # s, tiles done, RSS, peak so far
        pid, code, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() - t0 > args.cap_s:
            proc.kill()
            _, code, usage = os.wait4(proc.pid, 0)
            status = "capped"
            break
    proc.returncode = code
    reader.join(timeout=10)
    read_lines()
    stderr = err_path.read_text()
    # not ru_maxrss: Linux carries the forked parent's RSS into the child's ru_maxrss across exec
    if info is not None:
        status = "completed"
    row = {"model": model, "mode": args.mode, "status": status, "tiles_done": done, "tiles_total": total,
           "seconds": round(time.monotonic() - t0, 1), "peak_rss_mb": round(hwm), "rss_trace": trace}
    if args.mode == "memory":
        row["network_tiles"] = args.memory_tiles
    if info:
        row.update(info)
        hwm = max(hwm, info["peak_rss_self_mb"])
        row["peak_rss_mb"] = round(hwm)
    if status == "completed":
        row["within_6gb"] = hwm <= GOAL_MB
    if status == "error":
        row["error"] = stderr.strip()[-1500:]
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="", help="comma-separated; default: every image model")
    ap.add_argument("--mode", choices=["full", "memory"], default="full")
    ap.add_argument("--memory-tiles", type=int, default=2)
    ap.add_argument("--cap-s", type=float, default=900.0, help="time cap per model (seconds)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--photo", help=argparse.SUPPRESS)
    ap.add_argument("--out-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._child:
        child(args)
        return
    sys.path.insert(0, str(REPO / "src"))
    import cv2

    from deblurkit.bench import cpu_name, image_models
    from deblurkit.io.atomic import write_text_atomic

    models = [m for m in args.models.split(",") if m]
    excluded = {}
    if not models:  # probing every model costs minutes on a slow CPU: only when all are asked
        models, excluded = image_models()
    out = args.out or REPO / "benchmarks" / "results" / f"bench_24mp_memory_{args.mode}.json"
    result = {"benchmark": "bench_24mp_memory", "goal": "peak RSS <= 6 GB (5722 MiB) for a 24 MP photo on the CPU",
              "image": f"{EXAMPLE.relative_to(REPO)} resized (bicubic) to {WIDTH}x{HEIGHT}, JPEG quality 95",
              "machine": {"cpu": cpu_name(), "cpu_count": os.cpu_count(), "threads": args.threads,
                          "loadavg_1min_at_start": os.getloadavg()[0]},
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "precision": args.precision,
              "mode": args.mode, "cap_s": args.cap_s, "excluded": excluded, "results": []}
    with tempfile.TemporaryDirectory(prefix="deblurkit_24mp_") as tmp:
        photo = Path(tmp) / "photo_24mp.jpg"
        img = cv2.resize(cv2.imread(str(EXAMPLE), cv2.IMREAD_COLOR), (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(photo), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        del img
        for m in models:
            print(f"[24mp] {m} ({args.mode}) ...", file=sys.stderr, flush=True)
            row = run_one(args, m, photo, Path(tmp) / "out")
            result["results"].append(row)
            print(f"[24mp] {m}: {row['status']} {row['tiles_done']}/{row['tiles_total']} tiles, "
                  f"{row['seconds']} s, peak RSS {row['peak_rss_mb']} MiB", file=sys.stderr, flush=True)
            write_text_atomic(out, json.dumps(result, indent=1) + "\n")
    print(json.dumps({r["model"]: [r["status"], r["peak_rss_mb"]] for r in result["results"]}, indent=1))


if __name__ == "__main__":
    main()
