"""Blur2Blur on an unknown blur domain built from real photos (docs/models/blur2blur.md).

Writes a Blur2Blur unaligned layout (deblurkit.data.unaligned) from the real photographs of
``../shared/data/photos``:

* unknown domain = the held-out wallpapers ``mate_*`` (never seen by the default model), each
  downscaled by 2 (``cv2.INTER_AREA``), blurred with DEFOCUS (uniform disk, radius 3-5 px; the
  default model was trained on camera-shake only) + Gaussian noise sigma 0.01, 8-bit.
  The first 8 photos (sorted) give ``trainA`` (blurry crops) and ``trainB`` (other, sharp crops);
  the last 4 give ``testA``/``testB`` (blurry/sharp pairs, the most textured of 8 candidate crops).
* ``knownrefA``/``knownrefB``: the test crops blurred with the 8 Levin kernels (known blur, noise
  0.01) instead, to score the deblurrer on the known domain (``--split knownref``).
* known domain = the default model's training blur (configs/default_mimo_unet_synthphotos.yaml:
  camera-shake trajectories + Levin kernels, noise sigma in [0, 0.02], 8-bit) on the other photos
  (``SyntheticBlurDataset``): ``trainC`` (blurry) / ``trainD`` (sharp) aligned pairs.

    python benchmarks/blur2blur_unknown_domain.py data/b2b_defocus
    python benchmarks/blur2blur_unknown_domain.py data/b2b_defocus --figure CONVERTER OUT.png

``--figure`` writes, for the first test crops, rows of: blurry (unknown) | default model |
converted (known blur) | default model after conversion | sharp.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import torch

from deblurkit.data import SyntheticBlurDataset
from deblurkit.io import read_image, save_image
from deblurkit.synth.blur import blur
from deblurkit.synth.kernels import disk_kernel, levin_kernels
from deblurkit.synth.noise import quantize_8bit

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def downscale(img: torch.Tensor, factor: float = 0.5) -> torch.Tensor:
    arr = img.permute(1, 2, 0).numpy()
    h, w = arr.shape[:2]
    out = cv2.resize(arr, (int(w * factor), int(h * factor)), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(out).permute(2, 0, 1).contiguous()


def defocus(img: torch.Tensor, radius: float, g: torch.Generator, sigma: float = 0.01) -> torch.Tensor:
    y = blur(img[None], disk_kernel(radius), "reflect")[0]
    y = y + sigma * torch.randn(y.shape, generator=g)
    return quantize_8bit(y.clamp(0, 1))


def texture(crop: torch.Tensor) -> float:
    gy, gx = crop[:, 1:, :-1] - crop[:, :-1, :-1], crop[:, :-1, 1:] - crop[:, :-1, :-1]
    return float((gx ** 2 + gy ** 2).mean())


def crops(img: torch.Tensor, n: int, size: int, g: torch.Generator) -> list[tuple[int, int]]:
    h, w = img.shape[-2:]
    return [(int(torch.randint(h - size + 1, (), generator=g)), int(torch.randint(w - size + 1, (), generator=g)))
            for _ in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--size", type=int, default=256, help="crop side (pixels)")
    ap.add_argument("--per-photo", type=int, default=16, help="trainA and trainB crops per training photo")
    ap.add_argument("--known", type=int, default=192, help="known-domain pairs")
    ap.add_argument("--test-per-photo", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--figure", nargs=2, metavar=("CONVERTER", "OUT_PNG"), help="write the comparison picture")
    ap.add_argument("--rows", type=int, default=2)
    a = ap.parse_args()
    if a.figure:
        figure(a.out, Path(a.figure[0]), Path(a.figure[1]), a.rows)
        return
    torch.manual_seed(a.seed)
    g = torch.Generator().manual_seed(a.seed)
    mate = sorted((SHARED / "photos" / "wallpaper").glob("mate_*"))
    train, test = mate[:8], mate[8:]
    radii = (3.0, 4.0, 5.0)
    for i, p in enumerate(train):
        img = downscale(read_image(p))
        for j, (t, l) in enumerate(crops(img, a.per_photo, a.size, g)):
            r = radii[(i + j) % 3]
            blurry = defocus(img[:, max(0, t - 8):t + a.size + 8, max(0, l - 8):l + a.size + 8], r, g)
            tt, ll = t - max(0, t - 8), l - max(0, l - 8)
            save_image(a.out / "trainA" / f"{p.stem}_{j:02d}.png", blurry[:, tt:tt + a.size, ll:ll + a.size])
        for j, (t, l) in enumerate(crops(img, a.per_photo, a.size, g)):
            save_image(a.out / "trainB" / f"{p.stem}_{j:02d}.png", img[:, t:t + a.size, l:l + a.size])
    for i, p in enumerate(test):
        img = downscale(read_image(p))
        cand = sorted(crops(img, 8 * a.test_per_photo, a.size, g),
                      key=lambda tl: -texture(img[:, tl[0]:tl[0] + a.size, tl[1]:tl[1] + a.size]))
        for j, (t, l) in enumerate(cand[: a.test_per_photo]):
            r = radii[(i + j) % 3]
            blurry = defocus(img, r, g)
            save_image(a.out / "testA" / f"{p.stem}_{j}.png", blurry[:, t:t + a.size, l:l + a.size])
            save_image(a.out / "testB" / f"{p.stem}_{j}.png", img[:, t:t + a.size, l:l + a.size])
    known = SyntheticBlurDataset(
        [SHARED / "photos" / "wallpaper", SHARED / "photos" / "classic", SHARED / "photos" / "opencv"],
        patch_size=a.size, length=a.known, kernel_sources={"trajectory": 0.5, "levin": 0.5},
        levin_path=SHARED / "kernels" / "levin09_kernels.npz", kernel_size=31, noise_sigma=(0.0, 0.02),
        scale=(0.5, 1.0), max_side=1280, exclude=("mate_*",), seed=a.seed + 1)
    for i in range(len(known)):
        it = known[i]
        save_image(a.out / "trainC" / f"k{i:04d}.png", it["lq"])
        save_image(a.out / "trainD" / f"k{i:04d}.png", it["gt"])
    # known-domain reference: the same test crops blurred with the Levin kernels (split "knownref")
    levin = list(levin_kernels(SHARED / "kernels" / "levin09_kernels.npz").values())
    gk = torch.Generator().manual_seed(0)
    for i, p in enumerate(sorted((a.out / "testB").iterdir())):
        x = read_image(p)
        y = blur(x[None], levin[i % 8].float(), "reflect")[0]
        save_image(a.out / "knownrefA" / p.name, quantize_8bit(y + 0.01 * torch.randn(y.shape, generator=gk)))
        save_image(a.out / "knownrefB" / p.name, x)
    n = {d: len(list((a.out / d).iterdir())) for d in ("trainA", "trainB", "trainC", "trainD", "testA", "testB",
                                                        "knownrefA")}
    print(f"wrote {a.out}: {n}")


def figure(root: Path, converter: Path, out: Path, rows: int, crop: int = 128) -> None:
    from deblurkit.inference import Deblurrer
    from deblurkit.inference.blur2blur import Blur2BlurDeblurrer

    b2b = Blur2BlurDeblurrer(converter, "default", progress=False)
    default = Deblurrer(progress=False)
    names = sorted(p.name for p in (root / "testA").iterdir())
    pick = [names[i * len(names) // rows] for i in range(rows)]
    lines = []
    for n in pick:
        x, gt = read_image(root / "testA" / n), read_image(root / "testB" / n)
        conv = b2b.convert(x)
        panels = [x, default.deblur_tensor(x), conv, b2b.deblur_tensor(x), gt]
        h, w = x.shape[-2:]
        t, l = (h - crop) // 2, (w - crop) // 2
        panels = [p[:, t:t + crop, l:l + crop] for p in panels]
        sep = torch.ones(3, crop, 4)
        lines.append(torch.cat([t for p in panels for t in (p, sep)][:-1], dim=2))
    hsep = torch.ones(3, 4, lines[0].shape[2])
    save_image(out, torch.cat([t for ln in lines for t in (ln, hsep)][:-1], dim=1))
    print(f"wrote {out} ({', '.join(pick)})")


if __name__ == "__main__":
    main()
