"""Run benchmark cases in subprocesses with time budgets (used by ``deblurkit bench``).

Each (model, device, precision, compile) group runs in a fresh Python process
(``python -m deblurkit.bench.worker``) so that peak-memory readings of one group are not
inflated by another and a case that overruns its budget can be stopped. Inside a group the sizes
run from small to large; before each size the worker predicts its time from the throughput of
the previous size and records the case as *skipped* (with the prediction as reason) when it
would exceed the per-case budget. A group that still overruns (start-up, compilation, a bad
prediction) is killed and its remaining cases are recorded as skipped with that reason.
"""
from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from typing import Callable, Iterable

import torch

from .cases import SIZES

__all__ = ["run_benchmarks", "skipped_row", "PREFIX"]

#: Prefix of the worker's result lines on stdout (anything else is passed through to stderr).
PREFIX = "BENCH "


def skipped_row(model: str, size: str, device: str, precision: str, compile: bool, reason: str,
                status: str = "skipped") -> dict:
    """A results row for a case that was not measured (``status`` skipped or error)."""
    s = SIZES[size]
    return {"model": model, "size": size, "height": s.height, "width": s.width, "tile": s.tile,
            "device": device, "precision": precision, "compile": compile, "status": status,
            "reason": reason}


def _reader(stream, q: "queue.Queue[str | None]") -> None:
    for line in stream:
        q.put(line)
    q.put(None)


def run_group(model: str, sizes: list[str], device: str, precision: str, compile: bool, *,
              repeats: int, budget_s: float, threads: int | None, startup_s: float = 120.0,
              prior_mps: float | None = None,
              on_result: Callable[[dict], None] | None = None) -> list[dict]:
    """Run the sizes of one (model, device, precision, compile) group in a worker process."""
    spec = {"model": model, "sizes": sizes, "device": device, "precision": precision,
            "compile": compile, "repeats": repeats, "budget_s": budget_s, "threads": threads,
            "prior_mps": prior_mps}
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    proc = subprocess.Popen([sys.executable, "-m", "deblurkit.bench.worker", json.dumps(spec)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    q: queue.Queue = queue.Queue()
    threading.Thread(target=_reader, args=(proc.stdout, q), daemon=True).start()
    err: list[str] = []
    threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True).start()
    rows: list[dict] = []
    # a case may take its budget for the timed calls plus a warm-up (and compilation)
    deadline = time.monotonic() + startup_s + 2 * budget_s * (3 if compile else 1)
    while len(rows) < len(sizes):
        try:
            line = q.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            proc.kill()
            reason = f"stopped: over the time budget ({budget_s:.0f} s per case)"
            rows += [skipped_row(model, s, device, precision, compile, reason) for s in sizes[len(rows):]]
            break
        if line is None:
            proc.wait()
            tail = "".join(err[-5:]).strip().splitlines()
            reason = f"worker exited with status {proc.returncode}" + (f": {tail[-1]}" if tail else "")
            rows += [skipped_row(model, s, device, precision, compile, reason, "error") for s in sizes[len(rows):]]
            break
        if line.startswith(PREFIX):
            row = json.loads(line[len(PREFIX):])
            rows.append(row)
            if on_result:
                on_result(row)
            deadline = time.monotonic() + 2 * budget_s * (3 if compile else 1) + 30
    if proc.poll() is None:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    return rows


def run_benchmarks(models: Iterable[str], sizes: Iterable[str], devices: Iterable[str],
                   precisions: Iterable[str], compiles: Iterable[bool], *, repeats: int = 3,
                   budget_s: float = 300.0, threads: int | None = None, prior: Iterable[dict] = (),
                   on_result: Callable[[dict], None] | None = None) -> list[dict]:
    """Every combination, one worker process per (model, device, precision, compile) group.

    ``prior``: result rows of an earlier run; the throughput of the largest measured size of
    the same (model, device, precision, compile) predicts the time of the first size here.
    CUDA cases on a machine without CUDA are recorded as skipped ("CUDA not available").
    """
    best: dict[tuple, tuple[float, float]] = {}
    for r in prior:
        if r.get("status") == "ok":
            key = (r["model"], r["device"], r["precision"], r["compile"])
            mp = r["height"] * r["width"] / 1e6
            if key not in best or mp > best[key][0]:
                best[key] = (mp, r["mp_per_s"])
    sizes = sorted(sizes, key=lambda s: SIZES[s].megapixels)
    rows: list[dict] = []
    for model in models:
        for device in devices:
            for precision in precisions:
                for comp in compiles:
                    if device.startswith("cuda") and not torch.cuda.is_available():
                        new = [skipped_row(model, s, device, precision, comp, "CUDA not available on this machine")
                               for s in sizes]
                        for r in new:
                            if on_result:
                                on_result(r)
                    else:
                        new = run_group(model, list(sizes), device, precision, comp, repeats=repeats,
                                        budget_s=budget_s, threads=threads, on_result=on_result,
                                        prior_mps=best.get((model, device, precision, comp), (0, None))[1])
                    rows += new
    return rows
