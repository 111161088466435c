"""Speed and memory benchmarks of the registered image models (``deblurkit bench``).

    >>> from deblurkit.bench import image_models, run_benchmarks
    >>> names, excluded = image_models()
    >>> rows = run_benchmarks(["mimo_unet"], ["256"], ["cpu"], ["fp32"], [False], budget_s=60)

See :mod:`.cases` for what is measured, :mod:`.runner` for budgets and subprocesses,
:mod:`.report` for the JSON / Markdown output, and ``docs/benchmarks.md`` for results.
"""
from .cases import SIZES, Size, cpu_name, image_models, measure, peak_rss_mb, reset_peak_rss
from .report import machine_info, read_results, to_markdown, write_json
from .runner import run_benchmarks, skipped_row

__all__ = ["SIZES", "Size", "cpu_name", "image_models", "measure", "peak_rss_mb", "reset_peak_rss",
           "machine_info", "read_results", "to_markdown", "write_json", "run_benchmarks", "skipped_row"]
