"""Short real RSS-T run on CPU: GRR data synthesised from the real clips, a tiny ``rsst`` trained
with the official recipe (configs/rsst_grr_real.yaml, tiny width), scored with protocol ``rsst``
(PSNR per top / middle / bottom third) against the blurry input.

Data: ../shared/data/video/bikes.mp4 (real panning footage, 250 frames) and
../shared/data/sequences/visp_mbt_cube (real hand-held grey sequence, 120 frames), centre-cropped
to 512x256 / 512x448 and halved (INTER_AREA) to fit the CPU budget; each clip is split in time (first 80 % train, last 20 %
test) and turned into GRR / GS pairs by :func:`deblurkit.synth.grr.build_grr_sequence` (DIS-flow
interpolation x8, first-row exposure 2, readout --readout (16) interpolated frames, GS reference
over the first row's window).

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/rsst_grr_short_run.py --minutes 12

Writes ``benchmarks/results/rsst_grr_short_run.json`` (and the data / run under --work).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def halve(frames: torch.Tensor, crop: tuple[int, int]) -> torch.Tensor:
    """Centre-crop to ``crop`` (h, w) and halve with INTER_AREA (sizes then fit (32, 128) multiples:
    no padding, the cheapest step on a CPU)."""
    out = []
    H, W = frames.shape[-2:]
    t, l = (H - crop[0]) // 2, (W - crop[1]) // 2
    for f in frames[..., t:t + crop[0], l:l + crop[1]].permute(0, 2, 3, 1).numpy():
        out.append(cv2.resize(np.ascontiguousarray(f), (crop[1] // 2, crop[0] // 2), interpolation=cv2.INTER_AREA))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


def synthesise(root: Path, readout: float) -> dict:
    from deblurkit.synth.grr import build_grr_sequence, read_frames

    counts = {}
    for name, src, crop in (("bikes", DATA / "video" / "bikes.mp4", (256, 512)),
                            ("cube", DATA / "sequences" / "visp_mbt_cube", (448, 512))):
        frames = halve(read_frames(src), crop)
        cut = int(round(0.8 * frames.shape[0]))
        for split, part in (("train", frames[:cut]), ("test", frames[cut:])):
            man = build_grr_sequence(part, root, seq=name, split=split, factor=8, exposure=2.0, readout=readout,
                                     stride=1 if split == "test" else 2, progress=False)
            counts[f"{split}/{name}"] = man["num_pairs"]
    return counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/rsst_short_run"))
    ap.add_argument("--minutes", type=float, default=12.0, help="training time budget (steps estimated from it)")
    ap.add_argument("--steps", type=int, default=None, help="fixed number of steps (overrides --minutes)")
    ap.add_argument("--base-channel", type=int, default=8)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--readout", type=float, default=16.0, help="GRR readout (extra exposure of the last row), "
                    "in interpolated frames (x8)")
    ap.add_argument("--zero-init-output", action="store_true", help="start from the identity (not official)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "rsst_grr_short_run.json")
    args = ap.parse_args()
    torch.set_num_threads(1)

    from deblurkit.data.grr import GRRPairedDataset
    from deblurkit.engine import evaluate, load_config, make_trainer
    from deblurkit.io.atomic import write_text_atomic

    data = args.work / "data"
    t0 = time.time()
    counts = synthesise(data, args.readout) if not (data / "test").is_dir() else {"reused": str(data)}
    t_synth = time.time() - t0
    overrides = [f"data.train.root={data}", f"data.val.root={data}", "data.val.split=test",
                 f"model.overrides.base_channel={args.base_channel}", "model.overrides.depths=[1,1,1,1,1,1,1,1]",
                 "data.batch_size=1", "data.num_workers=0", "train.threads=1", "train.log_every=10",
                 f"train.out_dir={args.work / 'run'}", "eval.max_images=4"]
    steps = args.steps
    if steps is None:  # time 3 steps to fit the budget
        probe = make_trainer(load_config(REPO / "configs" / "rsst_grr_real.yaml", overrides + [
            "recipe.epochs=null", "train.total_steps=3", f"train.out_dir={args.work / 'probe'}"]), progress=False)
        batches = probe._data()
        t = time.time()
        for _ in range(3):
            probe.train_step(next(batches))
        steps = max(10, int(args.minutes * 60 / ((time.time() - t) / 3)))
    # short schedule: warm-up 5 % of the steps instead of 5000, cosine to 1e-6; lr --lr (tiny net, few steps)
    cfg = load_config(REPO / "configs" / "rsst_grr_real.yaml", overrides + [
        "recipe.epochs=null", f"train.total_steps={steps}", f"schedule.warmup_steps={max(1, steps // 20)}",
        f"optim.lr={args.lr}", f"train.val_every={max(1, steps // 4)}", f"train.ckpt_every={steps}",
        f"recipe.zero_init_output={str(args.zero_init_output).lower()}"])
    trainer = make_trainer(cfg, progress=True)
    t1 = time.time()
    logs = trainer.fit()
    t_train = time.time() - t1

    test = GRRPairedDataset(data, split="test")
    net = trainer.eval_net.eval()

    def pairs():
        for i in range(len(test)):
            it = test[i]
            yield it["name"], it["lq"], it["gt"]

    res = evaluate(lambda x: net.restore_frame(x), pairs(), "rsst", progress=False)
    by_seq = {}
    for seq in sorted({r["name"].split("/")[0] for r in res.rows}):
        rows = [r for r in res.rows if r["name"].startswith(seq + "/")]
        by_seq[seq] = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0] if k != "name"}
    out = {
        "what": "tiny rsst trained on CPU on GRR pairs synthesised from real clips; protocol rsst on the held-out "
                "last 20% of each clip",
        "command": "OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/rsst_grr_short_run.py " + " ".join(sys.argv[1:]),
        "pairs": counts, "test_pairs": len(test), "steps": steps, "base_channel": args.base_channel,
        "depths": [1] * 8, "readout": args.readout, "exposure": 2.0, "lr": args.lr,
        "zero_init_output": args.zero_init_output, "threads": 1, "synth_seconds": round(t_synth, 1),
        "train_seconds": round(t_train, 1), "final_loss": logs.get("loss"),
        "mean": res.mean, "per_sequence": by_seq, "torch": torch.__version__,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, json.dumps(out, indent=1) + "\n")
    m = res.mean
    print(json.dumps({k: round(v, 3) for k, v in m.items()}, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
