"""Stage 3: grasp rectangles from the removed object's mask.

Skeleton of the mask (thinning) -> one line segment fitted robustly to it (the spine) -> at
points along the spine, the line normal to it through the point, cut by the mask's edges,
gives the closing direction ``theta`` and the opening ``w``; the jaw size ``h`` comes from the
gripper, turned into pixels at the grasp's depth. Proposals concentrate near the centre of mass.
All in the grasp convention of :mod:`grasp_autolabel.core.geometry`.
"""
from __future__ import annotations

from dataclasses import dataclass
import math
from statistics import NormalDist

import cv2
from grasp_autolabel.core.geometry import normalize_angle
import numpy as np

__all__ = ['Spine', 'fit_spine', 'measure_widths', 'propose_grasps']

_NORMAL = NormalDist()  # its quantiles spread the proposals (the stdlib's: no SciPy import)


@dataclass
class Spine:
    """The straight spine of a mask."""

    point: np.ndarray  # (2,) a point on the line (x, y), pixels
    direction: np.ndarray  # (2,) unit vector along the spine
    t_min: float  # the segment: point + t * direction for t in [t_min, t_max]
    t_max: float
    inlier_fraction: float  # share of skeleton pixels within tolerance of the line
    skeleton: np.ndarray  # (K, 2) skeleton pixels (x, y)
    radius_px: float  # typical distance from the skeleton to the mask's edge (half the width)

    @property
    def endpoints(self) -> np.ndarray:
        return np.stack([self.point + self.t_min * self.direction,
                         self.point + self.t_max * self.direction])

    @property
    def length(self) -> float:
        return self.t_max - self.t_min

    @property
    def normal(self) -> np.ndarray:
        return np.array([-self.direction[1], self.direction[0]])


