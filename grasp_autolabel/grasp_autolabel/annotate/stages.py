"""The stages of one annotation, in order (:data:`STAGES`).

Each takes the :class:`~grasp_autolabel.annotate.step.Step`, measures into ``step.info`` and
returns a rejection :class:`~grasp_autolabel.annotate.reasons.Reason` or None; each is declared
with :func:`~grasp_autolabel.annotate.step.stage`: the Step fields it reads and writes and the
reasons it may return.
"""
from __future__ import annotations

import cv2
from grasp_autolabel.annotate.grasps import fit_spine, propose_grasps, Spine
from grasp_autolabel.annotate.reasons import Reason
from grasp_autolabel.annotate.segment import (add_colour_evidence, band_owner, colour_change,
                                              depth_change, estimate_shift, refine, scale_px)
from grasp_autolabel.annotate.shapes import (continues, crest_dips, depth_step_along, fill_holes,
                                             inscribed_radius, largest_pieces, line_share,
                                             occluded_side_share, principal_spine, upsample,
                                             view_ramp)
from grasp_autolabel.annotate.step import stage, Step
from grasp_autolabel.core.camera import depth_at
import numpy as np

__all__ = ['STAGES']

# Thresholds of the pipeline's own making (not a property of the cell, so not in AnnotateConfig).
MIN_VALID_SHARE = 0.2  # share of pixels with depth in both frames below which nothing is judged
SPINE_SWITCH_SHARE = 0.98  # a skeleton line explaining less of the mask than this is compared ...
SPINE_SWITCH_GAIN = 0.02  # ... with the principal axis, kept if that explains this much more
# cross-sections with two crests at or above this: two logs side by side
MAX_TWO_CRESTS_SHARE = 0.2
HYSTERESIS = 0.5  # the mask grows into pixels that changed by this fraction of the threshold
# A log narrower than this share of the depth step it left, with a nearer surface along one long
# side in at least this share of its cross-sections, is mostly hidden behind that surface.
HIDDEN_WIDTH_RATIO = 0.55
SLIVER_RADIUS_SHARE = 1.0  # a region narrower than the thinnest log is a sliver, not another log
HIDDEN_SIDE_SHARE = 0.5


@stage(reads=('cfg', 'half', 'before_rgb', 'after_rgb'), writes=('change', 'colour_model'),
       rejects=(Reason.NO_VALID_DEPTH,))
def detect_change(step: Step) -> Reason | None:
    """Find where the depth went farther or nearer beyond the noise-aware threshold.

    Rejects a pair with too few pixels valid in both frames.
    """
    bh, ah = step.half
    step.change = change = depth_change(bh, ah, min_change_m=step.cfg.min_change_m,
                                        noise_k=step.cfg.noise_k)
    if step.before_rgb is not None:
        step.colour_model = add_colour_evidence(change, step.before_rgb, step.after_rgb)
    step.info.update({'threshold_m': round(change.threshold_m, 5),
                      'noise_m': round(change.noise_m, 5)})
    valid_share = float(change.valid[::2, ::2].mean())
    step.info['valid_share'] = round(valid_share, 4)
    return Reason.NO_VALID_DEPTH if valid_share < MIN_VALID_SHARE else None


@stage(reads=('cfg', 'change', 'ds', 'half'),
       rejects=(Reason.CAMERA_MOVED, Reason.LARGE_CHANGE))
def check_view(step: Step) -> Reason | None:
    """Reject a moved camera (a global shift or a tilt of the still view) or change everywhere."""
    cfg, change, ds = step.cfg, step.change, step.ds
    bh, ah = step.half
    grown = cv2.dilate(change.increased, np.ones((5, 5), np.uint8))
    dx, dy, ratio = estimate_shift(bh, ah, ignore=grown, factor=2)
    dx, dy = dx * ds, dy * ds
    step.info['shift_px'] = [round(dx, 2), round(dy, 2)]
    step.info['shift_explains'] = round(1 - ratio, 3)
    changed_share = float((change.increased | change.decreased).mean())
    step.info['changed_share'] = round(changed_share, 4)
    ramp = view_ramp(change)
    step.info['view_ramp_m'] = round(ramp, 4)
    moved = np.hypot(dx, dy) > cfg.max_shift_px and ratio < 1 - cfg.min_shift_explains
    moved = moved or ramp > cfg.max_view_ramp_m
    if moved:
        return Reason.CAMERA_MOVED
    # much changed while the rest of the view stayed where it was: not the camera
    return Reason.LARGE_CHANGE if changed_share > cfg.max_changed_fraction else None


