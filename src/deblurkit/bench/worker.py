"""Worker process of :mod:`deblurkit.bench.runner`: ``python -m deblurkit.bench.worker SPEC``.

``SPEC`` is a JSON object ``{"model", "sizes", "device", "precision", "compile", "repeats",
"budget_s", "threads"}`` and optionally ``"prior_mps"`` (throughput measured before, used to
predict the first size's time). One line ``BENCH <json row>`` per size is printed on stdout.
"""
from __future__ import annotations

import json
import sys
import warnings


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    import torch

    from .cases import SIZES, measure
    from .runner import PREFIX, skipped_row

    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    warnings.filterwarnings("ignore", message=".*RANDOMLY INITIALISED.*")
    mps: float | None = spec.get("prior_mps")  # throughput of the previous size (or a prior run)
    budget = float(spec["budget_s"])
    for name in spec["sizes"]:
        size = SIZES[name]
        args = (spec["model"], name, spec["device"], spec["precision"], spec["compile"])
        if mps is not None and size.megapixels / mps > budget:
            row = skipped_row(*args, f"predicted {size.megapixels / mps:.0f} s from {mps:.3g} MP/s at a "
                                     f"smaller size, over the {budget:.0f} s budget per case")
        else:
            try:
                row = measure(spec["model"], size, spec["device"], spec["precision"], spec["compile"],
                              repeats=int(spec["repeats"]), budget_s=budget)
                mps = row["mp_per_s"]
            except Exception as e:  # noqa: BLE001 - recorded in the table
                row = skipped_row(*args, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", "error")
        print(PREFIX + json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
