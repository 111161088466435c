"""VGG feature extractor (torchvision layout, user-supplied weights) and Blur2Blur's perceptual loss."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from deblurkit.losses.perceptual import (
    BLUR2BLUR_VGG_LAYERS,
    BLUR2BLUR_VGG_WEIGHTS,
    VGGPerceptualLoss,
    blur2blur_perceptual_loss,
)
from deblurkit.losses.vgg import VGGFeatureExtractor, vgg_layer_names
from deblurkit.models import CheckpointMismatchError


def assert_close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-6, rtol: float = 1e-5) -> None:
    """``torch.allclose`` with a readable message (torch.testing's first call is slow to import)."""
    assert a.shape == b.shape, (a.shape, b.shape)
    assert torch.allclose(a, b, atol=atol, rtol=rtol), f"max |a - b| = {float((a - b).abs().max()):.3g}"

# torchvision/models/vgg.py cfgs "D" (vgg16) and "E" (vgg19), written out independently here.
CFG = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"],
}
# indices of the convolutions in torchvision's ``features``
CONV_INDICES = {
    "vgg16": [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28],
    "vgg19": [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34],
}


def torchvision_features_layout(arch: str) -> list[tuple[str, tuple[int, ...]]]:
    """(key, shape) of torchvision's ``vgg{16,19}().features`` state dict, from the config."""
    out, idx, c_in = [], 0, 3
    for v in CFG[arch]:
        if v == "M":
            idx += 1
            continue
        out += [(f"features.{idx}.weight", (v, c_in, 3, 3)), (f"features.{idx}.bias", (v,))]
        idx, c_in = idx + 2, v
    return out


def random_torchvision_state_dict(arch: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state dict in torchvision's full layout (features + a tiny stand-in classifier)."""
    g = torch.Generator().manual_seed(seed)
    sd = {k: torch.randn(shape, generator=g) * (0.05 if len(shape) == 4 else 0.01)
          for k, shape in torchvision_features_layout(arch)}
    # torchvision's file also holds classifier.{0,3,6}.{weight,bias}; the extractor ignores them
    # (real shapes are 4096 x 25088 etc.; small stand-ins keep the test light)
    for i in (0, 3, 6):
        sd[f"classifier.{i}.weight"] = torch.randn(4, 4, generator=g)
        sd[f"classifier.{i}.bias"] = torch.randn(4, generator=g)
    return sd


@pytest.fixture(scope="module")
def vgg16_sd():
    return random_torchvision_state_dict("vgg16")


@pytest.fixture(scope="module")
def vgg16_pth(tmp_path_factory, vgg16_sd):
    path = tmp_path_factory.mktemp("vgg") / "vgg16-397923af.pth"
    torch.save(vgg16_sd, path)
    return path


def official_blur2blur_features(features_sd: dict, x: torch.Tensor) -> list[torch.Tensor]:
    """Blur2Blur's models/losses/vgg_loss.py VGG16: torchvision features (ReLU(inplace=True)) cut
    into slices [0:8], [8:15], [15:18], [18:22], [22:25]; returns the five slice outputs as the
    loss reads them (after later slices ran)."""
    layers: list[nn.Module] = []
    c_in = 3
    for v in CFG["vgg16"]:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c_in, v, 3, padding=1), nn.ReLU(inplace=True)]
            c_in = v
    feats = nn.Sequential(*layers)
    feats.load_state_dict({k[len("features."):]: v for k, v in features_sd.items() if k.startswith("features.")})
    slices = [nn.Sequential(*[feats[i] for i in range(a, b)]) for a, b in
              [(0, 8), (8, 15), (15, 18), (18, 22), (22, 25)]]
    outs, h = [], x
    for s in slices:
        h = s(h)
        outs.append(h)
    return outs


# ------------------------------------------------------------------------------ layout
@pytest.mark.parametrize("arch", ["vgg16", "vgg19"])
def test_state_dict_equals_torchvision_features_layout(arch):
    net = VGGFeatureExtractor(arch=arch)
    got = [(k, tuple(v.shape)) for k, v in net.state_dict().items()]
    assert got == torchvision_features_layout(arch)
    assert sorted({int(k.split(".")[1]) for k, _ in got}) == CONV_INDICES[arch]


def test_layer_names_follow_torchvision_indices():
    n16, n19 = vgg_layer_names("vgg16"), vgg_layer_names("vgg19")
    assert len(n16) == 31 and len(n19) == 37
    assert [n16[i] for i in (0, 1, 4, 7, 8, 14, 15, 17, 18, 21, 22, 24, 30)] == [
        "conv1_1", "relu1_1", "pool1", "conv2_2", "relu2_2", "conv3_3", "relu3_3",
        "conv4_1", "relu4_1", "conv4_3", "relu4_3", "conv5_1", "pool5"]
    assert [n19[i] for i in (16, 17, 18, 19, 34, 36)] == [
        "conv3_4", "relu3_4", "pool3", "conv4_1", "conv5_4", "pool5"]
    assert [i for i, n in enumerate(n19) if n.startswith("conv")] == CONV_INDICES["vgg19"]
    with pytest.raises(ValueError, match="vgg11"):
        vgg_layer_names("vgg11")


