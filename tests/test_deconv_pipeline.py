"""deblurkit.deconv.region and deblurkit.deconv.pipeline: region choice, the reliability check,
the fallback, masked (clipped-highlight) deconvolution and the blind pipeline with stub
estimators (the true kernel or deliberately wrong ones), so each test runs in seconds."""
from __future__ import annotations

import pytest
import torch

from deblurkit.deconv.pipeline import (
    DeblurResult,
    blind_deblur,
    check_kernel,
    crop_kernel_to_support,
    deconvolve_masked,
    kernel_diagnostics,
    rescale_kernel,
)
from deblurkit.deconv.region import region_scores, saturation_mask, select_region
from deblurkit.io.images import read_image
from deblurkit.synth.blur import blur
from deblurkit.synth.kernels import center_pad, gaussian_kernel, levin_kernels


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1.0 / ((a.clamp(0, 1) - b) ** 2).mean()))


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _blurred(sharp_big: torch.Tensor, k: torch.Tensor, sigma: float, seed: int = 0):
    """``valid`` blur of a crop padded by the kernel (real content beyond the edges), noise,
    8-bit quantisation; returns (blurry, sharp) aligned."""
    K = k.shape[-1]
    y = blur(sharp_big, k, "valid")
    y = (y + sigma * torch.randn(y.shape, generator=_gen(seed))).clamp(0, 1)
    y = torch.round(y * 255) / 255
    p = K - 1 - K // 2
    return y, sharp_big[..., p: p + y.shape[-2], p: p + y.shape[-1]]


@pytest.fixture(scope="module")
def photo(shared_data) -> torch.Tensor:
    return read_image(shared_data / "photos" / "classic" / "kodim23.png")[None]  # (1,3,512,768)


@pytest.fixture(scope="module")
def camera(shared_data) -> torch.Tensor:
    return read_image(shared_data / "photos" / "classic" / "camera.png", channels=1)[None]  # (1,1,512,512)


@pytest.fixture(scope="module")
def levin(shared_data) -> dict[str, torch.Tensor]:
    return levin_kernels(data_root=shared_data, center=True)


def _stub(kernel: torch.Tensor, calls: list | None = None):
    """An estimator returning ``kernel`` centred in the requested window (recording the calls)."""
    def estimator(image, kernel_size, *, method="dark_channel", **options):
        if calls is not None:
            calls.append({"shape": tuple(image.shape), "kernel_size": kernel_size, "method": method, **options})
        k = kernel if kernel.shape[-1] >= kernel_size else crop_kernel_to_support(kernel, threshold=0.0)
        if k.shape[-1] < kernel_size:
            k = center_pad(k, kernel_size)
        elif k.shape[-1] > kernel_size:
            c, h = k.shape[-1] // 2, kernel_size // 2
            k = k[c - h: c + h + 1, c - h: c + h + 1]
        return k / k.sum()
    return estimator


def _noise_kernel(size: int, seed: int) -> torch.Tensor:
    k = torch.rand(size, size, generator=_gen(seed))
    return k / k.sum()


def _specks_kernel(size: int, seed: int) -> torch.Tensor:
    """Isolated dots on a lattice (random weights): what an estimator that fitted noise gives."""
    k = torch.zeros(size, size)
    pos = torch.arange(1, size - 1, 4)
    k[pos[:, None], pos[None, :]] = 0.5 + torch.rand(len(pos), len(pos), generator=_gen(seed))
    return k / k.sum()


# ----------------------------------------------------------------------------------- region


def test_select_region_picks_the_textured_half_over_the_flat_half(photo):
    tex = photo[..., 100:228, 200:328]
    flat = torch.full_like(tex, 0.5) + 0.01 * torch.randn(tex.shape, generator=_gen(0))
    for img, textured_left in ((torch.cat([tex, flat], -1), True), (torch.cat([flat, tex], -1), False)):
        top, left, h, w = select_region(img, 96)
        assert (h, w) == (96, 96) and top + h <= 128
        centre = left + w / 2
        assert (centre < 128) == textured_left, (left, textured_left)


