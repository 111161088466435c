"""One synthetic training/test sample of Zhou et al., *Deblurring Low-Light Images with Events*.

Follows ``Maker`` and ``augment_data`` in ``scripts/make_dataset.py`` of
fourson/Deblurring-Low-Light-Images-with-Events (the pipeline; the code is ours):

1. HDR boost: saturated source pixels (== 1) get ``+U(1.25, 2.5)`` (one draw per sample);
   optional flips (train: flag ``k % 4`` for the ``k``-th trajectory of a photo).
2. APS sampling: ``APS = resize(grey(RGB), (W / 3, H / 3))`` with OpenCV's bilinear resize
   (at a factor of 3 this picks the centre pixel of every 3 x 3 block; grey = BT.601).
3. 25 frames over the 0.1 s exposure: frame ``k`` shifts every patch by its trajectory
   ``d_k = traj[k] - traj[0]`` (RGB at source size, APS with the trajectory / 3); the clean
   blurry images are the frame means; the sharp targets are frame 0 (exposure start).
4. Events from the APS frames (``APS * 255`` DN at times ``k * 0.1 / 24``) by the v2e-style
   simulator (:mod:`deblurkit.synth.events`), binned into the 13-bin voxel grid
   (:mod:`deblurkit.synth.voxel`, not normalised: the loader normalises).
5. Low-light noise and 8-bit quantisation (:mod:`deblurkit.synth.lowlight`) on both blurry images.
6. Flow labels (APS pixels): per patch, start -> middle and middle -> end displacement.

Randomness: everything draws from the ``rng`` given. ``official_seed=True`` reproduces the
official quirk: the simulator and the noise draw from a NumPy ``RandomState`` re-seeded to 42 for
*every* sample, so all samples share the same threshold map, noise levels and noise pattern
sequence (the trajectories still come from ``rng``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .events import DVSParams, DVSSimulator
from .lowlight import LowLightNoise
from .motion import (
    ArcParams,
    PatchWarpParams,
    bidirectional_flow,
    patchwise_kernels,
    trajectory_kernel,
    warp_patchwise,
)
from .voxel import events_to_voxel_grid, to_official_layout

__all__ = ["EventSynthConfig", "hdr_boost", "flip_image", "aps_from_rgb", "make_event_sample", "OFFICIAL_SEED"]

OFFICIAL_SEED = 42  # scripts/make_dataset.py: dvs_model_simulator_args['seed']
FLIP_SUFFIXES = ("", "_flipud", "_fliplr", "_flip")


@dataclass
class EventSynthConfig:
    """Settings of one sample; defaults = ``maker_args`` and the trajectory arguments of
    ``scripts/make_dataset.py`` (source 768 x 960 -> APS 256 x 320, 16 x 20 patches)."""

    downsampling: int = 3
    exposure_s: float = 0.1
    num_bins: int = 13
    arc: ArcParams = field(default_factory=ArcParams)
    patches: PatchWarpParams = field(default_factory=PatchWarpParams)
    dvs: DVSParams = field(default_factory=DVSParams)
    official_seed: bool = False


def hdr_boost(rgb: np.ndarray, rng) -> np.ndarray:
    """Increase the dynamic range: pixels equal to 1 get ``+U(1.25, 2.5)`` (one value per image).

    Args:
        rgb: float32 image in [0, 1]. Returns: float32 image in [0, 3.5].
    """
    gain = np.float32(rng.uniform(1.25, 2.5))
    return (rgb + (rgb == 1).astype(np.float32) * gain).astype(np.float32)


def flip_image(img: np.ndarray, flag: int) -> tuple[np.ndarray, str]:
    """Official augmentation flag: 0 none, 1 up-down, 2 left-right, 3 both; returns the
    contiguous image and the name suffix (``''``, ``'_flipud'``, ``'_fliplr'``, ``'_flip'``)."""
    if flag not in (0, 1, 2, 3):
        raise ValueError(f"flip flag must be 0, 1, 2 or 3, got {flag}")
    axes = {0: None, 1: (0,), 2: (1,), 3: (0, 1)}[flag]
    out = img if axes is None else np.flip(img, axis=axes)
    return np.ascontiguousarray(out), FLIP_SUFFIXES[flag]


def aps_from_rgb(rgb: np.ndarray, downsampling: int = 3) -> np.ndarray:
    """Grey APS image: BT.601 grey of ``rgb`` ``(H, W, 3)`` resized bilinearly to
    ``(H // downsampling, W // downsampling)``; float32, same range as the input."""
    h, w = rgb.shape[:2]
    grey = cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.float32), cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (w // downsampling, h // downsampling), interpolation=cv2.INTER_LINEAR)


def make_event_sample(
    rgb: np.ndarray,
    base: np.ndarray,
    patchwise: np.ndarray,
    rng: np.random.Generator,
    config: EventSynthConfig = EventSynthConfig(),
    *,
    with_kernels: bool = False,
) -> dict[str, np.ndarray]:
    """Synthesise one sample from an (already HDR-boosted, flipped) source image.

    Args:
        rgb: ``(H, W, 3)`` float32 RGB, >= 0 (HDR values above 1 allowed); ``H`` must hold
            ``n_rows`` patches of a size divisible by ``downsampling``.
        base: ``(samples,)`` complex base trajectory (source pixels, y up).
        patchwise: ``(n_rows, n_cols, samples)`` complex patch trajectories (source pixels).
        rng: random source of the simulator and the noise (unless ``config.official_seed``).
        config: :class:`EventSynthConfig`.
        with_kernels: also return the test-set extras (APS trajectories and kernels).

    Returns:
        dict with the official names and layouts (float32 unless noted):
        ``RGB`` (H, W, 3) sharp, ``RGB_blur_clean``, ``RGB_blur`` (noisy, 8-bit grid, [0, 1]),
        ``APS`` (h, w) sharp, ``APS_blur_clean``, ``APS_blur``, ``flow`` (h, w, 4) APS pixels,
        ``events`` (N, 4) rows (t [s], x, y, polarity), ``events_voxel_grid`` (h, w, bins)
        (official ``.npy`` layout, not normalised); with ``with_kernels``:
        ``base_trajectory_APS`` (samples,) complex, ``patch_wise_trajectory_APS``
        (n_rows, n_cols, samples) complex, ``base_kernel_APS`` (p, p),
        ``patch_wise_kernel_APS`` (n_rows p, n_cols p) with ``p = canvas / downsampling`` (16,
        the APS patch size at the official sizes).

    Raises:
        ValueError: bad shapes or an image too small for the patch grid.
    """
    rgb = np.ascontiguousarray(rgb, dtype=np.float32)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"source must be an (H, W, 3) RGB image, got shape {rgb.shape}")
    ds = config.downsampling
    n_rows, n_cols, samples = patchwise.shape
    h, w = rgb.shape[:2]
    ps_rgb = h // n_rows  # official: patch size from the height for both axes
    ps_aps = ps_rgb // ds
    if ps_aps < 1:
        raise ValueError(f"a {h}x{w} source is too small for {n_rows}x{n_cols} patches at 1/{ds} APS size")
    aps = aps_from_rgb(rgb, ds)
    ah, aw = aps.shape

    sim_rng = np.random.RandomState(OFFICIAL_SEED) if config.official_seed else rng
    noise = LowLightNoise.draw(sim_rng)
    sim = DVSSimulator(config.dvs, sim_rng, shuffle=config.official_seed)
    sim.initialize(aps * 255, 0.0)
    dt = config.exposure_s / (samples - 1)

    rgb_sum = rgb.astype(np.float64)
    aps_sum = aps.astype(np.float64)
    events = []
    for k in range(1, samples):
        d = patchwise[..., k] - patchwise[..., 0]
        shift = np.conj(d)  # complex plane (y up) -> image coordinates (y down)
        rgb_sum += warp_patchwise(rgb, shift, ps_rgb)
        aps_k = warp_patchwise(aps, shift / ds, ps_aps)
        aps_sum += aps_k
        events.append(sim.simulate(aps_k * 255, k * dt))
    rgb_blur_clean = (rgb_sum / samples).astype(np.float32)
    aps_blur_clean = (aps_sum / samples).astype(np.float32)
    events = np.concatenate(events)
    voxel = events_to_voxel_grid(events, ah, aw, config.num_bins, duration=config.exposure_s)
    out = {
        "RGB": rgb,
        "RGB_blur_clean": rgb_blur_clean,
        "RGB_blur": noise.apply(rgb_blur_clean, sim_rng),
        "APS": aps,
        "APS_blur_clean": aps_blur_clean,
        "APS_blur": noise.apply(aps_blur_clean, sim_rng),
        "flow": bidirectional_flow(patchwise / ds, ah, aw, ps_aps),
        "events": events,
        "events_voxel_grid": to_official_layout(voxel),
    }
    if with_kernels:
        kc = config.arc.canvas // ds  # official: patch_size_APS (= 48 // 3 = 16, the APS trajectory canvas)
        out.update({
            "base_trajectory_APS": base / ds,
            "patch_wise_trajectory_APS": patchwise / ds,
            "base_kernel_APS": trajectory_kernel(base / ds, kc),
            "patch_wise_kernel_APS": patchwise_kernels(patchwise / ds, kc),
        })
    return out
