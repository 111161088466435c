"""Reading event-camera recordings: DVS events and APS frames with their exposure windows.

Formats (chosen by the file suffix):

* ``.aedat4`` (iniVation DV, e.g. a DAVIS346): decoded with the PyPI package ``aedat``
  (``aedat.Decoder``; packets with ``events`` (fields ``t, x, y, on``), ``frame`` (``pixels``,
  ``t``, ``exposure_begin_t``, ``exposure_end_t``, ...), ``imus``, ``triggers``). IMU samples and
  triggers are skipped.
* ``.npz``: arrays ``t``, ``x``, ``y``, ``p`` (one entry per event) and optionally
  ``frames`` (F, H, W) uint8/uint16 with ``frame_exposure_begin_t`` / ``frame_exposure_end_t``
  (F,) and ``frame_t`` (F,), and ``sensor_size`` = (H, W).
* ``.h5`` / ``.hdf5`` (``h5py``): the same names, either at the top level or in an ``events``
  group; the group may also use the names of the E2VID / event_utils h5 files
  (``events/ts``, ``events/xs``, ``events/ys``, ``events/ps``). Frames as in ``.npz``.

Conventions of the returned :class:`EventRecording` (those of ``aedat``/DV):

* timestamps ``t`` are int64 **microseconds** (a floating ``t`` in ``.npz``/``.h5`` is read as
  seconds and converted);
* ``x`` is the column, ``y`` the row (0-based, origin top-left);
* polarity ``p`` is int8, +1 for an ON (brightness increase) event, -1 for OFF (``0``/``False``
  in a file means OFF);
* events are sorted by time (a file whose events are not is sorted, stably).

:func:`frame_event_windows` picks the events inside each APS frame's exposure window (what the
blurry frame integrated), with times relative to the window start in seconds, the form
``stack_events_to_voxel_grid`` of the official ``scripts/script_utils/Events.py``
(fourson/Deblurring-Low-Light-Images-with-Events) takes: ``(timestamp, column, row, sign)``.

Errors: :class:`EventReadError` (a ``ValueError``) naming the file and the problem;
``FileNotFoundError`` for a missing file.
"""
from __future__ import annotations

import zipfile

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from .atomic import atomic_path

__all__ = [
    "EVENT_EXTENSIONS",
    "EventReadError",
    "EventArray",
    "ApsFrame",
    "EventRecording",
    "EventWindow",
    "read_event_recording",
    "save_event_npz",
    "frame_event_windows",
    "deblur_recording",
]

EVENT_EXTENSIONS = frozenset({".aedat4", ".npz", ".h5", ".hdf5"})
WINDOWS = ("exposure", "frame")


class EventReadError(ValueError):
    """An event recording is unreadable, of an unsupported kind or inconsistent (the message
    names the file and the problem)."""


@dataclass
class EventArray:
    """DVS events, sorted by time.

    Attributes:
        t: (K,) int64 timestamps in microseconds.
        x: (K,) int32 columns in [0, W).
        y: (K,) int32 rows in [0, H).
        p: (K,) int8 polarities, +1 (ON) or -1 (OFF).
    """

    t: np.ndarray
    x: np.ndarray
    y: np.ndarray
    p: np.ndarray

    def __len__(self) -> int:
        return int(self.t.shape[0])

    def slice_time(self, t0: int, t1: int) -> "EventArray":
        """Events with ``t0 <= t < t1`` (microseconds), as views."""
        i0, i1 = np.searchsorted(self.t, [t0, t1], side="left")
        return EventArray(self.t[i0:i1], self.x[i0:i1], self.y[i0:i1], self.p[i0:i1])


@dataclass
class ApsFrame:
    """One APS (intensity) frame.

    Attributes:
        image: (H, W) uint8 or uint16 grey frame as stored by the camera (``image_float()``
            gives [0, 1]).
        t: frame timestamp in microseconds (DV's ``timestamp``).
        exposure_begin_t, exposure_end_t: the exposure window in microseconds (the blur of the
            frame integrates the scene over it).
        begin_t, end_t: readout window of the frame in microseconds (DV's start/end of frame;
            equal to the exposure window when the file does not say).
    """

    image: np.ndarray
    t: int
    exposure_begin_t: int
    exposure_end_t: int
    begin_t: int
    end_t: int

    def image_float(self) -> np.ndarray:
        """The frame as float32 (H, W) in [0, 1] (divided by 255 or 65535)."""
        peak = 65535.0 if self.image.dtype == np.uint16 else 255.0
        return self.image.astype(np.float32) / peak


