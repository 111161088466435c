"""GRR_real / RSGR-GS_v1 loaders: PNG pairs by file name, RAW folders (rawpy), augmentation."""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch
from PIL import Image

from deblurkit.data import open_layout
from deblurkit.data.grr import GRRPairedDataset, find_grr_pairs, read_raw
from deblurkit.engine import build_dataset
from deblurkit.io import save_image


def _layout(root, seqs=("seqA", "seqB"), names=("3.png", "12.png"), split="train", size=(6, 10)):
    g = torch.Generator().manual_seed(0)
    for seq in seqs:
        for n in names:
            for kind in ("RSGR", "GS"):
                save_image(root / split / seq / kind / "PNG" / n, torch.rand(3, *size, generator=g))
    return root


def test_pairs_by_file_name_in_every_sequence(tmp_path):
    root = _layout(tmp_path)
    pairs = find_grr_pairs(root, "train")
    assert [p[0] for p in pairs] == ["seqA/12", "seqA/3", "seqB/12", "seqB/3"]
    for name, lq, gt in pairs:
        assert lq.parent.parent.name == "RSGR" and gt.parent.parent.name == "GS" and lq.name == gt.name
    ds = GRRPairedDataset(root, "train")
    item = ds[1]
    assert item["name"] == "seqA/3" and item["lq"].shape == item["gt"].shape == (3, 6, 10)
    png = np.asarray(Image.open(root / "train/seqA/GS/PNG/3.png"), dtype=np.float32) / 255.0
    assert torch.allclose(item["gt"], torch.from_numpy(png).permute(2, 0, 1))
    # registered for configs and for `deblurkit evaluate --layout`
    assert len(build_dataset({"type": "grr", "root": str(root), "split": "train"})) == 4
    assert len(open_layout("grr_real", root, "train")) == len(open_layout("rsgr_gs_v1", root, "train")) == 4


def test_bad_layouts_name_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="validate"):
        find_grr_pairs(tmp_path, "validate")
    root = _layout(tmp_path)
    gone = root / "train" / "seqB" / "GS" / "PNG" / "3.png"
    gone.rename(gone.with_suffix(".bak"))
    with pytest.raises(ValueError, match=r"seqB.*only in RSGR: \['3.png'\]"):
        find_grr_pairs(root, "train")
    gone.with_suffix(".bak").rename(gone)
    (root / "train" / "seqC" / "RSGR" / "PNG").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"seqC: missing folder GS/PNG"):
        GRRPairedDataset(root, "train")
    with pytest.raises(ValueError, match="image_format"):
        find_grr_pairs(root, "train", image_format="tiff")


def test_augmentation_flips_horizontally_and_swaps_channels_never_vertically(tmp_path):
    root = _layout(tmp_path, seqs=("s",), names=("0.png",))
    plain = GRRPairedDataset(root, "train")[0]
    ds = GRRPairedDataset(root, "train", augment=True, seed=3)
    variants = {
        "id": lambda x: x, "hflip": lambda x: x.flip(-1), "bgr": lambda x: x.flip(0),
        "hflip+bgr": lambda x: x.flip(-1).flip(0),
    }
    seen = set()
    for epoch in range(24):
        ds.set_epoch(epoch)
        it = ds[0]
        match = [k for k, f in variants.items() if torch.equal(it["lq"], f(plain["lq"]))]
        assert len(match) == 1, "augmented frame is not a horizontal flip / channel swap of the original"
        assert torch.equal(it["gt"], variants[match[0]](plain["gt"]))  # same transform on both
        assert not torch.equal(it["lq"], plain["lq"].flip(-2))
        seen.add(match[0])
    assert seen == set(variants)


def test_raw_folder_without_camera_raw_files_says_what_is_supported(tmp_path):
    root = _layout(tmp_path, seqs=("s",), names=("0.png",))
    for kind in ("RSGR", "GS"):
        (root / "train" / "s" / kind / "RAW").mkdir()
        (root / "train" / "s" / kind / "RAW" / "0.npy").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"RAW: holds no camera RAW files \(found \['\.npy'\]\).*\.dng"):
        GRRPairedDataset(root, "train", image_format="raw")


def _raw_layout(root):
    for kind in ("RSGR", "GS"):
        d = root / "train" / "s" / kind / "RAW"
        d.mkdir(parents=True)
        (d / "0.dng").write_bytes(b"not really a dng")
    return root


def test_raw_without_rawpy_raises_a_clear_import_error(tmp_path, monkeypatch):
    root = _raw_layout(tmp_path)
    monkeypatch.setitem(sys.modules, "rawpy", None)  # import rawpy -> ImportError
    ds = GRRPairedDataset(root, "train", image_format="raw")
    assert ds.pairs[0][0] == "s/0"
    with pytest.raises(ImportError, match="pip install rawpy"):
        ds[0]


def test_raw_files_are_demosaicked_by_rawpy_linear_16_bit(tmp_path, monkeypatch):
    root = _raw_layout(tmp_path)
    calls = []

    class FakeRaw:
        def __init__(self, path):
            self.path = path

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

        def postprocess(self, **kw):
            calls.append(kw)
            if "broken" in self.path:
                raise RuntimeError("LibRawFileUnsupportedError")
            return np.broadcast_to(np.array([65535, 32768, 0], np.uint16), (4, 5, 3)).copy()

    fake = types.SimpleNamespace(imread=lambda p: FakeRaw(p))
    monkeypatch.setitem(sys.modules, "rawpy", fake)
    item = GRRPairedDataset(root, "train", image_format="raw")[0]
    assert item["lq"].shape == (3, 4, 5) and item["lq"].dtype == torch.float32
    assert torch.allclose(item["lq"][:, 0, 0], torch.tensor([1.0, 32768 / 65535, 0.0]))
    assert calls[0] == {"use_camera_wb": True, "no_auto_bright": True, "gamma": (1, 1), "output_bps": 16}
    (root / "broken.dng").write_bytes(b"")
    with pytest.raises(Exception, match="broken.dng: cannot read camera RAW file"):
        read_raw(root / "broken.dng")
