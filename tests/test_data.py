"""deblurkit.data: the GoPro-layout paired dataset and the on-the-fly synthetic dataset."""
from __future__ import annotations

import shutil

import pytest
import torch
from torch.utils.data import DataLoader

from deblurkit.data import PairedImageDataset, SyntheticBlurDataset
from deblurkit.data.paired import augment_pair, random_aligned_crop
from deblurkit.io.images import read_image, save_image
from deblurkit.synth import build_pairs

CLASSIC = ["astronaut.png", "chelsea.png", "coffee.png"]


def gradient_energy(x: torch.Tensor) -> float:
    return float((x[..., 1:, :] - x[..., :-1, :]).pow(2).mean() + (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean())


@pytest.fixture(scope="module")
def pairs_root(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs")
    photos = [shared_data / "photos" / "classic" / n for n in CLASSIC]
    manifest = build_pairs(photos, root, crops_per_photo=2, crop_size=64, kernels="levin", data_root=shared_data,
                           noise_sigma=0.01, test_patterns=["chelsea"], seed=3)
    return root, manifest


# ------------------------------------------------------------------ paired
def test_paired_dataset_reads_build_pairs_output(pairs_root):
    root, manifest = pairs_root
    train = PairedImageDataset(root, "train")
    test = PairedImageDataset(root, "test")
    assert len(train) == manifest["counts"]["train"] == 4 and len(test) == 2
    expected = sorted(f"{r['scene']}/{r['name']}" for r in manifest["pairs"] if r["split"] == "train")
    assert [train[i]["name"] for i in range(len(train))] == expected
    item = test[1]
    assert item["name"] == "chelsea/000001.png"
    assert item["lq"].shape == item["gt"].shape == (3, 64, 64) and item["lq"].dtype == torch.float32
    assert torch.equal(item["lq"], read_image(root / "test" / "chelsea" / "blur" / "000001.png"))
    assert torch.equal(item["gt"], read_image(root / "test" / "chelsea" / "sharp" / "000001.png"))
    # the blurry image is blurrier than its sharp pair
    assert gradient_energy(item["lq"]) < gradient_energy(item["gt"])


def test_paired_dataset_crops_are_aligned_and_seeded(pairs_root):
    root, _ = pairs_root
    ds = PairedImageDataset(root, "train", patch_size=32, augment=True, seed=5)
    a, b = ds[2], PairedImageDataset(root, "train", patch_size=32, augment=True, seed=5)[2]
    assert a["lq"].shape == (3, 32, 32)
    assert torch.equal(a["lq"], b["lq"]) and torch.equal(a["gt"], b["gt"])
    draws = set()
    for epoch in range(4):
        ds.set_epoch(epoch)
        draws.add(ds[2]["gt"].sum().item())
    assert len(draws) > 1
    # random_aligned_crop / augment_pair take the same window and transform on both images
    g = torch.Generator().manual_seed(0)
    gt = torch.rand(3, 40, 50, generator=g)
    lq = gt + 1.0
    for _ in range(5):
        c_lq, c_gt = random_aligned_crop(lq, gt, 16, g)
        c_lq, c_gt = augment_pair(c_lq, c_gt, g)
        assert torch.equal(c_lq, c_gt + 1.0)
    with pytest.raises(ValueError, match="smaller than patch_size"):
        random_aligned_crop(lq, gt, 64, g, name="x.png")
    loader = DataLoader(ds, batch_size=2)
    batch = next(iter(loader))
    assert batch["lq"].shape == (2, 3, 32, 32) and len(batch["name"]) == 2


def test_paired_dataset_errors_name_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="train"):
        PairedImageDataset(tmp_path, "train")
    scene = tmp_path / "train" / "s1"
    img = torch.rand(3, 8, 8)
    save_image(scene / "blur" / "a.png", img)
    save_image(scene / "blur" / "b.png", img)
    save_image(scene / "sharp" / "a.png", img)
    with pytest.raises(ValueError, match=r"s1.*only in blur/: \['b.png'\]"):
        PairedImageDataset(tmp_path, "train")
    shutil.rmtree(scene / "sharp")
    with pytest.raises(FileNotFoundError, match="sharp"):
        PairedImageDataset(tmp_path, "train")
    empty = tmp_path / "empty" / "s2"
    (empty / "blur").mkdir(parents=True)
    (empty / "sharp").mkdir()
    with pytest.raises(ValueError, match="no images"):
        PairedImageDataset(tmp_path, "empty")


# ------------------------------------------------------------------ synthetic
@pytest.fixture(scope="module")
def synth_kwargs(shared_data):
    photos = [shared_data / "photos" / "classic" / n for n in CLASSIC]
    return dict(photos=photos, patch_size=48, length=20, data_root=shared_data, kernel_size=21,
                trajectory_bank=16, noise_sigma=0.0, seed=11)


def test_synthetic_items_deterministic_and_blurry(synth_kwargs):
    ds = SyntheticBlurDataset(**synth_kwargs)
    again = SyntheticBlurDataset(**synth_kwargs)
    assert len(ds) == 20
    item = ds[3]
    assert item["lq"].shape == item["gt"].shape == (3, 48, 48)
    assert item["lq"].dtype == item["gt"].dtype == torch.float32
    assert item["name"].split("/")[0] in {"astronaut", "chelsea", "coffee"}
    assert item["name"].endswith("/000003")
    # deterministic per (seed, index), independent of the order of access
    for i in (3, 0, 7):
        x, y = ds[i], again[i]
        assert torch.equal(x["lq"], y["lq"]) and torch.equal(x["gt"], y["gt"]) and x["name"] == y["name"]
    assert not torch.equal(ds[3]["gt"], ds[4]["gt"])
    other_seed = SyntheticBlurDataset(**{**synth_kwargs, "seed": 12})
    assert not torch.equal(other_seed[3]["gt"], item["gt"])
    ds.set_epoch(1)
    assert not torch.equal(ds[3]["gt"], item["gt"])
    ds.set_epoch(0)
    assert torch.equal(ds[3]["lq"], item["lq"])
    # every item is blurrier than its ground truth (noise-free), lq on the 8-bit grid
    for i in range(len(ds)):
        it = ds[i]
        assert gradient_energy(it["lq"]) < gradient_energy(it["gt"]), it["name"]
        assert torch.allclose(it["lq"] * 255, (it["lq"] * 255).round(), atol=1e-4)
        assert 0 <= float(it["lq"].min()) and float(it["lq"].max()) <= 1


def test_synthetic_kernel_sources_noise_and_exclude(synth_kwargs):
    levin_only = SyntheticBlurDataset(**{**synth_kwargs, "kernel_sources": ("levin",)})
    assert len(levin_only.bank) == 0 and len(levin_only.levin) == 8
    noisy = SyntheticBlurDataset(**{**synth_kwargs, "noise_sigma": 0.05, "kernel_sources": {"trajectory": 1.0}})
    clean = SyntheticBlurDataset(**{**synth_kwargs, "kernel_sources": {"trajectory": 1.0}})
    assert torch.equal(noisy[0]["gt"], clean[0]["gt"])
    # noise std ~ sigma where clamping to [0, 1] does not cut it
    diffs = []
    for i in range(4):
        c = clean[i]["lq"]
        diffs.append((noisy[i]["lq"] - c)[(c > 0.2) & (c < 0.8)])
    diff = torch.cat(diffs)
    assert diff.numel() > 1000 and 0.045 < float(diff.std()) < 0.055
    only = SyntheticBlurDataset(**{**synth_kwargs, "exclude": ("chelsea*", "coffee*")})
    assert only.names == ["astronaut"]
    with pytest.raises(ValueError, match="kernel_sources"):
        SyntheticBlurDataset(**{**synth_kwargs, "kernel_sources": ("gopro",)})
    with pytest.raises(FileNotFoundError):
        SyntheticBlurDataset(**{**synth_kwargs, "exclude": ("*",)})
    batch = next(iter(DataLoader(clean, batch_size=4)))
    assert batch["lq"].shape == (4, 3, 48, 48)
