"""Blur kernels: camera-shake trajectories, measured (Levin) kernels, Gaussian and disk.

Every kernel returned here is a float32 tensor, non-negative, summing to 1, indexed
``[row, column]`` (``[y, x]``). Its centre is the pixel ``(size // 2, size // 2)``, the centre
used by :func:`deblurkit.synth.blur.blur`; odd sizes are recommended so that the centre is a pixel.

Random kernels are drawn from a :class:`torch.Generator` (``generator=None`` uses torch's global
generator) and are batched: ``n`` kernels come from one call, and the first ``k`` kernels of a
call with ``n >= k`` equal those of the same call with ``n = k`` and the same generator state.

Long smooth camera-shake paths for evaluation sets (:func:`shake_kernels`) are deblurkit's own
model (drift plus low-frequency oscillations of the image-plane velocity; see its docstring).

Camera-shake trajectories follow G. Boracchi and A. Foi, "Modeling the performance of image
restoration from motion blur", IEEE TIP 21(8), 2012 (Sec. II), and their MATLAB release
``createTrajectory.m`` / ``createPSFs.m``; the differences are listed in the docstrings.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence, Union

import numpy as np
import torch

__all__ = [
    "random_trajectories",
    "trajectory_kernels",
    "trajectory_to_kernels",
    "load_kernel_bank",
    "levin_kernels",
    "kair_kernels",
    "default_kernel_dir",
    "gaussian_kernel",
    "disk_kernel",
    "center_pad",
    "center_kernel",
    "trim_kernel",
    "shake_trajectories",
    "shake_kernels",
    "LEVIN_FILE",
    "KAIR_FILE",
]

LEVIN_FILE = "levin09_kernels.npz"
KAIR_FILE = "kair_kernels12.npz"

ParamLike = Union[float, Sequence[float], torch.Tensor, None]


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
def _draw_param(value: ParamLike, n: int, generator: torch.Generator | None, name: str) -> torch.Tensor:
    """Per-item float64 values (n,) from a scalar, a ``(lo, hi)`` range (uniform) or an (n,) tensor."""
    if isinstance(value, torch.Tensor):
        t = value.detach().to(torch.float64).flatten().cpu()
        if t.numel() == 1:
            return t.expand(n).clone()
        if t.numel() != n:
            raise ValueError(f"{name}: tensor has {t.numel()} values, expected 1 or n={n}")
        return t
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name}: a range must be (lo, hi), got {value!r}")
        lo, hi = float(value[0]), float(value[1])
        if hi < lo:
            raise ValueError(f"{name}: range (lo, hi) has hi < lo: {value!r}")
        return lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)
    return torch.full((n,), float(value), dtype=torch.float64)


def _normalise(k: torch.Tensor, what: str) -> torch.Tensor:
    s = k.sum(dim=(-2, -1), keepdim=True)
    if not torch.all(s > 0):
        raise ValueError(f"{what}: kernel has no positive mass")
    return (k / s).to(torch.float32)


# ----------------------------------------------------------------------------------------------
# camera-shake trajectories (Boracchi & Foi 2012)
# ----------------------------------------------------------------------------------------------
def random_trajectories(
    n: int,
    *,
    max_length: ParamLike = 60.0,
    anxiety: ParamLike = None,
    num_samples: int = 2000,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random 2-D camera-shake trajectories (inertial random walk with impulsive shakes).

    Follows Boracchi & Foi 2012, Sec. II-A, and the official ``createTrajectory.m``: a particle
    moves with constant speed ``max_length / (num_samples - 1)`` pixels per sample; at each
    sample its velocity ``v`` receives a Gaussian perturbation ``anxiety * gaussian * N(0, I)``
    and an inertial (centripetal) pull ``-anxiety * centripetal * x(t)`` towards the start, both
    scaled by the step length, and with probability ``anxiety * freq_big_shakes`` an impulsive
    shake ``2 v exp(i (pi + U - 1/2))`` that nearly reverses the direction; then ``v`` is
    renormalised to the step length. Per trajectory, as in the official code,
    ``centripetal ~ 0.7 U``, ``gaussian ~ 10 U``, ``freq_big_shakes ~ 0.2 U`` and the initial
    direction is uniform (``U`` uniform on [0, 1)). The total length is exactly ``max_length``.
    ``anxiety = 0`` gives rectilinear (linear-motion) trajectories.

    Differences from the official code: positions are returned raw (starting at the origin)
    instead of shifted into a ``TrajSize`` box; kernels are centred later by
    :func:`trajectory_to_kernels`. Random numbers come from ``generator`` (torch), so values
    differ from MATLAB's for the same "seed".

    Args:
        n: number of trajectories.
        max_length: total path length in pixels: a float, a ``(lo, hi)`` range drawn uniformly
            per trajectory, or an (n,) tensor. Official default 60.
        anxiety: amount of shake in [0, 1]: float, ``(lo, hi)`` range, (n,) tensor, or ``None``
            for the official default ``0.1 * U`` per trajectory.
        num_samples: samples per trajectory (official ``numT`` = 2000).
        generator: torch random generator (``None``: global generator).

    Returns:
        (n, num_samples, 2) float64 tensor of positions in pixels; ``[..., 0]`` is x (column,
        to the right), ``[..., 1]`` is y (row, downwards); ``trajectories[:, 0] == 0``.

    Raises:
        ValueError: ``n < 0``, ``num_samples < 2``, negative lengths or anxiety outside [0, 1].
    """
    return _draw_trajectories(n, max_length, anxiety, None, num_samples, generator)[0]


