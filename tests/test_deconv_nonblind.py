"""Non-blind deconvolution (deblurkit.deconv.nonblind): known answers on synthetic and photo data."""
import pytest
import torch

from deblurkit.deconv.nonblind import deconvolve, hyper_laplacian, pnp_hqs, shrink_lp, wiener
from deblurkit.io.images import read_image
from deblurkit.synth.blur import blur, blur_valid_pair
from deblurkit.synth.kernels import gaussian_kernel, levin_kernels


def _psnr(a, b):
    return float(-10 * torch.log10(((a.clamp(0, 1) - b) ** 2).mean()))


def _pieces(n=1, c=3, size=96, seed=0):
    """Piecewise-constant images: random rectangles on a grey background."""
    g = torch.Generator().manual_seed(seed)
    x = torch.full((n, c, size, size), 0.5)
    for i in range(n):
        for _ in range(12):
            y0, x0 = torch.randint(0, size - 8, (2,), generator=g).tolist()
            h, w = torch.randint(6, size // 2, (2,), generator=g).tolist()
            x[i, :, y0:y0 + h, x0:x0 + w] = torch.rand(c, 1, 1, generator=g)
    return x


def _noisy_valid(sharp_big, k, sigma=0.01, seed=1):
    b, s = blur_valid_pair(sharp_big, k)
    g = torch.Generator().manual_seed(seed)
    return (b + sigma * torch.randn(b.shape, generator=g)).clamp(0, 1), s


@pytest.fixture(scope="module")
def levin(shared_data):
    return levin_kernels(data_root=shared_data)


def test_wiener_without_noise_inverts_circular_blur():
    x = _pieces(1, 3, 64)
    k = torch.full((3, 3), 0.5 / 9)
    k[1, 1] += 0.5  # well-conditioned: |K| >= 1/3
    y = blur(x, k, "circular")
    out = wiener(y, k, boundary="circular", weight=1e8)
    assert (out - x).abs().max() < 1e-4
    # the default weight (noise floor) regularises: close, but not exact
    assert 25 < _psnr(wiener(y, k, boundary="circular", noise_sigma=0.0), x) < 60


@pytest.mark.parametrize("method", ["hyper_laplacian", "tv", "wiener", "pnp"])
def test_each_method_beats_the_blurry_input_on_piecewise_constant_images(method, levin):
    k = levin["levin09_3"]  # 15x15 camera shake
    y, s = _noisy_valid(_pieces(1, 3, 96 + 14), k)
    gain = _psnr(deconvolve(y, k, method=method, noise_sigma=0.01), s) - _psnr(y, s)
    assert gain > {"wiener": 2.0, "pnp": 3.0}.get(method, 5.0), gain


@pytest.mark.parametrize("boundary", ["smooth", "reflect", "circular"])
def test_hyper_laplacian_known_boundary_modes_on_circular_blur(boundary):
    """On a circularly blurred image the circular model is exact and every mode improves it."""
    x = _pieces(1, 1, 96, seed=3)
    k = gaussian_kernel(9, 1.6)
    g = torch.Generator().manual_seed(0)
    y = (blur(x, k, "circular") + 0.005 * torch.randn(1, 1, 96, 96, generator=g)).clamp(0, 1)
    out = deconvolve(y, k, boundary=boundary, noise_sigma=0.005)
    inner = (slice(None), slice(None), slice(12, -12), slice(12, -12))
    assert _psnr(out[inner], x[inner]) - _psnr(y[inner], x[inner]) > 4.0


def test_unknown_boundary_beats_circular_on_a_valid_blurred_photo(shared_data, levin):
    im = read_image(shared_data / "photos" / "wallpaper" / "mate_Garden.jpg")
    k = levin["levin09_2"]
    c = 128 + k.shape[0] - 1
    h, w = im.shape[-2:]
    crop = im[None, :, (h - c) // 2:(h - c) // 2 + c, (w - c) // 2:(w - c) // 2 + c]
    y, s = _noisy_valid(crop, k)
    unknown = _psnr(deconvolve(y, k, boundary="unknown", noise_sigma=0.01), s)
    circular = _psnr(deconvolve(y, k, boundary="circular", noise_sigma=0.01), s)
    assert unknown > _psnr(y, s) + 2.0
    assert unknown > circular + 3.0, (unknown, circular)


def test_output_is_aligned_with_the_input_for_a_shifting_kernel():
    """A kernel that is an off-centre delta translates the image; deconvolution must undo it
    exactly in the interior (the kernel-centre convention of synth.blur)."""
    x = _pieces(1, 1, 80 + 4, seed=5)
    k = torch.zeros(5, 5)
    k[0, 1] = 1.0
    y, s = blur_valid_pair(x, k)
    out = deconvolve(y, k, boundary="unknown", weight=1e4)
    assert _psnr(out[..., 4:-4, 4:-4], s[..., 4:-4, 4:-4]) > 35
    assert _psnr(out[..., 4:-4, 4:-4], y[..., 4:-4, 4:-4]) < 25  # the shift was undone


def test_batch_of_two_with_different_kernels_and_grey(levin):
    k = torch.stack([levin["levin09_5"], gaussian_kernel(13, 2.0)])  # 13x13 each
    big = _pieces(2, 1, 72 + 12, seed=7)
    b, s = blur_valid_pair(big, k)
    out = deconvolve(b, k, noise_sigma=0.005)
    assert out.shape == (2, 1, 72, 72) and out.dtype == torch.float32
    for i in range(2):
        one = deconvolve(b[i:i + 1], k[i], noise_sigma=0.005)
        assert torch.allclose(out[i:i + 1], one, atol=1e-4)
        assert _psnr(one, s[i:i + 1]) > _psnr(b[i:i + 1], s[i:i + 1]) + 3
    # (C, H, W) input gives (C, H, W)
    assert deconvolve(b[0], k[0], noise_sigma=0.005).shape == (1, 72, 72)


@pytest.mark.parametrize("bad, msg", [
    (torch.zeros(0, 3), "empty"),
    (torch.tensor([[0.5, -0.1], [0.3, 0.3]]), "negative"),
    (torch.full((3, 3), 1 / 9).index_put_((torch.tensor(0), torch.tensor(0)), torch.tensor(float("nan"))), "non-finite"),
    (torch.full((3, 3), 0.2), "normalise"),
    (torch.zeros(3, 3), "all zeros"),
    (torch.full((40, 40), 1 / 1600), "larger than the image"),
])
def test_bad_kernels_raise_value_error(bad, msg):
    with pytest.raises(ValueError, match=msg):
        deconvolve(torch.rand(1, 3, 32, 32), bad)


def test_bad_arguments_raise_value_error():
    k = torch.full((3, 3), 1 / 9)
    with pytest.raises(ValueError, match="method"):
        deconvolve(torch.rand(1, 1, 16, 16), k, method="magic")
    with pytest.raises(ValueError, match="boundary"):
        deconvolve(torch.rand(1, 1, 16, 16), k, boundary="zero")
    with pytest.raises(ValueError, match="image"):
        deconvolve(torch.rand(16, 16), k)
    with pytest.raises(ValueError, match="kernels for a batch"):
        deconvolve(torch.rand(2, 1, 16, 16), torch.full((3, 3, 3), 1 / 9))


def test_shrink_lp_matches_brute_force_minimisation():
    v = torch.linspace(-2, 2, 81, dtype=torch.float64)
    w = torch.linspace(-2.5, 2.5, 20001, dtype=torch.float64)
    for alpha in (0.5, 2 / 3, 0.8, 1.0):
        for beta in (2.83, 64.0, 2000.0):
            f = w.abs()[None] ** alpha + beta / 2 * (w[None] - v[:, None]) ** 2
            ref = w[f.argmin(1)]
            got = shrink_lp(v.float(), alpha, beta).double()
            assert (got - ref).abs().max() < 5e-4, (alpha, beta)
            if alpha in (0.5, 2 / 3):  # closed forms (cubic / quartic), float32 and float64
                assert (shrink_lp(v.float(), alpha, beta, exact=True).double() - ref).abs().max() < 5e-4
                assert (shrink_lp(v, alpha, beta, exact=True) - ref).abs().max() < 5e-4


def test_fast_gradients_match_the_fft_module():
    from deblurkit.deconv.fft import grad, grad_adjoint
    from deblurkit.deconv.nonblind import _grad, _grad_adjoint

    x = torch.rand(2, 3, 11, 13, generator=torch.Generator().manual_seed(0))
    for a, b in zip(_grad(x), grad(x)):
        assert torch.equal(a, b)
    gx, gy = grad(x)
    assert torch.allclose(_grad_adjoint(gx, gy), grad_adjoint(gx, gy), atol=1e-6)


def test_pnp_accepts_any_denoiser_and_identity_denoiser_is_a_regularised_inverse():
    x = _pieces(1, 1, 64, seed=9)
    k = gaussian_kernel(7, 1.0)
    y = blur(x, k, "circular")
    calls = []

    def ident(z, sigma):
        calls.append(sigma)
        return z

    out = pnp_hqs(y, k, ident, noise_sigma=0.001, boundary="circular", iterations=5)
    assert len(calls) == 5 and calls[0].shape == (1,)
    assert float(calls[0][0]) > float(calls[-1][0])  # decreasing schedule
    assert _psnr(out, x) > _psnr(y, x)


def test_smooth_padding_keeps_the_image_and_closes_the_wrap_smoothly():
    from deblurkit.deconv.padding import make_domain, smooth_pad

    y = torch.rand(2, 3, 40, 50, generator=torch.Generator().manual_seed(11))
    p = smooth_pad(y, (64, 72))
    assert p.shape == (2, 3, 64, 72) and torch.equal(p[..., :40, :50], y)
    # periodic without a jump: wrap-around differences in the pad are far below the image's
    step = (p[..., :, 1:] - p[..., :, :-1]).abs()
    assert float(step[..., 45:60, 52:70].mean()) < 0.25 * float(step[..., :40, :49].mean())
    dom = make_domain(y, (9, 9), "unknown")
    assert dom.mask.sum() == 40 * 50 and dom.grid.shape[-2] >= 40 + 18
    with pytest.raises(ValueError, match="half the kernel"):
        make_domain(y, (9, 9), "unknown", pad=3)


def test_tv_denoise_removes_noise_and_sigma_zero_is_identity():
    from deblurkit.deconv.denoisers import tv_denoise

    x = _pieces(2, 1, 64, seed=13)
    g = torch.Generator().manual_seed(0)
    noisy = x + 0.05 * torch.randn(x.shape, generator=g)
    out = tv_denoise(noisy, torch.tensor([0.05, 0.05]))
    assert _psnr(out, x) > _psnr(noisy, x) + 6
    assert torch.equal(tv_denoise(noisy, 0.0), noisy)
    with pytest.raises(ValueError, match="sigma"):
        tv_denoise(noisy, -1.0)
