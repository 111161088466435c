"""HIDE and RealBlur loaders (official layouts, tiny fake folders of real photos) and RealBlur's
ECC-aligned evaluation protocol."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from deblurkit.cli import app
from deblurkit.data import open_layout
from deblurkit.engine import evaluate, get_protocol
from deblurkit.io import read_image, save_image
from deblurkit.metrics import psnr
from deblurkit.metrics.realblur import _masked_ssim, realblur_psnr_ssim

from fake_blur_data import real_pairs

J = "RealBlur-J_ECC_IMCORR_centroid_itensity_ref"
R = "RealBlur-R_BM3D_ECC_IMCORR_centroid_itensity_ref"


@pytest.fixture(scope="module")
def pairs(shared_data):
    return real_pairs(shared_data, 4, size=(48, 64))


@pytest.fixture
def hide(tmp_path, pairs):
    root = tmp_path / "HIDE_dataset"
    where = ["test/test-close-ups", "test/test-close-ups", "test/test-long-shot", "train"]
    for i, ((b, s), sub) in enumerate(zip(pairs, where)):
        save_image(root / sub / f"{i}fromGOPR{i:04d}.png", b)
        save_image(root / "GT" / f"{i}fromGOPR{i:04d}.png", s)
    return root


@pytest.fixture
def realblur(tmp_path, pairs):
    root = tmp_path / "RealBlur"
    lines = {("J", "test"): [], ("J", "train"): [], ("R", "test"): []}
    for i, (b, s) in enumerate(pairs):
        for folder, var in ((J, "J"), (R, "R")):
            scene = f"scene{i // 2 + 1:03d}"
            save_image(root / folder / scene / "blur" / f"blur_{i % 2 + 1}.png", b)
            save_image(root / folder / scene / "gt" / f"gt_{i % 2 + 1}.png", s)
            split = "test" if i < 3 else "train"
            if (var, split) in lines:
                lines[(var, split)].append(f"{folder}/{scene}/gt/gt_{i % 2 + 1}.png {folder}/{scene}/blur/blur_{i % 2 + 1}.png")
    for (var, split), ls in lines.items():
        (root / f"RealBlur_{var}_{split}_list.txt").write_text("\n".join(ls) + "\n")
    return root


def test_hide_layout_pairs_blurry_images_with_gt(hide, pairs):
    ds = open_layout("hide", hide, "test")
    assert [it["name"] for it in ds] == ["test-close-ups/0fromGOPR0000.png", "test-close-ups/1fromGOPR0001.png",
                                         "test-long-shot/2fromGOPR0002.png"]
    it = ds[2]
    assert it["subset"] == "test-long-shot" and it["lq"].shape == (3, 48, 64)
    assert torch.allclose(it["gt"], pairs[2][1], atol=0.5 / 255) and torch.allclose(it["lq"], pairs[2][0], atol=0.5 / 255)
    assert len(open_layout("hide", hide, "test-long-shot")) == 1
    assert [it["name"] for it in open_layout("hide", hide, "train")] == ["train/3fromGOPR0003.png"]


def test_hide_errors_name_the_problem(hide):
    with pytest.raises(ValueError, match="split"):
        open_layout("hide", hide, "val")
    (hide / "GT" / "1fromGOPR0001.png").unlink()
    with pytest.raises(ValueError, match="1fromGOPR0001.png"):
        open_layout("hide", hide, "test")
    with pytest.raises(FileNotFoundError, match="GT"):
        open_layout("hide", hide / "test", "test")


def test_realblur_layouts_follow_the_official_lists(realblur, pairs):
    ds = open_layout("realblur_j", realblur, "test")
    assert [it["name"] for it in ds] == ["scene001/blur_1.png", "scene001/blur_2.png", "scene002/blur_1.png"]
    assert torch.allclose(ds[1]["lq"], pairs[1][0], atol=0.5 / 255)
    assert torch.allclose(ds[1]["gt"], pairs[1][1], atol=0.5 / 255)
    assert len(open_layout("realblur_j", realblur, "train")) == 1
    assert len(open_layout("realblur_r", realblur, "test")) == 3
    assert str(open_layout("realblur_r", realblur, "test").pairs[0][1]).count(R) == 1


def test_realblur_errors_name_the_problem(realblur):
    with pytest.raises(FileNotFoundError, match="RealBlur_R_train_list.txt"):
        open_layout("realblur_r", realblur, "train")
    lst = realblur / "RealBlur_J_test_list.txt"
    lst.write_text(lst.read_text() + "only-one-path.png\n")
    with pytest.raises(ValueError, match=r"RealBlur_J_test_list.txt:4"):
        open_layout("realblur_j", realblur, "test")
    lst.write_text(f"{J}/scene009/gt/gt_1.png {J}/scene009/blur/blur_1.png\n")
    with pytest.raises(FileNotFoundError, match="scene009"):
        open_layout("realblur_j", realblur, "test")


def test_masked_ssim_with_full_mask_is_skimage_gaussian_ssim(pairs):
    skm = pytest.importorskip("skimage.metrics")
    x = pairs[0][1].permute(1, 2, 0).numpy().astype(np.float32)
    z = pairs[0][0].permute(1, 2, 0).numpy().astype(np.float32)
    want = skm.structural_similarity(x, z, gaussian_weights=True, use_sample_covariance=False,
                                     data_range=1.0, channel_axis=2)
    assert _masked_ssim(x, z, np.ones_like(x)) == pytest.approx(want, abs=1e-6)


def test_realblur_protocol_undoes_shift_and_exposure(shared_data):
    img = read_image(shared_data / "photos" / "classic" / "kodim23.png")
    ref = img[:, 100:196, 100:228]
    shifted = img[:, 102:198, 99:227] * 0.9  # content moved by (-2, +1) px and darker
    unaligned = float(psnr(shifted, ref)[0])
    s = realblur_psnr_ssim(shifted, ref)
    assert s["ecc_ok"] == 1.0
    assert s["psnr"] > unaligned + 10 and s["psnr"] > 33, (s, unaligned)
    assert s["ssim"] > 0.97
    same = realblur_psnr_ssim(ref, ref)
    assert same["psnr"] > 80 and same["ssim"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="differ"):
        realblur_psnr_ssim(ref[:, :50], ref)


def test_realblur_protocol_through_evaluate_and_cli(realblur, tmp_path):
    ds = open_layout("realblur_j", realblur, "test")
    res = evaluate(lambda x: x, ((it["name"], it["lq"], it["gt"]) for it in ds), "realblur", progress=False)
    m = res.mean
    assert m["psnr"] == pytest.approx(m["psnr_input"]) and "ecc_ok" in m

    def shifted_darker(x):  # the reference moved by (-2, +1) px and darker: ECC must undo it
        gt = next(it["gt"] for it in ds if torch.equal(it["lq"], x[0]))
        return (torch.roll(gt, shifts=(-2, 1), dims=(-2, -1)) * 0.9)[None]

    res = evaluate(shifted_darker, ((it["name"], it["lq"], it["gt"]) for it in ds), "realblur", progress=False)
    plain = evaluate(shifted_darker, ((it["name"], it["lq"], it["gt"]) for it in ds), "standard", progress=False)
    assert res.mean["ecc_ok"] == 1.0
    assert res.mean["psnr"] > plain.mean["psnr"] + 10, (res.mean, plain.mean)
    assert "ECC" in get_protocol("realblur").description
    r = CliRunner().invoke(app, ["evaluate", "--data", str(realblur), "--layout", "realblur_j", "--protocol",
                                 "realblur", "--device", "cpu", "--out", str(tmp_path / "ev")])
    assert r.exit_code == 0, r.output
    assert "3 images, protocol realblur" in r.output
    assert "ecc_ok" in (tmp_path / "ev" / "results.csv").read_text()
