"""Training transforms: the image, its depth and its grasps moved together (numpy/OpenCV).

Every transform takes and returns a :class:`Sample`. Geometric ones apply one similarity map
(rotation about the image centre, scale, shift) to colour (bilinear), depth (nearest: never a
blend of two surfaces) and grasps (centre mapped, closing direction rotated, opening and jaw
scaled); grasps whose centre leaves the image are dropped. Photometric ones change colour
(gain, contrast, per-channel tint, grey, noise) and depth (the sensor's z²-growing noise,
dropouts) and never the grasps.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
import math

import cv2
from grasp_autolabel.core.geometry import as_grasps, normalize_angle
import numpy as np

__all__ = ['Sample', 'similarity', 'warp', 'random_geometry', 'jitter_colour', 'depth_noise',
           'scale_sample',
           'AugmentSettings', 'augment']


@dataclass
class Sample:
    """One training image.

    Colour ``(H, W, 3)`` uint8 (or None), depth ``(H, W)`` float32 metres (0 = invalid, or None),
    grasps ``(N, 5)`` in its pixels (the grasp convention) and, per grasp, the spine of the log it
    grasps ``(N, 2, 2)`` (two end points; NaN where unknown); ``negatives`` ``(M, 5)``: places a
    person marked as wrong grasps (the network must learn not to fire there).
    """

    rgb: np.ndarray | None
    depth_m: np.ndarray | None
    grasps: np.ndarray
    spines: np.ndarray | None = None
    negatives: np.ndarray | None = None

    def __post_init__(self):
        self.grasps = as_grasps(self.grasps)
        self.negatives = as_grasps(self.negatives if self.negatives is not None else [])
        if self.spines is None:
            self.spines = np.full((len(self.grasps), 2, 2), np.nan)
        self.spines = np.asarray(self.spines, dtype=np.float64).reshape(len(self.grasps), 2, 2)

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)``."""
        h, w = (self.rgb if self.rgb is not None else self.depth_m).shape[:2]
        return w, h


