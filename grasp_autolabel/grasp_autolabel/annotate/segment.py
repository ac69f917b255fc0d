"""Stage 1 and 2: what changed between two aligned depth frames, and the removed object's mask.

The paper normalises both depth images to 0..255 and takes I* = |I1 - I2|. Here the
difference is taken in metres, signed, only where both frames have a valid (non-zero) depth:

* a removed object makes the scene *farther* (depth increases) where it was;
* something that appears (an arm) makes it *nearer* (depth decreases);
* the threshold is metric (a log leaves centimetres) and noise-aware: at least ``noise_k``
  times the pair's own noise level, estimated with the median absolute deviation of the
  difference where the scene did not change (``depth.unchanged_noise_sigma``: however much of
  the view changed, only the still part measures the sensor).

A pixel read in one frame only is evidence when every valid neighbour in the other frame agrees
(``_one_sided``: farther after than the farthest depth around it before, or the reverse), as on
a sensor that blanks dark or oblique surfaces; the rest of the invalid pixels are unknown, not
"no change": the closing of stage 2 fills them where they lie inside the changed region.

Where the aligned colour images are given, a pixel without depth whose colour changed
(``colour_change``) is evidence too: a surface left. At the full-resolution mask an invalid band
at an edge is split by evidence, never taken whole: its pixels whose colour changed, or whose
nearest pixel with depth changed (``nearest_side``), belong to the removed object.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
from grasp_autolabel.core.depth import noise_sigma, unchanged_noise_sigma
import numpy as np

__all__ = ['Change', 'depth_change', 'colour_change', 'add_colour_evidence', 'nearest_side',
           'band_owner', 'refine', 'estimate_shift', 'scale_px', 'noise_sigma']

COLOUR_K = 5.0  # a colour change counts at this many sigmas of the pair's colour noise ...
COLOUR_FLOOR = 30.0  # ... and at least this many 8-bit levels (in the largest channel)
COLOUR_DEPTH_K = 2.0  # where the colour changed, a depth increase of this many noise sigmas counts
# Colour decides a pixel without depth where this share of the removed object's pixels with depth
# in the window around it changed colour too (the object differs from what lay behind it).
COLOUR_WINDOW_PX = 15
COLOUR_TELLS_SHARE = 0.8


@dataclass
class Change:
    """The signed depth change between two frames."""

    diff: np.ndarray  # (H, W) float32 metres, after - before; 0 where unknown
    valid: np.ndarray  # (H, W) bool: both frames valid
    threshold_m: float  # the change threshold used
    noise_m: float  # the estimated noise level (1 sigma of the difference)
    increased: np.ndarray  # (H, W) uint8 0/1: farther by more than the threshold
    decreased: np.ndarray  # (H, W) uint8 0/1: nearer by more than the threshold


def _check_depth(name: str, d) -> np.ndarray:
    a = np.asarray(d)
    if a.ndim != 2:
        raise ValueError(f'{name}: expected a 2-D depth image, got shape {a.shape}')
    if a.dtype.kind not in 'fu':
        raise ValueError(
            f'{name}: expected depth in metres as float (or uint16 units), got dtype {a.dtype}')
    return a.astype(np.float32, copy=False)


def depth_change(before_m, after_m, *, min_change_m: float = 0.02, noise_k: float = 5.0) -> Change:
    """Signed, noise-aware depth change between two aligned depth frames.

    Parameters
    ----------
    before_m, after_m : ndarray, shape (H, W), float
        Depth in metres, 0 (or NaN) where invalid.
    min_change_m : float
        Smallest change that counts, metres.
    noise_k : float
        The threshold is at least this many noise standard deviations.

    Returns
    -------
    Change

    Examples
    --------
    >>> before = np.full((40, 60), 2.0, np.float32); after = before.copy()
    >>> before[10:20, 10:50] = 1.85   # a log 15 cm thick was there
    >>> c = depth_change(before, after)
    >>> int(c.increased.sum()), int(c.decreased.sum())
    (400, 0)
    """
    b = np.ascontiguousarray(_check_depth('before_m', before_m))
    a = np.ascontiguousarray(_check_depth('after_m', after_m))
    if b.shape != a.shape:
        raise ValueError(f'before_m and after_m: shapes differ, {b.shape} vs {a.shape}')
    # NaN compares false, so NaN and 0 are both invalid; so is inf
    valid_b, valid_a = (b > 0) & (b < 1e4), (a > 0) & (a < 1e4)
    valid = valid_b & valid_a
    diff = cv2.subtract(a, b)
    diff[~valid] = 0
    # robust noise level from a subsample, measured where the scene did not change
    sub = diff[::4, ::4][valid[::4, ::4]]
    noise = unchanged_noise_sigma(sub, min_change_m) if sub.size >= 100 else 0.0
    thr = max(min_change_m, noise_k * noise)
    increased = (diff > thr).view(np.uint8)
    decreased = (diff < -thr).view(np.uint8)
    _one_sided(b, a, valid_b, valid_a, thr, increased)
    return Change(diff, valid, thr, noise, increased, decreased)


def _one_sided(b, a, vb, va, thr, increased) -> None:
    """Depth read in one frame only is evidence too: the other frame's neighbours stand in.

    A pixel invalid before (a dark or oblique surface, an edge band) and valid after counts as
    increased when the after depth is farther, by more than the threshold, than *every* valid
    before-depth around it (the farthest of them); a pixel valid before and invalid after, when
    every valid after-depth around it (the nearest of them) is that much farther. So unreadable
    patches on a removed log do not split it, while a band at its outline, whose neighbours
    include the ground, stays out.
    """
    kernel = np.ones((7, 7), np.uint8)
    only_a = va & ~vb
    if only_a.any():
        farthest_before = cv2.dilate(np.where(vb, b, 0).astype(np.float32), kernel)
        increased |= (only_a & (farthest_before > 0)
                      & (a - farthest_before > thr)).view(np.uint8)
    only_b = vb & ~va
    if only_b.any():
        nearest_after = cv2.erode(np.where(va, a, np.inf).astype(np.float32), kernel)
        increased |= (only_b & np.isfinite(nearest_after)
                      & (nearest_after - b > thr)).view(np.uint8)


def colour_change(before_rgb, after_rgb, *, still: np.ndarray | None = None, blur: float = 1.0,
                  model: tuple | None = None) -> tuple[np.ndarray, tuple]:
    """Where the aligned colour image changed beyond its own noise.

    The largest per-channel difference after a slight blur (``blur`` sigma, pixels: sensor
    noise averages out, a surface that left does not), with the after frame's per-channel gain
    matched to the before frame's on the ``still`` pixels (where the depth did not change; auto
    exposure). The threshold is ``COLOUR_K`` times the colour noise there, and at least
    ``COLOUR_FLOOR`` levels.

    Returns
    -------
    changed : ndarray (H, W) bool
    model : tuple
        ``(gain, threshold)``; pass it back to judge a crop of the same pair by the whole
        pair's measure.
    """
    b = np.ascontiguousarray(before_rgb)
    a = np.ascontiguousarray(after_rgb)
    if b.shape != a.shape or b.ndim != 3 or b.shape[2] != 3 or b.dtype != np.uint8:
        raise ValueError(f'colour images: expected two (H, W, 3) uint8 images of one size, got '
                         f'{b.shape} {b.dtype} and {a.shape} {a.dtype}')
    bf = cv2.GaussianBlur(b, (0, 0), blur) if blur > 0 else b
    af = cv2.GaussianBlur(a, (0, 0), blur) if blur > 0 else a
    if model is None:
        keep = np.ones(b.shape[:2], bool) if still is None else np.asarray(still, bool)
        if keep[::4, ::4].sum() < 100:
            keep = np.ones(b.shape[:2], bool)
        sb = bf[::4, ::4][keep[::4, ::4]].astype(np.float32)
        sa = af[::4, ::4][keep[::4, ::4]].astype(np.float32)
        gain = sb.sum(axis=0) / np.maximum(sa.sum(axis=0), 1.0)
        signed = (sa * gain - sb).ravel()
        model = (gain, max(COLOUR_FLOOR, COLOUR_K * unchanged_noise_sigma(signed, COLOUR_FLOOR)))
    gain, thr = model
    # 8-bit throughout: the gain by channel, saturating, then the largest channel difference
    scaled = cv2.multiply(af, (float(gain[0]), float(gain[1]), float(gain[2]), 0.0))
    c0, c1, c2 = cv2.split(cv2.absdiff(scaled, bf))
    diff = cv2.max(cv2.max(c0, c1), c2)
    return diff > thr, model


def add_colour_evidence(change: Change, before_rgb, after_rgb) -> tuple:
    """Count pixels as increased by their colour too; return colour_change's model of the pair.

    A pixel without depth in a frame whose colour changed (a dark log, unreadable to the depth
    sensor, that left the bright ground behind), and one that went farther by less than the
    threshold but clearly (``COLOUR_DEPTH_K`` noise sigmas: a thin log under heavy noise) whose
    colour changed too. The colour images are brought to the change's size by area averaging
    (itself the slight blur colour_change wants); the gain is matched on the still pixels.
    """
    h, w = change.diff.shape
    still = change.valid & (np.abs(change.diff) < change.threshold_m)
    smaller = np.shape(before_rgb)[:2] != (h, w)
    b, a = (cv2.resize(np.asarray(x), (w, h), interpolation=cv2.INTER_AREA) if smaller
            else np.asarray(x) for x in (before_rgb, after_rgb))
    colour, model = colour_change(b, a, still=still, blur=0.0 if smaller else 1.0)
    change.increased |= (colour & (~change.valid | (change.diff > COLOUR_DEPTH_K
                                                    * change.noise_m))).view(np.uint8)
    return model


def nearest_side(unknown: np.ndarray, changed: np.ndarray) -> np.ndarray:
    """Unknown pixels whose nearest known pixel changed: (H, W) bool.

    Without colour evidence, an invalid band at an edge is split where its two sides meet
    halfway, whichever side (or both) the sensor blanked.
    """
    if unknown.all() or not unknown.any():  # nothing to decide, or nothing to decide by
        return np.zeros(unknown.shape, bool)
    known = ~unknown
    _, lab = cv2.distanceTransformWithLabels(unknown.view(np.uint8), cv2.DIST_L2, 3,
                                             labelType=cv2.DIST_LABEL_PIXEL)
    lut = np.zeros(int(lab.max()) + 1, bool)
    lut[lab[known]] = changed[known]
    return unknown & lut[lab]


def band_owner(unknown: np.ndarray, changed: np.ndarray,
               colour: np.ndarray | None = None) -> np.ndarray:
    """Return the pixels without depth that belong to the removed object: (H, W) bool.

    Those whose colour changed (``colour``: the surface there left). Where the colour cannot
    tell (the object's nearby pixels with depth did not change colour either: a dark log over a
    dark one), or without colour, those whose nearest pixel with depth ``changed``: an edge band
    is split halfway, whichever side the sensor blanked; never the whole band.
    """
    inside = nearest_side(unknown, changed)
    if colour is None:
        return inside
    seen = changed & ~unknown
    k = (COLOUR_WINDOW_PX, COLOUR_WINDOW_PX)
    both = cv2.boxFilter((seen & colour).view(np.uint8), cv2.CV_32F, k, normalize=False)
    near = cv2.boxFilter(seen.view(np.uint8), cv2.CV_32F, k, normalize=False)
    telling = (near >= 10) & (both >= COLOUR_TELLS_SHARE * near)
    return unknown & (colour | (inside & ~telling))


def scale_px(size_at_640: int, width: int) -> int:
    """Return a kernel size given for 640-pixel-wide images, scaled to ``width`` (odd, >= 1)."""
    s = max(1, int(round(size_at_640 * width / 640)))
    return s if s % 2 else s + 1


def refine(candidate: np.ndarray, unknown: np.ndarray, *, open_px: int = 3,
           close_px: int = 7) -> np.ndarray:
    """Binary morphology of the paper's stage 2: remove specks, fill holes and unknown pixels.

    Parameters
    ----------
    candidate : ndarray (H, W) uint8 0/1
        Pixels that changed.
    unknown : ndarray (H, W) bool
        Pixels without a valid depth in one of the frames; they may join the mask where the
        closing reaches them, and only there.

    Returns
    -------
    ndarray (H, W) uint8 0/1
    """
    k_open = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (open_px, open_px))
    k_close = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (close_px, close_px))
    m = cv2.morphologyEx(candidate, cv2.MORPH_OPEN, k_open)
    # unknown pixels next to changed ones are taken as changed before closing, so thin invalid
    # bands (stereo occlusion, edge dropouts) inside the log do not split it
    m = m | (cv2.dilate(m, k_open) & unknown.view(np.uint8))
    return cv2.morphologyEx(m, cv2.MORPH_CLOSE, k_close)


def estimate_shift(before_m: np.ndarray, after_m: np.ndarray, *, ignore: np.ndarray | None = None,
                   factor: int = 4, max_shift_px: float = 80.0) -> tuple[float, float, float]:
    """Global image shift between two depth frames, and how much it explains.

    Phase correlation of the two frames (high-passed, at 1/``factor`` size) proposes a shift;
    the proposal is then checked: the mean depth mismatch outside ``ignore`` (the removed
    object) with the shift applied, over the mismatch without it. A knocked camera gives a
    shift of a few pixels and a ratio well below 1; a scene where one log was removed gives
    no shift, or a spurious one that explains nothing (ratio near or above 1).

    Returns
    -------
    dx, dy : float
        Full-resolution pixels.
    ratio : float
        Mismatch with the shift / mismatch without it (1.0 when there is nothing to compare).
    """
    h, w = before_m.shape
    # nearest-neighbour subsampling by slicing (no copy of the full frames)
    b = np.ascontiguousarray(before_m[::factor, ::factor], dtype=np.float32)
    a = np.ascontiguousarray(after_m[::factor, ::factor], dtype=np.float32)
    b[~(b > 0)] = 0
    a[~(a > 0)] = 0
    size = (b.shape[1], b.shape[0])
    hb = b - cv2.GaussianBlur(b, (0, 0), 3)
    ha = a - cv2.GaussianBlur(a, (0, 0), 3)
    win = cv2.createHanningWindow(size, cv2.CV_32F)
    (sx, sy), _ = cv2.phaseCorrelate(hb, ha, win)
    dx, dy = sx * factor, sy * factor
    if np.hypot(dx, dy) > max_shift_px or np.hypot(sx, sy) < 0.25:
        return dx, dy, 1.0
    # check the proposal at a finer resolution, with a sub-pixel (bilinear) shift
    v = factor
    b2 = np.ascontiguousarray(before_m[::v, ::v], dtype=np.float32)
    a2 = np.ascontiguousarray(after_m[::v, ::v], dtype=np.float32)
    b2[~(b2 > 0)] = 0
    a2[~(a2 > 0)] = 0
    shift = np.float32([[1, 0, dx / v], [0, 1, dy / v]])
    shifted = cv2.warpAffine(b2, shift, (b2.shape[1], b2.shape[0]), flags=cv2.INTER_LINEAR)
    valid_b = cv2.warpAffine((b2 > 0).view(np.uint8), shift, (b2.shape[1], b2.shape[0]),
                             flags=cv2.INTER_NEAREST)
    keep = (b2 > 0) & (a2 > 0) & (valid_b > 0)
    if ignore is not None:
        keep &= ignore[::v, ::v] == 0
    if keep.sum() < 100:
        return dx, dy, 1.0
    clip = 0.2  # metres: a few large mismatches must not dominate
    without = float(np.minimum(np.abs(a2 - b2), clip)[keep].mean())
    with_shift = float(np.minimum(np.abs(a2 - shifted), clip)[keep].mean())
    return dx, dy, (with_shift / without) if without > 0 else 1.0
