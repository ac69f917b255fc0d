"""Overlays of labels on the RGB frame: mask outline, spine, grasp rectangles.

Jaw edges (the two sides the gripper's jaws touch, along the spine) are drawn in green, the
opening edges (across the log, along the closing direction) in red, the spine in cyan and the
mask outline in yellow.
"""
from __future__ import annotations

import cv2
from grasp_autolabel.core.geometry import rect_to_corners
import numpy as np

__all__ = ['draw_label', 'draw_grasps', 'JAW_COLOUR', 'OPENING_COLOUR']

JAW_COLOUR = (40, 220, 40)  # RGB
OPENING_COLOUR = (230, 40, 40)
SPINE_COLOUR = (0, 220, 230)
MASK_COLOUR = (250, 220, 0)


def draw_grasps(image: np.ndarray, grasps, *, thickness: int = 1,
                max_grasps: int | None = None) -> np.ndarray:
    """Draw grasp rectangles on an RGB image (in place) and return it."""
    g = np.asarray(grasps, dtype=np.float64).reshape(-1, 5)
    if max_grasps is not None:
        g = g[:max_grasps]
    for c in rect_to_corners(g):
        p = np.rint(c).astype(np.int32)
        cv2.line(image, tuple(p[0]), tuple(p[1]), OPENING_COLOUR, thickness, cv2.LINE_AA)
        cv2.line(image, tuple(p[2]), tuple(p[3]), OPENING_COLOUR, thickness, cv2.LINE_AA)
        cv2.line(image, tuple(p[1]), tuple(p[2]), JAW_COLOUR, thickness + 1, cv2.LINE_AA)
        cv2.line(image, tuple(p[3]), tuple(p[0]), JAW_COLOUR, thickness + 1, cv2.LINE_AA)
    return image


def draw_label(rgb: np.ndarray, *, mask=None, spine=None, grasps=None, text: str | None = None,
               accepted: bool = True) -> np.ndarray:
    """Draw one step's label on a copy of the RGB frame (``(H, W, 3)`` uint8 RGB)."""
    out = np.ascontiguousarray(rgb).copy()
    if mask is not None and np.any(mask):
        contours, _ = cv2.findContours(np.asarray(mask, np.uint8), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, MASK_COLOUR, 1, cv2.LINE_AA)
    if spine is not None:
        a, b = np.rint(np.asarray(spine)).astype(np.int32)
        cv2.line(out, tuple(a), tuple(b), SPINE_COLOUR, 1, cv2.LINE_AA)
    if grasps is not None:
        draw_grasps(out, grasps)
    if text:
        colour = (255, 255, 255) if accepted else (255, 80, 80)
        cv2.putText(out, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(out, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, colour, 1, cv2.LINE_AA)
    return out
