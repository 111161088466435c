"""The classical pipeline as the default deblurrer: ``deblurkit deblur`` without ``--model``,
``--kernel`` / ``--save-kernel`` / ``--estimator``, ``deblurkit estimate-kernel``, kernel files,
and the tiled non-blind stage of :class:`deblurkit.inference.ClassicalDeblurrer`.

The blind estimator is replaced by a stub returning the TRUE kernel of a synthetic blur (a real
photo crop blurred with a real Levin et al. 2009 kernel, ``valid`` boundaries, noise 0.01), so
these tests check the wiring (region, check, non-blind step, tiling, files, messages) in seconds;
the estimator itself is tested in tests/test_deconv_blind.py.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import deblurkit.deconv.blind as blind_mod
from deblurkit.cli import app
from deblurkit.inference import ClassicalDeblurrer, read_kernel, write_kernel
from deblurkit.inference.classical import add_kernel_inset, kernel_picture
from deblurkit.io import read_image, save_image
from deblurkit.metrics import psnr
from deblurkit.synth import blur_valid_pair, levin_kernels
from deblurkit.synth.noise import poisson_gaussian_noise, quantize_8bit

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def case(shared_data):
    """(blurry (1,3,h,w), sharp (1,3,h,w), true kernel 15x15): mate_Wood crop, levin09_3, sigma 0.01."""
    k = levin_kernels(shared_data / "kernels" / "levin09_kernels.npz")["levin09_3"]
    photo = read_image(shared_data / "photos" / "wallpaper" / "mate_Wood.jpg")
    blurry, sharp = blur_valid_pair(photo[None, :, 400:600, 700:940], k)
    blurry = quantize_8bit(poisson_gaussian_noise(blurry, sigma=0.01, generator=torch.Generator().manual_seed(0)))
    return blurry, sharp, k


@pytest.fixture()
def true_estimator(monkeypatch, case):
    """The pipeline's default estimator returns the true kernel (whatever size it is asked for)."""
    calls = []

    def stub(grey, kernel_size, **options):
        calls.append(kernel_size)
        return case[2].clone()

    monkeypatch.setattr(blind_mod, "estimate_kernel", stub)
    return calls


@pytest.fixture()
def photo(tmp_path, case):
    path = tmp_path / "in" / "wood.png"
    save_image(path, case[0][0])
    return path


def _gain(path, case) -> float:
    out = read_image(path)[None]
    return float(psnr(out, case[1])[0] - psnr(case[0], case[1])[0])


def _one_line_error(res, *needles):
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    for n in needles:
        assert n in lines[0], res.output


# ------------------------------------------------------------------------------------ deblur


