"""``deblurkit bench``: latency, throughput and peak memory of the registered image models."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from . import app
from . import fail as _fail

_INTRO = """\
Latency, throughput and peak memory of every registered image model (randomly initialised
networks at their official sizes; speed and memory do not depend on the weights), measured by
`deblurkit bench` (`src/deblurkit/bench/`). Latency: median seconds of `Deblurrer.deblur_tensor`
on a random image (padding, tiling and blending included, no file I/O) after a warm-up call.
MP/s: input megapixels per second. Peak memory: on the CPU the process's peak resident set size
during the timed calls (Python, torch and the weights included); on CUDA the peak of
`torch.cuda.max_memory_allocated`. 12 MP runs in 512-pixel tiles with 32-pixel overlaps. Cases
over the per-case time budget are listed as skipped with the reason."""


def _split(values: List[str]) -> list[str]:
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


@app.command()
def bench(
    model: List[str] = typer.Option([], "--model", "-m", help="Model(s) to run (repeatable or comma-separated); default: every registered image model."),
    size: List[str] = typer.Option([], "--size", help="Sizes: 256, 720p, 12mp (tiled), 24mp (tiled); default 256, 720p and 12mp."),
    device: List[str] = typer.Option([], "--device", help="cpu and/or cuda (CUDA cases are recorded as skipped without CUDA); default both, or cpu alone with one --size."),
    precision: List[str] = typer.Option([], "--precision", help="fp32 and/or bf16 (autocast); default both, or fp32 alone with one --size."),
    compile_: Optional[str] = typer.Option(None, "--compile", help="off, on or both (torch.compile); default both, or off with one --size."),
    repeats: int = typer.Option(3, help="Timed calls per case (fewer when over the budget)."),
    budget: float = typer.Option(300.0, "--budget", help="Time budget per case in seconds; longer cases are skipped."),
    threads: Optional[int] = typer.Option(None, help="torch CPU threads (default: torch's)."),
    json_out: Path = typer.Option(Path("benchmarks/results/bench.json"), "--json", help="Results file (JSON)."),
    markdown: Optional[Path] = typer.Option(None, "--markdown", help="Also write a Markdown table (e.g. docs/benchmarks.md)."),
    from_json: List[Path] = typer.Option([], "--from-json", help="Only render --markdown from these result files (no measuring)."),
    prior: List[Path] = typer.Option([], "--prior", help="Earlier result files: their throughput predicts the time of the first size (budget skipping)."),
    note: Optional[Path] = typer.Option(None, "--note", help="Markdown file whose text goes under the introduction (e.g. which subset was run)."),
):
    """Benchmark the image models: latency, MP/s and peak memory per size, device, precision and compile.

    Without options: the full table (three sizes x cpu/cuda x fp32/bf16 x compile off/on). With one
    --size: one variant (cpu, fp32, compile off) unless --device / --precision / --compile ask for more."""
    from ..bench import SIZES, image_models, machine_info, read_results, run_benchmarks, to_markdown, write_json
    from ..io.atomic import write_text_atomic

    intro = _INTRO
    if note is not None:
        try:
            intro += "\n\n" + note.read_text(encoding="utf-8").strip()
        except OSError as e:
            _fail(f"{note}: cannot read --note ({e.strerror or e})")
    if from_json:
        if markdown is None:
            _fail("--from-json needs --markdown")
        try:
            results = [read_results(p) for p in from_json]
        except ValueError as e:
            _fail(str(e))
        write_text_atomic(markdown, to_markdown(results, intro))
        typer.echo(f"wrote {markdown}")
        return
    sizes = _split(size) or ["256", "720p", "12mp"]
    one = len(_split(size)) == 1  # one size asked for: one variant unless more are asked for
    devices = _split(device) or (["cpu"] if one else ["cpu", "cuda"])
    precisions = _split(precision) or (["fp32"] if one else ["fp32", "bf16"])
    compile_ = compile_ or ("off" if one else "both")
    for s in sizes:
        if s not in SIZES:
            _fail(f"--size {s!r}: unknown; choose from {', '.join(SIZES)}")
    for d in devices:
        if d != "cpu" and not d.startswith("cuda"):
            _fail(f"--device {d!r}: use cpu or cuda[:i]")
    for p in precisions:
        if p not in ("fp32", "bf16"):
            _fail(f"--precision {p!r}: use fp32 or bf16")
    compiles = {"off": [False], "on": [True], "both": [False, True]}.get(compile_)
    if compiles is None:
        _fail(f"--compile {compile_!r}: use off, on or both")
    names, excluded = image_models()
    chosen = _split(model) or names
    for m in chosen:
        if m not in names:
            _fail(f"--model {m!r} is not a registered image model: "
                  + (excluded.get(m) or f"unknown; image models: {', '.join(names)}"))
    for m, why in excluded.items():
        if not model:
            typer.echo(f"not benchmarked: {m}: {why}", err=True)

    meta = machine_info(threads)
    meta["excluded_models"] = excluded
    done: list[dict] = []

    def show(r: dict) -> None:
        done.append(r)
        write_json(json_out, meta, done)  # partial results survive an interrupted run
        what = f"{r['model']} {r['size']} {r['device']} {r['precision']} compile={r['compile']}"
        if r["status"] == "ok":
            typer.echo(f"{what}: {r['latency_s']:.3g} s, {r['mp_per_s']:.3g} MP/s, peak {r['peak_mb']:.0f} MiB")
        else:
            typer.echo(f"{what}: {r['status']} ({r.get('reason', '')})")

    try:
        prior_rows = [r for p in prior for r in read_results(p)["cases"]]
    except ValueError as e:
        _fail(str(e))
    rows = run_benchmarks(chosen, sizes, devices, precisions, compiles, repeats=repeats, budget_s=budget,
                          threads=threads, prior=prior_rows, on_result=show)
    write_json(json_out, meta, rows)
    typer.echo(f"wrote {json_out}")
    if markdown is not None:
        write_text_atomic(markdown, to_markdown([read_results(json_out)], intro))
        typer.echo(f"wrote {markdown}")
