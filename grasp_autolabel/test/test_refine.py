"""Grasp candidates checked and refined against depth (detector/refine.py) on constructed
scenes: logs as cylinders seen from above, with sensor noise."""
import math

from grasp_autolabel.core.geometry import angle_difference
from grasp_autolabel.refine import refine_grasps
import numpy as np
import pytest

FX, GROUND = 600.0, 2.0
PX_M = GROUND / FX  # metres per pixel at the ground


def log_heights(shape, a, b, radius_m, base_m=0.0):
    """Height above the ground of a horizontal cylinder from pixel ``a`` to ``b`` whose bottom is
    ``base_m`` above the ground (0 where it is not)."""
    vv, uu = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    a, b = np.asarray(a, float), np.asarray(b, float)
    ab = b - a
    t = ((uu - a[0]) * ab[0] + (vv - a[1]) * ab[1]) / (ab @ ab)
    d = np.hypot(uu - (a[0] + t * ab[0]), vv - (a[1] + t * ab[1])) * PX_M
    inside = (t >= 0) & (t <= 1) & (d < radius_m)
    return np.where(inside, base_m + radius_m + np.sqrt(np.clip(radius_m ** 2 - d ** 2, 0, None)),
                    0.0)


def scene(*logs, noise=0.002, seed=0):
    h = np.zeros((240, 320))
    for log in logs:
        h = np.maximum(h, log_heights(h.shape, *log))
    rng = np.random.default_rng(seed)
    return (GROUND - h + rng.normal(0, noise, h.shape)).astype(np.float32)


R = 0.06  # a 12 cm log: 36 px across
D_PX = 2 * R / PX_M * GROUND / (GROUND - 2 * R)  # roughly: its top is nearer than the ground


def test_a_free_log_centres_turns_and_opens_the_grasp():
    depth = scene(((40, 120), (280, 120), R))
    rough = np.array([[150.0, 112.0, math.radians(75), 80.0,
                       20.0]])  # 8 px off, 15 deg off, opening wrong
    out, kept = refine_grasps(rough, depth, fx=FX)
    assert kept.tolist() == [0]
    x, y, th, w, h = out[0]
    assert abs(y - 120) <= 1.5 and abs(x - 150) < 10
    assert abs(float(angle_difference(th, math.pi / 2))) < math.radians(4)
    assert w == pytest.approx(1.3 * 36, rel=0.12) and h == 20.0


def test_a_log_with_another_on_it_is_dropped_and_the_top_one_kept():
    lower = ((40, 120), (280, 120), R)
    upper = ((200, 20), (200, 220), R, 2 * R)  # lies across the lower one near its right end
    depth = scene(lower, upper)
    cands = np.array([[100.0, 120.0, math.pi / 2, 47.0,
                       20.0],  # on the lower log, far from the crossing
                      [200.0, 60.0, 0.0, 47.0, 20.0]])  # on the upper log
    out, kept = refine_grasps(cands, depth, fx=FX)
    assert kept.tolist() == [1]


def test_a_log_leaning_against_a_higher_one_beside_it_is_dropped():
    low = ((40, 120), (280, 120), R)
    high = ((40, 157), (280, 157), R, 0.05)  # touching it, and higher
    out, kept = refine_grasps(np.array([[150.0, 120.0, math.pi / 2, 47.0, 20.0]]),
                              scene(low, high), fx=FX)
    assert kept.tolist() == []


def test_the_floor_and_a_round_stump_are_not_logs():
    depth = scene()
    vv, uu = np.mgrid[0:240, 0:320]
    depth[np.hypot(uu - 155,
                   vv - 100) < 18] = GROUND - 0.1  # a log standing on its end: as wide as long
    cands = np.array([[60.0, 200.0, 0.0, 47.0, 20.0], [155.0, 100.0, math.pi / 2, 47.0, 20.0]])
    out, kept = refine_grasps(cands, depth, fx=FX)
    assert kept.tolist() == []


def test_no_depth_under_a_candidate_drops_it():
    depth = scene(((40, 120), (280, 120), R))
    depth[80:160, 130:170] = 0  # a hole in the depth where the candidate is
    g = np.array([[150.0, 120.0, math.pi / 2, 47.0, 20.0],
                  [230.0, 120.0, math.pi / 2, 47.0, 20.0]])
    out, kept = refine_grasps(g, depth, fx=FX)
    assert kept.tolist() == [1]


@pytest.mark.parametrize('shadow_px', [0, 5])
@pytest.mark.parametrize('end_x', range(150, 290, 9))
def test_a_log_whose_end_lies_under_another_is_dropped_wherever_the_walk_meets_it(end_x,
                                                                                  shadow_px):
    """The lower log ends under the upper one (its end hidden).

    Wherever along the spine walk the crossing comes (mid-chunk or at a re-centring), and with the
    sensor's band of missing depth before the upper log's edge (an occlusion shadow), the log is
    not free.
    """
    lower = ((40, 120), (end_x, 120), R)
    cross = end_x - 10
    upper = ((cross, 20), (cross, 220), R, 2 * R)
    depth = scene(lower, upper)
    edge = int(cross - R / PX_M * 0.95)
    depth[:, edge - shadow_px:edge] = 0
    out, kept = refine_grasps(np.array([[80.0, 120.0, math.pi / 2, 47.0, 20.0]]), depth, fx=FX)
    assert kept.tolist() == []


def test_a_log_ending_on_the_ground_before_a_higher_one_stays():
    """A gap of ground between the log's end and a higher log: the log ends there, it is free."""
    lower = ((40, 120), (200, 120), R)
    upper = ((240, 20), (240, 220), R, 2 * R)
    out, kept = refine_grasps(np.array([[100.0, 120.0, math.pi / 2, 47.0, 20.0]]),
                              scene(lower, upper), fx=FX)
    assert kept.tolist() == [0]
