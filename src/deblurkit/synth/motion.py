"""Camera motion for the event-guided low-light deblurring data (Zhou et al., IJCV 2023).

The official synthesis (``scripts/script_utils/CameraMotion.py``, ``BlurKernel.py`` and
``scripts/make_dataset.py`` of fourson/Deblurring-Low-Light-Images-with-Events) moves the image
along a circular arc sampled at 25 points during a 0.1 s exposure, then bends that base
trajectory per patch (a 16 x 20 grid of 48-pixel patches on the 768 x 960 source) by a random
out-of-plane translation (zoom about a random centre patch) and in-plane rotation, so the blur is
spatially varying. Trajectories are complex numbers ``x + i y`` in source (RGB) pixels with the
y axis pointing *up*; the image is shifted by ``(Re d, -Im d)`` in image coordinates, where
``d = trajectory[k] - trajectory[0]``. APS trajectories are the RGB ones divided by the APS
down-sampling factor (3).

Equations and constants follow the official files; the implementation (vectorised over patches,
one remap per frame instead of one full-image warp per patch) is our own.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

__all__ = [
    "ArcParams",
    "PatchWarpParams",
    "arc_trajectory",
    "patchwise_trajectories",
    "sample_camera_motion",
    "bidirectional_flow",
    "trajectory_kernel",
    "patchwise_kernels",
    "warp_patchwise",
    "patch_index_maps",
]


@dataclass
class ArcParams:
    """Base trajectory (``TrajectoryGenerator``; values of ``scripts/make_dataset.py``).

    ``None`` fields are drawn per trajectory: ``arc_len ~ canvas * (0.7 + U(-0.05, 0.05))``,
    ``central_angle ~ U(pi/6, pi)``, ``position_angle ~ U(0, 2 pi)``, ``clockwise ~ {0, 1}``.
    Lengths in source pixels, angles in radians.
    """

    canvas: int = 48
    samples: int = 25
    arc_len: Optional[float] = None
    central_angle: Optional[float] = None
    position_angle: Optional[float] = None
    clockwise: Optional[bool] = None
    downsampling: int = 3


@dataclass
class PatchWarpParams:
    """Per-patch bending (``PatchWiseTrajectoryGenerator``; values of ``scripts/make_dataset.py``).

    ``None`` fields are drawn per sample with ``m = canvas / samples``:
    ``z_center`` uniform over patches, ``z_translation_size ~ U(-m/35, m/35)`` (pixels per step per
    patch of distance), ``z_rotation_angle ~ U(-pi/4, pi/4)``, ``z_rotation_size ~ U(0, m/25)``.
    """

    canvas: int = 48
    patch_grid: tuple[int, int] = (16, 20)
    z_center: Optional[tuple[int, int]] = None
    z_translation_size: Optional[float] = None
    z_rotation_angle: Optional[float] = None
    z_rotation_size: Optional[float] = None
    downsampling: int = 3


def _inside(traj: np.ndarray, canvas: float, downsampling: int) -> bool:
    # official sanity check: every point strictly inside (0, canvas - downsampling)
    return bool(
        traj.real.max() < canvas - downsampling and traj.real.min() > 0
        and traj.imag.max() < canvas - downsampling and traj.imag.min() > 0
    )


def arc_trajectory(rng: np.random.Generator, params: ArcParams = ArcParams()) -> Optional[np.ndarray]:
    """One circular-arc trajectory, centred in its canvas, or ``None`` if it fails the check.

    Args:
        rng: source of the random parameters.
        params: :class:`ArcParams`.

    Returns:
        ``(samples,)`` complex128 points in source pixels (y up), the first point on integer
        coordinates, all inside ``(0, canvas - downsampling)``; ``None`` when the arc does not
        fit (the caller draws again, as the official generator does).
    """
    p = params
    if p.samples < 2:
        raise ValueError(f"samples must be >= 2, got {p.samples}")
    clockwise = bool(rng.integers(0, 2)) if p.clockwise is None else bool(p.clockwise)
    arc_len = p.canvas * 0.7 + p.canvas * rng.uniform(-0.05, 0.05) if p.arc_len is None else p.arc_len
    central = rng.uniform(np.pi / 6, np.pi) if p.central_angle is None else p.central_angle
    position = rng.uniform(0, 2 * np.pi) if p.position_angle is None else p.position_angle
    radius = arc_len / central
    if clockwise:
        start = radius * np.exp(1j * (position + central))
        step = -central / (p.samples - 1)
    else:
        start = radius * np.exp(1j * position)
        step = central / (p.samples - 1)
    traj = start * np.exp(1j * step * np.arange(p.samples))
    # centre the motion: min at (1, 1), start on the integer grid, then centre in the canvas
    traj = traj - complex(traj.real.min(), traj.imag.min()) + (1 + 1j)
    traj = traj - complex(traj[0].real % 1.0, traj[0].imag % 1.0)
    traj = traj + complex(np.ceil((p.canvas - traj.real.max()) / 2), np.ceil((p.canvas - traj.imag.max()) / 2))
    return traj if _inside(traj, p.canvas, p.downsampling) else None


def patchwise_trajectories(
    base: np.ndarray, rng: np.random.Generator, params: PatchWarpParams = PatchWarpParams()
) -> Optional[np.ndarray]:
    """Bend ``base`` per patch by a zoom (z translation) and an in-plane rotation.

    Each step of patch ``(r, c)`` adds to the base step the constant vector
    ``s_t * d * exp(i phi) + s_r * tan(a) * d * exp(i (phi + sign(a) pi / 2))``, with ``d`` and
    ``phi`` the distance and direction (y up) of the patch from the z-centre patch in patch
    units, ``s_t``/``s_r``/``a`` the z translation size, rotation size and rotation angle.

    Args:
        base: ``(samples,)`` complex base trajectory (:func:`arc_trajectory`).
        rng: source of the random parameters.
        params: :class:`PatchWarpParams`.

    Returns:
        ``(n_rows, n_cols, samples)`` complex128, or ``None`` if any patch's trajectory leaves
        ``(0, canvas - downsampling)`` (the caller draws new parameters, as the official code).
    """
    p = params
    n_rows, n_cols = p.patch_grid
    m = p.canvas / len(base)
    if p.z_center is None:
        zr = int(rng.integers(0, n_rows))
        zc = int(rng.integers(0, n_cols))
    else:
        zr, zc = p.z_center
    s_t = rng.uniform(-m / 35, m / 35) if p.z_translation_size is None else p.z_translation_size
    a = rng.uniform(-np.pi / 4, np.pi / 4) if p.z_rotation_angle is None else p.z_rotation_angle
    s_r = rng.uniform(0, m / 25) if p.z_rotation_size is None else p.z_rotation_size
    rows, cols = np.meshgrid(np.arange(n_rows), np.arange(n_cols), indexing="ij")
    dist = np.hypot(rows - zr, cols - zc)
    phi = np.arctan2(-(rows - zr), cols - zc)
    extra = s_t * dist * np.exp(1j * phi) + s_r * np.tan(a) * dist * np.exp(1j * (phi + np.sign(a) * np.pi / 2))
    steps = np.diff(base)[None, None, :] + extra[..., None]
    traj = np.empty((n_rows, n_cols, len(base)), dtype=np.complex128)
    traj[..., 0] = base[0]
    traj[..., 1:] = base[0] + np.cumsum(steps, axis=-1)
    return traj if _inside(traj, p.canvas, p.downsampling) else None


def sample_camera_motion(
    rng: np.random.Generator,
    arc: ArcParams = ArcParams(),
    patches: PatchWarpParams = PatchWarpParams(),
    max_tries: int = 10000,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw a base arc and its patch-wise trajectories, redrawing failures as the official
    ``Processor._generate_random_trajectory`` does (a new arc until one fits, then new patch
    parameters for that arc until all patches fit).

    Returns:
        ``(base (samples,), patchwise (n_rows, n_cols, samples))`` complex128, source pixels.

    Raises:
        RuntimeError: no valid draw within ``max_tries`` (impossible parameters).
    """
    for _ in range(max_tries):
        base = arc_trajectory(rng, arc)
        if base is not None:
            break
    else:
        raise RuntimeError(f"no arc trajectory fits the {arc.canvas}-pixel canvas after {max_tries} draws")
    for _ in range(max_tries):
        pw = patchwise_trajectories(base, rng, patches)
        if pw is not None:
            return base, pw
    raise RuntimeError(f"no patch-wise trajectory fits the {patches.canvas}-pixel canvas after {max_tries} draws")


