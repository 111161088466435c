"""Results of ``deblurkit bench`` as JSON and as a Markdown page (``docs/benchmarks.md``)."""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import torch

from ..io.atomic import write_text_atomic
from .cases import SIZES, cpu_name

__all__ = ["machine_info", "write_json", "read_results", "to_markdown"]


def machine_info(threads: int | None) -> dict:
    """Where the numbers come from: CPU, GPU (if any), torch version, threads, date, load."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu_name(), "cpu_count": os.cpu_count(), "threads": threads or torch.get_num_threads(),
        "gpu": gpu, "torch": torch.__version__, "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "loadavg_1min_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def write_json(path: str | Path, meta: dict, rows: list[dict]) -> Path:
    """Write ``{"machine": meta, "cases": rows}`` atomically."""
    path = Path(path)
    write_text_atomic(path, json.dumps({"machine": meta, "cases": rows}, indent=1) + "\n")
    return path


def read_results(path: str | Path) -> dict:
    """Read a results file written by :func:`write_json`.

    Raises:
        ValueError: not such a file (naming it).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable benchmark result ({e})") from None
    if not isinstance(data, dict) or "cases" not in data or "machine" not in data:
        raise ValueError(f"{path}: not a benchmark result (expected keys 'machine' and 'cases')")
    return data


def _fmt(v, spec: str) -> str:
    return "" if v is None else format(v, spec)


def to_markdown(results: list[dict], intro: str = "") -> str:
    """One table per machine (result files of the same CPU / GPU / thread count are merged):
    model, size, precision, compile, latency, MP/s, peak memory, status (skipped and failed
    cases keep their reason)."""
    lines = ["# Benchmarks", ""]
    if intro:
        lines += [intro.strip(), ""]
    merged: dict[tuple, dict] = {}  # result files of one machine become one table
    for res in results:
        key = (res["machine"]["cpu"], res["machine"].get("gpu"), res["machine"]["threads"])
        if key not in merged:
            merged[key] = {"machine": dict(res["machine"]), "cases": []}
        else:
            m = merged[key]["machine"]
            m["date"] = f"{m['date']} to {res['machine']['date']}" if " to " not in m["date"] else \
                f"{m['date'].split(' to ')[0]} to {res['machine']['date']}"
        merged[key]["cases"] += res["cases"]
    for res in merged.values():
        m = res["machine"]
        dev = sorted({r["device"] for r in res["cases"]})
        lines += [f"## {', '.join(dev)}: {m.get('gpu') or m['cpu']}", "",
                  f"CPU {m['cpu']}, {m['threads']} thread(s) of {m['cpu_count']} cores; GPU: {m.get('gpu') or 'none'}; "
                  f"torch {m['torch']}; {m['date']}; the status column gives the 1-min load average of the machine "
                  f"during each case.",
                  "", "| model | size | device | precision | compile | latency (s) | MP/s | peak memory (MiB) | status |",
                  "|---|---|---|---|---|---:|---:|---:|---|"]
        order = {k: i for i, k in enumerate(SIZES)}
        for r in sorted(res["cases"], key=lambda r: (r["model"], r["device"], order.get(r["size"], 9),
                                                       r["precision"], r["compile"])):
            size = f"{r['size']} ({r['width']}x{r['height']}{', tiles ' + str(r['tile']) if r.get('tile') else ''})"
            if r["status"] == "ok":
                status = f"ok ({r['repeats']} run{'s' if r['repeats'] > 1 else ''}, load {_fmt(r.get('loadavg_1min'), '.1f')})"
                peak = _fmt(r["peak_mb"], ".0f") + (" (GPU alloc.)" if r["peak_kind"] == "cuda_max_allocated" else " (RSS)")
                lines.append(f"| {r['model']} | {size} | {r['device']} | {r['precision']} | {'yes' if r['compile'] else 'no'} | "
                             f"{r['latency_s']:.3g} | {r['mp_per_s']:.3g} | {peak} | {status} |")
            else:
                lines.append(f"| {r['model']} | {size} | {r['device']} | {r['precision']} | {'yes' if r['compile'] else 'no'} | "
                             f" |  |  | {r['status']}: {r.get('reason', '')} |")
        lines.append("")
    return "\n".join(lines)