@stage(reads=('cfg', 'change', 'ds', 'intrinsics', 'half'),
       writes=('min_log_px', 'open_px', 'close_px', 'thin_px'))
def measure_scale(step: Step) -> None:
    """Size the smallest plausible log here, in detection pixels, and the morphology from it."""
    cfg, change, ds, intr = step.cfg, step.change, step.ds, step.intrinsics
    bh, _ = step.half
    hw = bh.shape[1]
    z_scene = float(np.median(bh[::2, ::2][change.valid[::2, ::2]]))
    step.min_log_px = cfg.min_diameter_m * cfg.min_visible_length_m * (intr.fx / ds) * (
        intr.fy / ds) / (z_scene * z_scene)
    open_px, step.close_px = scale_px(cfg.open_px, hw), scale_px(cfg.close_px, hw)
    # Anything that matters (a log, an arm) is at least a thin log's diameter across; slivers
    # along the edges of logs nudged by the pick are a few millimetres. An opening of about
    # half the thinnest log removes the slivers and keeps every log.
    step.thin_px = cfg.min_diameter_m * intr.fx / z_scene  # full resolution
    step.open_px = max(open_px, int(0.4 * step.thin_px / ds) | 1)
    return None


@stage(reads=('cfg', 'change', 'ds', 'half', 'open_px', 'min_log_px'),
       rejects=(Reason.NEW_OBJECT_IN_VIEW,))
def check_appeared(step: Step) -> Reason | None:
    """Reject a pick where something appeared (an arm still in view): regions that came nearer."""
    bh, _ = step.half
    dec = refine(step.change.decreased, np.zeros(bh.shape, bool), open_px=step.open_px,
                 close_px=step.open_px)
    if dec.any():
        _, _, dec_stats, _ = cv2.connectedComponentsWithStats(dec, connectivity=8)
        dec_areas = dec_stats[1:, cv2.CC_STAT_AREA]
    else:
        dec_areas = np.zeros(0, dtype=int)
    step.info['largest_new_px'] = int(dec_areas.max()) * step.ds * step.ds if len(dec_areas) else 0
    if len(dec_areas) and dec_areas.max() >= step.cfg.new_object_fraction * step.min_log_px:
        return Reason.NEW_OBJECT_IN_VIEW
    return None


@stage(reads=('cfg', 'change', 'ds', 'half', 'shape', 'open_px', 'close_px', 'min_log_px',
              'thin_px'),
       writes=('mask', 'labels', 'stats', 'pieces'),
       rejects=(Reason.NOTHING_REMOVED, Reason.MULTIPLE_OBJECTS_REMOVED))
