"""``deblurkit bench`` machinery (no timing is asserted): one measured case, budget-based skipping,
CUDA cases recorded as skipped without CUDA, JSON round trip and the Markdown table."""
from __future__ import annotations

import json

import pytest
import torch

from deblurkit.bench import SIZES, Size, measure, read_results, run_benchmarks, to_markdown, write_json
from deblurkit.bench import worker


@pytest.fixture
def tiny_sizes(monkeypatch):
    monkeypatch.setitem(SIZES, "t32", Size("t32", 32, 32))
    monkeypatch.setitem(SIZES, "t64", Size("t64", 64, 64, tile=32))
    return SIZES


def test_measure_reports_consistent_numbers(tiny_sizes):
    row = measure("mimo_unet", SIZES["t64"], "cpu", "fp32", repeats=2, budget_s=60)
    assert row["status"] == "ok" and row["repeats"] == 2 and row["tile"] == 32
    assert row["mp_per_s"] == pytest.approx(64 * 64 / 1e6 / row["latency_s"])
    assert row["peak_kind"] == "process_peak_rss" and row["peak_mb"] > 50  # torch alone is larger
    assert row["first_s"] is None  # tiled: the warm-up ran one tile, not the image


def test_worker_skips_cases_predicted_over_budget(tiny_sizes, capsys):
    spec = {"model": "mimo_unet", "sizes": ["t32", "t64"], "device": "cpu", "precision": "fp32",
            "compile": False, "repeats": 3, "budget_s": 1e-9, "threads": None}
    worker.main([json.dumps(spec)])
    rows = [json.loads(line[len("BENCH "):]) for line in capsys.readouterr().out.splitlines()
            if line.startswith("BENCH ")]
    assert [r["size"] for r in rows] == ["t32", "t64"]
    assert rows[0]["status"] == "ok" and rows[0]["repeats"] == 1  # over budget after one call
    assert rows[1]["status"] == "skipped" and "over the" in rows[1]["reason"]


def test_worker_records_model_errors(tiny_sizes, capsys):
    spec = {"model": "mimo_unet", "sizes": ["t32"], "device": "cpu", "precision": "fp16",
            "compile": False, "repeats": 1, "budget_s": 10, "threads": None}
    worker.main([json.dumps(spec)])
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1][len("BENCH "):])
    assert row["status"] == "error" and "precision" in row["reason"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA path")
def test_cuda_cases_are_skipped_without_cuda_and_rendered(tiny_sizes, tmp_path):
    rows = run_benchmarks(["mimo_unet"], ["t32"], ["cuda"], ["fp32", "bf16"], [False, True])
    assert len(rows) == 4 and all(r["status"] == "skipped" and "CUDA" in r["reason"] for r in rows)
    ok = measure("mimo_unet", SIZES["t32"], repeats=1)
    meta = {"cpu": "test cpu", "cpu_count": 2, "threads": 1, "gpu": None, "torch": torch.__version__,
            "date": "today", "loadavg_1min_at_start": 1.0}
    path = write_json(tmp_path / "r.json", meta, rows + [ok])
    md = to_markdown([read_results(path)], "intro")
    table = [line for line in md.splitlines() if line.startswith("| mimo_unet")]
    assert len(table) == 5
    assert sum("skipped: CUDA not available" in line for line in table) == 4
    assert any(f"{ok['latency_s']:.3g}" in line and "| cpu | fp32 | no |" in line for line in table)


def test_read_results_names_a_bad_file(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    with pytest.raises(ValueError, match="x.json"):
        read_results(bad)


def test_prior_throughput_predicts_the_first_size(tiny_sizes, capsys):
    spec = {"model": "mimo_unet", "sizes": ["t32"], "device": "cpu", "precision": "fp32", "compile": False,
            "repeats": 1, "budget_s": 1.0, "threads": None, "prior_mps": 1e-6}
    worker.main([json.dumps(spec)])
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1][len("BENCH "):])
    assert row["status"] == "skipped" and "predicted 1024 s" in row["reason"]
