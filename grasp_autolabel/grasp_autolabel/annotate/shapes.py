"""Shape measurements on masks, spines and depth the annotation stages use (numpy/OpenCV)."""
from __future__ import annotations

import warnings

import cv2
from grasp_autolabel.annotate.grasps import Spine
import numpy as np

__all__ = ['line_share', 'principal_spine', 'crest_dips', 'upsample', 'largest_pieces',
           'continues', 'view_ramp']


def line_share(mask: np.ndarray, spine: Spine) -> float:
    """Share of the mask's pixels within 1.5 typical radii of the spine line.

    A straight log lies entirely within one radius of its axis; a second arm (an L, a T, an X of
    two logs) lies far from it, however its skeleton branches.
    """
    ys, xs = np.nonzero(mask[::2, ::2])  # every other pixel is plenty for a share
    if len(xs) == 0:
        return 0.0
    off = np.abs((np.column_stack([xs, ys]) * 2 - spine.point) @ spine.normal)
    return float((off <= 1.5 * max(spine.radius_px, 1.5)).mean())


def principal_spine(mask: np.ndarray, spine: Spine) -> Spine:
    """Return the spine along the mask's principal axis, over the skeleton's extent along it."""
    ys, xs = np.nonzero(mask)
    pts = np.column_stack([xs, ys]).astype(np.float64)
    c = pts.mean(axis=0)
    _, evecs = np.linalg.eigh(np.cov((pts - c).T))
    d = evecs[:, 1]
    rel = spine.skeleton - c
    near = np.abs(rel @ np.array([-d[1], d[0]])) <= max(2.0, 0.6 * spine.radius_px)
    t = (rel @ d)[near] if near.any() else rel @ d
    return Spine(c, d, float(t.min()), float(t.max()), float(near.mean()), spine.skeleton,
                 spine.radius_px)