def patch_index_maps(height: int, width: int, patch_size: int, n_rows: int, n_cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Patch row index of every image row ``(H,)`` and patch column of every column ``(W,)``.

    Pixel ``(y, x)`` belongs to patch ``(y // patch_size, x // patch_size)``; pixels past the
    last patch (image size not a multiple) join the last patch row/column. (The official code
    leaves them black; at the official sizes there are none.)
    """
    return (np.minimum(np.arange(height) // patch_size, n_rows - 1),
            np.minimum(np.arange(width) // patch_size, n_cols - 1))


def warp_patchwise(image: np.ndarray, shifts: np.ndarray, patch_size: int) -> np.ndarray:
    """Translate each patch of ``image`` by its own shift (one bilinear remap for all patches).

    Equivalent to the official per patch ``cv2.warpAffine(image, [[1, 0, dx], [0, 1, dy]],
    INTER_LINEAR, BORDER_REFLECT)`` cropped to the patch: output pixel ``p`` of patch ``k``
    samples the *whole* input at ``p - shift_k`` (neighbouring content and mirrored borders
    move in), so patches are not cut out before shifting.

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` float32 (any range).
        shifts: ``(n_rows, n_cols)`` complex: ``dx + i dy`` in image coordinates (y down).
        patch_size: patch edge in pixels.

    Returns:
        float32 array shaped like ``image``.
    """
    h, w = image.shape[:2]
    n_rows, n_cols = shifts.shape
    pr, pc = patch_index_maps(h, w, patch_size, n_rows, n_cols)
    sx = shifts.real.astype(np.float32)[pr][:, pc]
    sy = shifts.imag.astype(np.float32)[pr][:, pc]
    map_x = np.arange(w, dtype=np.float32)[None, :] - sx
    map_y = np.arange(h, dtype=np.float32)[:, None] - sy
    return cv2.remap(np.ascontiguousarray(image, dtype=np.float32), map_x, map_y, cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REFLECT)


def bidirectional_flow(patchwise: np.ndarray, height: int, width: int, patch_size: int) -> np.ndarray:
    """Flow labels of the official data: per patch, the displacement start -> middle and
    middle -> end of its trajectory, in image coordinates (y down), constant over the patch.

    Args:
        patchwise: ``(n_rows, n_cols, samples)`` complex trajectories in the pixels of the image
            the flow is for (APS trajectories for the APS-sized flow).
        height, width: flow size; patch_size: patch edge in those pixels.

    Returns:
        ``(H, W, 4)`` float32: channels ``(dx1, dy1, dx2, dy2)`` in pixels, middle = sample
        ``samples // 2`` (official ``Maker._make`` / ``obtain_bidirectional_flow``).
    """
    n_rows, n_cols, samples = patchwise.shape
    mid = samples // 2
    d1 = patchwise[..., mid] - patchwise[..., 0]
    d2 = patchwise[..., -1] - patchwise[..., mid]
    per_patch = np.stack([d1.real, -d1.imag, d2.real, -d2.imag], axis=-1).astype(np.float32)
    pr, pc = patch_index_maps(height, width, patch_size, n_rows, n_cols)
    return np.ascontiguousarray(per_patch[pr[:, None], pc[None, :]])


def trajectory_kernel(trajectory: np.ndarray, canvas: int) -> np.ndarray:
    """Blur kernel of one trajectory (official ``KernelGenerator``): each point is splatted
    bilinearly onto a ``canvas x canvas`` grid (x = real part = column, y = imaginary part =
    row), the kernel is normalised to sum 1 and flipped upside down (y up -> image rows).

    Returns:
        ``(canvas, canvas)`` float32, >= 0, sums to 1.

    Raises:
        ValueError: a point outside ``[0, canvas - 1)``.
    """
    tr = np.asarray(trajectory)
    x, y = tr.real, tr.imag
    if x.min() < 0 or y.min() < 0 or x.max() >= canvas - 1 or y.max() >= canvas - 1:
        raise ValueError(f"trajectory leaves the {canvas}x{canvas} kernel canvas")
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    k = np.zeros((canvas, canvas), np.float64)
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            np.add.at(k, (y0 + dy, x0 + dx), wx * wy)
    k /= k.sum()
    return np.ascontiguousarray(np.flipud(k)).astype(np.float32)


def patchwise_kernels(patchwise: np.ndarray, canvas: int) -> np.ndarray:
    """All patch kernels tiled like the patches (official ``PatchWiseKernelGenerator``).

    Returns:
        ``(n_rows * canvas, n_cols * canvas)`` float32; tile ``(r, c)`` is the kernel of patch
        ``(r, c)``.
    """
    n_rows, n_cols, _ = patchwise.shape
    out = np.zeros((n_rows * canvas, n_cols * canvas), np.float32)
    for r in range(n_rows):
        for c in range(n_cols):
            out[r * canvas:(r + 1) * canvas, c * canvas:(c + 1) * canvas] = trajectory_kernel(patchwise[r, c], canvas)
    return out
