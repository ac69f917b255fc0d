"""The whole step: two depth frames in, the removed log's mask, grasps and a gate verdict out."""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from grasp_autolabel.annotate.config import AnnotateConfig
from grasp_autolabel.annotate.grasps import Spine, fit_spine, propose_grasps
from grasp_autolabel.annotate.segment import depth_change, estimate_shift, refine, scale_px
from grasp_autolabel.geometry import CameraIntrinsics, GraspPose, depth_at, grasp_poses

__all__ = ["StepLabel", "annotate_step", "REASONS"]

# Every reason a step can be rejected for, in the order the gate checks them.
REASONS = {
    "no_valid_depth": "too few pixels have a valid depth in both frames",
    "camera_moved": "the whole view shifted or changed: the camera moved",
    "new_object_in_view": "something is in view that was not there before (depth decreased)",
    "nothing_removed": "no region large enough for a log changed",
    "multiple_objects_removed": "more than one object was removed",
    "mask_touches_border": "the removed object's mask touches the image border",
    "mask_too_small": "the mask is too small for a log at that depth",
    "mask_too_large": "the mask is too large for a log at that depth",
    "skeleton_not_line_like": "the mask's skeleton is not one straight line",
    "no_grasp_found": "no grasp could be placed on the mask",
}


@dataclass
class StepLabel:
    """The result of annotating one pick.

    ``grasps`` are ``(N, 5)`` ``[x, y, theta, w, h]`` in the grasp convention, sorted by score;
    ``poses`` their 3-D poses in the camera optical frame (see :func:`geometry.grasp_pose`).
    A rejected step still carries whatever the pipeline found before the gate stopped it.
    """

    accepted: bool
    reason: str | None
    mask: np.ndarray  # (H, W) bool, the removed object's refined mask (empty if none)
    grasps: np.ndarray = field(default_factory=lambda: np.zeros((0, 5)))
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    poses: list = field(default_factory=list)  # list[GraspPose]
    spine: np.ndarray | None = None  # (2, 2) end points (x, y) of the spine segment
    info: dict = field(default_factory=dict)  # measurements the gate used, for the labels file

    @property
    def detail(self) -> str:
        return REASONS.get(self.reason, "") if self.reason else ""


def _reject(reason: str, mask, info, **kw) -> StepLabel:
    return StepLabel(False, reason, mask, info=info, **kw)


