"""What ``deblurkit bench`` measures: the image models, the image sizes, and one measurement.

A *case* is (model, size, device, precision, compile). :func:`measure` runs one case in the
current process and returns a row of the results table:

* ``latency_s``: median wall-clock seconds of :meth:`deblurkit.inference.Deblurrer.deblur_tensor`
  on a random (1, 3, H, W) image (padding, tiling and blending included; no file I/O), after a
  warm-up call; ``first_s`` is the warm-up call when it ran the whole image (with
  ``torch.compile`` it includes compiling).
* ``mp_per_s``: throughput, ``H * W / 1e6 / latency_s`` (input megapixels per second).
* ``peak_mb``: on CUDA the peak of ``torch.cuda.max_memory_allocated`` during the timed calls; on
  the CPU the peak resident set size of the process during the timed calls (Linux ``VmHWM`` after
  resetting it through ``/proc/self/clear_refs``; it includes the Python interpreter, torch and
  the weights, ``rss_before_mb``), in MiB.

Networks are randomly initialised (``allow_random``): speed and memory do not depend on the
weights' values.
"""
from __future__ import annotations

import os
import statistics
import time
import warnings
from dataclasses import dataclass

import torch

__all__ = ["SIZES", "Size", "image_models", "measure", "peak_rss_mb", "reset_peak_rss", "cpu_name"]


@dataclass(frozen=True)
class Size:
    """A benchmark image size; ``tile`` is the maximum tile side (``None``: one pass)."""

    name: str
    height: int
    width: int
    tile: int | None = None

    @property
    def megapixels(self) -> float:
        return self.height * self.width / 1e6


#: The sizes of the issue: a training crop, a 720p video frame, a 12-megapixel photo (4:3,
#: 512-pixel tiles with 32-pixel overlaps) and a 24-megapixel photo (3:2, same tiling).
SIZES: dict[str, Size] = {
    "256": Size("256", 256, 256),
    "720p": Size("720p", 720, 1280),
    "12mp": Size("12mp", 3000, 4000, tile=512),
    "24mp": Size("24mp", 4000, 6000, tile=512),
}


def image_models() -> tuple[list[str], dict[str, str]]:
    """Registered networks that map one RGB image to a restored RGB image of the same size.

    Returns:
        ``(names, excluded)``: the image models in registry order, and ``{name: reason}`` for the
        others (networks taking events, image pairs or codes; encoders whose output is a
        degradation code). Decided from the descriptors' ``input_kinds`` and, for single-RGB
        networks, a (1, 3, S, S) probe forward of the official build (S the size multiple, at
        least 32): the primary output must have the input's shape.
    """
    from ..models import build, get_descriptor, list_models

    names, excluded = [], {}
    for name in list_models():
        d = get_descriptor(name)
        kinds = tuple(d.input_kinds)
        if kinds != ("rgb",):
            if "voxel_grid" in kinds:
                excluded[name] = f"needs events ({', '.join(kinds)}), not a single RGB image"
            else:
                excluded[name] = f"takes {', '.join(kinds)}, not a single RGB image"
            continue
        s = max(32, d.size_multiple)
        with torch.inference_mode():
            try:
                raw = build(name).eval()(torch.rand(1, 3, s, s))
            except Exception as e:  # noqa: BLE001 - reported as the reason
                excluded[name] = f"probe forward failed: {type(e).__name__}: {e}"
                continue
            try:
                out = d.primary_output(raw)
            except TypeError as e:  # e.g. an encoder: "... returns a degradation code, ..."
                excluded[name] = str(e)
                continue
        if out.shape != (1, 3, s, s):
            excluded[name] = f"outputs {tuple(out.shape)} for a (1, 3, {s}, {s}) image, not an image"
            continue
        names.append(name)
    return names, excluded


def reset_peak_rss() -> bool:
    """Reset the process's peak RSS (Linux ``/proc/self/clear_refs``); False where impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def status_kb(field: str, pid: int | str = "self") -> float | None:
    """A ``/proc/<pid>/status`` field in kB (``VmRSS``, ``VmHWM``: peak resident set), or None
    where /proc is unavailable (not Linux) or the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_mb() -> float:
    """Peak RSS of this process in MiB since the last :func:`reset_peak_rss` (or its start)."""
    kb = status_kb("VmHWM")
    if kb is None:
        import resource
        import sys

        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform == "darwin" else 1)
    return kb / 1024


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``) and torch's CPU capability (e.g. AVX512)."""
    import platform

    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cap = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "")()
    return f"{name} ({cap})" if cap else name


def measure(model: str, size: Size, device: str = "cpu", precision: str = "fp32", compile: bool = False,
            repeats: int = 3, budget_s: float = 300.0, seed: int = 0) -> dict:
    """Time one case in this process; returns its results row (see the module docstring).

    ``repeats`` timed calls at most, fewer when the warm-up shows they would exceed
    ``budget_s`` (at least one). For tiled sizes the warm-up runs one tile-sized image instead
    of the whole image (and without ``compile`` a crop of at most 512 pixels for whole images).

    Raises:
        whatever the model raises (the caller records it).
    """
    from ..inference import Deblurrer

    dev = torch.device(device)
    overlap = min(32, size.tile // 4) if size.tile else 32
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*RANDOMLY INITIALISED.*")  # intended here
        d = Deblurrer(model, device=device, precision=precision, tile=size.tile, tile_overlap=overlap,
                      progress=False, allow_random=True)
    if compile:
        d.net = torch.compile(d.net)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, size.height, size.width, generator=g)
    # warm-up: the whole image under torch.compile (a new shape would recompile in the timed
    # calls), else one crop of at most a tile / 512 pixels (allocator, kernels, lazy init)
    side = size.tile or 512
    warm = x if compile and size.tile is None else x[..., :side, :side]
    t0 = time.perf_counter()
    d.deblur_tensor(warm)
    _sync(dev)
    first = time.perf_counter() - t0
    rss_before = status_kb("VmRSS")
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    else:
        reset_peak_rss()
    load0 = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    times: list[float] = []
    while len(times) < max(1, repeats):
        t0 = time.perf_counter()
        d.deblur_tensor(x)
        _sync(dev)
        times.append(time.perf_counter() - t0)
        if sum(times) + times[-1] > budget_s:
            break
    latency = statistics.median(times)
    peak = torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else peak_rss_mb()
    return {
        "model": model, "size": size.name, "height": size.height, "width": size.width,
        "tile": size.tile, "tile_overlap": overlap if size.tile else None, "device": device, "precision": precision, "compile": compile,
        "status": "ok", "latency_s": latency, "mp_per_s": size.megapixels / latency,
        "first_s": first if warm is x else None, "repeats": len(times),
        "peak_mb": peak, "peak_kind": "cuda_max_allocated" if dev.type == "cuda" else "process_peak_rss",
        "rss_before_mb": rss_before / 1024 if rss_before and dev.type != "cuda" else None,
        "threads": torch.get_num_threads(), "loadavg_1min": load0,
    }


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