def find_removed(step: Step) -> Reason | None:
    """Find what was removed (regions that went farther): one object, perhaps in pieces, not two.

    A log lying across the removed one splits its mask; pieces on one line are one log.
    """
    cfg, ds, change = step.cfg, step.ds, step.change
    inc = refine(change.increased, ~change.valid, open_px=step.open_px, close_px=step.close_px)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(inc, connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    if not len(areas) or areas.max() < step.min_log_px:
        step.info['largest_removed_px'] = int(areas.max()) * ds * ds if len(areas) else 0
        return Reason.NOTHING_REMOVED
    order = np.argsort(-areas)
    main = int(order[0]) + 1
    step.info['removed_px'] = int(areas[order[0]]) * ds * ds
    # another object is as wide as a log (a crescent along a nudged neighbour's edge is not)
    min_radius = SLIVER_RADIUS_SHARE * 0.5 * step.thin_px / ds
    big_others = [int(i) + 1 for i in order[1:]
                  if areas[i] >= cfg.second_object_fraction * step.min_log_px
                  and inscribed_radius(labels, stats, int(i) + 1) >= min_radius]
    # A log lying across the removed one (without resting on it), or one under it that the
    # removed log lay on, splits its mask in two; pieces on the main piece's line, with the gap
    # between them nearer to the camera or farther by less than the threshold, are one log.
    bh, ah = step.half
    pieces = [main] + [c for c in big_others
                       if continues(labels, main, c, bh, ah, change.threshold_m)]
    others = [c for c in big_others if c not in pieces]
    if others:
        step.info['second_removed_px'] = int(stats[others[0], cv2.CC_STAT_AREA]) * ds * ds
        step.mask = upsample(labels == main, step.shape)
        return Reason.MULTIPLE_OBJECTS_REMOVED
    step.info['pieces'] = len(pieces)
    step.labels, step.stats, step.pieces = labels, stats, pieces
    return None


@stage(reads=('cfg', 'change', 'ds', 'shape', 'labels', 'stats', 'pieces', 'before_m',
              'after_m', 'thin_px', 'colour_model', 'before_rgb', 'after_rgb'),
       writes=('mask', 'crop', 'core', 'box'),
       rejects=(Reason.NOTHING_REMOVED, Reason.MASK_TOUCHES_BORDER))
def full_resolution_mask(step: Step) -> Reason | None:
    """Make the mask again at full resolution in the pieces' bounding box; reject it at the border.

    A conservative core for the shape checks, grown to the log's true edges for the label.
    """
    cfg, ds, stats, pieces, labels = step.cfg, step.ds, step.stats, step.pieces, step.labels
    h, w = step.shape
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
    region = cv2.resize(small, ((hx1 - hx0) * ds, (hy1 - hy0) * ds),
                        interpolation=cv2.INTER_NEAREST)
    region = region[cy0 - hy0 * ds:cy1 - hy0 * ds, cx0 - hx0 * ds:cx1 - hx0 * ds]
    b_c, a_c = step.before_m[cy0:cy1, cx0:cx1], step.after_m[cy0:cy1, cx0:cx1]
    valid_c = (b_c > 0) & (a_c > 0) & (b_c < 1e4) & (a_c < 1e4)
    diff_c = np.where(valid_c, a_c - b_c, np.float32(0))
    thr = step.change.threshold_m
    unknown_c = _unknown_in(step, ~valid_c, diff_c > HYSTERESIS * thr, (cx0, cy0, cx1, cy1))
    strong = ((diff_c > thr) | unknown_c).view(np.uint8) & region
    k_close = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (scale_px(cfg.close_px, w),) * 2)
    crop = cv2.morphologyEx(strong, cv2.MORPH_CLOSE, k_close) & region
    # Thin slivers where nudged neighbours moved a few millimetres cling to the mask; an
    # opening scaled to the log's own thickness cuts them off without eroding the log.
    radius_px = float(cv2.distanceTransform(crop, cv2.DIST_L2, 3).max())
    k = min(max(3, int(0.6 * radius_px) | 1), scale_px(9, w))
    crop = cv2.morphologyEx(crop, cv2.MORPH_OPEN,
                            cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    crop = largest_pieces(crop, len(pieces))
    # the conservative mask, for the gate's shape checks: a log's outline has no holes (inside
    # it, unreadable or unchanged patches are the sensor's, and branch the skeleton)
    core = fill_holes(crop)
    if not core.any():
        return Reason.NOTHING_REMOVED
    # Hysteresis: near its silhouette a log is only half as thick as on its crest, so its edges
    # change by about half as much. Grow the mask by a few pixels into pixels that changed by
    # at least half the threshold (or have no depth), so it reaches the log's true edges.
    weak = (diff_c > HYSTERESIS * thr) | unknown_c
    g = max(1, int(0.25 * step.thin_px))
    grown = cv2.dilate(crop, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * g + 1, 2 * g + 1)))
    crop = crop | (grown & weak.view(np.uint8))
    crop = cv2.GaussianBlur(crop.astype(np.float32), (0, 0), cfg.gaussian_sigma) > 0.5
    mask = np.zeros((h, w), dtype=bool)
    mask[cy0:cy1, cx0:cx1] = crop
    step.mask, step.crop, step.core, step.box = mask, crop, core, (cx0, cy0, cx1, cy1)
    b = cfg.border_px
    core_full = np.zeros((h, w), dtype=bool)
    core_full[cy0:cy1, cx0:cx1] = core
    if (core_full[:b + 1].any() or core_full[-b - 1:].any()
            or core_full[:, :b + 1].any() or core_full[:, -b - 1:].any()):
        return Reason.MASK_TOUCHES_BORDER
    return None


