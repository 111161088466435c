"""FFT conventions of deblurkit.deconv.fft agree with the spatial blur of deblurkit.synth."""
import torch

from deblurkit.deconv.fft import conv_circular, grad, grad_adjoint, grad_otfs, otf2psf, psf2otf
from deblurkit.synth.blur import blur


def _rand(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g, dtype=torch.float64)


def test_psf2otf_matches_circular_spatial_blur_for_odd_and_even_kernels():
    x = _rand(1, 2, 20, 23)
    for kshape in [(5, 7), (4, 6), (1, 3)]:
        k = _rand(*kshape, seed=1)
        ref = blur(x, k, "circular", method="direct")
        assert torch.allclose(conv_circular(x, k), ref, atol=1e-12)


def test_otf2psf_inverts_psf2otf():
    k = _rand(9, 6, seed=2)
    assert torch.allclose(otf2psf(psf2otf(k, (32, 31)), k.shape, (32, 31)), k, atol=1e-12)


def test_gradient_otfs_match_gradient_and_adjoint():
    x = _rand(2, 17, 24)
    dx, dy = grad(x)
    fx, fy = grad_otfs((17, 24), dtype=torch.float64)
    X = torch.fft.rfft2(x)
    assert torch.allclose(torch.fft.irfft2(X * fx, s=(17, 24)), dx, atol=1e-12)
    assert torch.allclose(torch.fft.irfft2(X * fy, s=(17, 24)), dy, atol=1e-12)
    assert dx[0, 3, 5] == x[0, 3, 6] - x[0, 3, 5]
    gx, gy = _rand(2, 17, 24, seed=3), _rand(2, 17, 24, seed=4)
    lhs = (dx * gx).sum() + (dy * gy).sum()
    rhs = (x * grad_adjoint(gx, gy)).sum()
    assert torch.allclose(lhs, rhs, atol=1e-10)
