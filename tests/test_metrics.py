"""deblurkit.metrics against independent references (scikit-image, numpy/scipy/OpenCV)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from deblurkit.metrics import (
    METRICS,
    get_metric,
    psnr,
    ssim,
    ssim_3d,
    ssim_skimage_legacy,
)

TOL = 1e-6
RGB_PHOTOS = ["classic/chelsea.png", "classic/astronaut.png", "opencv/baboon.jpg", "wallpaper/mate_Wood.jpg"]
GREY_PHOTOS = ["classic/camera.png", "classic/moon.png"]
CROP = (40, 56)  # small crops keep the tests fast


# ----------------------------------------------------------------------------- helpers

def _crop(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    top, left = (h - CROP[0]) // 2, (w - CROP[1]) // 2
    return img[top:top + CROP[0], left:left + CROP[1]]


def load_rgb(data, rel: str) -> np.ndarray:
    """A centre crop of a real photo, HWC float64 RGB in [0, 1]."""
    bgr = cv2.imread(str(data / "photos" / rel), cv2.IMREAD_COLOR)
    assert bgr is not None, f"cannot read {rel}"
    return _crop(bgr[:, :, ::-1]).astype(np.float64) / 255.0


def load_grey(data, rel: str) -> np.ndarray:
    """A centre crop of a real photo, HW float64 in [0, 1]."""
    g = cv2.imread(str(data / "photos" / rel), cv2.IMREAD_GRAYSCALE)
    assert g is not None, f"cannot read {rel}"
    return _crop(g).astype(np.float64) / 255.0


def degrade(img: np.ndarray, noise: float = 0.03, seed: int = 0) -> np.ndarray:
    """Gaussian blur plus noise, clipped to [0, 1]: a plausible 'restored' image."""
    rng = np.random.default_rng(seed)
    out = cv2.GaussianBlur(img, (5, 5), 1.2) + rng.normal(0.0, noise, img.shape)
    return np.clip(out, 0.0, 1.0)


def chw(a: np.ndarray) -> torch.Tensor:
    """HWC or HW numpy -> CHW torch tensor (same dtype)."""
    if a.ndim == 2:
        a = a[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))


def sk_ssim(a: np.ndarray, b: np.ndarray) -> float:
    kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)
    if a.ndim == 3:
        kw["channel_axis"] = -1
    return float(structural_similarity(a, b, **kw))


def sk_legacy(a: np.ndarray, b: np.ndarray, data_range: float = 2) -> float:
    kw = dict(data_range=data_range)
    if a.ndim == 3:
        kw["channel_axis"] = -1
    return float(structural_similarity(a, b, **kw))


def y_of(a: np.ndarray) -> np.ndarray:
    """Y of YCbCr (BT.601 studio swing) on [0, 1], via scikit-image (16..235 / 255)."""
    return rgb2ycbcr(a)[..., 0] / 255.0


def ref_ssim_3d(a: np.ndarray, b: np.ndarray, L: float) -> float:
    """Straightforward volumetric SSIM: 11x11x11 Gaussian (OpenCV taps), edge replication."""
    g = cv2.getGaussianKernel(11, 1.5)[:, 0]
    window = g[:, None, None] * g[None, :, None] * g[None, None, :]
    f = lambda v: ndimage.correlate(v, window, mode="nearest")  # noqa: E731
    ux, uy = f(a), f(b)
    vx, vy, vxy = f(a * a) - ux * ux, f(b * b) - uy * uy, f(a * b) - ux * uy
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return float(s.mean())


def ref_ssim_2d_replicate(a: np.ndarray, b: np.ndarray, L: float) -> float:
    """2-D Gaussian SSIM with OpenCV's BORDER_REPLICATE, mean over the full map."""
    g = cv2.getGaussianKernel(11, 1.5)
    window = g @ g.T
    f = lambda v: cv2.filter2D(v, -1, window, borderType=cv2.BORDER_REPLICATE)  # noqa: E731
    ux, uy = f(a), f(b)
    vx, vy, vxy = f(a * a) - ux * ux, f(b * b) - uy * uy, f(a * b) - ux * uy
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return float(s.mean())


