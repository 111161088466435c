"""GoPro layouts (official input/target, original GOPRO_Large) and the 512x512 sub-image
preparation of MSDI-Net's gopro.py (as a function and as `deblurkit prepare-gopro`)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from deblurkit.cli import app
from deblurkit.data import DATASETS, LAYOUTS, open_layout
from deblurkit.data.gopro import (
    GoProLargeDataset,
    GoProOfficialDataset,
    extract_subimages,
    prepare_gopro_crops,
    subimage_grid,
)
from deblurkit.engine.trainer import build_dataset


def _photo(shared_data, h, w, top=0, left=0):
    img = cv2.imread(str(shared_data / "photos" / "classic" / "astronaut.png"), cv2.IMREAD_COLOR)
    return np.ascontiguousarray(img[top:top + h, left:left + w])


def make_official(root, shared_data, split="test", n=2, h=40, w=56):
    """<root>/<split>/{input,target}: crops of a real photo, the input box-blurred."""
    for i in range(n):
        sharp = _photo(shared_data, h, w, top=30 * i, left=20 * i)
        (root / split / "input").mkdir(parents=True, exist_ok=True)
        (root / split / "target").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / split / "target" / f"GOPR{i:04d}_{i:06d}.png"), sharp)
        cv2.imwrite(str(root / split / "input" / f"GOPR{i:04d}_{i:06d}.png"), cv2.blur(sharp, (7, 7)))
    return root


def make_large(root, shared_data, split="train", scenes=("GOPR0372_07_00", "GOPR0374_11_00"), h=40, w=56):
    for s, scene in enumerate(scenes):
        sharp = _photo(shared_data, h, w, top=50 * s)
        for sub, img in (("sharp", sharp), ("blur", cv2.blur(sharp, (5, 5))), ("blur_gamma", cv2.blur(sharp, (9, 9)))):
            (root / split / scene / sub).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / split / scene / sub / "000047.png"), img)
    return root


def _rgb01(bgr):
    return torch.from_numpy(bgr[..., ::-1].copy()).permute(2, 0, 1).float() / 255.0


def test_official_layout_items_and_registration(tmp_path, shared_data):
    root = make_official(tmp_path / "GoPro", shared_data)
    assert "gopro_official" in LAYOUTS and "gopro_large" in LAYOUTS
    assert DATASETS["gopro_official"] is GoProOfficialDataset and DATASETS["gopro_large"] is GoProLargeDataset
    ds = open_layout("gopro_official", root, "test")
    assert len(ds) == 2
    it = ds[1]
    assert it["name"] == "GOPR0001_000001.png"
    want_gt = _rgb01(cv2.imread(str(root / "test" / "target" / it["name"])))
    want_lq = _rgb01(cv2.imread(str(root / "test" / "input" / it["name"])))
    assert torch.equal(it["gt"], want_gt) and torch.equal(it["lq"], want_lq)

    crops = build_dataset({"type": "gopro_official", "root": str(root), "split": "test", "patch_size": 16,
                           "seed": 1})
    a = crops[0]
    assert a["lq"].shape == (3, 16, 16) and torch.equal(a["lq"], crops[0]["lq"])  # reproducible
    full = ds[0]  # the crop is aligned: the same window of both full images
    hits = [(t, l) for t in range(40 - 15) for l in range(56 - 15)
            if torch.equal(full["gt"][:, t:t + 16, l:l + 16], a["gt"])
            and torch.equal(full["lq"][:, t:t + 16, l:l + 16], a["lq"])]
    assert len(hits) == 1


def test_official_layout_errors(tmp_path, shared_data):
    root = make_official(tmp_path / "GoPro", shared_data)
    with pytest.raises(FileNotFoundError, match="input,target"):
        GoProOfficialDataset(root, "train")
    (root / "test" / "target" / "GOPR0000_000000.png").unlink()
    with pytest.raises(ValueError, match="only in input/"):
        GoProOfficialDataset(root, "test")


def test_gopro_large_layout(tmp_path, shared_data):
    root = make_large(tmp_path / "GOPRO_Large", shared_data)
    ds = open_layout("gopro_large", root, "train")
    assert [ds[i]["name"] for i in range(len(ds))] == ["GOPR0372_07_00/000047.png", "GOPR0374_11_00/000047.png"]
    scene = root / "train" / "GOPR0374_11_00"
    assert torch.equal(ds[1]["lq"], _rgb01(cv2.imread(str(scene / "blur" / "000047.png"))))
    gamma = GoProLargeDataset(root, "train", blur="blur_gamma")
    assert torch.equal(gamma[1]["lq"], _rgb01(cv2.imread(str(scene / "blur_gamma" / "000047.png"))))
    assert torch.equal(gamma[1]["gt"], ds[1]["gt"])
    with pytest.raises(ValueError, match="blur_gamma"):
        GoProLargeDataset(root, "train", blur="sharp")


def test_subimage_grid_follows_gopro_py():
    # a 720x1280 GoPro frame: rows 0 and 208 (flush with the bottom), columns 0..768 (768 + 512 = 1280)
    assert subimage_grid(720) == [0, 208]
    assert subimage_grid(1280) == [0, 256, 512, 768]
    assert subimage_grid(512) == [0]
    assert subimage_grid(600, thresh_size=100) == [0]  # 88 px left <= thresh_size: no extra window
    with pytest.raises(ValueError, match="smaller than crop_size"):
        subimage_grid(300)


def test_extract_subimages_copies_pixels(tmp_path, shared_data):
    img = _photo(shared_data, 20, 30)
    src = tmp_path / "frame.png"
    cv2.imwrite(str(src), img)
    out = extract_subimages(src, tmp_path / "crops", crop_size=12, step=8)
    # rows 0, 8 (+ none: 20 - 20 = 0 left); columns 0, 8, 16 and 18 (flush: 30 - 28 = 2 > 0)
    starts = [(t, l) for t in (0, 8) for l in (0, 8, 16, 18)]
    assert [p.name for p in out] == [f"frame_s{k:03d}.png" for k in range(1, 9)]
    for p, (t, l) in zip(out, starts):
        assert np.array_equal(cv2.imread(str(p), cv2.IMREAD_UNCHANGED), img[t:t + 12, l:l + 12])


def test_prepare_command_writes_aligned_crops(tmp_path, shared_data):
    root = make_official(tmp_path / "GoPro", shared_data, split="train", h=40, w=56)
    runner = CliRunner()
    r = runner.invoke(app, ["prepare-gopro", "--data", str(root), "--crop-size", "32", "--step", "16"])
    assert r.exit_code == 0, r.output
    assert "wrote 12 sub-image pairs from 2 pairs" in r.output  # rows 0, 8; columns 0, 16, 24
    crops = GoProOfficialDataset(root, "train", lq_dir="blur_crops", gt_dir="sharp_crops")
    assert len(crops) == 12 and crops.pairs[0][0] == "GOPR0000_000000_s001.png"
    src = cv2.imread(str(root / "train" / "input" / "GOPR0001_000001.png"))
    assert torch.equal(crops[11]["lq"], _rgb01(src[8:40, 24:56]))  # s006: row 8, column 24
    # nothing is overwritten
    r = runner.invoke(app, ["prepare-gopro", "--data", str(root), "--crop-size", "32", "--step", "16"])
    assert r.exit_code == 2 and "already holds files" in r.output

    large = make_large(tmp_path / "GOPRO_Large", shared_data)
    info = prepare_gopro_crops(large, tmp_path / "large_crops", layout="gopro_large", crop_size=32, step=32)
    assert info["pairs"] == 2 and info["crops"] == 8  # 2 x 2 windows per pair
    assert sorted(p.name for p in (tmp_path / "large_crops" / "sharp_crops").iterdir())[0] == \
        "GOPR0372_07_00_000047_s001.png"
    with pytest.raises(ValueError, match="smaller than crop_size"):
        prepare_gopro_crops(large, tmp_path / "big", layout="gopro_large", crop_size=64)