def _unknown_in(step: Step, unknown, changed, box) -> np.ndarray:
    """Return the pixels without depth in a frame that belong to the removed object.

    By the colour images where given, else by the nearest pixel with depth
    (:func:`segment.band_owner`); never a whole edge band.
    """
    if step.colour_model is None:
        return band_owner(unknown, changed)
    cx0, cy0, cx1, cy1 = box
    colour, _ = colour_change(step.before_rgb[cy0:cy1, cx0:cx1],
                              step.after_rgb[cy0:cy1, cx0:cx1], model=step.colour_model)
    return band_owner(unknown, changed, colour)


@stage(reads=('cfg', 'intrinsics', 'box', 'before_m', 'crop'), writes=('z_obj', 'm_per_px'),
       rejects=(Reason.MASK_TOO_SMALL, Reason.MASK_TOO_LARGE))
def check_size(step: Step) -> Reason | None:
    """Reject a mask whose area at the object's depth (its top surface) no log could have."""
    cfg, intr = step.cfg, step.intrinsics
    cx0, cy0, cx1, cy1 = step.box
    before_c = step.before_m[cy0:cy1, cx0:cx1]
    step.z_obj = float(np.median(before_c[step.crop & (before_c > 0)]))
    step.info['depth_m'] = round(step.z_obj, 4)
    step.m_per_px = step.z_obj / np.sqrt(intr.fx * intr.fy)
    area_m2 = step.crop.sum() * step.m_per_px * step.m_per_px
    step.info['area_m2'] = round(float(area_m2), 5)
    if area_m2 < cfg.min_diameter_m * cfg.min_visible_length_m:
        return Reason.MASK_TOO_SMALL
    if area_m2 > cfg.max_diameter_m * cfg.max_length_m:
        return Reason.MASK_TOO_LARGE
    return None


@stage(reads=('cfg', 'core', 'box'), writes=('spine', 'spine_full', 'ends'),
       rejects=(Reason.MASK_TOO_SMALL, Reason.SKELETON_NOT_LINE_LIKE))
def fit_straight_spine(step: Step) -> Reason | None:
    """Fit one straight spine to the mask's skeleton; reject an L, T or X (not one log)."""
    spine = fit_spine(step.core)
    if spine is None:
        return Reason.MASK_TOO_SMALL
    share = line_share(step.core, spine)
    # The skeleton of a mask split by an occluder, or ragged at its ends, can tilt the fitted
    # line; the mask's own principal axis is then the better spine (for one straight band the
    # two agree). Keep whichever explains more of the mask.
    if share < SPINE_SWITCH_SHARE:
        alt = principal_spine(step.core, spine)
        alt_share = line_share(step.core, alt)
        if alt_share > share + SPINE_SWITCH_GAIN:
            spine, share = alt, alt_share
    step.info['line_share'] = round(share, 3)
    cx0, cy0 = step.box[:2]
    step.spine = spine
    step.spine_full = Spine(spine.point + [cx0, cy0], spine.direction, spine.t_min, spine.t_max,
                            spine.inlier_fraction, spine.skeleton + [cx0, cy0], spine.radius_px)
    step.ends = step.spine_full.endpoints
    return Reason.SKELETON_NOT_LINE_LIKE if share < step.cfg.min_line_share else None