def to_u8(a: np.ndarray) -> np.ndarray:
    return np.clip(np.round(a * 255.0), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- registry, API

def test_registry_names_and_lookup():
    assert set(METRICS) == {"psnr", "ssim", "ssim_3d", "ssim_skimage_legacy"}
    assert get_metric("psnr") is psnr
    assert get_metric("SSIM-3D") is ssim_3d
    assert get_metric("ssim_skimage_legacy") is ssim_skimage_legacy
    with pytest.raises(ValueError, match="ssim_3d"):
        get_metric("msssim")


@pytest.mark.parametrize("name", sorted(METRICS))
def test_output_shape_dtype_and_single_image(name):
    fn = get_metric(name)
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(3, 3, 16, 20, generator=gen)
    y = (x + 0.05 * torch.randn(3, 3, 16, 20, generator=gen)).clamp(0, 1)
    batch = fn(x, y)
    assert batch.shape == (3,) and batch.dtype == torch.float64
    singles = torch.cat([fn(x[i], y[i]) for i in range(3)])  # (C,H,W) -> N=1
    assert singles.shape == (3,)
    torch.testing.assert_close(batch, singles, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", sorted(METRICS))
def test_shape_mismatch_names_both_shapes(name):
    fn = get_metric(name)
    with pytest.raises(ValueError) as err:
        fn(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 18))
    assert "(1, 3, 16, 16)" in str(err.value) and "(1, 3, 16, 18)" in str(err.value)


@pytest.mark.parametrize("name", sorted(METRICS))
def test_bad_arguments_raise(name):
    fn = get_metric(name)
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="dimension|shape"):
        fn(x[0, 0], x[0, 0])
    with pytest.raises(ValueError, match="crop_border"):
        fn(x, x, crop_border=8)
    with pytest.raises(ValueError, match="crop_border"):
        fn(x, x, crop_border=-1)
    with pytest.raises(ValueError, match="quantize"):
        fn(x, x, quantize="ceil")
    with pytest.raises(ValueError, match="3 channels"):
        fn(torch.rand(1, 2, 16, 16), torch.rand(1, 2, 16, 16), y_channel=True)
    with pytest.raises(ValueError, match="data_range"):
        fn(x, x, data_range=0)
    with pytest.raises(TypeError):
        fn(x.numpy(), x.numpy())


@pytest.mark.parametrize("name", ["ssim", "ssim_skimage_legacy"])
def test_window_larger_than_image_raises(name):
    x = torch.rand(1, 3, 6, 30)
    with pytest.raises(ValueError, match="window"):
        get_metric(name)(x, x)


# ----------------------------------------------------------------------------- PSNR

def test_psnr_matches_numpy_formula(shared_data):
    a = load_rgb(shared_data, RGB_PHOTOS[0])
    b = degrade(a)
    expected = 10 * np.log10(1.0 / np.mean((a - b) ** 2))
    got = psnr(chw(a), chw(b)).item()
    assert got == pytest.approx(expected, abs=1e-10)
    assert 15 < got < 45
    # data_range is the peak of the inputs: the same images on [0, 255].
    got255 = psnr(chw(a * 255), chw(b * 255), data_range=255).item()
    assert got255 == pytest.approx(expected, abs=1e-9)


def test_psnr_identical_images_is_inf():
    x = torch.rand(2, 3, 8, 8)
    out = psnr(x, x.clone())
    assert torch.isinf(out).all() and (out > 0).all()