@dataclass
class EventRecording:
    """Events and APS frames of one recording (see the module docstring for conventions).

    Attributes:
        path: the file read.
        sensor_size: (H, W) of the event sensor (= APS size on a DAVIS).
        events: all DVS events.
        frames: APS frames in time order (may be empty).
    """

    path: Path
    sensor_size: tuple[int, int]
    events: EventArray
    frames: list[ApsFrame] = field(default_factory=list)

    def __repr__(self) -> str:
        span = (self.events.t[-1] - self.events.t[0]) / 1e6 if len(self.events) else 0.0
        return (f"EventRecording('{self.path}', sensor {self.sensor_size[0]}x{self.sensor_size[1]}, "
                f"{len(self.events)} events over {span:.3f} s, {len(self.frames)} APS frames)")


# ------------------------------------------------------------------------------------ readers
def read_event_recording(path: str | os.PathLike) -> EventRecording:
    """Read a recording of DVS events (and APS frames when the file has them).

    Args:
        path: ``.aedat4``, ``.npz``, ``.h5`` or ``.hdf5`` file (see the module docstring).

    Returns:
        :class:`EventRecording` with events sorted by time (int64 microseconds, x column, y row,
        polarity +-1) and the APS frames with their exposure windows.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        EventReadError: unsupported suffix, unreadable/corrupt file, missing arrays, arrays of
            different lengths, coordinates outside the sensor, frames of a size other than the
            sensor's, or an exposure window that ends before it begins (each naming the file).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"event recording not found: '{path}'")
    if path.is_dir():
        raise EventReadError(f"'{path}' is a folder, not an event recording file")
    suffix = path.suffix.lower()
    if suffix not in EVENT_EXTENSIONS:
        raise EventReadError(
            f"'{path}': unsupported event file type '{suffix or '(none)'}'; supported: "
            f"{', '.join(sorted(EVENT_EXTENSIONS))}"
        )
    try:
        if suffix == ".aedat4":
            rec = _read_aedat4(path)
        elif suffix == ".npz":
            rec = _read_npz(path)
        else:
            rec = _read_h5(path)
    except EventReadError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError, TypeError, EOFError, zipfile.BadZipFile) as exc:
        raise EventReadError(f"'{path}': cannot read the event recording: {exc}") from exc
    _validate(rec)
    return rec


def _read_aedat4(path: Path) -> EventRecording:
    try:
        import aedat
    except ImportError as exc:  # pragma: no cover - dependency declared in pyproject
        raise EventReadError(
            f"'{path}': reading .aedat4 needs the 'aedat' package (pip install aedat)"
        ) from exc
    decoder = aedat.Decoder(str(path))
    streams = decoder.id_to_stream()
    sizes = [(int(s["height"]), int(s["width"])) for s in streams.values() if s.get("type") == "events"]
    if not sizes:
        raise EventReadError(f"'{path}': the file has no event stream (streams: "
                             f"{sorted(s.get('type') for s in streams.values())})")
    packets: list[np.ndarray] = []
    frames: list[ApsFrame] = []
    for packet in decoder:
        if "events" in packet:
            packets.append(packet["events"])
        elif "frame" in packet:
            f = packet["frame"]
            pixels = np.asarray(f["pixels"])
            if pixels.ndim == 3:  # colour DAVIS frames (format 'RGB'/'RGBA'): BT.601 luma
                pixels = (pixels[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))
                pixels = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
            frames.append(ApsFrame(
                image=pixels, t=int(f["t"]),
                exposure_begin_t=int(f["exposure_begin_t"]), exposure_end_t=int(f["exposure_end_t"]),
                begin_t=int(f.get("begin_t", f["exposure_begin_t"])), end_t=int(f.get("end_t", f["exposure_end_t"])),
            ))
    if packets:
        ev = np.concatenate(packets)
        names = ev.dtype.names or ()
        pol = ev["on"] if "on" in names else ev["p"]
        events = EventArray(ev["t"].astype(np.int64), ev["x"].astype(np.int32), ev["y"].astype(np.int32),
                            np.where(np.asarray(pol).astype(bool), 1, -1).astype(np.int8))
    else:
        events = _empty_events()
    return EventRecording(path, sizes[0], events, frames)


def _empty_events() -> EventArray:
    return EventArray(np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.int8))


def _to_microseconds(t: np.ndarray) -> np.ndarray:
    t = np.asarray(t)
    if np.issubdtype(t.dtype, np.floating):
        return np.rint(t.astype(np.float64) * 1e6).astype(np.int64)
    return t.astype(np.int64)


def _from_arrays(path: Path, get) -> EventRecording:
    """Build a recording from a name -> array getter (``None`` when absent)."""
    names = {"t": ("t", "ts", "timestamp"), "x": ("x", "xs"), "y": ("y", "ys"), "p": ("p", "ps", "polarity")}
    arrays = {}
    for key, alts in names.items():
        for a in alts:
            v = get(a)
            if v is not None:
                arrays[key] = np.asarray(v).reshape(-1)
                break
        else:
            raise EventReadError(f"'{path}': missing event array '{key}' (looked for {', '.join(alts)})")
    lengths = {k: v.shape[0] for k, v in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise EventReadError(f"'{path}': event arrays have different lengths {lengths}")
    p = arrays["p"]
    pol = np.where(p.astype(np.float64) > 0, 1, -1).astype(np.int8)
    events = EventArray(_to_microseconds(arrays["t"]), arrays["x"].astype(np.int32),
                        arrays["y"].astype(np.int32), pol)
    frames: list[ApsFrame] = []
    imgs = get("frames")
    size = get("sensor_size")
    if imgs is not None:
        imgs = np.asarray(imgs)
        if imgs.ndim != 3:
            raise EventReadError(f"'{path}': 'frames' must be (F, H, W), got shape {imgs.shape}")
        if imgs.dtype not in (np.uint8, np.uint16):
            raise EventReadError(f"'{path}': 'frames' must be uint8 or uint16, got {imgs.dtype}")
        n = imgs.shape[0]
        begin, end, ft = get("frame_exposure_begin_t"), get("frame_exposure_end_t"), get("frame_t")
        if begin is None or end is None:
            raise EventReadError(f"'{path}': 'frames' given without 'frame_exposure_begin_t' and "
                                 "'frame_exposure_end_t' (the exposure window of each frame)")
        begin, end = _to_microseconds(begin).reshape(-1), _to_microseconds(end).reshape(-1)
        ft = (begin + end) // 2 if ft is None else _to_microseconds(ft).reshape(-1)
        for name, arr in (("frame_exposure_begin_t", begin), ("frame_exposure_end_t", end), ("frame_t", ft)):
            if arr.shape[0] != n:
                raise EventReadError(f"'{path}': '{name}' has {arr.shape[0]} entries for {n} frames")
        frames = [ApsFrame(imgs[i], int(ft[i]), int(begin[i]), int(end[i]), int(begin[i]), int(end[i]))
                  for i in range(n)]
    if size is not None:
        size = tuple(int(s) for s in np.asarray(size).reshape(-1)[:2])
    elif frames:
        size = tuple(int(s) for s in frames[0].image.shape)
    elif len(events):
        size = (int(events.y.max()) + 1, int(events.x.max()) + 1)
    else:
        raise EventReadError(f"'{path}': no events, no frames and no 'sensor_size'")
    return EventRecording(path, size, events, frames)


def _read_npz(path: Path) -> EventRecording:
    with np.load(path, allow_pickle=False) as z:
        return _from_arrays(path, lambda k: z[k] if k in z.files else None)


def _read_h5(path: Path) -> EventRecording:
    import h5py

    with h5py.File(path, "r") as f:
        group = f["events"] if "events" in f and isinstance(f["events"], h5py.Group) else f

        def get(k):
            for g in (group, f):
                if k in g and isinstance(g[k], h5py.Dataset):
                    return g[k][()]
            return None

        return _from_arrays(path, get)


def _validate(rec: EventRecording) -> None:
    path, (h, w), ev = rec.path, rec.sensor_size, rec.events
    if h < 1 or w < 1:
        raise EventReadError(f"'{path}': bad sensor size {h}x{w}")
    if len(ev):
        if ev.x.min() < 0 or ev.x.max() >= w or ev.y.min() < 0 or ev.y.max() >= h:
            raise EventReadError(
                f"'{path}': event coordinates outside the {h}x{w} sensor (x in [{ev.x.min()}, {ev.x.max()}], "
                f"y in [{ev.y.min()}, {ev.y.max()}])"
            )
        if np.any(np.diff(ev.t) < 0):
            order = np.argsort(ev.t, kind="stable")
            rec.events = EventArray(ev.t[order], ev.x[order], ev.y[order], ev.p[order])
    for i, fr in enumerate(rec.frames):
        if fr.image.shape != (h, w):
            raise EventReadError(f"'{path}': APS frame {i} is {fr.image.shape[0]}x{fr.image.shape[1]}, "
                                 f"the event sensor {h}x{w}")
        if fr.exposure_end_t < fr.exposure_begin_t:
            raise EventReadError(f"'{path}': APS frame {i} has an exposure window that ends "
                                 f"({fr.exposure_end_t} us) before it begins ({fr.exposure_begin_t} us)")


# ------------------------------------------------------------------------------------ writer
def save_event_npz(path: str | os.PathLike, rec: EventRecording) -> Path:
    """Write ``rec`` as an ``.npz`` that :func:`read_event_recording` reads back identically
    (atomic write). Returns the path.

    Raises:
        ValueError: ``path`` does not end in ``.npz``.
    """
    path = Path(path)
    if path.suffix.lower() != ".npz":
        raise ValueError(f"'{path}': save_event_npz writes .npz files")
    arrays = {"t": rec.events.t, "x": rec.events.x, "y": rec.events.y, "p": rec.events.p,
              "sensor_size": np.asarray(rec.sensor_size, np.int64)}
    if rec.frames:
        arrays.update(
            frames=np.stack([f.image for f in rec.frames]),
            frame_t=np.asarray([f.t for f in rec.frames], np.int64),
            frame_exposure_begin_t=np.asarray([f.exposure_begin_t for f in rec.frames], np.int64),
            frame_exposure_end_t=np.asarray([f.exposure_end_t for f in rec.frames], np.int64),
        )
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    return path


# ------------------------------------------------------------------------------------ windows
@dataclass
class EventWindow:
    """The events of one APS frame's window.

    Attributes:
        index: frame index in the recording.
        frame: the APS frame.
        t0, t1: window in microseconds (``t0 <= t < t1``; a zero-length window is widened to 1 us).
        events: (K, 4) float64 rows ``(timestamp, column, row, sign)`` with the timestamp in
            seconds from ``t0`` (in [0, duration)) and sign +-1: the official
            ``stack_events_to_voxel_grid`` input.
    """

    index: int
    frame: ApsFrame
    t0: int
    t1: int
    events: np.ndarray

    @property
    def duration(self) -> float:
        """Window length in seconds (the voxel grid's ``total_time``)."""
        return (self.t1 - self.t0) / 1e6


def frame_event_windows(rec: EventRecording, window: str | float = "exposure") -> Iterator[EventWindow]:
    """For each APS frame, the events inside its window.

    Args:
        rec: a recording with APS frames.
        window: ``"exposure"`` (default; the frame's exposure window, what its blur integrates,
            as the official real-data pipeline), ``"frame"`` (the frame's readout window from
            start to end of frame, longer on a DAVIS) or a number of microseconds (a window of
            that length centred on the middle of the exposure).

    Yields:
        :class:`EventWindow` per frame, in order.

    Raises:
        EventReadError: the recording has no APS frames (naming the file).
        ValueError: unknown ``window`` or a non-positive length.
    """
    if not rec.frames:
        raise EventReadError(f"'{rec.path}': the recording has no APS frames to deblur")
    if isinstance(window, str) and window not in WINDOWS:
        try:
            window = float(window)
        except ValueError:
            raise ValueError(f"window must be one of {WINDOWS} or a length in microseconds, got {window!r}") from None
    if not isinstance(window, str) and not float(window) > 0:
        raise ValueError(f"window length must be > 0 microseconds, got {window!r}")
    for i, fr in enumerate(rec.frames):
        if window == "exposure":
            t0, t1 = fr.exposure_begin_t, fr.exposure_end_t
        elif window == "frame":
            t0, t1 = fr.begin_t, fr.end_t
        else:
            mid = (fr.exposure_begin_t + fr.exposure_end_t) / 2.0
            t0, t1 = int(round(mid - float(window) / 2)), int(round(mid + float(window) / 2))
        t1 = max(t1, t0 + 1)
        ev = rec.events.slice_time(t0, t1)
        rows = np.empty((len(ev), 4), np.float64)
        rows[:, 0] = (ev.t - t0) / 1e6
        rows[:, 1] = ev.x
        rows[:, 2] = ev.y
        rows[:, 3] = ev.p
        yield EventWindow(i, fr, int(t0), int(t1), rows)


def deblur_recording(path, **kwargs):
    """Bridge for the web app, which looks the function up here (``deblurkit.app.events``
    ``EVENT_MODULE``): forwards to :func:`deblurkit.inference.events.deblur_recording` (imported
    on call, so this module does not depend on the inference layer at import time)."""
    from ..inference.events import deblur_recording as _deblur

    return _deblur(path, **kwargs)