def test_select_region_avoids_clipped_highlights(photo):
    tex = photo[..., 100:228, 200:328]
    clipped = tex.clone()
    clipped[..., 20:110, 20:110] = 1.0  # a large blown-out area inside the same texture
    # same texture twice: without the clipped area both halves score alike; with it the
    # clean copy must win
    img = torch.cat([clipped, tex], -1)
    _, left, _, w = select_region(img, 96)
    assert left + w / 2 > 128
    scores, tops, lefts = region_scores(img, 96)
    assert scores.shape == (tops.numel(), lefts.numel())


def test_saturation_mask_threshold_and_dilation():
    x = torch.zeros(1, 3, 20, 20)
    x[0, 1, 10, 10] = 1.0  # clipped in one channel only
    m = saturation_mask(x)
    assert m.shape == (1, 1, 20, 20) and int(m.sum()) == 1
    md = saturation_mask(x, dilate=2)
    assert int(md.sum()) == 25 and bool(md[0, 0, 8:13, 8:13].all())
    with pytest.raises(ValueError, match="threshold"):
        saturation_mask(x, threshold=1.5)


# ----------------------------------------------------------------------------------- kernels


def test_rescale_kernel_scales_the_spread_and_keeps_the_centre():
    k = gaussian_kernel(15, (3.0, 1.0), angle=30)
    k2 = rescale_kernel(k, 2.0)
    assert k2.shape[0] % 2 == 1 and k2.shape[0] >= 29
    assert abs(float(k2.sum()) - 1) < 1e-5 and float(k2.min()) >= 0

    def moments(kk):
        c = kk.shape[0] // 2
        yy, xx = torch.meshgrid(torch.arange(kk.shape[0]) - c, torch.arange(kk.shape[1]) - c, indexing="ij")
        return (float((kk * yy).sum()), float((kk * xx).sum()), float((kk * (xx ** 2 + yy ** 2)).sum()))

    cy1, cx1, m1 = moments(k)
    cy2, cx2, m2 = moments(k2)
    assert abs(cy2) < 0.3 and abs(cx2) < 0.3  # centre kept
    assert 3.3 < m2 / m1 < 4.7  # second moment scales with factor^2 (= 4), up to interpolation


def test_crop_kernel_to_support_keeps_the_blur(levin):
    k = center_pad(levin["levin09_3"], 41)
    c = crop_kernel_to_support(k, threshold=0.0, margin=0)
    assert c.shape[0] < 41 and c.shape[0] % 2 == 1
    x = torch.rand(1, 1, 64, 64, generator=_gen(1))
    assert torch.allclose(blur(x, c, "circular"), blur(x, k, "circular"), atol=1e-5)


# ----------------------------------------------------------------------------------- check


