"""Grasp rectangles, their corners, rotated IoU and angles, with numpy only.

The camera is in camera.py.

The grasp convention (Cornell/Jacquard, used everywhere in grasp_autolabel)
-----------------------------------------------------------------------------
A grasp is ``(x, y, theta, w, h)`` in pixels of the RGB image:

* ``(x, y)``: the rectangle's centre; +x to the right (columns), +y down (rows).
* ``theta``: the angle of the gripper's *closing direction* (the line joining the jaws) from
  the image +x axis towards +y, in radians, normalised to ``[-pi/2, pi/2)``. ``theta`` and
  ``theta + pi`` are the same grasp.
* ``w``: the opening, the rectangle's extent along the closing direction.
* ``h``: the jaw size, the rectangle's extent along the object's spine.

Corners come in Cornell order: ``p0 -> p1`` runs along the closing direction (length ``w``),
``p1 -> p2`` along the jaw (length ``h``), so ``p0p1`` and ``p2p3`` are the opening edges and
``p1p2`` and ``p3p0`` are the jaw edges. This is the order of the Cornell dataset's
``pcdNNNNcpos.txt`` files (checked on real samples: their first edge is the longer, opening one)
and of the GG-CNN / GR-ConvNet readers.

Arrays of grasps have shape ``(N, 5)``; a single grasp may be given as shape ``(5,)``.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ['HALF_PI', 'normalize_angle', 'angle_difference', 'as_grasps', 'rect_to_corners',
           'corners_to_rect', 'polygon_area', 'convex_polygon_intersection', 'rotated_iou',
           'iou_matrix', 'rectangle_metric', 'point_segment_distance']

HALF_PI = math.pi / 2


# --------------------------------------------------------------------------------------------
# Angles
# --------------------------------------------------------------------------------------------
def normalize_angle(theta):
    """Map grasp angles to ``[-pi/2, pi/2)`` (a grasp is symmetric under a half turn).

    Parameters
    ----------
    theta : float or array_like
        Angles in radians, any range.

    Returns
    -------
    float or ndarray
        The same grasps' angles in ``[-pi/2, pi/2)``; a float for a scalar input.

    Examples
    --------
    >>> normalize_angle(math.pi / 2)   # the half-open interval excludes +pi/2
    -1.5707963267948966
    """
    t = np.asarray(theta, dtype=np.float64)
    out = np.mod(t + HALF_PI, math.pi) - HALF_PI
    # np.mod can return exactly pi for tiny negative inputs; keep the interval half-open.
    out = np.where(out >= HALF_PI, out - math.pi, out)
    return float(out) if out.ndim == 0 else out


def angle_difference(a, b):
    """Smallest difference between grasp angles, modulo pi, in ``[0, pi/2]`` radians.

    >>> round(angle_difference(math.radians(85), math.radians(-85)), 6) == round(math.radians(10),
    6)
    True
    """
    d = np.abs(np.mod(np.asarray(a, np.float64) - np.asarray(b, np.float64), math.pi))
    d = np.minimum(d, math.pi - d)
    return float(d) if d.ndim == 0 else d


# --------------------------------------------------------------------------------------------
# Rectangles and corners
# --------------------------------------------------------------------------------------------
def as_grasps(grasps, *, name: str = 'grasps') -> np.ndarray:
    """Check and convert grasps to a float64 array of shape ``(N, 5)``.

    Raises
    ------
    ValueError
        If the input is not ``(5,)`` or ``(N, 5)``, is not finite, or has a negative size.
    """
    g = np.asarray(grasps, dtype=np.float64)
    if g.ndim == 1 and g.shape[0] == 5:
        g = g[None, :]
    if g.ndim == 1 and g.shape[0] == 0:
        g = g.reshape(0, 5)
    if g.ndim != 2 or g.shape[1] != 5:
        raise ValueError(f'{name}: expected shape (N, 5) as [x, y, theta, w, h], got {g.shape}')
    if not np.all(np.isfinite(g)):
        raise ValueError(f'{name}: contains NaN or infinite values')
    if np.any(g[:, 3:5] < 0):
        raise ValueError(f'{name}: opening w and jaw size h must be >= 0')
    return g


def rect_to_corners(grasps) -> np.ndarray:
    """Corners of grasp rectangles in Cornell order.

    Parameters
    ----------
    grasps : array_like, shape (N, 5) or (5,)
        ``[x, y, theta, w, h]`` in pixels and radians.

    Returns
    -------
    ndarray, shape (N, 4, 2) or (4, 2)
        ``(x, y)`` pixel corners; ``p0 -> p1`` along the closing direction (length ``w``),
        ``p1 -> p2`` along the jaw (length ``h``).

    Examples
    --------
    >>> rect_to_corners([10, 20, 0, 4, 2]).tolist()
    [[8.0, 19.0], [12.0, 19.0], [12.0, 21.0], [8.0, 21.0]]
    """
    single = np.ndim(grasps) == 1
    g = as_grasps(grasps)
    c = g[:, 0:2]
    d = np.stack([np.cos(g[:, 2]), np.sin(g[:, 2])], axis=1)  # closing direction
    n = np.stack([-d[:, 1], d[:, 0]], axis=1)  # along the jaw
    hw = (g[:, 3] / 2)[:, None]
    hh = (g[:, 4] / 2)[:, None]
    corners = np.stack([c - hw * d - hh * n, c + hw * d - hh * n,
                        c + hw * d + hh * n, c - hw * d + hh * n], axis=1)
    return corners[0] if single else corners


def corners_to_rect(corners) -> np.ndarray:
    """Grasp rectangles from four corners in Cornell order.

    Hand-drawn Cornell rectangles are not exact rectangles: the centre is the corners' mean,
    the closing direction the mean direction of the two opening edges (``p0p1``, ``p3p2``),
    ``w`` their mean length and ``h`` the mean length of the jaw edges (``p1p2``, ``p0p3``).

    Parameters
    ----------
    corners : array_like, shape (N, 4, 2) or (4, 2)

    Returns
    -------
    ndarray, shape (N, 5) or (5,)
    """
    p = np.asarray(corners, dtype=np.float64)
    single = p.ndim == 2
    if single:
        p = p[None]
    if p.ndim != 3 or p.shape[1:] != (4, 2):
        raise ValueError(f'corners: expected shape (N, 4, 2), got {np.shape(corners)}')
    if not np.all(np.isfinite(p)):
        raise ValueError('corners: contains NaN or infinite values')
    e1 = p[:, 1] - p[:, 0]
    e2 = p[:, 2] - p[:, 3]
    # Sum the two opening edges as vectors; for a rectangle they are parallel and equal.
    d = e1 + e2
    theta = normalize_angle(np.arctan2(d[:, 1], d[:, 0]))
    w = (np.linalg.norm(e1, axis=1) + np.linalg.norm(e2, axis=1)) / 2
    h = (np.linalg.norm(p[:, 2] - p[:, 1], axis=1) + np.linalg.norm(p[:, 3] - p[:, 0], axis=1)) / 2
    c = p.mean(axis=1)
    rect = np.column_stack([c[:, 0], c[:, 1], np.atleast_1d(theta), w, h])
    return rect[0] if single else rect


# --------------------------------------------------------------------------------------------
# Exact polygon IoU
# --------------------------------------------------------------------------------------------
def polygon_area(poly) -> float:
    """Signed area of a simple polygon (shoelace); positive for counter-clockwise in (x, y)."""
    p = np.asarray(poly, dtype=np.float64)
    if len(p) < 3:
        return 0.0
    x, y = p[:, 0], p[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _ccw(poly: np.ndarray) -> list[tuple[float, float]]:
    pts = [(float(x), float(y)) for x, y in poly]
    return pts if polygon_area(poly) >= 0 else pts[::-1]


def convex_polygon_intersection(subject, clip) -> np.ndarray:
    """Intersection of two convex polygons (Sutherland-Hodgman clipping).

    Parameters
    ----------
    subject, clip : array_like, shape (K, 2)
        Convex polygons, vertices in either winding order.

    Returns
    -------
    ndarray, shape (M, 2)
        The intersection polygon, counter-clockwise; ``M == 0`` when they do not overlap.
    """
    out = _ccw(np.asarray(subject, np.float64))
    clip_pts = _ccw(np.asarray(clip, np.float64))
    for i in range(len(clip_pts)):
        if not out:
            break
        ax, ay = clip_pts[i]
        bx, by = clip_pts[(i + 1) % len(clip_pts)]
        ex, ey = bx - ax, by - ay

        def side(px, py):  # > 0: inside (left of the CCW edge)
            return ex * (py - ay) - ey * (px - ax)

        inp, out = out, []
        prev = inp[-1]
        s_prev = side(*prev)
        for cur in inp:
            s_cur = side(*cur)
            if s_cur >= 0:
                if s_prev < 0:
                    t = s_prev / (s_prev - s_cur)
                    out.append((prev[0] + t * (cur[0] - prev[0]),
                                prev[1] + t * (cur[1] - prev[1])))
                out.append(cur)
            elif s_prev >= 0:
                t = s_prev / (s_prev - s_cur)
                out.append((prev[0] + t * (cur[0] - prev[0]), prev[1] + t * (cur[1] - prev[1])))
            prev, s_prev = cur, s_cur
    return np.asarray(out, dtype=np.float64).reshape(-1, 2)


def _iou_corners(ca: np.ndarray, cb: np.ndarray, area_a: float, area_b: float) -> float:
    inter_poly = convex_polygon_intersection(ca, cb)
    # Clipping in floating point can exceed the smaller area by an ulp; IoU stays in [0, 1].
    inter = min(abs(polygon_area(inter_poly)), area_a, area_b)
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


def rotated_iou(a, b) -> float:
    """Exact intersection over union of two rotated grasp rectangles.

    Parameters
    ----------
    a, b : array_like, shape (5,)
        Grasps ``[x, y, theta, w, h]``.

    Returns
    -------
    float
        IoU in ``[0, 1]``; 0 when both rectangles have no area.

    Examples
    --------
    >>> round(rotated_iou([0, 0, 0, 2, 2], [1, 0, 0, 2, 2]), 6)   # half-overlapping squares
    0.333333
    """
    return float(iou_matrix(np.asarray(a)[None], np.asarray(b)[None])[0, 0])


def iou_matrix(a, b) -> np.ndarray:
    """Exact rotated IoU of every grasp in ``a`` with every grasp in ``b``.

    Parameters
    ----------
    a : array_like, shape (N, 5)
    b : array_like, shape (M, 5)

    Returns
    -------
    ndarray, shape (N, M)
    """
    ga, gb = as_grasps(a, name='a'), as_grasps(b, name='b')
    out = np.zeros((len(ga), len(gb)))
    if len(ga) == 0 or len(gb) == 0:
        return out
    ca, cb = rect_to_corners(ga), rect_to_corners(gb)
    area_a, area_b = ga[:, 3] * ga[:, 4], gb[:, 3] * gb[:, 4]
    rad_a, rad_b = np.hypot(ga[:, 3], ga[:, 4]) / 2, np.hypot(gb[:, 3], gb[:, 4]) / 2
    dist = np.linalg.norm(ga[:, None, :2] - gb[None, :, :2], axis=2)
    # Rectangles whose circumscribed circles do not meet cannot overlap: skip the clipping.
    for i, j in zip(*np.nonzero(dist < rad_a[:, None] + rad_b[None, :])):
        out[i, j] = _iou_corners(ca[i], cb[j], area_a[i], area_b[j])
    return out


def rectangle_metric(predicted, ground_truth, *, iou_threshold: float = 0.25,
                     angle_threshold: float = math.radians(30)) -> np.ndarray:
    """Return the rectangle metric.

    Is each predicted grasp correct against any ground-truth grasp?

    A prediction is correct when some ground-truth rectangle has IoU > ``iou_threshold`` with
    it and an angle difference (modulo pi) < ``angle_threshold`` (Jiang et al. 2011; the
    standard Cornell/Jacquard evaluation).

    Parameters
    ----------
    predicted : array_like, shape (N, 5)
    ground_truth : array_like, shape (M, 5)
    iou_threshold : float
    angle_threshold : float
        Radians.

    Returns
    -------
    ndarray of bool, shape (N,)
    """
    p, g = as_grasps(predicted, name='predicted'), as_grasps(ground_truth, name='ground_truth')
    if len(p) == 0 or len(g) == 0:
        return np.zeros(len(p), dtype=bool)
    angle_ok = angle_difference(p[:, None, 2], g[None, :, 2]) < angle_threshold
    iou = iou_matrix(p, g)
    return np.any(angle_ok & (iou > iou_threshold), axis=1)


def point_segment_distance(points, a, b) -> tuple[np.ndarray, np.ndarray]:
    """Return the distance from points ``(K, D)`` to the segment ``a``-``b``, and ``t``.

    ``t`` in [0, 1] is the segment parameter of each point's nearest point on it.
    """
    p = np.asarray(points, dtype=np.float64)
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    ab = b - a
    denom = float(ab @ ab)
    t = np.clip(((p - a) @ ab) / denom, 0.0, 1.0) if denom > 0 else np.zeros(len(p))
    return np.linalg.norm(p - (a + t[:, None] * ab), axis=1), t