def annotate_step(before_m: np.ndarray, after_m: np.ndarray, intrinsics: CameraIntrinsics,
                  config: AnnotateConfig | None = None) -> StepLabel:
    """Label one pick from the depth frames before and after it.

    Parameters
    ----------
    before_m, after_m : ndarray (H, W) float
        Aligned depth in metres (0 = invalid), before and after the pick.
    intrinsics : CameraIntrinsics
        Of the (colour-aligned) depth image; its size must match.
    config : AnnotateConfig, optional

    Returns
    -------
    StepLabel
    """
    cfg = config or AnnotateConfig()
    before_m = np.asarray(before_m)
    after_m = np.asarray(after_m)
    if before_m.shape != after_m.shape:
        raise ValueError(f"depth frames differ in size: {before_m.shape} vs {after_m.shape}")
    h, w = before_m.shape[:2]
    if (w, h) != (intrinsics.width, intrinsics.height):
        raise ValueError(f"depth is {w}x{h} but the camera intrinsics are {intrinsics.width}x{intrinsics.height}")
    empty = np.zeros((h, w), dtype=bool)
    before_m = before_m.astype(np.float32, copy=False)
    after_m = after_m.astype(np.float32, copy=False)
    # Detection (what changed, where, how many objects, did the view move) runs at half
    # resolution, where it costs a quarter; the removed object's mask is then made again at
    # full resolution inside its own bounding box.
    ds = 2 if w >= 320 else 1
    bh, ah = before_m[::ds, ::ds], after_m[::ds, ::ds]
    hw = bh.shape[1]
    fx_h, fy_h = intrinsics.fx / ds, intrinsics.fy / ds
    change = depth_change(bh, ah, min_change_m=cfg.min_change_m, noise_k=cfg.noise_k)
    thr = change.threshold_m
    info: dict = {"threshold_m": round(thr, 5), "noise_m": round(change.noise_m, 5)}
    valid_share = float(change.valid[::2, ::2].mean())
    info["valid_share"] = round(valid_share, 4)
    if valid_share < 0.2:
        return _reject("no_valid_depth", empty, info)

    # ---- the view itself: global shift or change everywhere
    grown = cv2.dilate(change.increased, np.ones((5, 5), np.uint8))
    dx, dy, ratio = estimate_shift(bh, ah, ignore=grown, factor=2)
    dx, dy = dx * ds, dy * ds
    info["shift_px"] = [round(dx, 2), round(dy, 2)]
    info["shift_explains"] = round(1 - ratio, 3)
    changed_share = float((change.increased | change.decreased).mean())
    info["changed_share"] = round(changed_share, 4)
    ramp = _view_ramp(change)
    info["view_ramp_m"] = round(ramp, 4)
    moved = np.hypot(dx, dy) > cfg.max_shift_px and ratio < 1 - cfg.min_shift_explains
    moved = moved or ramp > cfg.max_view_ramp_m
    if moved or changed_share > cfg.max_changed_fraction:
        return _reject("camera_moved", empty, info)

    # ---- scale: how big is the smallest plausible log here, in (detection) pixels
    z_scene = float(np.median(bh[::2, ::2][change.valid[::2, ::2]]))
    min_log_px = cfg.min_diameter_m * cfg.min_visible_length_m * fx_h * fy_h / (z_scene * z_scene)
    open_px, close_px = scale_px(cfg.open_px, hw), scale_px(cfg.close_px, hw)
    # Anything that matters (a log, an arm) is at least a thin log's diameter across; slivers
    # along the edges of logs nudged by the pick are a few millimetres. An opening of about
    # half the thinnest log removes the slivers and keeps every log.
    thin_px = cfg.min_diameter_m * intrinsics.fx / z_scene  # full resolution
    open_px = max(open_px, int(0.4 * thin_px / ds) | 1)

    # ---- something appeared (an arm still in view): regions that came nearer
    dec = refine(change.decreased, np.zeros(bh.shape, bool), open_px=open_px, close_px=open_px)
    if dec.any():
        _, _, dec_stats, _ = cv2.connectedComponentsWithStats(dec, connectivity=8)
        dec_areas = dec_stats[1:, cv2.CC_STAT_AREA]
    else:
        dec_areas = np.zeros(0, dtype=int)
    info["largest_new_px"] = int(dec_areas.max()) * ds * ds if len(dec_areas) else 0
    if len(dec_areas) and dec_areas.max() >= cfg.new_object_fraction * min_log_px:
        return _reject("new_object_in_view", empty, info)

    # ---- what was removed: regions that went farther
    inc = refine(change.increased, ~change.valid, open_px=open_px, close_px=close_px)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(inc, connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    if not len(areas) or areas.max() < min_log_px:
        info["largest_removed_px"] = int(areas.max()) * ds * ds if len(areas) else 0
        return _reject("nothing_removed", empty, info)
    order = np.argsort(-areas)
    main = int(order[0]) + 1
    info["removed_px"] = int(areas[order[0]]) * ds * ds
    big_others = [int(i) + 1 for i in order[1:] if areas[i] >= cfg.second_object_fraction * min_log_px]
    # A log lying across the removed one (without resting on it) splits its mask in two; pieces
    # on the main piece's line, with the gap between them nearer to the camera, are one log.
    pieces = [main] + [c for c in big_others if _continues(labels, main, c, bh)]
    others = [c for c in big_others if c not in pieces]
    if others:
        info["second_removed_px"] = int(stats[others[0], cv2.CC_STAT_AREA]) * ds * ds
        return _reject("multiple_objects_removed", _upsample(labels == main, (h, w)), info)
    info["pieces"] = len(pieces)

    # ---- the mask again at full resolution, in the pieces' bounding box
    x0 = ds * int(min(stats[c, cv2.CC_STAT_LEFT] for c in pieces))
    y0 = ds * int(min(stats[c, cv2.CC_STAT_TOP] for c in pieces))
    x1 = ds * int(max(stats[c, cv2.CC_STAT_LEFT] + stats[c, cv2.CC_STAT_WIDTH] for c in pieces))
    y1 = ds * int(max(stats[c, cv2.CC_STAT_TOP] + stats[c, cv2.CC_STAT_HEIGHT] for c in pieces))
    pad = int(3 * cfg.gaussian_sigma) + 2 + ds
    cx0, cy0 = max(x0 - pad, 0), max(y0 - pad, 0)
    cx1, cy1 = min(x1 + pad, w), min(y1 + pad, h)
    hy0, hx0 = cy0 // ds, cx0 // ds
    hy1, hx1 = min(-(-cy1 // ds), labels.shape[0]), min(-(-cx1 // ds), labels.shape[1])
    small = np.isin(labels[hy0:hy1, hx0:hx1], pieces).astype(np.uint8)
    small = cv2.dilate(small, np.ones((3, 3), np.uint8))
    region = cv2.resize(small, ((hx1 - hx0) * ds, (hy1 - hy0) * ds), interpolation=cv2.INTER_NEAREST)
    region = region[cy0 - hy0 * ds:cy1 - hy0 * ds, cx0 - hx0 * ds:cx1 - hx0 * ds]
    b_c, a_c = before_m[cy0:cy1, cx0:cx1], after_m[cy0:cy1, cx0:cx1]
    valid_c = (b_c > 0) & (a_c > 0) & (b_c < 1e4) & (a_c < 1e4)
    diff_c = np.where(valid_c, a_c - b_c, np.float32(0))
    unknown_c = ~valid_c
    strong = ((diff_c > thr) | unknown_c).view(np.uint8) & region
    k_close = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (scale_px(cfg.close_px, w),) * 2)
    crop = cv2.morphologyEx(strong, cv2.MORPH_CLOSE, k_close) & region
    # Thin slivers where nudged neighbours moved a few millimetres cling to the mask; an
    # opening scaled to the log's own thickness cuts them off without eroding the log.
    radius_px = float(cv2.distanceTransform(crop, cv2.DIST_L2, 3).max())
    k = min(max(3, int(0.6 * radius_px) | 1), scale_px(9, w))
    crop = cv2.morphologyEx(crop, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    crop = _largest_pieces(crop, len(pieces))
    core = crop.astype(bool)  # the conservative mask: the gate's shape checks use it
    if not core.any():
        return _reject("nothing_removed", empty, info)
    # Hysteresis: near its silhouette a log is only half as thick as on its crest, so its edges
    # change by about half as much. Grow the mask by a few pixels into pixels that changed by
    # at least half the threshold (or have no depth), so it reaches the log's true edges.
    weak = (diff_c > 0.5 * thr) | unknown_c
    g = max(1, int(0.25 * thin_px))
    grown = cv2.dilate(crop, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * g + 1, 2 * g + 1)))
    crop = crop | (grown & weak.view(np.uint8))
    crop = cv2.GaussianBlur(crop.astype(np.float32), (0, 0), cfg.gaussian_sigma) > 0.5
    mask = np.zeros((h, w), dtype=bool)
    mask[cy0:cy1, cx0:cx1] = crop
    b = cfg.border_px
    core_full = np.zeros((h, w), dtype=bool)
    core_full[cy0:cy1, cx0:cx1] = core
    if core_full[:b + 1].any() or core_full[-b - 1:].any() or core_full[:, :b + 1].any() or core_full[:, -b - 1:].any():
        return _reject("mask_touches_border", mask, info)

    # ---- size, in metres, at the object's depth (its top surface, before the pick)
    z_obj = float(np.median(before_m[cy0:cy1, cx0:cx1][crop & (before_m[cy0:cy1, cx0:cx1] > 0)]))
    info["depth_m"] = round(z_obj, 4)
    m_per_px = z_obj / np.sqrt(intrinsics.fx * intrinsics.fy)
    area_m2 = crop.sum() * m_per_px * m_per_px
    info["area_m2"] = round(float(area_m2), 5)
    if area_m2 < cfg.min_diameter_m * cfg.min_visible_length_m:
        return _reject("mask_too_small", mask, info)
    if area_m2 > cfg.max_diameter_m * cfg.max_length_m:
        return _reject("mask_too_large", mask, info)

    # ---- skeleton -> one straight spine
    spine = fit_spine(core)
    if spine is None:
        return _reject("mask_too_small", mask, info)
    line_share = _line_share(core, spine)
    # The skeleton of a mask split by an occluder, or ragged at its ends, can tilt the fitted
    # line; the mask's own principal axis is then the better spine (for one straight band the
    # two agree). Keep whichever explains more of the mask.
    if line_share < 0.98:
        alt = _principal_spine(core, spine)
        alt_share = _line_share(core, alt)
        if alt_share > line_share + 0.02:
            spine, line_share = alt, alt_share
    info["line_share"] = round(line_share, 3)
    spine_full = Spine(spine.point + [cx0, cy0], spine.direction, spine.t_min, spine.t_max,
                       spine.inlier_fraction, spine.skeleton + [cx0, cy0], spine.radius_px)
    ends = spine_full.endpoints
    if line_share < cfg.min_line_share:
        return _reject("skeleton_not_line_like", mask, info, spine=ends)

    # ---- grasps along the spine
    ys, xs = np.nonzero(crop)
    centroid = np.array([xs.mean(), ys.mean()])

    def jaw_px_at(x, y):
        z = depth_at(before_m, x + cx0, y + cy0, radius=3)
        if not np.isfinite(z):
            z = z_obj
        return cfg.jaw_width_m * intrinsics.fx / z

    grasps, scores, width_px = propose_grasps(crop, spine, centroid=centroid, jaw_px_at=jaw_px_at, n=cfg.n_grasps,
                                              spread=cfg.grasp_spread, opening_margin=cfg.opening_margin)
    width_m = width_px * m_per_px
    length_m = spine.length * m_per_px
    info["width_m"] = round(float(width_m), 4) if np.isfinite(width_m) else None
    info["length_m"] = round(float(length_m), 4)
    if not np.isfinite(width_m) or width_m < cfg.min_diameter_m or length_m < cfg.min_visible_length_m:
        return _reject("mask_too_small", mask, info, spine=ends)
    if width_m > cfg.max_diameter_m or length_m > cfg.max_length_m:
        return _reject("mask_too_large", mask, info, spine=ends)
    # one cylinder leaves a hole about as deep as it is wide; two logs side by side are twice as wide
    t = np.linspace(spine.t_min, spine.t_max, 32)
    sp = np.rint(spine_full.point + t[:, None] * spine_full.direction).astype(int)
    sp[:, 0] = np.clip(sp[:, 0], 0, w - 1)
    sp[:, 1] = np.clip(sp[:, 1], 0, h - 1)
    b_sp, a_sp = before_m[sp[:, 1], sp[:, 0]], after_m[sp[:, 1], sp[:, 0]]
    along = (a_sp - b_sp)[(b_sp > 0) & (a_sp > 0)]
    along = along[along > 0]
    depth_step = float(np.median(along)) if along.size else float("nan")
    info["depth_step_m"] = round(depth_step, 4) if np.isfinite(depth_step) else None
    if np.isfinite(depth_step) and width_m > cfg.max_width_ratio * depth_step:
        return _reject("multiple_objects_removed", mask, info, spine=ends)
    # two logs side by side: across the mask the surface had two crests, not one
    dips = _crest_dips(before_m, spine_full, width_px, noise=change.noise_m, radius_m=0.5 * width_m)
    info["two_crests_share"] = round(dips, 3)
    if dips >= 0.2:
        return _reject("multiple_objects_removed", mask, info, spine=ends)
    if len(grasps) == 0:
        return _reject("no_grasp_found", mask, info, spine=ends)

    grasps = grasps.copy()
    grasps[:, 0] += cx0
    grasps[:, 1] += cy0
    z = [depth_at(before_m, g[0], g[1], radius=3) for g in grasps]
    poses: list[GraspPose] = grasp_poses(grasps, z, intrinsics)
    return StepLabel(True, None, mask, grasps, scores, poses, ends, info)


def _line_share(mask: np.ndarray, spine: Spine) -> float:
    """Share of the mask's pixels within 1.5 typical radii of the spine line.

    A straight log lies entirely within one radius of its axis; a second arm (an L, a T, an X of
    two logs) lies far from it, however its skeleton branches.
    """
    ys, xs = np.nonzero(mask[::2, ::2])  # every other pixel is plenty for a share
    if len(xs) == 0:
        return 0.0
    off = np.abs((np.column_stack([xs, ys]) * 2 - spine.point) @ spine.normal)
    return float((off <= 1.5 * max(spine.radius_px, 1.5)).mean())


def _principal_spine(mask: np.ndarray, spine: Spine) -> Spine:
    """The spine along the mask's principal axis, spanning the skeleton's extent along it."""
    ys, xs = np.nonzero(mask)
    pts = np.column_stack([xs, ys]).astype(np.float64)
    c = pts.mean(axis=0)
    _, evecs = np.linalg.eigh(np.cov((pts - c).T))
    d = evecs[:, 1]
    rel = spine.skeleton - c
    near = np.abs(rel @ np.array([-d[1], d[0]])) <= max(2.0, 0.6 * spine.radius_px)
    t = (rel @ d)[near] if near.any() else rel @ d
    return Spine(c, d, float(t.min()), float(t.max()), float(near.mean()), spine.skeleton, spine.radius_px)


def _crest_dips(before_m: np.ndarray, spine: Spine, width_px: float, *, noise: float, radius_m: float,
                n: int = 9) -> float:
    """Share of cross-sections of the removed object whose surface (before the pick) had two
    crests with a valley between them: one cylinder seen from the camera has one nearest line
    along its top; two logs side by side have two."""
    if not np.isfinite(width_px) or width_px < 6:
        return 0.0
    h, w = before_m.shape
    t = np.linspace(spine.t_min, spine.t_max, n + 2)[1:-1]
    # the central 80 % of the width: the edges may touch a higher neighbour
    s = np.linspace(-0.4 * width_px, 0.4 * width_px, max(9, int(width_px)))
    pts = spine.point[None, None, :] + t[:, None, None] * spine.direction + s[None, :, None] * spine.normal
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
        r = np.convolve(np.pad(r, k, mode="edge"), kernel, mode="valid")
        i = int(np.argmin(r))  # the nearest point: a crest
        # going outwards from the crest, the surface must only fall away (depth grow); a second
        # crest means it grows and then shrinks again by more than noise
        # between two touching logs the surface sinks by about a radius; on one log it never
        # rises again towards the camera by more than noise
        thr = max(4 * noise, 0.3 * radius_m, 0.01)
        left = r[:i + 1][::-1]
        right = r[i:]
        dip = max((np.maximum.accumulate(side) - side).max() if len(side) else 0.0 for side in (left, right))
        counted += 1
        dips += dip > thr
    return dips / counted if counted else 0.0


def _upsample(mask: np.ndarray, shape: tuple) -> np.ndarray:
    return cv2.resize(mask.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST) > 0


def _largest_pieces(crop: np.ndarray, n: int) -> np.ndarray:
    """Keep the ``n`` largest connected pieces of a 0/1 mask."""
    count, lab, st, _ = cv2.connectedComponentsWithStats(crop, connectivity=8)
    if count <= n + 1:
        return crop
    keep = 1 + np.argsort(-st[1:, cv2.CC_STAT_AREA])[:n]
    return np.isin(lab, keep).astype(np.uint8)


def _continues(labels: np.ndarray, main: int, other: int, before_m: np.ndarray) -> bool:
    """Is component ``other`` the same log as ``main``, seen past something lying across it?

    Together the two must form one straight band (both inside the corridor of their union's
    principal axis, about one log wide), and the gap between them must have been nearer to the
    camera than the log (an occluder lying across it), not farther (a separate removal).
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
        return False  # not separated along the axis: side by side, two objects
    ts = np.linspace(t0, t1, 12)[1:-1]
    gap = np.rint(c + ts[:, None] * d + mid * n).astype(int)
    h, w = before_m.shape
    gap = gap[(gap[:, 0] >= 0) & (gap[:, 0] < w) & (gap[:, 1] >= 0) & (gap[:, 1] < h)]
    if len(gap) == 0:
        return False
    z_gap = before_m[gap[:, 1], gap[:, 0]]
    z_gap = z_gap[z_gap > 0]
    z_log = np.median(before_m[ys, xs][before_m[ys, xs] > 0])
    return z_gap.size > 0 and float(np.median(z_gap)) < z_log - 0.02


def _view_ramp(change) -> float:
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