def test_psnr_quantize_equals_uint8_psnr(shared_data):
    a = load_rgb(shared_data, RGB_PHOTOS[1])
    b = degrade(a, noise=0.02, seed=3)
    a32, b32 = chw(a).float(), chw(b).float()
    ua = np.clip(np.round(a32.numpy().astype(np.float32) * np.float32(255)), 0, 255).astype(np.uint8)
    ub = np.clip(np.round(b32.numpy().astype(np.float32) * np.float32(255)), 0, 255).astype(np.uint8)
    expected = 10 * np.log10(255.0**2 / np.mean((ua.astype(np.float64) - ub) ** 2))
    got = psnr(a32, b32, quantize=True).item()
    assert got == pytest.approx(expected, abs=1e-10)
    assert got == pytest.approx(peak_signal_noise_ratio(ua, ub, data_range=255), abs=1e-10)
    # quantisation really happens: the float PSNR differs.
    assert abs(psnr(a32, b32).item() - got) > 1e-4


def test_psnr_quantize_clamps_and_rounds():
    # out-of-range values are clamped before quantisation
    x = torch.full((1, 3, 4, 4), 1.3)
    y = torch.ones(1, 3, 4, 4)
    assert torch.isinf(psnr(x, y, quantize=True)).all()
    assert torch.isfinite(psnr(x, y)).all()
    # a difference below half a code vanishes; one of 0.6 code becomes one full code
    base = torch.full((1, 1, 4, 4), 100 / 255)
    assert torch.isinf(psnr(base, base + 0.4 / 255, quantize=True)).all()
    one_code = 20 * np.log10(255.0)  # every pixel off by exactly 1 of 255
    assert psnr(base, base + 0.6 / 255, quantize=True).item() == pytest.approx(one_code, abs=1e-9)
    # "truncate" floors instead of rounding: 100.25 and 100.85 are both code 100
    lo, hi = torch.full((1, 1, 4, 4), 100.25 / 255), torch.full((1, 1, 4, 4), 100.85 / 255)
    assert torch.isinf(psnr(lo, hi, quantize="truncate")).all()
    assert psnr(lo, hi, quantize="round").item() == pytest.approx(one_code, abs=1e-9)


def test_psnr_y_channel_and_crop_border(shared_data):
    a = load_rgb(shared_data, RGB_PHOTOS[2])
    b = degrade(a, seed=5)
    ya, yb = y_of(a), y_of(b)
    expected = 10 * np.log10(1.0 / np.mean((ya - yb) ** 2))
    assert psnr(chw(a), chw(b), y_channel=True).item() == pytest.approx(expected, abs=1e-9)
    # quantised Y: BasicSR's to_y_channel on uint8 images (float, not rounded), peak 255
    ua, ub = to_u8(a).astype(np.float64), to_u8(b).astype(np.float64)
    w = np.array([65.481, 128.553, 24.966])
    yua, yub = ua @ w / 255 + 16, ub @ w / 255 + 16
    expected_q = 10 * np.log10(255.0**2 / np.mean((yua - yub) ** 2))
    got_q = psnr(chw(a), chw(b), y_channel=True, quantize=True).item()
    assert got_q == pytest.approx(expected_q, abs=1e-9)
    # crop_border drops the edges before the comparison
    c = 4
    expected_c = 10 * np.log10(1.0 / np.mean((a[c:-c, c:-c] - b[c:-c, c:-c]) ** 2))
    assert psnr(chw(a), chw(b), crop_border=c).item() == pytest.approx(expected_c, abs=1e-9)
    # a difference only in the border is invisible after cropping
    bord = a.copy()
    bord[:2] = 0.0
    assert np.isfinite(psnr(chw(a), chw(bord)).item())
    assert np.isinf(psnr(chw(a), chw(bord), crop_border=2).item())


# ----------------------------------------------------------------------------- SSIM (skimage)

@pytest.mark.parametrize("rel", RGB_PHOTOS)
def test_ssim_matches_skimage_rgb_photos(shared_data, rel):
    a = load_rgb(shared_data, rel)
    b = degrade(a)
    expected = sk_ssim(a, b)
    assert 0.2 < expected < 0.999  # a meaningful, non-trivial comparison
    assert abs(ssim(chw(a), chw(b)).item() - expected) < TOL


