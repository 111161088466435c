"""Noise-level estimation (Immerkaer 1996 with edge exclusion) on blurry and sharp images."""
import pytest
import torch

from deblurkit.deconv.noise import estimate_noise_level
from deblurkit.io.images import read_image
from deblurkit.synth.blur import blur_valid_pair
from deblurkit.synth.kernels import levin_kernels


def _add_noise(x, sigma, seed, quantize=True):
    g = torch.Generator().manual_seed(seed)
    y = (x + sigma * torch.randn(x.shape, generator=g)).clamp(0, 1)
    return (y * 255).round() / 255 if quantize else y


@pytest.fixture(scope="module")
def blurry_crops(shared_data):
    ks = levin_kernels(data_root=shared_data)
    names = ["mate_Garden.jpg", "mate_Wood.jpg", "mate_Blinds.jpg"]
    out = []
    for i, name in enumerate(names):
        im = read_image(shared_data / "photos" / "wallpaper" / name)
        k = ks[f"levin09_{i + 1}"]
        c = 160 + k.shape[0] - 1
        h, w = im.shape[-2:]
        b, _ = blur_valid_pair(im[None, :, (h - c) // 2:(h - c) // 2 + c, (w - c) // 2:(w - c) // 2 + c], k)
        out.append(b)
    return torch.cat(out)


@pytest.mark.parametrize("sigma", [0.005, 0.01, 0.02])
def test_accuracy_on_blurred_photo_crops(blurry_crops, sigma):
    est = estimate_noise_level(_add_noise(blurry_crops, sigma, seed=int(sigma * 1000)))
    assert est.shape == (3,) and est.dtype == torch.float32
    assert ((est / sigma - 1).abs() < 0.3).all(), est


def test_accuracy_on_a_grey_synthetic_gradient_and_batch_independence():
    ramp = torch.linspace(0.1, 0.9, 128)
    img = (ramp[None, :] * 0.5 + ramp[:, None] * 0.5)[None, None].repeat(2, 1, 1, 1)
    noisy = torch.cat([_add_noise(img[:1], 0.03, 0, quantize=False), _add_noise(img[1:], 0.005, 1, quantize=False)])
    est = estimate_noise_level(noisy)
    assert abs(float(est[0]) / 0.03 - 1) < 0.1 and abs(float(est[1]) / 0.005 - 1) < 0.1
    assert torch.allclose(estimate_noise_level(noisy[1]), est[1:], rtol=1e-5)


def test_clean_image_reads_near_zero_and_saturation_is_ignored(blurry_crops):
    clean = (blurry_crops[:1] * 255).round() / 255
    assert float(estimate_noise_level(clean)) < 0.002  # quantisation noise only (~0.0011)
    # a half-saturated image: clipped pixels must not pull the estimate down
    x = blurry_crops[:1].clone()
    x[..., :, :80] = 1.0
    est = float(estimate_noise_level(_add_noise(x, 0.01, 3, quantize=False)))
    assert abs(est / 0.01 - 1) < 0.3


def test_real_blurry_jpegs_read_low_noise(shared_data):
    for name in ["clock_motion.png", "text_motion.jpg"]:
        im = read_image(shared_data / "real_blur" / name)
        assert 0.0003 < float(estimate_noise_level(im)) < 0.01


def test_errors():
    with pytest.raises(ValueError, match="3x3"):
        estimate_noise_level(torch.rand(1, 1, 2, 10))
    with pytest.raises(ValueError, match="non-finite"):
        estimate_noise_level(torch.full((1, 1, 8, 8), float("nan")))
    with pytest.raises(ValueError, match="N, C, H, W"):
        estimate_noise_level(torch.rand(8, 8))
