"""Frame interpolation with optical flow, to raise the temporal density of real 25 fps clips.

Shutter blur (:mod:`deblurkit.synth.shutter`) integrates the scene over each row's exposure;
from 25 fps footage that integral needs intermediate frames. Flow between consecutive frames
comes from OpenCV's DIS optical flow (Kroeger et al., ECCV 2016; ``cv2.DISOpticalFlow``), both
directions; the intermediate-time flows use the linear combination of Super SloMo (Jiang et al.,
CVPR 2018, Eq. 4) and the frame is the time-weighted blend of both backward-warped neighbours.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import Tensor

__all__ = ["dis_flow", "interpolate_pair", "interpolate_frames"]


def _grey8(img: np.ndarray) -> np.ndarray:
    g = img.mean(axis=2) if img.ndim == 3 else img
    return np.ascontiguousarray((np.clip(g, 0, 1) * 255 + 0.5).astype(np.uint8))


def dis_flow(a: np.ndarray, b: np.ndarray, preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM) -> np.ndarray:
    """Dense flow from image ``a`` to ``b`` (H, W, 2) float32 in pixels (x, y), so that
    ``a(p) ~ b(p + flow(p))``. Inputs (H, W) or (H, W, C) float in [0, 1]."""
    dis = cv2.DISOpticalFlow_create(preset)
    return dis.calc(_grey8(a), _grey8(b), None)


def _backward_warp(img: np.ndarray, flow: np.ndarray) -> np.ndarray:
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    out = cv2.remap(img, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(img.shape)  # OpenCV drops a size-1 channel axis (H, W, 1) -> (H, W)


def interpolate_pair(a: np.ndarray, b: np.ndarray, times: list[float]) -> list[np.ndarray]:
    """Frames at fractional times ``t`` in (0, 1) between ``a`` (t=0) and ``b`` (t=1).

    Args:
        a, b: (H, W, C) float32 in [0, 1].
        times: intermediate times.

    Returns:
        one (H, W, C) float32 frame per time.
    """
    f01, f10 = dis_flow(a, b), dis_flow(b, a)
    out = []
    for t in times:
        ft0 = -(1 - t) * t * f01 + t * t * f10
        ft1 = (1 - t) * (1 - t) * f01 - t * (1 - t) * f10
        frame = (1 - t) * _backward_warp(a, ft0) + t * _backward_warp(b, ft1)
        out.append(np.clip(frame, 0, 1).astype(np.float32))
    return out


def interpolate_frames(frames: Tensor, factor: int) -> Tensor:
    """Insert ``factor - 1`` flow-interpolated frames between consecutive frames.

    Args:
        frames: (T, C, H, W) float in [0, 1], T >= 2.
        factor: temporal up-sampling factor (>= 1).

    Returns:
        ((T - 1) * factor + 1, C, H, W) float32; the original frames sit at indices
        ``0, factor, 2 * factor, ...``.

    Raises:
        ValueError: fewer than 2 frames or factor < 1.
    """
    if frames.dim() != 4 or frames.shape[0] < 2:
        raise ValueError(f"need (T, C, H, W) frames with T >= 2, got {tuple(frames.shape)}")
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    arr = frames.permute(0, 2, 3, 1).float().numpy()
    times = [i / factor for i in range(1, factor)]
    out = [arr[0]]
    for a, b in zip(arr[:-1], arr[1:]):
        out.extend(interpolate_pair(np.ascontiguousarray(a), np.ascontiguousarray(b), times))
        out.append(b)
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()
