"""Official evaluation / training layouts of the event-guided low-light deblurring system
(deblurkit.data.events), the NumPy-2 float64 fix, and the inference wrapper's padding
(deblurkit.inference.events.EventDeblurrer) for sizes the network rejects."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import event_layout as L
from deblurkit.data import DATASETS, open_layout
from deblurkit.data.events import EventDeblurDataset, load_voxel_grid
from deblurkit.inference.events import EventDeblurrer
from deblurkit.models import build
from deblurkit.synth.voxel import from_official_layout


def _official_normalize_events(events):
    """normalize_events of the official utils/util.py, operation for operation (the bug under test)."""
    nonzero_ev = events != 0
    num_nonzeros = np.sum(nonzero_ev)
    if num_nonzeros > 0:
        mean = np.sum(events) / num_nonzeros
        stddev = np.sqrt(np.sum(events ** 2) / num_nonzeros - mean ** 2)
        mask = np.float32(nonzero_ev)
        events = mask * (events - mean) / stddev
    return events


def test_numpy2_float64_crash_is_fixed(tmp_path):
    root = L.write_real(tmp_path / "real", names=("x",), h=16, w=40)
    raw = np.load(root / "events_voxel_grid/x.npy")
    assert raw.dtype == np.float32
    official = _official_normalize_events(raw)
    if np.lib.NumpyVersion(np.__version__) >= "2.0.0":
        # NEP 50: the float64 mean scalar promotes the float32 grid -> DoubleTensor -> the float32 network fails
        assert official.dtype == np.float64
        net = build("evdeblur", init_dim=32).eval()
        E = torch.from_numpy(np.ascontiguousarray(official.transpose(2, 0, 1)))[None]
        B = torch.rand(1, 1, 16, 40)
        with pytest.raises(RuntimeError, match="(?i)double|dtype|type"):
            net(E, B, B)
    E = load_voxel_grid(root / "events_voxel_grid/x.npy")
    assert E.dtype == torch.float32 and E.shape == (13, 16, 40)
    np.testing.assert_allclose(E.numpy(), from_official_layout(official.astype(np.float32)), atol=1e-5)
    ds = open_layout("evdeblur_real", root, "test")
    assert ds[0]["E"].dtype == torch.float32


def test_synthetic_layout_items_and_training_targets(tmp_path):
    root = L.write_synthetic(tmp_path / "test")
    ds = open_layout("evdeblur_synthetic", tmp_path, "test")  # <root>/<split> when it exists
    assert len(ds) == 2 and ds.names == ["a_000", "b_001"]
    it = ds[1]
    assert it["E"].shape == (13, 16, 40) and it["B"].shape == (1, 16, 40)
    assert it["lq"] is it["Bi"] and torch.equal(it["Bi"], it["B"]) and it["gt"].shape == (1, 16, 40)
    import cv2

    sharp = cv2.imread(str(root / "subnetwork2/APS/b_001.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_allclose(it["gt"][0].numpy(), sharp / 255.0, atol=1e-6)
    rgb = open_layout("evdeblur_synthetic_rgb", root, "")[0]
    assert rgb["Bi"].shape == (3, 48, 120) and rgb["gt"].shape == (3, 48, 120) and rgb["B"].shape == (1, 16, 40)
    train = DATASETS["evdeblur"](root=root)
    t = train[0]
    assert t["F"].shape == (4, 16, 40) and t["Bi_clean"].shape == (1, 16, 40)
    flow = np.load(root / "share/flow/a_000.npy")
    np.testing.assert_array_equal(t["F"].numpy(), flow.transpose(2, 0, 1))


def test_random_crop_keeps_aps_and_rgb_aligned(tmp_path):
    root = L.write_synthetic(tmp_path / "s", h=24, w=80)
    full = EventDeblurDataset(root, "synthetic", rgb=True, targets=True)[0]
    crop = EventDeblurDataset(root, "synthetic", rgb=True, targets=True, patch_size=(16, 40), seed=3)[0]
    assert crop["E"].shape == (13, 16, 40) and crop["S"].shape == (3, 48, 120)
    # locate the crop in the full frame through B, then check every other field at that offset
    hits = [(t, l) for t in range(9) for l in range(41)
            if torch.equal(full["B"][:, t:t + 16, l:l + 40], crop["B"])]
    assert len(hits) == 1
    t, l = hits[0]
    assert torch.equal(full["E"][:, t:t + 16, l:l + 40], crop["E"])
    assert torch.equal(full["F"][:, t:t + 16, l:l + 40], crop["F"])
    assert torch.equal(full["S"][:, 3 * t:3 * t + 48, 3 * l:3 * l + 120], crop["S"])
    with pytest.raises(ValueError, match="multiple of 8"):
        EventDeblurDataset(root, "synthetic", patch_size=(12, 40))


def test_layout_errors_name_the_folder(tmp_path):
    root = L.write_synthetic(tmp_path / "s")
    (root / "share/APS_blur/b_001.png").unlink()
    with pytest.raises(ValueError, match=r"APS_blur.*b_001"):
        open_layout("evdeblur_synthetic", root, "")
    with pytest.raises(FileNotFoundError, match=r"missing folder events_voxel_grid/ of the official real layout"):
        open_layout("evdeblur_real", tmp_path / "s", "")
    real = L.write_real(tmp_path / "r")
    np.save(real / "events_voxel_grid/r1.npy", np.zeros((47, 13, 13), np.float32))
    with pytest.raises(ValueError, match=r"r1.*E is \(47, 13\), expected \(13, 47\)"):
        open_layout("evdeblur_real", real, "")[1]
    np.save(real / "events_voxel_grid/r0.npy", np.zeros((13, 47, 5), np.float32))
    with pytest.raises(ValueError, match=r"r0\.npy.*\(H, W, 13\)"):
        open_layout("evdeblur_real", real, "")[0]


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    from deblurkit.models import save_safetensors

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("w")
    return (save_safetensors(build("evdeblur", init_dim=32), d / "grey.safetensors"),
            save_safetensors(build("evdeblur_rgb", init_dim=32), d / "rgb.safetensors"))


@pytest.mark.parametrize("h,w", [(13, 47), (16, 40), (9, 5)])
def test_wrapper_pads_and_crops_any_aps_size(random_weights, h, w):
    d = EventDeblurrer("evdeblur", weights=random_weights[0])
    assert d.model_overrides.get("init_dim") == 32  # detected from the checkpoint's shapes
    E, B = torch.randn(13, h, w), torch.rand(1, h, w)
    out = d.run(E, B, normalize=True)
    assert out.S.shape == (1, h, w) and out.F.shape == (4, h, w) and out.Bi_clean.shape == (1, h, w)
    assert torch.isfinite(out.S).all() and 0 <= float(out.S.min()) and float(out.S.max()) <= 1
    # the padded run's valid region is what the network computes on the padded inputs
    from deblurkit.models.evdeblur import pad_event_inputs
    from deblurkit.synth.voxel import normalize_voxel_grid

    En = torch.from_numpy(normalize_voxel_grid(E.numpy()))[None]
    p = pad_event_inputs(En, B[None])
    with torch.no_grad():
        ref = d.net(p.E, p.B, p.Bi)[2][0, :, :h, :w]
    torch.testing.assert_close(out.S, ref)


def test_wrapper_rgb_three_times_the_aps_up_to_rounding(random_weights):
    d = EventDeblurrer("evdeblur_rgb", weights=random_weights[1])
    for H, W in ((39, 141), (40, 142), (38, 140)):
        out = d.run(torch.randn(1, 13, 13, 47), torch.rand(1, 1, 13, 47), torch.rand(1, 3, H, W))
        assert out.S.shape == (1, 3, H, W) and out.F.shape == (1, 4, 13, 47)
    with pytest.raises(ValueError, match="pass Bi"):
        d.run(torch.randn(13, 13, 47), torch.rand(1, 13, 47))
    with pytest.raises(ValueError, match="not 3x the APS"):
        d.run(torch.randn(13, 13, 47), torch.rand(1, 13, 47), torch.rand(3, 60, 141))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        d.run(torch.randn(13, 13, 47), torch.rand(1, 13, 47) * 255, torch.rand(3, 39, 141))
    with pytest.raises(ValueError, match="without weights"):
        EventDeblurrer("evdeblur")
    with pytest.raises(ValueError, match="not an event-guided model"):
        EventDeblurrer("mimo_unet", allow_random=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert EventDeblurrer("evdeblur", allow_random=True, model_overrides={"init_dim": 32}).weights is None