def similarity(width: int, height: int, *, angle_deg: float = 0.0, scale: float = 1.0,
               shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Return a 2x3 map.

    Rotation by ``angle_deg`` and scaling about the image centre, then a shift.
    """
    m = cv2.getRotationMatrix2D(((width - 1) / 2.0, (height - 1) / 2.0), angle_deg, scale)
    m[:, 2] += np.asarray(shift, dtype=np.float64)
    return m


def warp(sample: Sample, matrix: np.ndarray) -> Sample:
    """``sample`` moved by the 2x3 similarity ``matrix`` on the same canvas."""
    w, h = sample.size
    m = np.asarray(matrix, dtype=np.float64)
    rgb = None if sample.rgb is None else cv2.warpAffine(sample.rgb, m, (w, h),
                                                         flags=cv2.INTER_LINEAR,
                                                         borderMode=cv2.BORDER_CONSTANT,
                                                         borderValue=0)
    depth = None if sample.depth_m is None else cv2.warpAffine(sample.depth_m, m, (w, h),
                                                               flags=cv2.INTER_NEAREST,
                                                               borderMode=cv2.BORDER_CONSTANT,
                                                               borderValue=0)
    g, spines = _warp_grasps(sample.grasps, sample.spines, m, w, h)
    neg, _ = _warp_grasps(sample.negatives, np.zeros((len(sample.negatives), 2, 2)), m, w, h)
    return Sample(rgb, depth, g, spines, neg)


def _warp_grasps(grasps, spines, m, w: int, h: int):
    """Return grasps and their spines moved by ``m``, those whose centre left the image dropped."""
    g, spines = grasps.copy(), spines.copy()
    if len(g):
        lin = m[:, :2]
        s = math.sqrt(abs(np.linalg.det(lin)))
        g[:, :2] = g[:, :2] @ lin.T + m[:, 2]
        spines = spines @ lin.T + m[:, 2]
        d = np.stack([np.cos(g[:, 2]), np.sin(g[:, 2])], 1) @ lin.T
        g[:, 2] = normalize_angle(np.arctan2(d[:, 1], d[:, 0]))
        g[:, 3:5] *= s
        inside = (g[:, 0] >= 0) & (g[:, 0] <= w - 1) & (g[:, 1] >= 0) & (g[:, 1] <= h - 1)
        g, spines = g[inside], spines[inside]
    return g, spines


def scale_sample(sample: Sample, scale: float) -> Sample:
    """Return the sample resized by ``scale`` (a new canvas).

    Colour by area averaging, depth by the average of the valid pixels, grasps with it (pixel
    centres kept).
    """
    from grasp_autolabel.detector.models.inputs import resize_inputs

    rgb, depth = resize_inputs(sample.rgb, sample.depth_m, scale)
    g, neg = sample.grasps.copy(), sample.negatives.copy()
    for rows in (g, neg):
        rows[:, :2] = (rows[:, :2] + 0.5) * scale - 0.5
        rows[:, 3:5] *= scale
    return Sample(rgb, depth, g, (sample.spines + 0.5) * scale - 0.5, neg)


@dataclass(frozen=True)
class AugmentSettings:
    """Ranges of the random transforms (training settings, not the network's)."""

    max_rotation_deg: float = 180.0
    scale_range: tuple = (0.7, 1.25)
    max_shift_fraction: float = 0.15
    colour: bool = True
    depth_noise: bool = True


def random_geometry(rng: np.random.Generator, sample: Sample,
                    settings: AugmentSettings) -> np.ndarray:
    w, h = sample.size
    lo, hi = settings.scale_range
    scale = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    shift = rng.uniform(-settings.max_shift_fraction, settings.max_shift_fraction, 2) * (w, h)
    return similarity(w, h,
                      angle_deg=rng.uniform(-settings.max_rotation_deg, settings.max_rotation_deg),
                      scale=scale, shift=tuple(shift))


def jitter_colour(rng: np.random.Generator, rgb: np.ndarray) -> np.ndarray:
    """Gain, contrast, a per-channel tint, sometimes grey, and pixel noise.

    Another camera's or renderer's look, so the network cannot lean on this one's.
    """
    x = rgb.astype(np.float32)
    mean = x.mean()
    x = (x - mean) * rng.uniform(0.6, 1.4) + mean * rng.uniform(0.6, 1.4)
    x *= rng.uniform(0.8, 1.2, 3)
    if rng.random() < 0.2:
        x[:] = x.mean(axis=2, keepdims=True)
    x += rng.normal(0.0, rng.uniform(0, 6), x.shape)
    return np.clip(x, 0, 255).astype(np.uint8)


def depth_noise(rng: np.random.Generator, depth_m: np.ndarray) -> np.ndarray:
    """Sensor noise growing with z² (1-4 mm at 1 m), and 0-5 % of the pixels dropped."""
    d = depth_m.copy()
    valid = d > 0
    sigma = rng.uniform(0.001, 0.004) * d * d
    d = np.where(valid, d + rng.normal(0, 1, d.shape).astype(np.float32) * sigma,
                 0).astype(np.float32)
    drop = rng.random(d.shape) < rng.uniform(0, 0.05)
    d[drop] = 0
    return d


def augment(rng: np.random.Generator, sample: Sample, settings: AugmentSettings, *,
            tries: int = 10) -> Sample:
    """Return a random similarity (redrawn until a grasp stays in view) and colour/depth jitter."""
    out = sample
    for _ in range(tries):
        out = warp(sample, random_geometry(rng, sample, settings))
        if len(out.grasps):
            break
    else:
        out = sample
    if settings.colour and out.rgb is not None:
        out = replace(out, rgb=jitter_colour(rng, out.rgb))
    if settings.depth_noise and out.depth_m is not None:
        out = replace(out, depth_m=depth_noise(rng, out.depth_m))
    return out
