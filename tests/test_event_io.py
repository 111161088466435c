"""Reading event recordings (deblurkit.io.events) and the frames of a recording as network inputs
(deblurkit.data.events.RecordingFrames), on the real DAVIS346 recording of ../shared/data/events."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from deblurkit.data.events import RecordingFrames
from deblurkit.io.events import (
    EventReadError,
    frame_event_windows,
    read_event_recording,
    save_event_npz,
)

REC = "events/davis346_aps_events_imu.aedat4"


@pytest.fixture(scope="module")
def rec(shared_data):
    return read_event_recording(shared_data / REC)


@pytest.fixture(scope="module")
def raw(shared_data):
    """The recording decoded directly with `aedat` (independent of deblurkit's reader)."""
    import aedat

    ev, frames = [], []
    for packet in aedat.Decoder(str(shared_data / REC)):
        if "events" in packet:
            ev.append(packet["events"])
        elif "frame" in packet:
            frames.append(packet["frame"])
    return np.concatenate(ev), frames


def test_aedat4_matches_the_aedat_decoder(rec, raw):
    ev, frames = raw
    assert rec.sensor_size == (260, 346)
    assert len(rec.events) == len(ev) == 78830  # SOURCES.md: 78,830 DVS events, 59 APS frames
    assert len(rec.frames) == len(frames) == 59
    assert rec.events.t.dtype == np.int64 and np.all(np.diff(rec.events.t) >= 0)
    np.testing.assert_array_equal(rec.events.t, ev["t"].astype(np.int64))
    np.testing.assert_array_equal(rec.events.x, ev["x"])
    np.testing.assert_array_equal(rec.events.y, ev["y"])
    np.testing.assert_array_equal(rec.events.p, np.where(ev["on"], 1, -1))
    for ours, theirs in zip(rec.frames[::10], frames[::10]):
        np.testing.assert_array_equal(ours.image, theirs["pixels"])
        assert (ours.exposure_begin_t, ours.exposure_end_t) == (theirs["exposure_begin_t"], theirs["exposure_end_t"])
        assert ours.begin_t <= ours.exposure_begin_t < ours.exposure_end_t <= ours.end_t


def test_exposure_windows_hold_exactly_the_events_in_the_exposure(rec, raw):
    ev, frames = raw
    t = ev["t"].astype(np.int64)
    for win in list(frame_event_windows(rec))[:20]:
        f = frames[win.index]
        inside = (t >= f["exposure_begin_t"]) & (t < f["exposure_end_t"])
        assert win.events.shape == (inside.sum(), 4)
        assert win.duration == pytest.approx((f["exposure_end_t"] - f["exposure_begin_t"]) / 1e6)
        if inside.any():
            assert win.events[:, 0].min() >= 0 and win.events[:, 0].max() < win.duration
            np.testing.assert_array_equal(win.events[:, 1], ev["x"][inside])
            np.testing.assert_array_equal(win.events[:, 3], np.where(ev["on"][inside], 1, -1))
    lengths = [len(w.events) for w in frame_event_windows(rec, 2000.0)]
    assert max(lengths) > max(len(w.events) for w in frame_event_windows(rec))  # 2 ms > 0.5 ms exposure


def test_recording_frames_voxel_grid_counts_the_window_events(shared_data, rec):
    ds = RecordingFrames(shared_data / REC, window="frame", frames=slice(2, 5))
    assert len(ds) == 3
    for i in range(3):
        it = ds[i]
        win = ds.windows[i]
        assert it["E"].shape == (13, 260, 346) and it["E"].dtype == torch.float32
        # summed over bins each pixel holds (#ON - #OFF) of its events in the window
        net = np.zeros((260, 346))
        np.add.at(net, (win.events[:, 2].astype(int), win.events[:, 1].astype(int)), win.events[:, 3])
        np.testing.assert_allclose(it["voxel"].sum(0).numpy(), net, atol=1e-4)
        assert it["n_events"] == len(win.events) > 100
        # normalised: non-zero cells have mean 0 and std 1, zeros stay zeros
        nz = it["E"][it["voxel"] != 0]
        assert abs(float(nz.mean())) < 1e-4 and abs(float(nz.std(unbiased=False)) - 1) < 1e-3
        assert torch.equal(it["E"] == 0, it["voxel"] == 0)
        np.testing.assert_allclose(it["B"][0].numpy() * 255, rec.frames[2 + i].image, atol=1e-3)


def test_npz_round_trip_and_h5_e2vid_names(tmp_path, rec):
    h5py = pytest.importorskip("h5py")
    p = save_event_npz(tmp_path / "rec.npz", rec)
    back = read_event_recording(p)
    assert back.sensor_size == rec.sensor_size and len(back.frames) == len(rec.frames)
    np.testing.assert_array_equal(back.events.t, rec.events.t)
    np.testing.assert_array_equal(back.events.p, rec.events.p)
    np.testing.assert_array_equal(back.frames[7].image, rec.frames[7].image)
    assert back.frames[7].exposure_end_t == rec.frames[7].exposure_end_t
    # E2VID-style h5: events/{ts (seconds), xs, ys, ps in {0,1}}, unsorted
    with h5py.File(tmp_path / "rec.h5", "w") as f:
        g = f.create_group("events")
        g["ts"] = np.array([0.3, 0.1, 0.2])
        g["xs"], g["ys"], g["ps"] = np.array([1, 2, 3]), np.array([0, 1, 1]), np.array([1, 0, 1])
        f["sensor_size"] = np.array([2, 4])
    r = read_event_recording(tmp_path / "rec.h5")
    np.testing.assert_array_equal(r.events.t, [100000, 200000, 300000])
    np.testing.assert_array_equal(r.events.x, [2, 3, 1])
    np.testing.assert_array_equal(r.events.p, [-1, 1, 1])
    assert r.sensor_size == (2, 4) and r.frames == []
    with pytest.raises(EventReadError, match="no APS frames"):
        list(frame_event_windows(r))


def test_bad_recordings_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.aedat4"):
        read_event_recording(tmp_path / "nope.aedat4")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(EventReadError, match=r"x\.txt.*unsupported"):
        read_event_recording(tmp_path / "x.txt")
    (tmp_path / "broken.aedat4").write_bytes(b"not an aedat file")
    with pytest.raises(EventReadError, match="broken.aedat4"):
        read_event_recording(tmp_path / "broken.aedat4")
    np.savez(tmp_path / "nop.npz", t=np.arange(3), x=np.arange(3), y=np.arange(3))
    with pytest.raises(EventReadError, match=r"nop\.npz.*missing event array 'p'"):
        read_event_recording(tmp_path / "nop.npz")
    np.savez(tmp_path / "out.npz", t=np.arange(2), x=np.array([0, 9]), y=np.zeros(2), p=np.ones(2),
             sensor_size=np.array([4, 4]))
    with pytest.raises(EventReadError, match=r"out\.npz.*outside the 4x4 sensor"):
        read_event_recording(tmp_path / "out.npz")
    np.savez(tmp_path / "fr.npz", t=np.arange(2), x=np.zeros(2), y=np.zeros(2), p=np.ones(2),
             frames=np.zeros((1, 4, 4), np.uint8))
    with pytest.raises(EventReadError, match=r"fr\.npz.*exposure window"):
        read_event_recording(tmp_path / "fr.npz")


def test_corrupt_npz_recording_names_the_file(tmp_path):
    from deblurkit.io.events import EventReadError, read_event_recording

    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"this is not a zip archive")
    with pytest.raises(EventReadError, match="bad.npz"):
        read_event_recording(bad)


def test_nearly_empty_windows_warn_and_name_the_option_that_widens_them(shared_data, tmp_path):
    """The shared DAVIS346 recording has 0-25 events in each 0.5 ms exposure window: a warning
    says so and names --event-window; the frame window (hundreds of events) does not warn."""
    import warnings

    from typer.testing import CliRunner

    from deblurkit.cli import app

    with pytest.warns(UserWarning, match=r"exposure windows hold almost no events \(median \d+, range 0-\d+ per "
                                         r"frame on a 346x260 sensor\).*--event-window frame"):
        RecordingFrames(shared_data / REC)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        RecordingFrames(shared_data / REC, window="frame")
    with pytest.warns(UserWarning, match=r"the 200 us windows.*--event-window MICROSECONDS \(e.g. 20000\)"):
        RecordingFrames(shared_data / REC, window=200.0)
    # the command prints it once, as a warning line, before the (here failing: no weights file) run
    res = CliRunner().invoke(app, ["deblur", "--model", "evdeblur", "--weights", str(tmp_path / "none.safetensors"),
                                   "--events", str(shared_data / REC), "-o", str(tmp_path / "out")])
    assert res.output.count("warning:") == 1 and "--event-window frame" in res.output, res.output
