"""BlurOperator (forward = synth.blur.blur, exact adjoint) and kernel validation."""
import pytest
import torch

from deblurkit.deconv.operators import BlurOperator, normalize_kernel, validate_kernel
from deblurkit.synth.blur import blur


def _rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _kernel(*shape, seed=1):
    k = _rand(*shape, seed=seed)
    return k / k.sum(dim=(-2, -1), keepdim=True)


@pytest.mark.parametrize("boundary", ["valid", "circular", "reflect"])
@pytest.mark.parametrize("kshape", [(5, 7), (4, 6), (2, 7, 5)])
def test_adjoint_is_exact(boundary, kshape):
    op = BlurOperator(_kernel(*kshape), boundary)
    x = _rand(2, 3, 19, 23, seed=2)
    ax = op(x)
    y = _rand(*ax.shape, seed=3)
    aty = op.adjoint(y)
    assert aty.shape == x.shape
    lhs, rhs = (ax * y).sum(), (x * aty).sum()
    assert abs(float(lhs - rhs)) < 1e-10 * float(lhs.abs())


@pytest.mark.parametrize("boundary", ["valid", "circular", "reflect"])
def test_forward_equals_synth_blur(boundary):
    k = _kernel(2, 6, 5, seed=4)
    x = _rand(2, 1, 16, 18, seed=5)
    out = BlurOperator(k, boundary)(x)
    assert torch.equal(out, blur(x, k, boundary))
    if boundary == "valid":
        assert out.shape == (2, 1, 11, 14)
    # and with direct, spatial evaluation (a different code path of blur)
    assert torch.allclose(out, blur(x, k, boundary, method="direct"), atol=1e-12)


def test_reflect_adjoint_differs_from_plain_flipped_blur():
    """The scatter-add of the reflected border matters: A^T is not the flipped-kernel blur."""
    k = _kernel(5, 5, seed=6)
    y = _rand(1, 1, 12, 12, seed=7)
    naive = blur(y, torch.flip(k, (-2, -1)), "reflect")
    assert (BlurOperator(k, "reflect").adjoint(y) - naive).abs().max() > 1e-3


@pytest.mark.parametrize("bad, msg", [
    (torch.zeros(0, 5), "empty"),
    (torch.zeros(3, 0, 5), "empty"),
    (torch.tensor([[float("inf"), 0.0], [0.0, 0.0]]), "non-finite"),
    (torch.tensor([[float("nan"), 0.5], [0.25, 0.25]]), "non-finite"),
    (torch.tensor([[1.2, -0.2]]), "negative"),
    (torch.zeros(4, 4), "all zeros"),
    (torch.full((4, 4), 1 / 8), "normalise"),
    (torch.ones(5), "shape"),
])
def test_validate_kernel_errors(bad, msg):
    with pytest.raises(ValueError, match=msg):
        validate_kernel(bad)


def test_validate_kernel_size_and_tolerance():
    k = torch.full((9, 9), 1 / 81)
    assert validate_kernel(k, (9, 20)) is k
    with pytest.raises(ValueError, match="larger than the image 8x20"):
        validate_kernel(k, (8, 20))
    validate_kernel(k * (1 + 5e-4))  # within 1e-3
    with pytest.raises(ValueError, match="normalise"):
        validate_kernel(k * (1 + 5e-3))
    with pytest.raises(ValueError, match="boundary"):
        BlurOperator(k, "zero")


def test_normalize_kernel():
    k = torch.tensor([[[1.0, -1.0], [2.0, 1.0]], [[0.0, 3.0], [1.0, 0.0]]])
    n = normalize_kernel(k)
    assert torch.allclose(n.sum(dim=(-2, -1)), torch.ones(2))
    assert torch.allclose(n[0], torch.tensor([[0.25, 0.0], [0.5, 0.25]]))
    validate_kernel(n)
    with pytest.raises(ValueError, match="positive mass"):
        normalize_kernel(-torch.ones(3, 3))
