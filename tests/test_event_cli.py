"""``deblurkit deblur --model evdeblur --events REC`` on the real DAVIS346 recording and
``deblurkit evaluate --model evdeblur`` on the official layouts. The weights are RANDOMLY
INITIALISED (init_dim 32): these tests check the pipeline, not the deblurring quality."""
from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import event_layout as L
from deblurkit.cli import app
from deblurkit.io.events import frame_event_windows, read_event_recording
from deblurkit.models import build, save_safetensors

runner = CliRunner()
REC = "events/davis346_aps_events_imu.aedat4"


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    return save_safetensors(build("evdeblur", init_dim=32), tmp_path_factory.mktemp("w") / "evdeblur_random.safetensors")


def _run(*args):
    res = runner.invoke(app, [str(a) for a in args])
    return res.exit_code, res.output


def test_deblur_real_davis_recording(shared_data, weights, tmp_path):
    rec_path = shared_data / REC
    out = tmp_path / "out"
    code, text = _run("deblur", "--model", "evdeblur", "--weights", weights, "--events", rec_path, "-o", out,
                      "--frames", "1:3", "--compare", "--device", "cpu")
    assert code == 0, text
    rec = read_event_recording(rec_path)
    windows = list(frame_event_windows(rec))
    rows = list(csv.DictReader(open(out / "frames.csv")))
    assert [r["name"] for r in rows] == ["frame_000001", "frame_000002"]
    for r, i in zip(rows, (1, 2)):
        name = r["name"]
        blurry = cv2.imread(str(out / "APS_blur" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(blurry, rec.frames[i].image)  # the recorded APS frame, untouched
        sharp = cv2.imread(str(out / "S_pred" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        assert sharp.shape == (260, 346) and sharp.dtype == np.uint8  # padded to 264x360 inside, cropped back
        voxel = np.load(out / "events_voxel_grid" / f"{name}.npy")
        assert voxel.shape == (260, 346, 13)
        ev = windows[i].events
        assert int(r["n_events"]) == len(ev) > 0
        assert float(voxel.sum()) == pytest.approx(float(ev[:, 3].sum()), abs=1e-3)  # ON - OFF
        assert int(r["t0_us"]) == rec.frames[i].exposure_begin_t
        assert cv2.imread(str(out / "compare" / f"{name}.png")).shape == (260, 3 * 346 + 8, 3)
    # the output folder is the official real layout: deblurring it again gives the same frames
    code, text = _run("deblur", "--model", "evdeblur", "--weights", weights, "--events", out, "-o",
                      tmp_path / "again", "--frames", "0:1", "--device", "cpu")
    assert code == 0, text
    a = cv2.imread(str(out / "S_pred/frame_000001.png"), cv2.IMREAD_UNCHANGED).astype(int)
    b = cv2.imread(str(tmp_path / "again/S_pred/frame_000001.png"), cv2.IMREAD_UNCHANGED).astype(int)
    assert np.abs(a - b).max() <= 1


def test_deblur_events_errors(shared_data, weights, tmp_path):
    rec_path = shared_data / REC
    code, text = _run("deblur", "--model", "evdeblur", "--events", rec_path, "-o", tmp_path)
    assert code == 2 and "--weights" in text
    code, text = _run("deblur", "--model", "evdeblur_rgb", "--weights", weights, "--events", rec_path, "-o", tmp_path)
    assert code == 2 and "no RGB frames" in text
    code, text = _run("deblur", "--model", "evdeblur", "--weights", weights, "--events", tmp_path / "x.aedat4", "-o", tmp_path)
    assert code == 2 and "x.aedat4" in text
    (tmp_path / "bad.npz").write_bytes(b"junk")
    code, text = _run("deblur", "--model", "evdeblur", "--weights", weights, "--events", tmp_path / "bad.npz", "-o", tmp_path)
    assert code == 2 and "bad.npz" in text
    code, text = _run("deblur", "--model", "mimo_unet", "--weights", weights, "--events", rec_path, "-o", tmp_path)
    assert code == 2 and "event-guided model" in text
    code, text = _run("deblur", "-o", tmp_path)
    assert code == 2 and "--events" in text
    assert not list(tmp_path.glob("S_pred*"))


def test_evaluate_event_model_on_official_layouts(weights, tmp_path):
    root = L.write_synthetic(tmp_path / "data" / "test")
    code, text = _run("evaluate", "--model", "evdeblur", "--weights", weights, "--data", tmp_path / "data",
                      "--layout", "evdeblur_synthetic", "--protocol", "evdeblur", "--device", "cpu",
                      "-o", tmp_path / "res")
    assert code == 0, text
    assert "2 images, protocol evdeblur" in text
    rows = list(csv.DictReader(open(tmp_path / "res" / "results.csv")))
    assert [r["name"] for r in rows] == ["a_000", "b_001"]
    assert all(np.isfinite(float(r["psnr"])) and np.isfinite(float(r["ssim"])) for r in rows)
    real = L.write_real(tmp_path / "real")
    code, text = _run("evaluate", "--model", "evdeblur", "--weights", weights, "--data", real,
                      "--layout", "evdeblur_real", "--protocol", "evdeblur", "--device", "cpu")
    assert code == 2 and "no sharp references" in text
    assert root.is_dir()


def test_hybrid_folder_and_rgb_evaluation(tmp_path):
    torch.manual_seed(1)
    w = save_safetensors(build("evdeblur_rgb", init_dim=32), tmp_path / "rgb.safetensors")
    hybrid = L.write_real(tmp_path / "hybrid", names=("h0",), rgb=True)
    code, text = _run("deblur", "--weights", w, "--events", hybrid, "-o", tmp_path / "out", "--device", "cpu")
    assert code == 0, text  # the model defaults to evdeblur_rgb for a folder with RGB_blur/
    sharp = cv2.imread(str(tmp_path / "out/S_pred_RGB/h0.png"), cv2.IMREAD_UNCHANGED)
    assert sharp.shape == (39, 141, 3)  # APS 13x47 padded to 16x80 inside, RGB cropped back to 3x
    np.testing.assert_array_equal(np.load(tmp_path / "out/events_voxel_grid/h0.npy"),
                                  np.load(hybrid / "events_voxel_grid/h0.npy"))
    L.write_synthetic(tmp_path / "syn")
    code, text = _run("evaluate", "--model", "evdeblur_rgb", "--weights", w, "--data", tmp_path / "syn",
                      "--layout", "evdeblur_synthetic_rgb", "--protocol", "evdeblur", "--device", "cpu")
    assert code == 0 and "2 images, protocol evdeblur" in text, text


def test_deblur_recording_for_the_web_app(shared_data, weights, tmp_path):
    from deblurkit.io.events import EventRecording, deblur_recording, save_event_npz

    rec = read_event_recording(shared_data / REC)
    t1 = rec.frames[1].end_t
    short = EventRecording(tmp_path / "short.npz", rec.sensor_size, rec.events.slice_time(0, t1), rec.frames[:2])
    path = save_event_npz(tmp_path / "short.npz", short)
    calls = []
    frames = list(deblur_recording(path, weights=weights, progress=lambda d, t: calls.append((d, t))))
    assert calls == [(1, 2), (2, 2)] and len(frames) == 2
    assert all(f.shape == (1, 260, 346) and 0 <= float(f.min()) <= float(f.max()) <= 1 for f in frames)
    with pytest.raises(ValueError, match="needs weights"):
        next(deblur_recording(path))
    (tmp_path / "bad.aedat4").write_bytes(b"#!AER-DAT4.0\r\n junk")
    with pytest.raises(ValueError, match="bad.aedat4"):
        next(deblur_recording(tmp_path / "bad.aedat4", weights=weights))