@pytest.mark.parametrize("rel", GREY_PHOTOS)
def test_ssim_and_legacy_match_skimage_grey_photos(shared_data, rel):
    a = load_grey(shared_data, rel)
    b = degrade(a, noise=0.05, seed=7)
    assert abs(ssim(chw(a), chw(b)).item() - sk_ssim(a, b)) < TOL
    assert abs(ssim_skimage_legacy(chw(a), chw(b)).item() - sk_legacy(a, b)) < TOL


@pytest.mark.parametrize("shape", [(11, 11, 3), (13, 17, 1), (24, 31, 3)])
def test_ssim_and_legacy_match_skimage_random(shape):
    rng = np.random.default_rng(sum(shape))
    a = rng.random(shape)
    b = np.clip(0.6 * a + 0.4 * rng.random(shape), 0, 1)
    a2, b2 = a[..., 0], b[..., 0]
    if shape[2] == 1:
        a, b = a2, b2
    assert abs(ssim(chw(a), chw(b)).item() - sk_ssim(a, b)) < TOL
    assert abs(ssim_skimage_legacy(chw(a), chw(b)).item() - sk_legacy(a, b)) < TOL


@pytest.mark.parametrize("rel", RGB_PHOTOS[:3])
def test_legacy_matches_skimage_rgb_photos(shared_data, rel):
    a = load_rgb(shared_data, rel)
    b = degrade(a, seed=11)
    expected = sk_legacy(a, b)
    got = ssim_skimage_legacy(chw(a), chw(b)).item()
    assert abs(got - expected) < TOL
    # data_range=2 (larger C1, C2) scores higher than the same window with data_range=1
    strict = ssim_skimage_legacy(chw(a), chw(b), data_range=1.0).item()
    assert abs(strict - sk_legacy(a, b, data_range=1)) < TOL
    assert got > strict


def test_ssim_quantize_y_channel_crop_match_skimage(shared_data):
    a = load_rgb(shared_data, RGB_PHOTOS[3])
    b = degrade(a, seed=2)
    ta, tb = chw(a), chw(b)
    # quantize: SSIM of the uint8 images with data_range 255
    ua, ub = to_u8(a), to_u8(b)
    q = structural_similarity(ua, ub, gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False, data_range=255, channel_axis=-1)
    assert abs(ssim(ta, tb, quantize=True).item() - q) < TOL
    assert abs(ssim_skimage_legacy(ta, tb, quantize=True).item()
               - sk_legacy(ua / 255.0, ub / 255.0)) < TOL
    # y_channel: SSIM of Y (skimage's rgb2ycbcr, same BT.601 formula)
    ya, yb = y_of(a), y_of(b)
    assert abs(ssim(ta, tb, y_channel=True).item() - sk_ssim(ya, yb)) < TOL
    assert abs(ssim_skimage_legacy(ta, tb, y_channel=True).item() - sk_legacy(ya, yb)) < TOL
    # crop_border: the same as cropping by hand, and it changes the value
    c = 6
    cropped = sk_ssim(a[c:-c, c:-c], b[c:-c, c:-c])
    got = ssim(ta, tb, crop_border=c).item()
    assert abs(got - cropped) < TOL
    assert abs(got - ssim(ta, tb).item()) > 1e-5
    assert abs(ssim_skimage_legacy(ta, tb, crop_border=c).item()
               - sk_legacy(a[c:-c, c:-c], b[c:-c, c:-c])) < TOL


# ----------------------------------------------------------------------------- SSIM 3-D

def test_ssim_3d_identity_and_symmetry(shared_data):
    a = load_rgb(shared_data, RGB_PHOTOS[0])
    b = degrade(a)
    ta, tb = chw(a), chw(b)
    for kw in ({}, {"quantize": True}, {"y_channel": True}):
        assert ssim_3d(ta, ta.clone(), **kw).item() == pytest.approx(1.0, abs=1e-12)
        assert ssim_3d(ta, tb, **kw).item() == pytest.approx(ssim_3d(tb, ta, **kw).item(), abs=1e-12)
        assert ssim_3d(ta, tb, **kw).item() < 0.999


