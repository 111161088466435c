#!/usr/bin/env python
"""Reblurring accuracy of an ASPDC reblurring network R (a quality benchmark, not a test).

The analogue of the "reblurring evaluation" of the ASPDC poster (55.71 dB for the released
ReBlurringNet.pth on GoPro): for every pair of a GoPro-layout folder, PSNR(B, R(B, S)) (R re-creates
the blur from the true sharp image), next to PSNR(B, R(B, B)) (R given the blurry image as sharp)
and PSNR(B, S) (no reblurring at all).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/quality_aspdc_reblur.py --weights R.safetensors \
        --data /tmp/synth --split test --out benchmarks/results/aspdc_reblur_quality_cpu.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from deblurkit.data import PairedImageDataset
from deblurkit.inference.reblur_consistency import ReblurConsistency
from deblurkit.io.atomic import write_text_atomic


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", required=True, help="aspdc_reblur weights")
    ap.add_argument("--data", required=True, help="GoPro-layout root")
    ap.add_argument("--split", default="test")
    ap.add_argument("--max-pairs", type=int, default=None, help="score only the first N pairs")
    ap.add_argument("--out", default=None, help="JSON output")
    ap.add_argument("--note", default="", help="free text stored in the JSON (e.g. how R was trained)")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    scorer = ReblurConsistency(a.weights)
    ds = PairedImageDataset(a.data, split=a.split)
    rows, t0 = [], time.time()
    n = len(ds) if a.max_pairs is None else min(len(ds), a.max_pairs)
    for i in range(n):
        it = ds[i]
        s = scorer.score(it["lq"], it["gt"])  # psnr = PSNR(B, R(B, S)), psnr_change = PSNR(B, S)
        rows.append({"name": it["name"], "psnr_reblur_from_sharp": s["psnr"],
                     "psnr_reblur_from_blurry": s["psnr_identity"], "psnr_sharp_vs_blurry": s["psnr_change"]})
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0] if k != "name"}
    doc = {"benchmark": "quality_aspdc_reblur", "weights": a.weights, "data": a.data, "split": a.split,
           "pairs": len(rows), "note": a.note, "mean": mean, "seconds": round(time.time() - t0, 1), "rows": rows}
    text = json.dumps(doc, indent=2) + "\n"
    if a.out:
        write_text_atomic(a.out, text)
    print(json.dumps({k: doc[k] for k in ("pairs", "mean", "seconds")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