def fit_spine(mask: np.ndarray, *, tolerance: float = 0.6) -> Spine | None:
    """Skeletonise a mask and fit one line segment to the skeleton, robust to its branches.

    Parameters
    ----------
    mask : ndarray (H, W), bool or 0/1
        One object (crop it to its bounding box first: the cost grows with the area).
    tolerance : float
        Skeleton pixels farther from the line than this many typical radii (the median
        distance from skeleton to edge; at least 2 px) are outliers: end spurs, branches.

    Returns
    -------
    Spine, or None when the skeleton has fewer than 5 pixels.
    """
    from skimage.morphology import skeletonize  # 0.35 s of imports: paid at the first spine

    m = np.asarray(mask, dtype=bool)
    dist = cv2.distanceTransform(m.view(np.uint8), cv2.DIST_L2, 3)
    # thinning costs grow with the area: thin a thick mask at a reduced scale (the skeleton of
    # a log more than a dozen pixels across loses nothing at half or a third of the size)
    f = int(max(1, min(4, dist.max() // 6)))
    if f > 1:
        small = cv2.resize(m.view(np.uint8), (max(1, m.shape[1] // f), max(1, m.shape[0] // f)),
                           interpolation=cv2.INTER_AREA) > 0
        ys, xs = np.nonzero(skeletonize(small))
        xs, ys = xs * f + (f - 1) / 2, ys * f + (f - 1) / 2
        on = m[np.clip(np.rint(ys).astype(int), 0, m.shape[0] - 1),
               np.clip(np.rint(xs).astype(int), 0, m.shape[1] - 1)]
        xs, ys = xs[on], ys[on]
    else:
        ys, xs = np.nonzero(skeletonize(m))
    if len(xs) < 5:
        return None
    pts = np.column_stack([xs, ys]).astype(np.float32)
    yi, xi = np.rint(ys).astype(int), np.rint(xs).astype(int)
    # skeleton spurs run out to the mask's edge with ever smaller distances: a high percentile
    # is the radius along the body of the log
    radius_px = float(np.percentile(dist[yi, xi], 80))
    tolerance_px = max(2.0, tolerance * radius_px)

    def fit(points, method):
        vx, vy, x0, y0 = cv2.fitLine(points, method, 0, 0.01, 0.01).ravel()
        d = np.array([vx, vy], dtype=np.float64)
        p0 = np.array([x0, y0], dtype=np.float64)
        rel = pts - p0
        return d, p0, rel @ d, np.abs(rel @ np.array([-d[1], d[0]])) <= tolerance_px

    # Huber M-estimator: short branches at the log's ends pull the line much less than with
    # least squares; then a least-squares refit on the inliers alone
    d, p0, t, inl = fit(pts, cv2.DIST_HUBER)
    if inl.sum() >= 5:
        d, p0, t, inl = fit(pts[inl], cv2.DIST_L2)
    ti = t[inl] if inl.any() else t
    return Spine(p0, d, float(ti.min()), float(ti.max()), float(inl.mean()), pts, radius_px)


def measure_widths(mask: np.ndarray, centres: np.ndarray, normal: np.ndarray, *,
                   max_half_px: float,
                   step: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut the mask along ``normal`` through each centre; find the run of pixels holding it.

    Parameters
    ----------
    mask : ndarray (H, W) bool
    centres : ndarray (N, 2) x, y pixels
    normal : ndarray (2,) unit vector
    max_half_px : float
        How far to look on each side.

    Returns
    -------
    lo, hi : ndarray (N,)
        Signed distances along ``normal`` of the run's two edges (NaN where the centre is not on
        the mask or the run reaches the image border or ``max_half_px``).
    ok : ndarray (N,) bool
    """
    h, w = mask.shape
    s = np.arange(-max_half_px, max_half_px + step / 2, step)
    px = centres[:, 0:1] + s[None, :] * normal[0]
    py = centres[:, 1:2] + s[None, :] * normal[1]
    xi = np.rint(px).astype(np.int64)
    yi = np.rint(py).astype(np.int64)
    inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    on = np.zeros(xi.shape, dtype=bool)
    on[inside] = mask[yi[inside], xi[inside]]
    mid = len(s) // 2
    n = len(centres)
    # first pixel off the mask going left from the centre, and going right (vectorised)
    left = ~on[:, :mid][:, ::-1]  # index 0 = next to the centre
    right = ~on[:, mid:]
    has_left, has_right = left.any(axis=1), right.any(axis=1)
    start = mid - np.argmax(left, axis=1)  # first on-mask index of the run
    stop = mid + np.argmax(right, axis=1) - 1  # last on-mask index of the run
    ok = on[:, mid] & has_left & has_right
    # the pixel just past each edge must be inside the image, or the edge is the border's
    rows = np.arange(n)
    ok &= inside[rows, np.clip(start - 1, 0,
                               len(s) - 1)] & inside[rows, np.clip(stop + 1, 0, len(s) - 1)]
    lo = np.where(ok, s[np.clip(start, 0, len(s) - 1)] - step / 2, np.nan)
    hi = np.where(ok, s[np.clip(stop, 0, len(s) - 1)] + step / 2, np.nan)
    return lo, hi, ok


def propose_grasps(mask: np.ndarray, spine: Spine, *, centroid: np.ndarray, jaw_px_at, n: int,
                   spread: float,
                   opening_margin: float, max_width_dev: float = 0.35):
    """Grasp rectangles along a spine, concentrated near the mask's centre of mass.

    Parameters
    ----------
    mask : ndarray (H, W) bool
    spine : Spine
    centroid : ndarray (2,)
        The mask's centre of mass (x, y).
    jaw_px_at : callable (x, y) -> float
        The jaw size in pixels at a pixel (from the gripper's jaw width and the depth there).
    n : int
        Number of proposals to try.
    spread : float
        Standard deviation of the centres along the spine, as a fraction of its length.
    opening_margin : float
        Opening = measured width x this.
    max_width_dev : float
        Proposals whose measured width differs from the median width along the spine by more
        than this fraction are dropped (a branch, a crossing, a notch in the mask).

    Returns
    -------
    grasps : ndarray (M, 5)
        ``[x, y, theta, w, h]``.
    scores : ndarray (M,)
        In (0, 1], highest at the centre of mass.
    median_width : float
        Median width of the mask across the spine, pixels (NaN if none was measured).
    """
    normal = spine.normal
    # the spine's own widths, measured densely, give the reference width
    t_all = np.linspace(spine.t_min, spine.t_max, max(8, int(spine.length / 8)))
    pts_all = spine.point + t_all[:, None] * spine.direction
    reach = 4 * spine.radius_px + 4  # a log is about two radii across; look twice as far
    lo_all, hi_all, ok_all = measure_widths(mask, pts_all, normal, max_half_px=reach)
    if not ok_all.any():
        return np.zeros((0, 5)), np.zeros(0), float('nan')
    widths = (hi_all - lo_all)[ok_all]
    median_width = float(np.median(widths))
    t, t_c, sigma = _positions(spine, centroid, median_width, n, spread)
    centres = spine.point + t[:, None] * spine.direction
    lo, hi, ok = measure_widths(mask, centres, normal, max_half_px=reach)
    width = hi - lo
    good = ok & (np.abs(width - median_width) <= max_width_dev * median_width)
    if not good.any():
        return np.zeros((0, 5)), np.zeros(0), median_width
    # re-centre each grasp between the edges it found
    mid = 0.5 * (lo + hi)
    c = centres[good] + mid[good, None] * normal
    theta = normalize_angle(math.atan2(normal[1], normal[0]))
    w_open = width[good] * opening_margin
    h = np.array([jaw_px_at(x, y) for x, y in c])
    keep = np.isfinite(h) & (h > 0)
    grasps = np.column_stack([c[:, 0], c[:, 1], np.full(len(c), theta), w_open, h])[keep]
    scores = np.exp(-0.5 * ((t[good] - t_c) / sigma) ** 2)[keep]
    order = np.argsort(-scores, kind='stable')
    return grasps[order], scores[order], median_width


def _positions(spine: Spine, centroid: np.ndarray, median_width: float, n: int, spread: float):
    """``(t, t_c, sigma)``.

    Up to ``n`` positions along the spine, deterministic quantiles of a normal (``sigma`` =
    ``spread`` of its length) around the centre of mass ``t_c``, kept half a width from the log's
    ends so the jaws stay on it.
    """
    t_c = float((centroid - spine.point) @ spine.direction)
    margin = 0.5 * median_width
    t_lo, t_hi = spine.t_min + margin, spine.t_max - margin
    if t_lo > t_hi:
        t_lo = t_hi = 0.5 * (spine.t_min + spine.t_max)
    t_c = min(max(t_c, t_lo), t_hi)
    sigma = max(spread * spine.length, 1.0)
    q = (np.arange(n) + 0.5) / n
    t = np.clip(t_c + sigma * np.array([_NORMAL.inv_cdf(x) for x in q]), t_lo, t_hi)
    return np.unique(np.round(t, 2)), t_c, sigma