def _draw_trajectories(n, max_length, anxiety, exposure, num_samples, generator):
    """Trajectories (n, M, 2) and exposures (n,) (ones when ``exposure`` is None).

    All random numbers of trajectory i (its length/anxiety/exposure if drawn from a range, its
    4 shape parameters, events and Gaussian increments) are drawn before those of i + 1, so a
    batch's first k trajectories do not depend on n."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if num_samples < 2:
        raise ValueError(f"num_samples must be >= 2, got {num_samples}")
    for v, name in ((max_length, "max_length"), (anxiety, "anxiety"), (exposure, "exposure")):
        if isinstance(v, torch.Tensor) and v.numel() not in (1, n):
            raise ValueError(f"{name}: tensor has {v.numel()} values, expected 1 or n={n}")
    m = num_samples - 1
    lengths = np.empty(n)
    anx = np.empty(n)
    expo = np.ones(n)
    params = np.empty((n, 4))
    events = np.empty((m, 2, n))
    noise = np.empty((m, 2, n))

    def one(value, i, name):
        if isinstance(value, torch.Tensor):
            t = value.detach().double().flatten().cpu()
            return float(t[0] if t.numel() == 1 else t[i])
        return float(_draw_param(value, 1, generator, name)[0])

    for i in range(n):
        lengths[i] = one(max_length, i, "max_length")
        if anxiety is None:  # official default: 0.1 * U per trajectory
            anx[i] = 0.1 * float(torch.rand((), generator=generator, dtype=torch.float64))
        else:
            anx[i] = one(anxiety, i, "anxiety")
        if exposure is not None:
            expo[i] = one(exposure, i, "exposure")
        params[i] = torch.rand(4, generator=generator, dtype=torch.float64).numpy()
        events[:, :, i] = torch.rand(m, 2, generator=generator, dtype=torch.float64).numpy()
        noise[:, :, i] = torch.randn(m, 2, generator=generator, dtype=torch.float64).numpy()
    if np.any(lengths < 0):
        raise ValueError("max_length must be >= 0")
    if np.any((anx < 0) | (anx > 1)):
        raise ValueError("anxiety must lie in [0, 1]")
    if np.any((expo <= 0) | (expo > 1)):
        raise ValueError("exposure must lie in (0, 1]")
    if n == 0:
        return torch.zeros(0, num_samples, 2, dtype=torch.float64), torch.from_numpy(expo)
    centripetal = 0.7 * params[:, 0]
    gaussian = 10.0 * params[:, 1]
    freq_big = 0.2 * params[:, 2]
    v0 = np.exp(2j * np.pi * params[:, 3])
    a = anx
    step = lengths / m  # pixels per sample

    # the official code starts with speed `anxiety` (not the step length) when anxiety > 0
    v = np.where(a > 0, v0 * a, v0 * step)
    big = events[:, 0, :] < (freq_big * a)[None, :]
    # impulsive shake: next direction 2 v exp(i (pi + U - 1/2)), added to v
    shake = np.where(big, 2.0 * np.exp(1j * (np.pi + events[:, 1, :] - 0.5)), 0.0)
    scale = a * step
    gauss_term = (scale * gaussian)[None, :] * (noise[:, 0, :] + 1j * noise[:, 1, :])
    pull = scale * centripetal
    x = np.zeros((num_samples, n), dtype=np.complex128)
    for t in range(m):
        v = v + v * shake[t] + gauss_term[t] - pull * x[t]
        v *= step / np.maximum(np.abs(v), 1e-300)  # constant speed: length/(num_samples-1)
        x[t + 1] = x[t] + v
    out = np.stack([x.real.T, x.imag.T], axis=-1)
    return torch.from_numpy(np.ascontiguousarray(out)), torch.from_numpy(expo)


def _exposure_weights(num_samples: int, exposure: torch.Tensor) -> torch.Tensor:
    """(n, M) weights: sample j (0-based) gets the overlap of [j, j+1] with [0, T*M] (createPSFs.m)."""
    j = torch.arange(num_samples, dtype=torch.float64)
    return (exposure[:, None] * num_samples - j[None, :]).clamp(0.0, 1.0)


def trajectory_to_kernels(
    trajectories: torch.Tensor,
    size: int,
    *,
    exposure: ParamLike = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Sample trajectories into blur kernels (PSFs) for an exposure fraction.

    Follows ``createPSFs.m`` (Boracchi & Foi 2012, Sec. II-B): the kernel of exposure fraction
    ``T`` integrates the first ``T`` portion of the trajectory; sample ``j`` (0-based, of ``M``)
    has weight ``clip(T*M - j, 0, 1)`` and is splatted onto the pixel grid with bilinear
    (separable triangle) weights. Mass landing outside the support is dropped, as in the
    official code (indices clamped to the border cell, whose triangle weights then vanish).

    Difference from the official code: each kernel is centred on its own centroid (the centre
    of mass of the exposed portion) at sub-pixel precision, placed at ``(size - 1) / 2``, so a
    blur with it does not shift the image; the official code centres the whole trajectory on
    its barycentre (``do_center``) or bounding box. The kernel is renormalised to sum 1 (the
    official PSF sums to ``T``). A path of length ``L`` stays within ``L/2`` of its centroid,
    so ``T * max_length <= size - 1`` guarantees that no mass is dropped.

    Args:
        trajectories: (n, M, 2) or (M, 2) positions in pixels, ``[..., 0]`` = x, ``[..., 1]`` = y.
        size: kernel side in pixels (>= 2).
        exposure: fraction of the trajectory in (0, 1]: float, ``(lo, hi)`` range (uniform per
            kernel, drawn from ``generator``) or (n,) tensor.
        generator: used only when ``exposure`` is a range.

    Returns:
        (n, size, size) float32 kernels (a (size, size) one for a (M, 2) input), >= 0, sum 1.

    Raises:
        ValueError: bad shapes, exposure outside (0, 1], or a kernel with no mass inside the
            support (the path is far larger than ``size``).
    """
    single = trajectories.dim() == 2
    traj = trajectories[None] if single else trajectories
    if traj.dim() != 3 or traj.shape[-1] != 2:
        raise ValueError(f"trajectories must be (n, M, 2) or (M, 2), got {tuple(trajectories.shape)}")
    if size < 2:
        raise ValueError(f"size must be >= 2, got {size}")
    n, m, _ = traj.shape
    t = _draw_param(exposure, n, generator, "exposure")
    if torch.any((t <= 0) | (t > 1)):
        raise ValueError("exposure must lie in (0, 1]")
    traj = traj.to(torch.float64).cpu()
    w = _exposure_weights(m, t)  # (n, M)
    centroid = (w[..., None] * traj).sum(1) / w.sum(1)[:, None]  # (n, 2)
    q = traj - centroid[:, None, :] + (size - 1) / 2.0
    qx, qy = q[..., 0], q[..., 1]
    x0 = qx.floor().clamp(0, size - 2)
    y0 = qy.floor().clamp(0, size - 2)
    # separable triangle weights w.r.t. the 2x2 cell (x0, y0); zero for samples outside
    fx, fy = qx - x0, qy - y0
    wx = ((1.0 - fx.abs()).clamp(min=0.0), (1.0 - (fx - 1.0).abs()).clamp(min=0.0))
    wy = ((1.0 - fy.abs()).clamp(min=0.0), (1.0 - (fy - 1.0).abs()).clamp(min=0.0))
    cell = (torch.arange(n)[:, None] * (size * size) + y0.long() * size + x0.long()).flatten()
    flat = torch.zeros(n * size * size, dtype=torch.float64)
    for dy in (0, 1):
        wyw = w * wy[dy]
        for dx in (0, 1):
            flat.index_add_(0, cell + (dy * size + dx), (wyw * wx[dx]).flatten())
    k = flat.view(n, size, size)
    mass = k.sum(dim=(1, 2))
    if torch.any(mass <= 1e-12 * w.sum(1)):
        bad = torch.nonzero(mass <= 1e-12 * w.sum(1)).flatten().tolist()
        raise ValueError(f"trajectories {bad[:5]} put no mass inside a {size}x{size} kernel; use a larger size")
    k = _normalise(k, "trajectory kernel")
    return k[0] if single else k