@stage(reads=('cfg', 'intrinsics', 'change', 'before_m', 'after_m', 'mask', 'box', 'crop',
              'z_obj', 'm_per_px', 'spine', 'spine_full'),
       writes=('grasps', 'scores'),
       rejects=(Reason.MASK_TOO_SMALL, Reason.MASK_TOO_LARGE, Reason.LOG_PARTLY_HIDDEN,
                Reason.MULTIPLE_OBJECTS_REMOVED, Reason.NO_GRASP_FOUND))
def place_grasps(step: Step) -> Reason | None:
    """Place grasps along the spine after the last checks of the log's width and length in metres.

    Rejects a log mostly hidden behind a nearer one, and two logs side by side (a hole wider
    than it is deep, or two crests across it).
    """
    cfg, intr, spine, before_m = step.cfg, step.intrinsics, step.spine, step.before_m
    cx0, cy0 = step.box[:2]
    ys, xs = np.nonzero(step.crop)
    centroid = np.array([xs.mean(), ys.mean()])

    def jaw_px_at(x, y):
        z = depth_at(before_m, x + cx0, y + cy0, radius=3)
        if not np.isfinite(z):
            z = step.z_obj
        return cfg.jaw_width_m * intr.fx / z

    grasps, scores, width_px = propose_grasps(step.crop, spine, centroid=centroid,
                                              jaw_px_at=jaw_px_at,
                                              n=cfg.n_grasps, spread=cfg.grasp_spread,
                                              opening_margin=cfg.opening_margin)
    width_m = width_px * step.m_per_px
    length_m = spine.length * step.m_per_px
    step.info['width_m'] = round(float(width_m), 4) if np.isfinite(width_m) else None
    step.info['length_m'] = round(float(length_m), 4)
    if not np.isfinite(width_m):
        return Reason.MASK_TOO_SMALL
    depth_step = depth_step_along(step.before_m, step.after_m, step.spine_full)
    step.info['depth_step_m'] = round(depth_step, 4) if np.isfinite(depth_step) else None
    # a sliver of a hidden log is also too thin for one: the truer reason first
    if _partly_hidden(step, width_m, depth_step):
        return Reason.LOG_PARTLY_HIDDEN
    if width_m < cfg.min_diameter_m or length_m < cfg.min_visible_length_m:
        return Reason.MASK_TOO_SMALL
    if width_m > cfg.max_diameter_m or length_m > cfg.max_length_m:
        return Reason.MASK_TOO_LARGE
    if np.isfinite(depth_step) and width_m > cfg.max_width_ratio * depth_step:
        return Reason.MULTIPLE_OBJECTS_REMOVED
    dips = crest_dips(before_m, step.spine_full, width_px, noise=step.change.noise_m,
                      radius_m=0.5 * width_m)
    step.info['two_crests_share'] = round(dips, 3)
    if dips >= MAX_TWO_CRESTS_SHARE:
        return Reason.MULTIPLE_OBJECTS_REMOVED
    if len(grasps) == 0:
        return Reason.NO_GRASP_FOUND
    step.grasps, step.scores = grasps, scores
    return None


def _partly_hidden(step: Step, width_m: float, depth_step: float) -> bool:
    """Return whether the log was mostly hidden behind a nearer one.

    What is visible is much narrower than the hole it left is deep, and a nearer surface borders
    it along one long side: the grasps would sit on a sliver, off the log's real axis.
    """
    if not np.isfinite(depth_step) or width_m >= HIDDEN_WIDTH_RATIO * depth_step:
        return False
    sp = step.spine_full
    share = occluded_side_share(step.mask, step.before_m, sp.point, sp.direction, sp.t_min,
                                sp.t_max, step.change.threshold_m)
    step.info['occluded_side_share'] = round(share, 3)
    return share >= HIDDEN_SIDE_SHARE


# The paper's three stages (segment, skeleton, grasps) with the gate's checks between them, in
# the order Reason lists the reasons.
STAGES = (detect_change, check_view, measure_scale, check_appeared, find_removed,
          full_resolution_mask,
          check_size, fit_straight_spine, place_grasps)
