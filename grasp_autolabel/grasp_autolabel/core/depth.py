"""Depth units and the sensor's noise.

Integer units <-> metres, and the robust noise estimate the annotation, the capture node's settle
detector and the carrying-back of labels share.
"""
from __future__ import annotations

import numpy as np

__all__ = ['depth_to_metres', 'metres_to_depth_units', 'noise_sigma', 'unchanged_noise_sigma']

MAX_SAMPLES = 2048  # unchanged_noise_sigma thins larger samples evenly to this many


def depth_to_metres(array: np.ndarray, encoding: str, *, depth_scale: float = 0.001) -> np.ndarray:
    """Depth image -> float32 metres, with invalid pixels as 0.

    Parameters
    ----------
    array : ndarray, shape (H, W)
    encoding : str
        ``16UC1``/``mono16`` (integer units of ``depth_scale`` metres, 0 = invalid) or ``32FC1``
        (metres; NaN, inf and <= 0 become 0).
    depth_scale : float
        Metres per unit for integer depth (RealSense: 0.001).
    """
    if encoding in ('16UC1', 'mono16'):
        return np.asarray(array, dtype=np.float32) * np.float32(depth_scale)
    if encoding == '32FC1':
        d = np.asarray(array, dtype=np.float32)
        return np.where(np.isfinite(d) & (d > 0), d, np.float32(0))
    raise ValueError(
        f'Image.encoding: {encoding!r} is not a depth encoding (16UC1, mono16, 32FC1)')


def metres_to_depth_units(depth_m: np.ndarray, *, depth_scale: float = 0.001) -> np.ndarray:
    """Depth in metres (0 = invalid) -> uint16 units of ``depth_scale`` metres, clipped."""
    return np.clip(np.rint(np.asarray(depth_m) / depth_scale), 0, 65535).astype(np.uint16)


def noise_sigma(values: np.ndarray) -> float:
    """Robust standard deviation (1.4826 x median absolute deviation) of depth differences.

    The unchanged majority of an image pair is pure sensor noise, whatever else changed.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        return 0.0
    return 1.4826 * float(np.median(np.abs(v - np.median(v))))


def unchanged_noise_sigma(diff: np.ndarray, floor_m: float, k: float = 4.0,
                          rounds: int = 4) -> float:
    """Noise of a depth difference measured where the scene did not change.

    When much of the view changed at once (several logs, a bin emptied) the changed pixels
    swamp a plain median absolute deviation. Here the estimate starts from the differences
    smaller than ``floor_m`` (a change that counts is at least that) and is refined on the
    differences within ``k`` of its own sigmas of the median (or ``floor_m``, the larger), so
    whatever share of the view changed by more than that never enters it.
    """
    v = np.asarray(diff, dtype=np.float32).ravel()
    if v.size > MAX_SAMPLES:  # a robust estimate needs a few thousand, not all
        v = v[::-(-v.size // MAX_SAMPLES)]
    if v.size == 0:
        return 0.0
    keep = np.abs(v) < floor_m
    if keep.sum() < max(50, v.size // 20):  # nearly everything changed: nothing to measure
        return noise_sigma(v)
    sigma = noise_sigma(v[keep])
    for _ in range(rounds):
        centre = float(np.median(v[keep]))
        keep = np.abs(v - centre) < max(floor_m, k * sigma)
        sigma = noise_sigma(v[keep])
    return sigma