def trajectory_kernels(
    n: int,
    size: int = 31,
    *,
    exposure: ParamLike = 1.0,
    max_length: ParamLike = None,
    anxiety: ParamLike = None,
    num_samples: int = 2000,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random camera-shake blur kernels (Boracchi & Foi 2012): trajectories, then exposure sampling.

    Equivalent to ``trajectory_to_kernels(random_trajectories(n, ...), size, exposure=...)``
    (see both for the model and the differences from the official MATLAB code).

    Args:
        n: number of kernels.
        size: kernel side in pixels (odd recommended; default 31).
        exposure: exposure fraction in (0, 1] (float, ``(lo, hi)`` range or (n,) tensor). The
            official demo uses T in {1/1000, 1/10, 1/2, 1}.
        max_length: trajectory length in pixels (float, range or tensor); ``None`` uses
            ``size - 1``, the longest length whose kernel always fits the support.
        anxiety: shake amount (``None``: official ``0.1 * U``).
        num_samples: samples per trajectory (official 2000).
        generator: torch random generator; same state gives the same kernels.

    Returns:
        (n, size, size) float32, each kernel >= 0 summing to 1, centroid at the centre.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> k = trajectory_kernels(4, size=21, exposure=0.5, generator=g)
        >>> tuple(k.shape), bool(torch.allclose(k.sum((1, 2)), torch.ones(4)))
        ((4, 21, 21), True)
    """
    if max_length is None:
        max_length = float(size - 1)
    traj, expo = _draw_trajectories(n, max_length, anxiety, exposure, num_samples, generator)
    if n == 0:
        return torch.zeros(0, size, size)
    return trajectory_to_kernels(traj, size, exposure=expo)


# ----------------------------------------------------------------------------------------------
# measured kernels from files
# ----------------------------------------------------------------------------------------------
def default_kernel_dir(data_root: str | os.PathLike | None = None) -> Path:
    """Folder holding the kernel files (``levin09_kernels.npz``, ``kair_kernels12.npz``).

    Resolution order: ``<data_root>/kernels`` if ``data_root`` is given (the shared data
    folder, e.g. ``../shared/data``); ``$DEBLURKIT_DATA/kernels``; ``$DEBLURKIT_SHARED/data/kernels``;
    ``../shared/data/kernels`` relative to the current directory, then relative to the source
    checkout holding this package (the development layout). The first existing folder wins;
    if none exists the first candidate is returned (the loader then raises
    ``FileNotFoundError`` naming it). The files are not shipped inside the package.
    """
    candidates: list[Path] = []
    if data_root is not None:
        candidates.append(Path(data_root) / "kernels")
    if os.environ.get("DEBLURKIT_DATA"):
        candidates.append(Path(os.environ["DEBLURKIT_DATA"]) / "kernels")
    if os.environ.get("DEBLURKIT_SHARED"):
        candidates.append(Path(os.environ["DEBLURKIT_SHARED"]) / "data" / "kernels")
    candidates.append(Path.cwd().parent / "shared" / "data" / "kernels")
    # a source checkout (src layout): <checkout>/../shared/data/kernels
    candidates.append(Path(__file__).resolve().parents[3].parent / "shared" / "data" / "kernels")
    for c in candidates:
        if c.is_dir():
            return c
    return candidates[0]


def _resolve_kernel_file(path, data_root, filename: str) -> Path:
    p = default_kernel_dir(data_root) if path is None else Path(path)
    if p.is_dir() or (path is None):
        p = p / filename
    if not p.is_file():
        raise FileNotFoundError(
            f"kernel file not found: {p} (give its path, e.g. --levin, or set DEBLURKIT_DATA)"
        )
    return p


def load_kernel_bank(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load every 2-D array of a ``.npz`` file (or a single ``.npy``) as a normalised kernel.

    Args:
        path: ``.npz`` with one 2-D array per key (e.g. ``kair_kernels12.npz``: keys k12_01..k12_12,
            25x25), or ``.npy`` with one (k, k) array or a (n, k, k) stack (keys ``"0"``, ``"1"``, ...).

    Returns:
        dict name -> (kh, kw) float32 tensor, >= 0, summing to 1, in the file's key order.
        Tiny negative values (|v| <= 1e-6 of the maximum, from interpolation) are set to 0.

    Raises:
        FileNotFoundError: missing file. ValueError: naming the file and the key, for an array
        that is not 2-D, is not finite, has significant negative values or sums to 0.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"kernel file not found: {p}")
    try:
        if p.suffix.lower() == ".npy":
            arr = np.load(p, allow_pickle=False)
            arrays = {"0": arr} if arr.ndim == 2 else {str(i): a for i, a in enumerate(arr)}
        else:
            with np.load(p, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001 - re-raised with the file name
        raise ValueError(f"{p}: cannot read kernels ({e})") from e
    out: dict[str, torch.Tensor] = {}
    for name, a in arrays.items():
        a = np.asarray(a, dtype=np.float64)
        if a.ndim != 2:
            raise ValueError(f"{p}: kernel {name!r} is not 2-D (shape {a.shape})")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{p}: kernel {name!r} has non-finite values")
        peak = float(np.abs(a).max())
        if a.min() < -1e-6 * peak:
            raise ValueError(f"{p}: kernel {name!r} has negative values (min {a.min():.3g})")
        a = np.clip(a, 0.0, None)
        if a.sum() <= 0:
            raise ValueError(f"{p}: kernel {name!r} sums to 0")
        out[name] = _normalise(torch.from_numpy(a), f"{p}:{name}")
    if not out:
        raise ValueError(f"{p}: no kernels in file")
    return out


def center_kernel(kernel: torch.Tensor) -> torch.Tensor:
    """Zero-pad a (kh, kw) kernel into an odd square (K, K) array whose centre pixel ``K // 2``
    is its centroid rounded to the nearest pixel.

    Blurring with a kernel whose centroid is off its centre also translates the image (the 8
    Levin et al. 2009 kernels are off by up to ~3 px); after centring, a blurry image stays
    aligned with its sharp image to within half a pixel, which is how Boracchi & Foi's
    trajectory kernels are built and what Levin et al.'s own evaluation achieves by aligning
    before scoring. Values are unchanged (sum stays 1).

    Raises:
        ValueError: not a 2-D kernel with positive sum.
    """
    if kernel.dim() != 2 or not float(kernel.sum()) > 0:
        raise ValueError(f"center_kernel needs a 2-D kernel with positive sum, got shape {tuple(kernel.shape)}")
    kh, kw = kernel.shape
    k64 = kernel.double()
    total = k64.sum()
    cy = int(round(float((k64.sum(1) * torch.arange(kh, dtype=torch.float64)).sum() / total)))
    cx = int(round(float((k64.sum(0) * torch.arange(kw, dtype=torch.float64)).sum() / total)))
    half = max(cy, kh - 1 - cy, cx, kw - 1 - cx)
    size = 2 * half + 1
    top, left = half - cy, half - cx
    return torch.nn.functional.pad(kernel, (left, size - kw - left, top, size - kh - top))


def levin_kernels(
    path: str | os.PathLike | None = None, *, data_root: str | os.PathLike | None = None,
    center: bool = False,
) -> dict[str, torch.Tensor]:
    """The 8 real camera-shake kernels measured by Levin et al. (CVPR 2009).

    A. Levin, Y. Weiss, F. Durand, W. T. Freeman, "Understanding and evaluating blind
    deconvolution algorithms", CVPR 2009 (file converted from ``kernels/Levin09.mat`` of
    cszn/KAIR).

    Args:
        path: the ``levin09_kernels.npz`` file or the folder holding it; ``None`` resolves
            :func:`default_kernel_dir` (``data_root``).
        data_root: shared data folder (``.../shared/data``) used when ``path`` is None.
        center: re-centre each kernel on its centroid (:func:`center_kernel`) so that blur
            does not also translate the image; off by default (the kernels as measured).

    Returns:
        dict ``levin09_1`` .. ``levin09_8`` -> float32 (k, k) tensors (13x13 to 27x27, up to
        33x33 when centred), sum 1.

    Raises:
        FileNotFoundError naming the resolved path; ValueError for a malformed file.
    """
    bank = load_kernel_bank(_resolve_kernel_file(path, data_root, LEVIN_FILE))
    return {k: center_kernel(v) for k, v in bank.items()} if center else bank


def kair_kernels(
    path: str | os.PathLike | None = None, *, data_root: str | os.PathLike | None = None
) -> dict[str, torch.Tensor]:
    """The 12 25x25 kernels of cszn/KAIR ``kernels_12.mat`` (Levin's 8 re-padded + 4 motion).

    Same arguments, returns and errors as :func:`levin_kernels` (file ``kair_kernels12.npz``,
    keys ``k12_01`` .. ``k12_12``).
    """
    return load_kernel_bank(_resolve_kernel_file(path, data_root, KAIR_FILE))


def center_pad(kernel: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad a (..., k, k) kernel to (..., size, size) keeping its centre pixel ``k // 2``
    at ``size // 2`` (so blurring is unchanged). Raises ValueError if ``size`` is smaller."""
    kh, kw = kernel.shape[-2:]
    if size < kh or size < kw:
        raise ValueError(f"cannot pad a {kh}x{kw} kernel to {size}x{size}")
    top, left = size // 2 - kh // 2, size // 2 - kw // 2
    pad = (left, size - kw - left, top, size - kh - top)
    return torch.nn.functional.pad(kernel, pad)


# ----------------------------------------------------------------------------------------------
# parametric kernels
# ----------------------------------------------------------------------------------------------
def gaussian_kernel(
    size: int,
    sigma: float | tuple[float, float],
    *,
    angle: float = 0.0,
) -> torch.Tensor:
    """Isotropic or anisotropic (rotated) Gaussian kernel, sampled at pixel centres.

    ``k(p) ~ exp(-p^T S^-1 p / 2)`` with ``S = R diag(sx^2, sy^2) R^T``, ``R`` the rotation by
    ``angle`` (degrees, counter-clockwise on screen, i.e. from +x towards -y), ``p`` relative to
    the pixel ``(size // 2, size // 2)``.

    Args:
        size: side in pixels (odd recommended).
        sigma: standard deviation in pixels; ``(sx, sy)`` for anisotropic (along the rotated
            x and y axes). ``sigma == 0`` gives a delta.
        angle: rotation in degrees.

    Returns:
        (size, size) float32, >= 0, sum 1. Raises ValueError for size < 1 or sigma < 0.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    sx, sy = (float(sigma), float(sigma)) if not isinstance(sigma, (tuple, list)) else map(float, sigma)
    if sx < 0 or sy < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    c = size // 2
    y, x = torch.meshgrid(
        torch.arange(size, dtype=torch.float64) - c, torch.arange(size, dtype=torch.float64) - c, indexing="ij"
    )
    if sx == 0 and sy == 0:
        k = torch.zeros(size, size)
        k[c, c] = 1.0
        return k
    th = math.radians(angle)
    # rotate coordinates into the kernel frame; screen y points down, hence the sign of sin
    u = math.cos(th) * x - math.sin(th) * y
    v = math.sin(th) * x + math.cos(th) * y
    if sx == 0 or sy == 0:  # degenerate: 1-D Gaussian along the non-zero axis (a line blur)
        s = max(sx, sy)
        along, across = (v, u) if sx == 0 else (u, v)
        k = torch.exp(-0.5 * (along / s) ** 2) * (1.0 - across.abs()).clamp(min=0.0)
    else:
        k = torch.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))
    return _normalise(k, "gaussian_kernel")


def disk_kernel(radius: float, size: int | None = None, *, supersample: int = 16) -> torch.Tensor:
    """Defocus (pillbox) kernel with an anti-aliased edge.

    Each pixel's value is the area of the pixel square covered by the disk of ``radius``
    pixels centred on pixel ``(size // 2, size // 2)`` (estimated on a ``supersample`` x
    ``supersample`` sub-grid per pixel), like MATLAB's ``fspecial('disk')``.

    Args:
        radius: disk radius in pixels (>= 0; 0 gives a delta).
        size: side in pixels, default ``2 * ceil(radius) + 1``.
        supersample: sub-samples per pixel side.

    Returns:
        (size, size) float32, >= 0, sum 1. Raises ValueError for radius < 0 or a too small size.
    """
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    if size is None:
        size = 2 * math.ceil(radius) + 1
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    c = size // 2
    s = int(supersample)
    off = (torch.arange(s, dtype=torch.float64) + 0.5) / s - 0.5
    coords = torch.arange(size, dtype=torch.float64) - c
    fine = (coords[:, None] + off[None, :]).flatten()  # (size * s,)
    yy, xx = torch.meshgrid(fine, fine, indexing="ij")
    inside = (xx * xx + yy * yy <= radius * radius).to(torch.float64)
    k = inside.view(size, s, size, s).mean(dim=(1, 3))
    if k.sum() <= 0:  # radius below the sub-grid resolution: a delta
        k = torch.zeros(size, size, dtype=torch.float64)
        k[c, c] = 1.0
    return _normalise(k, "disk_kernel")


def trim_kernel(kernel: torch.Tensor, *, threshold: float = 0.0) -> torch.Tensor:
    """Crop the zero border of a (K, K) kernel, keeping its centre pixel ``K // 2`` at the centre.

    Returns the smallest odd square ``(2r + 1, 2r + 1)`` around pixel ``(K // 2, K // 2)``
    that holds every value above ``threshold * max``; values are unchanged, so the sum (1 for
    the kernels of this module) is kept when ``threshold == 0``, and blurring is unchanged.

    Raises:
        ValueError: not a square 2-D kernel with an odd side, or no positive value.
    """
    if kernel.dim() != 2 or kernel.shape[0] != kernel.shape[1] or kernel.shape[0] % 2 == 0:
        raise ValueError(f"trim_kernel needs a square kernel with an odd side, got {tuple(kernel.shape)}")
    peak = float(kernel.max())
    if not peak > 0:
        raise ValueError("trim_kernel: kernel has no positive value")
    c = kernel.shape[0] // 2
    ys, xs = torch.nonzero(kernel > threshold * peak, as_tuple=True)
    r = int(max((ys - c).abs().max(), (xs - c).abs().max()))
    return kernel[c - r:c + r + 1, c - r:c + r + 1].clone()


# ----------------------------------------------------------------------------------------------
# long smooth camera-shake paths (defaults for evaluation sets)
# ----------------------------------------------------------------------------------------------
def shake_trajectories(
    n: int,
    *,
    length: ParamLike = (10.0, 40.0),
    components: int = 3,
    frequency: tuple[float, float] = (0.25, 1.5),
    drift: ParamLike = (0.0, 1.5),
    num_samples: int = 2000,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Long, smooth random camera-shake paths sampled uniformly in time (deblurkit's own model).

    The camera's image-plane velocity during the exposure ``t in [0, 1]`` is a constant drift
    plus a few low-frequency oscillations, the usual picture of hand shake (a slow drift with
    tremor of a few cycles per exposure, as the measured kernels of Levin et al. 2009 and
    Koehler et al. 2012 suggest)::

        v(t) = d u + sum_j a_j cos(2 pi f_j t + phi_j),     p(t) = integral_0^t v

    with ``u`` a uniform random direction, ``d`` drawn from ``drift``, per component ``j``
    (``components`` of them) a frequency ``f_j`` uniform in ``frequency`` (cycles per exposure),
    a phase ``phi_j`` uniform on [0, 2 pi) and a 2-D amplitude ``a_j ~ N(0, I)``. ``p`` is
    integrated in closed form at ``num_samples`` equally spaced times, so the speed varies
    along the path (the camera slows down at turns: those points get more exposure, as in real
    kernels); the path is then scaled so that its length (of the sampled polyline) is exactly
    the drawn ``length``. Smooth by construction (infinitely differentiable). A path is a
    curve with up to a couple of bends for the default frequencies; ``drift = 0`` gives
    oscillating, looping paths, a large drift nearly straight ones.

    Every random number of path ``i`` is drawn before those of ``i + 1`` (so the first ``k``
    paths of a call do not depend on ``n``).

    Args:
        n: number of paths.
        length: path length in pixels: float, ``(lo, hi)`` (uniform per path) or (n,) tensor.
        components: number of oscillation components (>= 1).
        frequency: ``(lo, hi)`` range of the component frequencies, cycles per exposure, > 0.
        drift: drift speed relative to the oscillation amplitudes: float, ``(lo, hi)`` or (n,).
        num_samples: time samples per path (>= 2).
        generator: torch random generator (``None``: torch's global one).

    Returns:
        (n, num_samples, 2) float64 positions in pixels, ``[..., 0]`` = x (column), ``[..., 1]``
        = y (row); ``paths[:, 0] == 0``.

    Raises:
        ValueError: ``n < 0``, ``components < 1``, ``num_samples < 2``, a length <= 0, a
            negative drift, or a frequency range that is not ``0 < lo <= hi``.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if components < 1:
        raise ValueError(f"components must be >= 1, got {components}")
    if num_samples < 2:
        raise ValueError(f"num_samples must be >= 2, got {num_samples}")
    f_lo, f_hi = (float(v) for v in frequency)
    if not 0 < f_lo <= f_hi:
        raise ValueError(f"frequency must be a range 0 < lo <= hi, got {frequency!r}")
    for v, name in ((length, "length"), (drift, "drift")):
        if isinstance(v, torch.Tensor) and v.numel() not in (1, n):
            raise ValueError(f"{name}: tensor has {v.numel()} values, expected 1 or n={n}")
    t = torch.linspace(0.0, 1.0, num_samples, dtype=torch.float64)
    out = torch.zeros(n, num_samples, 2, dtype=torch.float64)

    def one(value, i, name):
        if isinstance(value, torch.Tensor):
            v = value.detach().double().flatten().cpu()
            return float(v[0] if v.numel() == 1 else v[i])
        return float(_draw_param(value, 1, generator, name)[0])

    for i in range(n):
        L = one(length, i, "length")
        d = one(drift, i, "drift")
        if not L > 0:
            raise ValueError(f"length must be > 0, got {L}")
        if d < 0:
            raise ValueError(f"drift must be >= 0, got {d}")
        u = torch.rand(1 + 2 * components, generator=generator, dtype=torch.float64)
        a = torch.randn(components, 2, generator=generator, dtype=torch.float64)
        theta = 2.0 * math.pi * u[0]
        freq = f_lo + (f_hi - f_lo) * u[1:1 + components]  # (J,)
        phase = 2.0 * math.pi * u[1 + components:]  # (J,)
        w = 2.0 * math.pi * freq
        # closed-form integral of the oscillations: a_j (sin(w t + phi) - sin(phi)) / w
        osc = (torch.sin(w[None, :] * t[:, None] + phase[None, :]) - torch.sin(phase)[None, :]) / w[None, :]
        p = osc @ a  # (M, 2)
        p = p + d * t[:, None] * torch.stack((torch.cos(theta), torch.sin(theta)))[None, :]
        arc = float((p[1:] - p[:-1]).norm(dim=1).sum())
        if arc <= 1e-12:  # degenerate draw (vanishing amplitudes): a straight line along u
            p = t[:, None] * torch.stack((torch.cos(theta), torch.sin(theta)))[None, :]
            arc = 1.0
        out[i] = p * (L / arc)
    return out


def shake_kernels(
    n: int,
    size: int | None = None,
    *,
    length: ParamLike = (10.0, 40.0),
    components: int = 3,
    frequency: tuple[float, float] = (0.25, 1.5),
    drift: ParamLike = (0.0, 1.5),
    num_samples: int = 2000,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Blur kernels of long smooth camera-shake paths (:func:`shake_trajectories`).

    Each path is rasterised with sub-pixel anti-aliasing: every time sample deposits an equal
    share of the exposure on its four neighbouring pixels with bilinear weights
    (:func:`trajectory_to_kernels`, exposure 1), so slow parts of the path get more mass; the
    kernel is centred on its centroid at sub-pixel precision (blurring does not translate the
    image) and sums to 1.

    Args:
        n: number of kernels.
        size: kernel side (odd recommended). ``None``: ``2 * ceil(L_max) + 1`` with ``L_max``
            the largest length allowed by ``length``; nothing of the path is cut off then (a
            path of length L stays within L of its centroid). Use :func:`trim_kernel` to crop
            the empty border of each kernel.
        length, components, frequency, drift, num_samples, generator: as in
            :func:`shake_trajectories` (defaults: 10-40 px paths).

    Returns:
        (n, size, size) float32, each >= 0 summing to 1, centroid at the centre pixel.

    Raises:
        ValueError: as :func:`shake_trajectories`, or ``size < 2``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> k = shake_kernels(2, length=(10, 20), generator=g)
        >>> tuple(k.shape), bool(torch.allclose(k.sum((1, 2)), torch.ones(2)))
        ((2, 41, 41), True)
    """
    if size is None:
        if isinstance(length, torch.Tensor):
            l_max = float(length.max())
        elif isinstance(length, (tuple, list)):
            l_max = float(max(length))
        else:
            l_max = float(length)
        size = 2 * math.ceil(l_max) + 1
    if size < 2:
        raise ValueError(f"size must be >= 2, got {size}")
    paths = shake_trajectories(n, length=length, components=components, frequency=frequency, drift=drift,
                               num_samples=num_samples, generator=generator)
    if n == 0:
        return torch.zeros(0, size, size)
    return trajectory_to_kernels(paths, size)