def crest_dips(before_m: np.ndarray, spine: Spine, width_px: float, *, noise: float,
               radius_m: float, n: int = 9) -> float:
    """Return the share of cross-sections whose surface had two crests with a valley between.

    Measured on the removed object's surface before the pick: one cylinder seen from the camera
    has one nearest line along its top; two logs side by side have two.
    """
    if not np.isfinite(width_px) or width_px < 6:
        return 0.0
    h, w = before_m.shape
    t = np.linspace(spine.t_min, spine.t_max, n + 2)[1:-1]
    # the central 80 % of the width: the edges may touch a higher neighbour
    s = np.linspace(-0.4 * width_px, 0.4 * width_px, max(9, int(width_px)))
    pts = spine.point[None, None,
                      :] + t[:, None, None] * spine.direction + s[None, :, None] * spine.normal
    x = np.clip(np.rint(pts[..., 0]).astype(int), 0, w - 1)
    y = np.clip(np.rint(pts[..., 1]).astype(int), 0, h - 1)
    prof = before_m[y, x].astype(np.float64)
    prof[prof <= 0] = np.nan
    k = max(1, len(s) // 12)  # smooth over a few pixels against noise
    kernel = np.ones(2 * k + 1) / (2 * k + 1)
    dips = 0
    counted = 0
    for row in prof:
        if np.isnan(row).mean() > 0.3:
            continue
        r = np.interp(np.arange(len(row)), np.flatnonzero(~np.isnan(row)), row[~np.isnan(row)])
        r = np.convolve(np.pad(r, k, mode='edge'), kernel, mode='valid')
        i = int(np.argmin(r))  # the nearest point: a crest
        # going outwards from the crest, the surface must only fall away (depth grow); a second
        # crest means it grows and then shrinks again by more than noise
        # between two touching logs the surface sinks by about a radius; on one log it never
        # rises again towards the camera by more than noise
        thr = max(4 * noise, 0.3 * radius_m, 0.01)
        left = r[:i + 1][::-1]
        right = r[i:]
        dip = max((np.maximum.accumulate(side) - side).max() if len(side) else 0.0 for side in (
            left, right))
        counted += 1
        dips += dip > thr
    return dips / counted if counted else 0.0


def upsample(mask: np.ndarray, shape: tuple) -> np.ndarray:
    return cv2.resize(mask.astype(np.uint8), (shape[1], shape[0]),
                      interpolation=cv2.INTER_NEAREST) > 0


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Return a 0/1 mask with every region it encloses filled, as bool."""
    pad = np.pad(np.asarray(mask, np.uint8), 1)
    cv2.floodFill(pad, None, (0, 0), 2)  # the outside, reached from the padded corner
    return pad[1:-1, 1:-1] != 2


def largest_pieces(crop: np.ndarray, n: int) -> np.ndarray:
    """Keep the ``n`` largest connected pieces of a 0/1 mask."""
    count, lab, st, _ = cv2.connectedComponentsWithStats(crop, connectivity=8)
    if count <= n + 1:
        return crop
    keep = 1 + np.argsort(-st[1:, cv2.CC_STAT_AREA])[:n]
    return np.isin(lab, keep).astype(np.uint8)


GAP_RISE = 0.3  # a gap that went farther by this share of the change threshold lay under the log


def continues(labels: np.ndarray, main: int, other: int, before_m: np.ndarray,
              after_m: np.ndarray, threshold_m: float) -> bool:
    """Is component ``other`` the same log as ``main``, past something across or under it?.

    Together the two must form one straight band (both inside the corridor of their union's
    principal axis, about one log wide), and along the gap between them either the view was
    nearer to the camera than the log (an occluder lying across it), or the gap went farther
    too, by less than the change threshold (``threshold_m``) but clearly (the log lay on another
    one there), or the gap has no depth in a frame and is shorter than the band is wide (a dark
    or grazing stretch of the same log); not a gap that stayed as it was (two separate removals).
    """
    ys, xs = np.nonzero(labels == main)
    yo, xo = np.nonzero(labels == other)
    pm = np.column_stack([xs, ys]).astype(np.float64)
    po = np.column_stack([xo, yo]).astype(np.float64)
    union = np.concatenate([pm, po])
    c = union.mean(axis=0)
    _, evecs = np.linalg.eigh(np.cov((union - c).T))
    d = evecs[:, 1]
    n = np.array([-d[1], d[0]])
    # the band's half width, from the main piece across the union's axis (robust: 95th percentile)
    off_m = (pm - c) @ n
    half = 0.5 * (np.percentile(off_m, 97.5) - np.percentile(off_m, 2.5))
    mid = np.median(off_m)
    if np.mean(np.abs((po - c) @ n - mid) <= 1.25 * half) < 0.85:
        return False
    t_m, t_o = (pm - c) @ d, (po - c) @ d
    if t_o.mean() > t_m.mean():
        t0, t1 = t_m.max(), t_o.min()
    else:
        t0, t1 = t_o.max(), t_m.min()
    if t1 - t0 < 2:
        # not separated along the axis: a piece within the log's own band (split off by an
        # unreadable strip along it) is the same log; one beside it is another object
        return bool(np.mean(np.abs((po - c) @ n - mid) <= half) >= 0.85)
    ts = np.linspace(t0, t1, 12)[1:-1]
    gap = np.rint(c + ts[:, None] * d + mid * n).astype(int)
    h, w = before_m.shape
    gap = gap[(gap[:, 0] >= 0) & (gap[:, 0] < w) & (gap[:, 1] >= 0) & (gap[:, 1] < h)]
    if len(gap) == 0:
        return False
    z_gap = before_m[gap[:, 1], gap[:, 0]]
    z_after = after_m[gap[:, 1], gap[:, 0]]
    both = (z_gap > 0) & (z_after > 0)
    if both.mean() < 0.3 and t1 - t0 <= 2 * half:
        return True
    rise = float(np.median(z_after[both] - z_gap[both])) if both.sum() >= 3 else 0.0
    z_gap = z_gap[z_gap > 0]
    z_log = np.median(before_m[ys, xs][before_m[ys, xs] > 0])
    if z_gap.size == 0:
        return False
    return float(np.median(z_gap)) < z_log - 0.02 or rise > GAP_RISE * threshold_m


def view_ramp(change) -> float:
    """How much the unchanged part of the view tilted or moved between the frames, metres.

    With a static camera the depth difference of everything that did not change is zero-mean
    noise; a knocked camera sees the ground and the pile at a slightly different depth,
    smoothly varying across the image (rotation: a ramp; translation along the axis: an
    offset). A plane fitted to the difference over unchanged pixels gives its largest value
    over the image corners.
    """
    h, w = change.diff.shape
    step = 8
    d = change.diff[::step, ::step]
    keep = change.valid[::step, ::step] & (np.abs(d) < change.threshold_m)
    if keep.sum() < 50:
        return 0.0
    vv, uu = np.nonzero(keep)
    A = np.column_stack([np.ones(len(uu)), uu * (step / w) - 0.5, vv * (step / h) - 0.5])
    coef, *_ = np.linalg.lstsq(A, d[keep].astype(np.float64), rcond=None)
    return float(abs(coef[0]) + 0.5 * abs(coef[1]) + 0.5 * abs(coef[2]))


def occluded_side_share(mask: np.ndarray, before_m: np.ndarray, point, direction, t_min: float,
                        t_max: float, margin_m: float, sections: int = 16) -> float:
    """Share of cross-sections where a nearer surface borders the mask along one long side.

    Walking out from the spine across the mask (full resolution), the depth just outside its
    edge is compared with the depth just inside: a surface nearer by more than ``margin_m``
    there hides part of the object (a log seen beside a nearer, higher one). The side found in
    the most sections counts; a log lying free shows farther ground or logs on both sides.
    """
    h, w = mask.shape
    d = np.asarray(direction, float)
    n = np.array([-d[1], d[0]])
    reach = int(min(max(h, w), 4 * mask.sum() / max(t_max - t_min, 1.0))) + 4  # 4x the width
    ts = np.linspace(t_min, t_max, sections + 4)[2:-2]
    e = np.arange(reach)
    # (section, side, step out) points along each normal
    signs = np.array([1.0, -1.0])
    centres = np.asarray(point, float) + ts[:, None] * d  # (S, 2)
    pts = centres[:, None, None, :] + (signs[None, :, None, None] * (e[None, None, :, None] + 1)
                                       * n[None, None, None, :])
    xi, yi = np.rint(pts[..., 0]).astype(int), np.rint(pts[..., 1]).astype(int)
    inside_img = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    on = inside_img & mask[np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)]
    edge = np.where(on.all(axis=2), reach, np.argmin(on, axis=2))  # (S, 2) steps to the edge

    def depth(offset):
        q = centres[:, None, :] + (signs[None, :, None] * offset[..., None]) * n
        return _depth_3x3(before_m, q)

    inner = depth(np.maximum(edge - 2, 0).astype(float))
    outer = depth(edge + 3.0)
    nearer = np.isfinite(inner) & np.isfinite(outer) & (outer < inner - margin_m)
    return float(nearer.sum(axis=0).max()) / sections


def _depth_3x3(depth_m: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Median of the valid depths in the 3x3 window around each point of ``q``; NaN if none."""
    h, w = depth_m.shape
    x = np.rint(q[..., 0]).astype(int)[..., None] + np.array([-1, 0, 1] * 3)
    y = np.rint(q[..., 1]).astype(int)[..., None] + np.repeat([-1, 0, 1], 3)
    ok = (x >= 0) & (x < w) & (y >= 0) & (y < h)
    v = np.where(ok, depth_m[np.clip(y, 0, h - 1), np.clip(x, 0, w - 1)], 0.0)
    v = np.where(v > 0, v, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)  # an all-NaN window is NaN
        return np.nanmedian(v, axis=-1)


def depth_step_along(before_m: np.ndarray, after_m: np.ndarray, spine: Spine) -> float:
    """Median depth increase along the spine: a cylinder leaves a hole as deep as it is wide."""
    h, w = before_m.shape
    t = np.linspace(spine.t_min, spine.t_max, 32)
    sp = np.rint(spine.point + t[:, None] * spine.direction).astype(int)
    sp[:, 0] = np.clip(sp[:, 0], 0, w - 1)
    sp[:, 1] = np.clip(sp[:, 1], 0, h - 1)
    b_sp, a_sp = before_m[sp[:, 1], sp[:, 0]], after_m[sp[:, 1], sp[:, 0]]
    along = (a_sp - b_sp)[(b_sp > 0) & (a_sp > 0)]
    along = along[along > 0]
    return float(np.median(along)) if along.size else float('nan')


def inscribed_radius(labels: np.ndarray, stats: np.ndarray, c: int) -> float:
    """Radius of the largest disc inside component ``c`` of ``labels``, pixels."""
    x, y = stats[c, cv2.CC_STAT_LEFT], stats[c, cv2.CC_STAT_TOP]
    w, h = stats[c, cv2.CC_STAT_WIDTH], stats[c, cv2.CC_STAT_HEIGHT]
    piece = np.pad(labels[y:y + h, x:x + w] == c, 1).view(np.uint8)
    return float(cv2.distanceTransform(piece, cv2.DIST_L2, 3).max())