def test_ssim_3d_decreases_with_noise(shared_data):
    a = load_rgb(shared_data, RGB_PHOTOS[1])
    scores = [ssim_3d(chw(a), chw(degrade(a, noise=s, seed=4))).item() for s in (0.01, 0.03, 0.1)]
    assert scores[0] > scores[1] > scores[2]
    assert scores[2] > 0.0


@pytest.mark.parametrize("rel", RGB_PHOTOS[:2])
def test_ssim_3d_matches_volumetric_reference(shared_data, rel):
    a = load_rgb(shared_data, rel)
    b = degrade(a, seed=9)
    # float protocol (RSS-T): [0, 1], L = 1
    assert abs(ssim_3d(chw(a), chw(b)).item() - ref_ssim_3d(a, b, 1.0)) < TOL
    # 8-bit protocol (HINet / MSDI-Net / Blur2Blur): uint8 values, L = 255
    ua, ub = to_u8(a).astype(np.float64), to_u8(b).astype(np.float64)
    got = ssim_3d(chw(a), chw(b), quantize=True).item()
    assert abs(got - ref_ssim_3d(ua, ub, 255.0)) < TOL
    # the official scripts hand BGR arrays to it; the channel order does not matter
    assert abs(got - ref_ssim_3d(ua[..., ::-1], ub[..., ::-1], 255.0)) < TOL


def test_ssim_3d_y_channel_is_2d_replicate_ssim_of_y(shared_data):
    """BasicSR's test_y_channel path (2-D Gaussian, BORDER_REPLICATE, whole-map mean)."""
    a = load_rgb(shared_data, RGB_PHOTOS[2])
    b = degrade(a, seed=12)
    w = np.array([65.481, 128.553, 24.966])
    ya = to_u8(a).astype(np.float64) @ w / 255 + 16
    yb = to_u8(b).astype(np.float64) @ w / 255 + 16
    got = ssim_3d(chw(a), chw(b), y_channel=True, quantize=True).item()
    assert abs(got - ref_ssim_2d_replicate(ya, yb, 255.0)) < TOL
    # grey input (C=1) gives the same number as its Y computed beforehand
    ty = lambda v: torch.from_numpy(v[None])  # noqa: E731
    assert abs(ssim_3d(ty(ya), ty(yb), data_range=255).item() - got) < 1e-12


def test_ssim_3d_scale_invariance_crop_and_tiny_images():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 9, 7, dtype=torch.float64, generator=gen)  # smaller than the window
    y = (x + 0.1 * torch.randn(2, 3, 9, 7, dtype=torch.float64, generator=gen)).clamp(0, 1)
    got = ssim_3d(x, y)
    for i in range(2):
        ref = ref_ssim_3d(x[i].permute(1, 2, 0).numpy(), y[i].permute(1, 2, 0).numpy(), 1.0)
        assert abs(got[i].item() - ref) < TOL
    torch.testing.assert_close(ssim_3d(x * 255, y * 255, data_range=255), got, rtol=0, atol=1e-12)
    c = 2
    torch.testing.assert_close(
        ssim_3d(x, y, crop_border=c), ssim_3d(x[..., c:-c, c:-c], y[..., c:-c, c:-c]), rtol=0, atol=0
    )


def test_ssim_3d_differs_from_2d_ssim(shared_data):
    """The 3-D window mixes colour channels and keeps the borders: not the standard SSIM."""
    a = load_rgb(shared_data, RGB_PHOTOS[3])
    b = degrade(a, seed=13)
    s3, s2 = ssim_3d(chw(a), chw(b)).item(), ssim(chw(a), chw(b)).item()
    assert abs(s3 - s2) > 1e-3
