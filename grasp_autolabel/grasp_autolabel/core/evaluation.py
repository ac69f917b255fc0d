"""Grasps judged against the simulator's ground truth (numpy only).

A grasp is *valid* for a log when (issue 4's definition, also used for the detector):

* its centre lies on the log's spine: within 0.3 diameters of the log's projected axis;
* its closing direction is within 20 degrees of perpendicular to the axis;
* its opening is between 0.9 and 2.0 diameters.

Diameters are the log's diameter in pixels at its depth (``diameter_px`` in gt/).
"""
from __future__ import annotations

import math

from grasp_autolabel.core.geometry import angle_difference, as_grasps, point_segment_distance
import numpy as np

__all__ = ['ValidityRule', 'valid_for_log', 'mask_iou', 'gt_grasps']


class ValidityRule:
    """The thresholds of a valid grasp (defaults: issue 4)."""

    def __init__(self, *, centre_tolerance: float = 0.3, angle_tolerance_deg: float = 20.0,
                 opening_range: tuple = (0.9, 2.0)):
        self.centre_tolerance = centre_tolerance
        self.angle_tolerance = math.radians(angle_tolerance_deg)
        self.opening_range = opening_range


def valid_for_log(grasps, log: dict, rule: ValidityRule | None = None) -> np.ndarray:
    """Which grasps are valid for one log.

    Parameters
    ----------
    grasps : array_like (N, 5)
    log : dict
        A log's ground truth: ``axis_px`` ([[u0, v0], [u1, v1]]) and ``diameter_px``.
    rule : ValidityRule, optional

    Returns
    -------
    ndarray of bool, shape (N,)
    """
    rule = rule or ValidityRule()
    g = as_grasps(grasps)
    if len(g) == 0:
        return np.zeros(0, dtype=bool)
    a, b = (np.asarray(p, dtype=np.float64) for p in log['axis_px'])
    diameter = float(log['diameter_px'])
    axis_angle = math.atan2(b[1] - a[1], b[0] - a[0])
    on_spine = point_segment_distance(g[:, :2], a, b)[0] <= rule.centre_tolerance * diameter
    across = np.abs(angle_difference(g[:, 2], axis_angle) - math.pi / 2) <= rule.angle_tolerance
    lo, hi = rule.opening_range
    opening_ok = (g[:, 3] >= lo * diameter) & (g[:, 3] <= hi * diameter)
    return on_spine & across & opening_ok


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    union = np.count_nonzero(a | b)
    return float(np.count_nonzero(a & b) / union) if union else 1.0


def gt_grasps(log: dict, jaw_px: float, *, n: int = 7, margin: float = 1.3,
              span: float = 0.4) -> np.ndarray:
    """Perfect labels for one log from the simulator's truth.

    ``n`` grasps centred on the middle ``span`` of its visible axis, closing across it, opening
    ``margin`` diameters, jaw ``jaw_px``.

    The same shape of label as the annotator gives (DESIGN.md step 3), from the true axis
    instead of the depth difference: what "trained on ground-truth labels" trains on.
    """
    ends = log.get('axis_visible_px') or log['axis_px']
    a, b = (np.asarray(p, dtype=np.float64) for p in ends)
    t = np.linspace(0.5 - span / 2, 0.5 + span / 2, n)[:, None]
    centres = a + t * (b - a)
    theta = math.atan2(b[1] - a[1], b[0] - a[0]) + math.pi / 2
    from grasp_autolabel.core.geometry import normalize_angle

    out = np.zeros((n, 5))
    out[:, :2] = centres
    out[:, 2] = normalize_angle(theta)
    out[:, 3] = margin * float(log['diameter_px'])
    out[:, 4] = jaw_px
    return out
