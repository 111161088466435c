#!/usr/bin/env python
"""Stack the ``<name>_compare.png`` pictures written by ``make demo`` into the README's montage.

    make demo                                           # out/demo/*_compare.png (before | after + kernel inset)
    python docs/images/make_demo_montage.py out/demo docs/images/demo_classical_real_blur.png

Each row is one photo's comparison (input | classical result with the estimated kernel in its
bottom-right corner), scaled to a common width; rows are separated by a white band; colours are
posterised to 6 bits per channel so that the PNG stays small. The notes
printed by ``deblurkit deblur`` (kernel size, or why the estimate fell back) are not drawn; the
README states them.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from deblurkit.io import read_image

WIDTH = 1000
GAP = 8
ORDER = ("text_motion", "licenseplate_motion", "clock_motion", "text_defocus")


def main(src: Path, dst: Path) -> None:
    rows = []
    for name in ORDER:
        path = src / f"{name}_compare.png"
        if not path.is_file():
            raise SystemExit(f"missing {path}: run `make demo` first")
        img = read_image(path)[None]
        h = round(img.shape[-2] * WIDTH / img.shape[-1])
        rows.append(F.interpolate(img, size=(h, WIDTH), mode="area")[0])
        rows.append(torch.ones(3, GAP, WIDTH))
    from PIL import Image, ImageOps

    montage = (torch.cat(rows[:-1], dim=1).clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    ImageOps.posterize(Image.fromarray(montage), 6).save(dst, optimize=True)
    print(f"wrote {dst} ({dst.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