# ------------------------------------------------------------------------------ loading
def test_loads_torchvision_pth_ignoring_classifier(vgg16_pth, vgg16_sd):
    net = VGGFeatureExtractor(arch="vgg16", weights=vgg16_pth)
    sd = net.state_dict()
    assert all(torch.equal(sd[k], vgg16_sd[k]) for k in sd)
    assert not any(k.startswith("classifier") for k in sd)


def test_loads_safetensors(tmp_path, vgg16_sd):
    path = tmp_path / "vgg16.safetensors"
    save_file({k: v.contiguous() for k, v in vgg16_sd.items() if k.startswith("features.")}, str(path))
    net = VGGFeatureExtractor(arch="vgg16", weights=path)
    sd = net.state_dict()
    assert all(torch.equal(sd[k], vgg16_sd[k]) for k in sd)


def test_loads_wrapped_vgg19(tmp_path):
    sd19 = random_torchvision_state_dict("vgg19", seed=1)
    path = tmp_path / "vgg19.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in sd19.items()}}, path)
    net = VGGFeatureExtractor(("relu5_4",), arch="vgg19", weights=path)
    assert torch.equal(net.state_dict()["features.34.weight"], sd19["features.34.weight"])


def test_missing_weights_file_says_where_to_get_it(tmp_path):
    missing = tmp_path / "nowhere" / "vgg16-397923af.pth"
    with pytest.raises(FileNotFoundError) as ei:
        VGGFeatureExtractor(weights=missing)
    msg = str(ei.value)
    assert str(missing) in msg
    assert "https://download.pytorch.org/models/vgg16-397923af.pth" in msg
    with pytest.raises(FileNotFoundError, match="vgg19-dcbb9e9d.pth"):
        VGGFeatureExtractor(arch="vgg19", weights=missing)
    with pytest.raises(FileNotFoundError, match="vgg16-397923af"):
        blur2blur_perceptual_loss(missing)


def test_mismatched_file_is_refused_untouched(tmp_path, vgg16_sd):
    bad = dict(vgg16_sd)
    del bad["features.28.bias"]
    bad["features.99.weight"] = torch.zeros(1)
    bad["features.0.weight"] = torch.zeros(64, 1, 3, 3)
    path = tmp_path / "bad.pth"
    torch.save(bad, path)
    net = VGGFeatureExtractor()
    before = net.features[0].weight.clone()
    with pytest.raises(CheckpointMismatchError) as ei:
        net.load_weights(path)
    e = ei.value
    assert e.missing == ["features.28.bias"] and e.unexpected == ["features.99.weight"]
    assert e.wrong_shape == [("features.0.weight", (64, 3, 3, 3), (64, 1, 3, 3))]
    assert "bad.pth" in str(e)
    assert torch.equal(net.features[0].weight, before)
    # a VGG19 file does not fit a VGG16
    p19 = tmp_path / "vgg19.pth"
    torch.save(random_torchvision_state_dict("vgg19"), p19)
    with pytest.raises(CheckpointMismatchError):
        VGGFeatureExtractor(arch="vgg16", weights=p19)


# ------------------------------------------------------------------------------ features
def test_features_at_named_layers(vgg16_pth):
    layers = ("conv5_1", "relu2_2", "relu4_1", "conv2_2", "pool1")
    net = VGGFeatureExtractor(layers, weights=vgg16_pth)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        f = net(x)
    assert list(f) == list(layers)  # requested order
    assert {k: tuple(v.shape) for k, v in f.items()} == {
        "conv5_1": (2, 512, 2, 2), "relu2_2": (2, 128, 16, 16), "relu4_1": (2, 512, 4, 4),
        "conv2_2": (2, 128, 16, 16), "pool1": (2, 64, 16, 16)}
    assert torch.equal(f["relu2_2"], F.relu(f["conv2_2"]))  # ReLUs are not in place
    assert float(f["conv5_1"].min()) < 0  # a pre-activation
    ref = x
    for i in range(25):
        ref = net.features[i](ref)
    assert torch.equal(ref, f["conv5_1"])


def test_frozen_and_layer_validation(vgg16_pth):
    net = VGGFeatureExtractor(weights=vgg16_pth)
    assert not net.training and all(not p.requires_grad for p in net.parameters())
    trainable = VGGFeatureExtractor(requires_grad=True)
    assert all(p.requires_grad for p in trainable.parameters())
    with pytest.raises(ValueError, match="relu6_1"):
        VGGFeatureExtractor(("relu6_1",))
    with pytest.raises(ValueError, match="repeated"):
        VGGFeatureExtractor(("relu1_1", "relu1_1"))
    with pytest.raises(ValueError, match="empty"):
        VGGFeatureExtractor(())
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        net(torch.zeros(1, 1, 32, 32))


def test_imagenet_normalisation_option(vgg16_pth):
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    plain = VGGFeatureExtractor(("relu1_2",), weights=vgg16_pth)
    normed = VGGFeatureExtractor(("relu1_2",), weights=vgg16_pth, normalize=True)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        assert_close(normed(x)["relu1_2"], plain((x - mean) / std)["relu1_2"])
    assert list(normed.state_dict()) == list(plain.state_dict())  # constants not in the state dict


