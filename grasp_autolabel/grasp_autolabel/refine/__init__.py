"""Candidates checked and refined against the depth image.

The physics every log pile obeys, whatever the camera or renderer (numpy only).

A detector proposes a grasp ``(x, y, theta, w, h)``; the depth then says

* where the log under it really is: the cross-section through the centre along the closing
  direction is walked outwards from the centre until the surface ends (a depth jump, a valley
  between two touching logs, or missing depth); the grasp is moved to the middle of that run
  and its opening set to ``opening_margin`` times its width, as the annotator sets it;
* which way the log runs: the centres of two more cross-sections, one width along the spine on
  either side, give the local axis; the closing direction is set across it;
* whether anything lies on the log: the spine is followed both ways (re-centred every two
  widths) until the log ends (the surface falls away, or its width changes); a surface that
  rises above the log's by more than ``occluder_m`` on the way is another log lying on it, and
  the candidate is dropped (``log_not_free``);
* that it is a log at all: a cross-section narrower than 3 px or without an edge on both sides
  (a floor), a surface beside which something higher touches it, or a log that is not longer
  than it is wide, drops the candidate.

Every depth is in metres, 0 = invalid; sizes are in image pixels.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = ['RefineSettings', 'refine_grasps', 'cross_section', 'REFINE_REASONS']


class RefineSettings:
    """Thresholds of the depth check (metres unless said)."""

    def __init__(self, *, opening_margin: float = 1.3, jump_m: float = 0.02,
                 valley_m: float = 0.012,
                 occluder_m: float = 0.03, max_gap_px: int = 3):
        self.opening_margin = opening_margin
        self.jump_m = jump_m  # a depth step between neighbouring samples this large ends a surface
        # the surface falling back this far after rising: the groove to a neighbour
        self.valley_m = valley_m
        # a surface this much above the log's, on its spine: something lies on it
        self.occluder_m = occluder_m
        self.max_gap_px = max_gap_px  # invalid samples bridged inside a surface


def _sample(depth: np.ndarray, pts: np.ndarray) -> np.ndarray:
    h, w = depth.shape
    xi = np.round(pts[:, 0]).astype(np.int64)
    yi = np.round(pts[:, 1]).astype(np.int64)
    ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    out = np.zeros(len(pts), np.float32)
    out[ok] = depth[yi[ok], xi[ok]]
    return out


def _median(a: np.ndarray) -> float:
    """``np.median`` of a short 1-D array without its overhead."""
    n = len(a)
    lo, hi = (n - 1) // 2, n // 2
    part = np.partition(a, (lo, hi))
    return float((part[lo] + part[hi]) / 2)


def _smooth(z: np.ndarray, k: int = 2) -> np.ndarray:
    """Return the median over ``k`` samples on either side.

    Invalid samples are filled from their valid predecessor first (noise spikes never look like
    edges; an edge stays where it is); invalid samples stay 0.
    """
    n = len(z)
    valid = z > 0
    if n < 3 or not valid.any():
        return z
    idx = np.where(valid, np.arange(n), 0)
    np.maximum.accumulate(idx, out=idx)
    filled = z[idx]
    first = int(np.argmax(valid))
    filled[:first] = z[first]
    if k == 2:  # OpenCV's 5x5 median of one row, edges replicated, is this 1-D median (30x faster)
        m = cv2.medianBlur(np.ascontiguousarray(filled, dtype=np.float32)[None], 5)[0]
    else:
        windows = np.lib.stride_tricks.sliding_window_view(np.pad(filled, k, mode='edge'),
                                                           2 * k + 1)
        m = np.partition(windows, k, axis=1)[:, k]
    return np.where(valid, m, 0.0).astype(np.float32)


def _noise(z: np.ndarray) -> float:
    """Robust sigma of the step between neighbouring samples of a profile (its edges are few)."""
    v = z[z > 0]
    if len(v) < 6:
        return 0.0
    return 1.4826 * _median(np.abs(np.diff(v)))


def _walk(z: np.ndarray, start: int, step: int, jump: float, valley: float, max_gap: int) -> int:
    """Index of the last sample of the surface that holds ``z[start]``, walking by ``step``."""
    z_start = float(z[start])
    last_i, last_z, top, gap = start, z_start, z_start, 0
    i = start + step
    while 0 <= i < len(z):
        zi = float(z[i])
        if zi <= 0:
            gap += 1
            if gap > max_gap:
                break
            i += step
            continue
        gap = 0
        # a valley: down the log's side, then up a neighbour's (a surface that only rises is a
        # slope, not a valley)
        if abs(zi - last_z) > jump or (top > z_start + valley and zi < top - valley):
            break
        top = max(top, zi)
        last_i, last_z = i, zi
        i += step
    return last_i


def _higher_beyond(z: np.ndarray, edge: int, step: int, top: float, margin: float,
                   look: int) -> bool:
    """Tell whether something higher touches the log past ``edge``.

    True when the first ``look`` valid samples past ``edge`` hold a surface more than ``margin``
    above ``top`` (closer to the camera).
    """
    seen, i = 0, edge + step
    while 0 <= i < len(z) and seen < look:
        if z[i] > 0:
            seen += 1
            if z[i] < top - margin:
                return True
        i += step
    return False


def cross_section(depth: np.ndarray, centre, direction, half_len: float, s: RefineSettings):
    """Return the surface run through ``centre`` along unit ``direction``.

    ``(new centre (2,), width px, depth at the centre m, something higher touches it?)``, or None
    where there is no depth at the centre.
    """
    n = int(max(4, math.ceil(half_len)))
    t = np.arange(-n, n + 1, dtype=np.float64)
    pts = np.asarray(centre,
                     dtype=np.float64) + t[:, None] * np.asarray(direction, dtype=np.float64)
    z = _smooth(_sample(depth, pts))
    core = z[n - 2:n + 3]
    core = core[core > 0]
    if not len(core):
        return None
    z = z.copy()
    z[n] = _median(core)
    noise = _noise(z)
    jump, valley = max(s.jump_m, 4 * noise), max(s.valley_m, 3 * noise)
    lo, hi = _walk(z, n, -1, jump, valley,
                   s.max_gap_px), _walk(z, n, 1, jump, valley, s.max_gap_px)
    if lo == 0 or hi == len(z) - 1:  # no edge on one side: a floor, not a log
        return pts[n], float('inf'), float(z[n]), False
    run = z[lo:hi + 1]
    top = float(run[run > 0].min())
    look = max(3, int(0.25 * (hi - lo + 1)))
    occluder = max(s.occluder_m, 5 * noise)
    higher = _higher_beyond(z, lo, -1, top, occluder,
                            look) or _higher_beyond(z, hi, 1, top, occluder, look)
    mid = (t[lo] + t[hi]) / 2
    return (pts[n] + mid * np.asarray(direction, dtype=np.float64), float(t[hi] - t[lo] + 1),
            float(z[n]),
            higher)


def _higher_ahead(depth, start, axis, z_log: float, width: float, s: RefineSettings) -> bool:
    """Tell whether the log goes on under something lying across it past ``start``.

    True when, past the point ``start`` where a walk along the spine stopped, a surface more than
    ``occluder_m`` above the log's (``z_log``) comes before the depth falls away from it (within
    half a width, at least 4 px).
    """
    look = int(max(4.0, 0.5 * width))
    t = np.arange(-2, look + 1, dtype=np.float64)  # two samples behind: the median needs them
    z = _smooth(_sample(depth,
                        np.asarray(start, float) + t[:, None] * np.asarray(axis, float)))[3:]
    noise = _noise(z)
    occluder, jump = max(s.occluder_m, 5 * noise), max(s.jump_m, 4 * noise)
    for zk in z:
        if zk <= 0:
            continue
        if zk < z_log - occluder:
            return True
        if zk > z_log + jump:
            return False
    return False


def _follow_spine(depth, centre, axis, width, z0, s: RefineSettings, max_len: float):
    """Walk along the spine from ``centre``; returns ``(length walked px, occluded?)``.

    Neighbouring samples are compared (a tilted log changes depth gradually, an edge does not):
    a rise of more than ``occluder_m`` is something lying on the log, a fall of more than
    ``jump_m`` its end. Every two widths the walk is re-centred on a cross-section, which also
    ends it where the width changes (another surface). Wherever the walk stops without a fall,
    a higher surface just past that point is something lying across the log (see
    :func:`_higher_ahead`).
    """
    walked, how, stop, v, last = _walk_spine(depth, centre, axis, width, z0, s, max_len)
    if how == 'stopped' and _higher_ahead(depth, stop, v, last, width, s):
        how = 'occluded'
    return walked, how == 'occluded'


def _walk_spine(depth, centre, axis, width, z0, s: RefineSettings, max_len: float):
    """:func:`_follow_spine`'s walk.

    ``(walked px, how it ended, where (2,), direction there (2,), depth of the last sample on the
    log)``; it ends "occluded" (a rise), "fell" (the surface falls away: the log's end) or
    "stopped" (missing depth, another width or direction, or ``max_len``).
    """
    c, v, walked = np.asarray(centre, float), np.asarray(axis, float), 0.0
    across = np.array([-v[1], v[0]])
    chunk = max(6.0, 0.5 * width)
    last, gap = z0, 0
    while walked < max_len:
        t = np.arange(1, int(chunk) + 1, dtype=np.float64)
        z = _smooth(_sample(depth, c + t[:, None] * v))
        noise = _noise(z)
        occluder, jump = max(s.occluder_m, 5 * noise), max(s.jump_m, 4 * noise)
        for k, zk in enumerate(z):
            if zk <= 0:
                gap += 1
                if gap > s.max_gap_px:
                    return walked + t[k], 'stopped', c + t[k] * v, v, last
                continue
            gap = 0
            if zk < last - occluder:
                return walked + t[k], 'occluded', c + t[k] * v, v, last
            if zk > last + jump:
                return walked + t[k] - 1, 'fell', c + t[k] * v, v, last
            last = float(zk)
        walked += chunk
        end = c + chunk * v
        nxt = cross_section(depth, end, across, width, s)
        if nxt is None:
            return walked, 'stopped', end, v, last
        centre2, width2, z2, higher = nxt
        if not 0.5 * width <= width2 <= 2.0 * width:  # (inf: the floor) the log ended
            return walked, 'stopped', end, v, last
        if higher:
            return walked, 'occluded', end, v, last
        step = centre2 - c
        if float(step @ v) <= 0:
            return walked, 'stopped', end, v, last
        turn = step / np.hypot(*step)
        if float(turn @ v) < math.cos(math.radians(20)):  # a log is straight: another surface
            return walked, 'stopped', end, v, last
        v = turn
        across = np.array([-v[1], v[0]])
        c, last = centre2, z2
    return walked, 'stopped', c, v, last


def _local_axis(depth, centre, width: float, z0: float, fx: float):
    """Return the direction of the surface around ``centre``.

    The principal axis of the pixels within 1.5 widths that are connected to the centre and lie
    within the log's depth band (from a quarter diameter above its top to 0.6 diameters below).
    None where that patch is not clearly elongated (a log is longer than it is wide).
    """
    import cv2

    r = int(1.5 * width) + 2
    x0, y0 = int(round(centre[0])), int(round(centre[1]))
    h, w = depth.shape
    xa, xb, ya, yb = max(0, x0 - r), min(w, x0 + r + 1), max(0, y0 - r), min(h, y0 + r + 1)
    if not (xa <= x0 < xb and ya <= y0 < yb):
        return None
    patch = depth[ya:yb, xa:xb]
    diam = width * z0 / fx
    band = ((patch > 0) & (patch >= z0 - 0.25 * diam) & (patch <= z0 + 0.6 * diam)).astype(
        np.uint8)
    yy, xx = np.mgrid[ya:yb, xa:xb]
    band &= ((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 <= r * r).astype(np.uint8)
    _, labels = cv2.connectedComponents(band, connectivity=8)
    lab = labels[y0 - ya, x0 - xa]
    if lab == 0:
        return None
    pts = np.column_stack([xx[labels == lab], yy[labels == lab]]).astype(np.float64)
    if len(pts) < 10:
        return None
    evals, evecs = np.linalg.eigh(np.cov((pts - pts.mean(0)).T))
    if evals[1] < 1.7 * max(evals[0], 1e-9):  # not elongated enough to say
        return None
    return evecs[:, 1]


REFINE_REASONS = ('no_depth', 'not_a_log', 'higher_beside', 'occluded', 'short')


def refine_grasps(grasps, depth_m, *, fx: float | None, settings: RefineSettings | None = None,
                  reasons: list | None = None, logs: list | None = None):
    """Grasps checked against the depth; returns ``(refined grasps (K, 5), kept indices (K,))``.

    ``h`` is left as it is (the caller sets the jaw size). Candidates without depth at their
    centre are dropped (nothing to check them by, and no 3-D pose for them). ``reasons``, when
    given, gets one entry per grasp: None (kept) or why it was dropped (:data:`REFINE_REASONS`).
    ``logs``: the logs already followed in this depth image (``(end, end, half width,
    occluded?)``, appended to); a grasp on one of them takes its verdict instead of following
    the same log again (whether something lies on a log is the whole log's property).
    """
    s = settings or RefineSettings()
    g = np.asarray(grasps, dtype=np.float64).reshape(-1, 5)
    depth = np.asarray(depth_m, dtype=np.float32)
    logs = [] if logs is None else logs
    out, kept = [], []
    for i, grasp in enumerate(g):
        refined, why = _refine_one(grasp, depth, fx or 600.0, s, logs)
        if reasons is not None:
            reasons.append(why)
        if refined is not None:
            out.append(refined)
            kept.append(i)
    return (np.array(out).reshape(-1, 5), np.array(kept, dtype=np.int64))


def _known_log(logs: list, c, v) -> tuple | None:
    """Return the log of ``logs`` whose spine passes through ``c`` along ``v``, if any."""
    for a, b, half, occluded in logs:
        ab = b - a
        length = max(float(np.hypot(*ab)), 1e-9)
        t = float((c - a) @ ab) / length  # along the spine, px
        inside = 0.0 <= t <= length if occluded else 2 * half <= t <= length - 2 * half
        if inside and np.hypot(*(a + t / length * ab - c)) <= half and \
                abs(float(v @ ab)) >= 0.94 * length:
            return a, b, half, occluded
    return None


def _refine_one(grasp, depth, fx: float, s: RefineSettings, logs: list):
    """``(refined grasp, None)`` or ``(None, why it was dropped)``."""
    x, y, th, w, h = grasp
    u = np.array([math.cos(th), math.sin(th)])
    sec = cross_section(depth, (x, y), u, max(2.0 * w, 16.0), s)
    if sec is None:  # no depth under it: nothing to check it by, and no 3-D pose for it
        return None, 'no_depth'
    c, width, z0, higher = sec
    if not 3 <= width < float('inf') or higher:
        return None, 'higher_beside' if higher else 'not_a_log'
    v = np.array([-u[1], u[0]])
    axis = _local_axis(depth, c, width, z0, fx)
    if axis is not None:
        v = axis if float(axis @ v) >= 0 else -axis
        u = np.array([v[1], -v[0]])
        sec = cross_section(depth, c, u, max(2.0 * width, 16.0), s)
        if sec is None or not 3 <= sec[1] < float('inf') or sec[3]:
            return None, 'higher_beside' if sec is not None and sec[3] else 'not_a_log'
        c, width, z0, _ = sec
    known = _known_log(logs, c, v)
    if known is not None and known[3]:
        return None, 'occluded'
    if known is None:
        max_len = 2.0 * fx / max(z0, 0.1)  # no log is longer than 2 m
        la, occluded = _follow_spine(depth, c, v, width, z0, s, max_len)
        lb = 0.0
        if not occluded:
            lb, occluded = _follow_spine(depth, c, -v, width, z0, s, max_len)
        if la + lb >= 1.5 * width or occluded:  # (a short one is not known as a log)
            logs.append((c + la * v, c - lb * v, 0.5 * width, occluded))
        if occluded:
            return None, 'occluded'
        if la + lb < 1.5 * width:
            return None, 'short'
    theta = math.atan2(u[1], u[0])
    theta = (theta + math.pi / 2) % math.pi - math.pi / 2
    return np.array([c[0], c[1], theta, s.opening_margin * width, h]), None