def test_check_kernel_passes_the_true_kernel_and_rejects_garbage(photo, levin):
    k = levin["levin09_4"]
    y, sharp = _blurred(photo[..., 150:150 + 160 + k.shape[0] - 1, 300:300 + 160 + k.shape[0] - 1], k, 0.01)
    grey = y.mean(1, keepdim=True)
    sigma = 0.01
    from deblurkit.deconv.pipeline import assumed_noise_level

    s_model = assumed_noise_level(sigma)
    K = k.shape[0]
    cases = {
        "true": k,
        "delta": center_pad(torch.ones(1, 1), K),
        "noise": _noise_kernel(K, 3),
        "specks": _specks_kernel(K, 4),
        "shifted": torch.roll(k, (K // 3, K // 3), (0, 1)),
    }
    verdicts = {}
    for name, kk in cases.items():
        lat = deconvolve_masked(grey, kk / kk.sum(), noise_sigma=sigma)
        verdicts[name] = check_kernel(grey, lat, kk, sigma, model_sigma=s_model)
    assert verdicts["true"][0], verdicts["true"][1]
    for name in ("delta", "noise", "specks", "shifted"):
        assert not verdicts[name][0], (name, verdicts[name])
    assert "delta" in verdicts["delta"][1]


def test_kernel_diagnostics_separate_paths_from_noise(levin):
    true = kernel_diagnostics(center_pad(levin["levin09_2"], 31))
    noise = kernel_diagnostics(_noise_kernel(31, 0))
    assert true["main_component"] > 0.9 and noise["edge_mass"] > 0.15 > true["edge_mass"]
    assert noise["effective_fraction"] > 0.6 > true["effective_fraction"]


def test_check_kernel_rejects_a_bad_threshold_name():
    with pytest.raises(ValueError, match="unknown thresholds"):
        check_kernel(None, None, gaussian_kernel(5, 1.0), 0.01, thresholds={"nope": 1.0})


# ----------------------------------------------------------------------------------- pipeline


def test_blind_deblur_with_the_true_kernel_improves_and_reports(photo, levin):
    k = levin["levin09_1"]
    K = k.shape[0]
    y, sharp = _blurred(photo[..., 100:100 + 192 + K - 1, 250:250 + 192 + K - 1], k, 0.01, seed=1)
    calls: list = []
    res = blind_deblur(y, kernel_size=K, estimator=_stub(k, calls), noise_sigma=0.01)
    assert isinstance(res, DeblurResult)
    assert not res.fell_back, res.reason
    assert res.image.shape == y.shape and float(res.image.min()) >= 0 and float(res.image.max()) <= 1
    # the estimate (in a window a little larger than asked) comes back cropped to its support
    assert res.kernel.shape[0] <= calls[0]["kernel_size"]
    assert torch.allclose(center_pad(res.kernel, calls[0]["kernel_size"]), center_pad(k / k.sum(), calls[0]["kernel_size"]),
                          atol=2e-3)
    assert _psnr(res.image, sharp) > _psnr(y, sharp) + 2.0
    # the estimator saw the colour region (so it can find pixels clipped in one channel) and the clip level
    assert calls[0]["shape"][1] == 3 and calls[0]["kernel_size"] >= K and "saturation" in calls[0]
    assert res.region is not None and set(res.timings) >= {"region", "estimate", "check", "deconvolve", "total"}


def test_blind_deblur_falls_back_to_the_input_for_a_garbage_estimate(photo, levin):
    k = levin["levin09_2"]
    K = k.shape[0]
    y, _ = _blurred(photo[..., 100:100 + 160 + K - 1, 250:250 + 160 + K - 1], k, 0.01, seed=2)
    calls: list = []
    res = blind_deblur(y, kernel_size=K, estimator=_stub(_specks_kernel(K, 5), calls), noise_sigma=0.01)
    assert res.fell_back and res.kernel is None
    assert torch.equal(res.image, y)
    assert "no reliable kernel" in res.reason
    # retried: a smaller window, then the second estimator
    assert [c["method"] for c in calls] == ["dark_channel", "dark_channel", "l0"]
    assert calls[1]["kernel_size"] < calls[0]["kernel_size"]
    # without fallback the estimate is used, and the reason says the check failed
    res2 = blind_deblur(y, kernel_size=K, estimator=_stub(_specks_kernel(K, 5)), noise_sigma=0.01, fallback=False)
    assert not res2.fell_back and res2.kernel is not None and "check failed" in res2.reason


def test_blind_deblur_retry_uses_the_second_estimate_when_the_first_fails(photo, levin):
    k = levin["levin09_5"]
    K = 15
    y, sharp = _blurred(photo[..., 100:100 + 160 + k.shape[0] - 1, 250:250 + 160 + k.shape[0] - 1], k, 0.01, seed=3)
    good, bad = _stub(k), _stub(_specks_kernel(K, 6))
    calls = []

    def flaky(image, kernel_size, *, method="dark_channel", **options):
        calls.append(method)
        return (bad if len(calls) == 1 else good)(image, kernel_size, method=method, **options)

    res = blind_deblur(y, kernel_size=K, estimator=flaky, noise_sigma=0.01)
    assert not res.fell_back and res.reason.startswith("retried")
    assert len(calls) == 2
    assert _psnr(res.image, sharp) > _psnr(y, sharp) + 1.0


def test_wrong_kernel_on_a_smooth_crop_is_never_clearly_worse(camera):
    # the sky of the cameraman: smooth, where a wrong kernel only amplifies noise and rings
    sharp = camera[..., 8:168, 8:168]
    y = sharp + 0.01 * torch.randn(sharp.shape, generator=_gen(7))
    y = (torch.round(y.clamp(0, 1) * 255) / 255)
    base = _psnr(y, sharp)
    wrong = {
        "line": gaussian_kernel(21, (6.0, 0.0), angle=60),
        "noise": _noise_kernel(21, 8),
        "blob": gaussian_kernel(21, 4.0),
    }
    for name, k in wrong.items():
        res = blind_deblur(y, kernel_size=21, estimator=_stub(k))
        assert _psnr(res.image, sharp) > base - 0.5, (name, res.reason)


def test_blind_deblur_known_kernel_is_non_blind(photo, levin):
    k = levin["levin09_3"]
    K = k.shape[0]
    y, sharp = _blurred(photo[..., 200:200 + 128 + K - 1, 300:300 + 128 + K - 1], k, 0.005, seed=4)

    def never(*a, **kw):
        raise AssertionError("the estimator must not run for a given kernel")

    res = blind_deblur(y, kernel=k * 3.0, estimator=never)  # normalised inside
    assert not res.fell_back and res.region is None
    assert _psnr(res.image, sharp) > _psnr(y, sharp) + 3.0


def test_large_kernels_are_estimated_on_a_downscaled_copy(photo):
    # a 61-px request with max_kernel 31: the estimator sees a copy at under half size and a
    # <= 31 window, and the kernel comes back at the photo's resolution
    line = gaussian_kernel(31, (8.0, 0.0), angle=20)
    calls: list = []
    y = blur(photo[..., 100:260, 200:360], rescale_kernel(line, 2.0), "reflect")
    res = blind_deblur(y, kernel_size=61, max_kernel=31, estimator=_stub(line, calls), noise_sigma=0.005,
                       fallback=False)
    assert calls[0]["kernel_size"] <= 31
    assert res.diagnostics["scale"] < 0.5
    assert res.kernel is not None and res.kernel.shape[0] >= 55
    assert kernel_diagnostics(res.kernel)["centroid_offset"] < 0.05


def test_masked_deconvolution_handles_clipped_highlights(photo, levin):
    # bright light sources blurred then clipped: refilling the clipped pixels with the
    # re-blurred estimate (instead of trusting them) reduces the error everywhere else
    k = levin["levin09_2"]
    K = k.shape[0]
    big = photo[..., 100:100 + 128 + K - 1, 250:250 + 128 + K - 1].clone() * 0.7
    big[..., 60:64, 60:64] = 4.0
    big[..., 100:103, 40:43] = 4.0
    y, sharp = _blurred(big, k, 0.005, seed=5)
    clipped = saturation_mask(y, threshold=0.98, dilate=1)
    assert bool(clipped.any())
    plain = deconvolve_masked(y, k, noise_sigma=0.005, estimated=False)
    masked = deconvolve_masked(y, k, noise_sigma=0.005, clipped=clipped, estimated=False)
    keep = ~saturation_mask(sharp.clamp(0, 1), threshold=0.98, dilate=K)
    err_plain = float(((plain.clamp(0, 1) - sharp.clamp(0, 1)) ** 2)[keep.expand_as(sharp)].mean())
    err_masked = float(((masked.clamp(0, 1) - sharp.clamp(0, 1)) ** 2)[keep.expand_as(sharp)].mean())
    assert err_masked < 0.97 * err_plain


def test_blind_deblur_bad_input_raises_one_line_errors():
    good = torch.rand(1, 3, 64, 64, generator=_gen(0))
    with pytest.raises(ValueError, match="one image at a time"):
        blind_deblur(torch.rand(2, 3, 64, 64))
    with pytest.raises(ValueError, match="non-finite"):
        blind_deblur(torch.full((1, 3, 64, 64), float("nan")))
    with pytest.raises(ValueError, match="larger than the image"):
        blind_deblur(good, kernel=torch.ones(65, 65))
    with pytest.raises(ValueError, match="kernel_size"):
        blind_deblur(good, kernel_size=1, estimator=_stub(gaussian_kernel(5, 1.0)))
    with pytest.raises(ValueError, match="exclude each other"):
        blind_deblur(good, kernel=gaussian_kernel(5, 1.0), spatially_varying=True)