def test_blur2blur_layers_match_official_inplace_slicing(vgg16_pth, vgg16_sd):
    """Official slices end on conv2_2/conv3_3/conv4_1/conv4_3/conv5_1, but the next slice's
    in-place ReLU rewrites the first four: the loss sees relu2_2, relu3_3, relu4_1, relu4_3, conv5_1."""
    assert BLUR2BLUR_VGG_LAYERS == ("relu2_2", "relu3_3", "relu4_1", "relu4_3", "conv5_1")
    assert BLUR2BLUR_VGG_WEIGHTS == (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        official = official_blur2blur_features(vgg16_sd, x)
        ours = VGGFeatureExtractor(BLUR2BLUR_VGG_LAYERS, weights=vgg16_pth)(x)
    assert len(official) == 5
    for ref, name in zip(official, BLUR2BLUR_VGG_LAYERS):
        assert_close(ours[name], ref, atol=1e-6, rtol=1e-5)


# ------------------------------------------------------------------------------ perceptual loss
def test_perceptual_loss_zero_for_identical_positive_otherwise(vgg16_pth):
    loss = blur2blur_perceptual_loss(vgg16_pth)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    y = (x + 0.1 * torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))).clamp(0, 1)
    with torch.no_grad():
        same = loss(x, x.clone())
        diff = loss(x, y)
    assert same.dim() == 0 and float(same) == 0.0
    assert float(diff) > 0 and torch.isfinite(diff)


def test_perceptual_loss_equals_official_formula(vgg16_pth, vgg16_sd):
    loss = blur2blur_perceptual_loss(vgg16_pth)
    g = torch.Generator().manual_seed(5)
    x, y = torch.rand(1, 3, 32, 32, generator=g), torch.rand(1, 3, 32, 32, generator=g)
    x_off = x.clone().requires_grad_(True)
    fx, fy = official_blur2blur_features(vgg16_sd, x_off), official_blur2blur_features(vgg16_sd, y)
    ref = sum(w * F.l1_loss(a, b.detach()) for w, a, b in zip([1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0], fx, fy))
    ref.backward()
    x_ours = x.clone().requires_grad_(True)
    ours = loss(x_ours, y)
    ours.backward()
    assert_close(ours.detach(), ref.detach(), atol=1e-6, rtol=1e-5)
    assert_close(x_ours.grad, x_off.grad, atol=1e-7, rtol=1e-4)


def test_perceptual_gradients_reach_input_not_vgg_or_target(vgg16_pth):
    loss = blur2blur_perceptual_loss(vgg16_pth)
    g = torch.Generator().manual_seed(6)
    x = torch.rand(1, 3, 32, 32, generator=g).requires_grad_(True)
    y = torch.rand(1, 3, 32, 32, generator=g).requires_grad_(True)
    loss(x, y).backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert y.grad is None  # target features are detached, as official
    assert all(p.grad is None and not p.requires_grad for p in loss.vgg.parameters())
    loss.train()
    assert loss.training and not loss.vgg.training  # the VGG stays in eval


def test_perceptual_loss_options_and_errors(vgg16_pth):
    vgg = VGGFeatureExtractor(("relu1_1",), requires_grad=True)
    custom = VGGPerceptualLoss(vgg, layers=("relu1_2", "relu2_1"), layer_weights=(1.0, 0.5), criterion="mse")
    assert custom.vgg is vgg and not any(p.requires_grad for p in vgg.parameters())
    assert vgg.layers == ("relu1_1",) and not vgg.training  # its own layers are left alone
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(7))
    y = torch.zeros(1, 3, 16, 16)
    with torch.no_grad():
        f, t = vgg(x, ("relu1_2", "relu2_1")), vgg(y, ("relu1_2", "relu2_1"))
        expected = F.mse_loss(f["relu1_2"], t["relu1_2"]) + 0.5 * F.mse_loss(f["relu2_1"], t["relu2_1"])
        assert_close(custom(x, y), expected)
    with pytest.raises(ValueError, match="layer_weights"):
        VGGPerceptualLoss(vgg16_pth, layers=("relu1_1",), layer_weights=(1.0, 2.0))
    with pytest.raises(ValueError, match="criterion"):
        VGGPerceptualLoss(vgg16_pth, criterion="l3")
    with pytest.raises(ValueError, match="weights"):
        VGGPerceptualLoss(None)
    with pytest.raises(ValueError, match="differ"):
        custom(x, torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="relu9_9"):
        VGGPerceptualLoss(vgg, layers=("relu9_9",), layer_weights=(1.0,))
    with pytest.raises(ValueError, match="VGG16"):
        blur2blur_perceptual_loss(VGGFeatureExtractor(("relu1_1",), arch="vgg19"))
    with pytest.raises(ValueError, match="normalize=True"):
        blur2blur_perceptual_loss(VGGFeatureExtractor(("relu1_1",), normalize=True))