def test_default_deblur_runs_the_classical_pipeline(tmp_path, photo, case, true_estimator):
    out = tmp_path / "out"
    res = _run("deblur", photo, "-o", out, "--compare", "--save-kernel", "--device", "cpu")
    assert res.exit_code == 0, res.output
    assert true_estimator, "the blind estimator was not called"
    assert f"{photo}: kernel " in res.output and "estimated" in res.output
    assert _gain(out / "wood_deblurred.png", case) > 3.0  # the true kernel gives ~+4.6 dB here
    # --save-kernel: the picture (enlarged, max = white) and the exact kernel
    saved = np.load(out / "wood_kernel.npy")
    assert saved.dtype == np.float32 and abs(float(saved.sum()) - 1) < 1e-5 and saved.min() >= 0
    k = case[2].numpy()
    pad = [((k.shape[i] - saved.shape[i]) // 2,) * 2 for i in range(2)]
    ncc = float((np.pad(saved, pad) * k).sum() / np.linalg.norm(saved) / np.linalg.norm(k))
    assert ncc > 0.98  # the true kernel, cropped to its support by the pipeline
    pic = read_image(out / "wood_kernel.png", channels=1)
    assert pic.shape[-1] >= 128 and float(pic.max()) == 1.0
    assert torch.allclose(read_kernel(out / "wood_kernel.png"), torch.from_numpy(saved), atol=2e-3)
    # --compare: input | result, with the kernel inset in the result's bottom-right corner
    cmp_ = read_image(out / "wood_compare.png")
    h, w = case[0].shape[-2:]
    assert cmp_.shape[-1] > 2 * w and cmp_.shape[-2] == h
    assert bool((cmp_[:, h - 5, -5] == 1.0).all())  # the inset's white frame


def test_unreliable_estimate_falls_back_and_says_so(tmp_path, photo, case, monkeypatch):
    noise = torch.rand(31, 31, generator=torch.Generator().manual_seed(1))
    monkeypatch.setattr(blind_mod, "estimate_kernel", lambda grey, ks, **o: noise / noise.sum())
    res = _run("deblur", photo, "-o", tmp_path / "out", "--save-kernel", "--device", "cpu")
    assert res.exit_code == 0, res.output
    assert f"{photo}: kernel estimate unreliable (" in res.output and "; wrote the input unchanged" in res.output
    out = read_image(tmp_path / "out" / "wood_deblurred.png")
    assert (out - case[0][0]).abs().max() <= 1 / 255 + 1e-6  # never worse than the input
    assert not (tmp_path / "out" / "wood_kernel.npy").exists()  # no kernel was used


@pytest.mark.parametrize("kind", ["npy", "png"])
def test_deblur_with_a_given_kernel(tmp_path, photo, case, monkeypatch, kind):
    monkeypatch.setattr(blind_mod, "estimate_kernel", lambda *a, **o: pytest.fail("a given kernel is not estimated"))
    files = write_kernel(case[2], tmp_path / "k" / "psf.png", tmp_path / "k" / "psf.npy")
    res = _run("deblur", photo, "-o", tmp_path / "out", "--kernel", files[f"kernel_{kind}"], "--device", "cpu")
    assert res.exit_code == 0, res.output
    assert "kernel 15x15 given" in res.output
    assert _gain(tmp_path / "out" / "wood_deblurred.png", case) > 0.5


def test_png_and_npy_kernels_agree(tmp_path, case):
    files = write_kernel(case[2], tmp_path / "psf.png", tmp_path / "psf.npy")
    k_npy, k_png = read_kernel(files["kernel_npy"]), read_kernel(files["kernel_png"])
    assert k_npy.shape == k_png.shape == (15, 15)
    assert torch.allclose(k_npy, case[2], atol=1e-6)
    assert torch.allclose(k_png, case[2], atol=2e-3)  # 8-bit picture, scaled to its maximum
    # a plain picture (no upscale record) is used pixel for pixel and normalised
    save_image(tmp_path / "drawn.png", torch.tensor([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.5, 0.0]])[None])
    k = read_kernel(tmp_path / "drawn.png")
    assert k.shape == (3, 3) and abs(float(k.sum()) - 1) < 1e-6 and float(k[1, 1]) == pytest.approx(0.4, abs=3e-3)


def _bad_kernel(tmp_path, kind):
    p = tmp_path / f"bad_{kind}"
    if kind == "empty":
        p = p.with_suffix(".npy")
        p.write_bytes(b"")
    elif kind == "negative":
        p = p.with_suffix(".npy")
        np.save(p, np.array([[0.2, -0.1, 0.2], [0.2, 0.3, 0.2]], np.float32))
    elif kind == "zeros":
        p = p.with_suffix(".npy")
        np.save(p, np.zeros((5, 5), np.float32))
    elif kind == "nan":
        p = p.with_suffix(".npy")
        np.save(p, np.full((3, 3), np.nan, np.float32))
    elif kind == "three_d":
        p = p.with_suffix(".npy")
        np.save(p, np.ones((2, 3, 3), np.float32))
    elif kind == "not_an_image":
        p = p.with_suffix(".png")
        p.write_text("this is not a PNG")
    elif kind == "pickle":
        p = p.with_suffix(".npy")
        np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif kind == "too_large":
        p = p.with_suffix(".npy")
        np.save(p, np.ones((301, 301), np.float32))
    elif kind == "missing":
        p = p.with_suffix(".npy")
    return p


@pytest.mark.parametrize(
    "kind, needle",
    [("empty", "is empty"), ("negative", "negative entries"), ("zeros", "all entries are zero"),
     ("nan", "NaN"), ("three_d", "2-D"), ("not_an_image", "not a PNG"),
     ("pickle", "not a readable NumPy"), ("too_large", "larger than the image"), ("missing", "not found")],
)
def test_bad_kernel_files_fail_in_one_line(tmp_path, photo, kind, needle):
    bad = _bad_kernel(tmp_path, kind)
    res = _run("deblur", photo, "-o", tmp_path / "out", "--kernel", bad)
    _one_line_error(res, bad.name, needle)
    assert not (tmp_path / "out").exists()  # refused before any work


def test_classical_options_are_refused_with_a_network(tmp_path, photo):
    res = _run("deblur", photo, "-o", tmp_path / "out", "--model", "mimo_unet_small", "--save-kernel",
               "--estimator", "l0")
    _one_line_error(res, "--save-kernel, --estimator", "classical pipeline", "--model mimo_unet_small")
    res = _run("deblur", photo, "-o", tmp_path / "out", "--model", "classical", "--weights", photo)
    _one_line_error(res, "--weights", "no weights")
    res = _run("deblur", photo, "-o", tmp_path / "out", "--precision", "bf16")
    _one_line_error(res, "bf16", "fp32")
    res = _run("deblur", photo, "-o", tmp_path / "out", "--estimator", "magic")
    _one_line_error(res, "magic", "dark_channel")
    res = _run("deblur", photo, "-o", tmp_path / "out", "--kernel-size", "20")
    _one_line_error(res, "--kernel-size", "odd")


def test_embedded_network_by_name(tmp_path, photo, case):
    res = _run("deblur", photo, "-o", tmp_path / "out", "--model", "mimo_unet_small", "--device", "cpu")
    assert res.exit_code == 0, res.output
    assert "kernel" not in res.output  # no classical report for a network
    out = read_image(tmp_path / "out" / "wood_deblurred.png")
    assert out.shape == case[0][0].shape and float((out - case[0][0]).abs().mean()) > 2e-3


def test_estimate_kernel_command(tmp_path, photo, case, true_estimator):
    res = _run("estimate-kernel", photo, "-o", tmp_path / "k" / "wood.png", "--device", "cpu")
    assert res.exit_code == 0, res.output
    assert "kernel 13x13 estimated" in res.output or "kernel 15x15 estimated" in res.output
    k_npy = read_kernel(tmp_path / "k" / "wood.npy")
    assert torch.allclose(read_kernel(tmp_path / "k" / "wood.png"), k_npy, atol=2e-3)
    # reusable as --kernel
    res = _run("deblur", photo, "-o", tmp_path / "out", "--kernel", tmp_path / "k" / "wood.npy", "--device", "cpu")
    assert res.exit_code == 0, res.output
    res = _run("estimate-kernel", photo, "-o", tmp_path / "k" / "wood.jpg")
    _one_line_error(res, "must be a .png")
    res = _run("estimate-kernel", tmp_path / "nope.png", "-o", tmp_path / "k" / "x.png")
    _one_line_error(res, "nope.png")


def test_models_lists_the_classical_default_and_the_embedded_network():
    res = _run("models")
    assert res.exit_code == 0
    lines = res.output.splitlines()
    assert lines[0].startswith("classical") and "(default)" in lines[0]
    assert lines[1].startswith("mimo_unet_small") and "embedded" in lines[1]
    assert any(line.startswith("mimo_unet ") for line in lines)


# ------------------------------------------------------------------------------------ runner


def test_tiled_nonblind_stage_matches_one_pass(case):
    blurry, sharp, k = case
    one = ClassicalDeblurrer(kernel=k, tile=None, progress=False).restore(blurry)
    ticks: list[tuple[int, int]] = []
    tiled = ClassicalDeblurrer(kernel=k, tile=96, progress=False).restore(
        blurry, progress=lambda done, total: ticks.append((done, total)))
    assert one.tiles == 1 and tiled.tiles == ticks[-1][1] == ticks[-1][0] > 1
    assert float(psnr(tiled.image, one.image)[0]) > 40.0  # overlap of 2x the kernel hides the seams
    assert one.image.shape == blurry.shape and 0 <= float(one.image.min()) and float(one.image.max()) <= 1


def test_runner_interface_and_validation(case):
    d = ClassicalDeblurrer(kernel=case[2], progress=False)
    y = d.deblur_tensor(case[0][0, :1])  # grey (1,H,W)
    assert y.shape == case[0][0, :1].shape and y.dtype == torch.float32
    assert d.tile_for(1000, 1000) is None and d.tile_for(3000, 4000) == 1024
    with pytest.raises(ValueError, match="255"):
        d.deblur_tensor(case[0] * 255)
    with pytest.raises(ValueError, match="larger than the image"):
        d.deblur_tensor(torch.rand(3, 10, 40))
    with pytest.raises(ValueError, match="odd"):
        ClassicalDeblurrer(kernel_size=8)
    with pytest.raises(ValueError, match="estimator"):
        ClassicalDeblurrer(method="nope")


def test_kernel_picture_and_inset():
    k = torch.zeros(5, 7)
    k[2, 1:6] = 1.0
    pic, factor = kernel_picture(k, min_side=64)
    assert factor == 10 and pic.shape == (1, 50, 70) and float(pic.max()) == 1.0
    panel = torch.full((3, 100, 204), 0.5)
    out = add_kernel_inset(panel, k, x0=104, width=100)
    assert torch.equal(out[:, :, :104], panel[:, :, :104])  # the left panel untouched
    assert bool((out[:, 95, 199] == 1.0).all()) and bool((out[:, 70, 150] == 0.5).all())


def test_spatially_varying_option(tmp_path, photo, case, true_estimator):
    res = _run("deblur", photo, "-o", tmp_path / "out", "--spatially-varying", "--device", "cpu")
    assert res.exit_code == 0, res.output
    assert len(true_estimator) > 1  # one estimate per region (and the global one)
    assert f"{photo}: kernels per region (global 13x13) estimated" in res.output
    assert _gain(tmp_path / "out" / "wood_deblurred.png", case) > 1.0


def test_large_photo_is_estimated_in_a_bounded_window(case, monkeypatch):
    """A photo over ESTIMATE_WINDOW^2 (the window shrunk to 400 px to keep the test fast) whose
    only structure is the blurred crop, placed off-centre: the estimator sees at most the window,
    and the region reported (photo coordinates) lies on the crop."""
    import deblurkit.inference.classical as classical_mod

    monkeypatch.setattr(classical_mod, "ESTIMATE_WINDOW", 400)
    blurry, _, k = case
    big = torch.full((1, 3, 700, 900), float(blurry.mean()))
    top, left = 0, 0  # a centred window (rows 150-550, cols 250-650) would miss it
    big[:, :, top:top + blurry.shape[-2], left:left + blurry.shape[-1]] = blurry
    seen = []

    def stub(grey, kernel_size, **options):
        seen.append(tuple(grey.shape[-2:]))
        return k

    monkeypatch.setattr(blind_mod, "estimate_kernel", stub)
    res = ClassicalDeblurrer(progress=False).estimate(big)
    assert seen and max(max(s) for s in seen) <= 400
    assert res.kernel is not None and not res.fell_back
    t, l, rh, rw = res.region
    assert max(rh, rw) <= 400
    assert t < top + blurry.shape[-2] and t + rh > top and l < left + blurry.shape[-1] and l + rw > left


def test_estimator_choices_are_the_estimators_methods():
    from deblurkit.deconv.blind.api import METHODS
    from deblurkit.inference.classical import ESTIMATORS

    assert set(ESTIMATORS) == set(METHODS)  # --estimator offers exactly what estimate_kernel runs
