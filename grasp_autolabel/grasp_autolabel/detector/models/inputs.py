"""Network inputs shared by the families: frames scaled to the network, heights above the ground.

No torch here.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = ['ground_height', 'input_scale', 'resize_inputs']


def ground_height(depth_m: np.ndarray) -> np.ndarray:
    """Height of every pixel above the farthest plane of the view, metres (0 where invalid).

    A plane ``z = a u + b v + c`` is fitted to the valid depth, then refitted twice to the
    points at or behind it (the ground, or the lowest layer of the pile); the height is the
    plane's depth minus the pixel's, clipped at 0 below.
    """
    d = np.asarray(depth_m, dtype=np.float32)
    valid = d > 0
    h, w = d.shape
    out = np.zeros_like(d)
    if np.count_nonzero(valid) < 16:
        return out
    step = max(1, int(math.sqrt(np.count_nonzero(valid) / 4000.0)))
    vv, uu = np.mgrid[0:h:step, 0:w:step]
    z = d[::step, ::step]
    keep = z > 0
    u, v, z = uu[keep].astype(np.float64), vv[keep].astype(np.float64), z[keep].astype(np.float64)
    a = np.column_stack([u / w, v / h, np.ones_like(u)])
    sel = np.ones(len(z), bool)
    coef = np.zeros(3)
    for _ in range(3):
        if np.count_nonzero(sel) < 3:
            break
        coef = np.linalg.lstsq(a[sel], z[sel], rcond=None)[0]
        sel = z >= a @ coef - 0.01
    vg, ug = np.mgrid[0:h, 0:w]
    plane = coef[0] * ug / w + coef[1] * vg / h + coef[2]
    out[valid] = np.maximum(plane[valid] - d[valid], 0.0)
    return out


def input_scale(width: int, height: int, input_size: int) -> float:
    """Image pixels -> network-input pixels."""
    return input_size / float(max(width, height))


def resize_inputs(rgb: np.ndarray | None, depth_m: np.ndarray | None, scale: float):
    """Return colour and depth scaled by ``scale``.

    Colour by the area average; depth by the average of the valid pixels, 0 where fewer than a
    quarter of them are valid.
    """
    src = rgb if rgb is not None else depth_m
    h, w = src.shape[:2]
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    small_rgb = None if rgb is None else cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
    small_depth = None
    if depth_m is not None:
        d = np.asarray(depth_m, dtype=np.float32)
        valid = (d > 0).astype(np.float32)
        ds = cv2.resize(d * valid, (nw, nh), interpolation=cv2.INTER_AREA)
        vs = cv2.resize(valid, (nw, nh), interpolation=cv2.INTER_AREA)
        small_depth = np.where(vs > 0.25, ds / np.maximum(vs, 1e-6), 0.0).astype(np.float32)
    return small_rgb, small_depth
