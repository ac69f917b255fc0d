import math

from grasp_autolabel.core.camera import CameraIntrinsics, depth_at, grasp_pose
from grasp_autolabel.core.geometry import (angle_difference, as_grasps,
                                           convex_polygon_intersection, corners_to_rect,
                                           iou_matrix, normalize_angle, polygon_area,
                                           rect_to_corners, rectangle_metric, rotated_iou)
from hypothesis import given, settings
from hypothesis import strategies as st
import numpy as np
import pytest
from shapely.geometry import Polygon

coord = st.floats(-500, 500, allow_nan=False)
size = st.floats(1.0, 200.0, allow_nan=False)
angle = st.floats(-10.0, 10.0, allow_nan=False)
grasp = st.tuples(coord, coord, angle, size, size).map(np.array)


# ---------------------------------------------------------------- angles
@given(angle)
def test_normalize_angle_range_and_same_grasp(t):
    n = normalize_angle(t)
    assert -math.pi / 2 <= n < math.pi / 2
    assert angle_difference(n, t) < 1e-9


def test_normalize_angle_boundaries():
    assert normalize_angle(math.pi / 2) == pytest.approx(-math.pi / 2)
    assert normalize_angle(-math.pi / 2) == pytest.approx(-math.pi / 2)
    assert normalize_angle(-1e-300) <= 0  # np.mod would give pi here without the guard
    assert normalize_angle(math.pi) == pytest.approx(0.0, abs=1e-12)
    out = normalize_angle(np.array([0.0, math.pi / 2, 3 * math.pi / 4]))
    np.testing.assert_allclose(out, [0.0, -math.pi / 2, -math.pi / 4])


def test_angle_difference_wraps_at_pi():
    assert angle_difference(math.radians(89), math.radians(-89)) == pytest.approx(math.radians(2))
    assert angle_difference(0.0, math.pi) == pytest.approx(0.0, abs=1e-12)
    assert angle_difference(0.0, math.pi / 2) == pytest.approx(math.pi / 2)


# ---------------------------------------------------------------- corners
def test_corners_cornell_order_and_convention():
    # theta = 90 deg: the jaws close along image +y (down); the opening edge p0->p1 points down.
    c = rect_to_corners([100, 50, math.pi / 2, 40, 10])
    np.testing.assert_allclose(np.linalg.norm(c[1] - c[0]), 40)
    np.testing.assert_allclose(np.linalg.norm(c[2] - c[1]), 10)
    np.testing.assert_allclose((c[1] - c[0]) / 40, [0, 1], atol=1e-12)
    np.testing.assert_allclose(c.mean(axis=0), [100, 50])


def _same_corner_set(a, b, tol=1e-6):
    # theta and theta + pi give the same rectangle with the corners rolled by two.
    return np.allclose(a, b, atol=tol) or np.allclose(a, np.roll(b, 2, axis=0), atol=tol)


@given(grasp)
def test_corners_rect_corners_roundtrip(g):
    c = rect_to_corners(g)
    r = corners_to_rect(c)
    assert -math.pi / 2 <= r[2] < math.pi / 2
    np.testing.assert_allclose(r[[0, 1, 3, 4]], g[[0, 1, 3, 4]], rtol=1e-9, atol=1e-6)
    assert angle_difference(r[2], g[2]) < 1e-9
    assert _same_corner_set(rect_to_corners(r), c)


@given(grasp)
def test_theta_and_theta_plus_pi_are_the_same_grasp(g):
    g2 = g.copy()
    g2[2] += math.pi
    assert _same_corner_set(rect_to_corners(g), rect_to_corners(g2))
    assert rotated_iou(g, g2) == pytest.approx(1.0, abs=1e-9)
    assert rectangle_metric([g2], [g])[0]


def test_corners_to_rect_of_real_cornell_labels(cornell_dir):
    lines = (cornell_dir / 'pcd0100cpos.txt').read_text().split()
    pts = np.array(lines, dtype=float).reshape(-1, 4, 2)
    rects = corners_to_rect(pts)
    # first edge of a Cornell rectangle is the opening: longer than the jaw edge here
    assert np.all(rects[:, 3] > rects[:, 4])
    # a hand-drawn quadrilateral is nearly a rectangle: every corner re-drawn within 3 px.
    # Cornell files use both windings, so match corners as a set, not by index.
    redrawn = rect_to_corners(rects)
    nearest = np.linalg.norm(pts[:, :, None, :] - redrawn[:, None, :, :], axis=3).min(axis=2)
    assert nearest.max() < 3.0


@pytest.fixture
def cornell_dir():
    from pathlib import Path

    d = Path(__file__).resolve().parents[2].parent / 'shared' / 'data' / 'cornell'
    if not d.is_dir():
        pytest.skip('../shared/data/cornell not present')
    return d


# ---------------------------------------------------------------- IoU, hand-computed
@pytest.mark.parametrize(
    'a, b, expected',
    [
        ([0, 0, 0, 2, 2], [0, 0, 0, 2, 2], 1.0),
        ([0, 0, 0, 2, 2], [1, 0, 0, 2, 2], 2 / 6),  # half overlap
        ([0, 0, 0, 2, 2], [0, 0, math.pi / 4, 2, 2], 1 / math.sqrt(2)),  # regular octagon
        ([0, 0, 0, 4, 1], [0, 0, math.pi / 2, 4, 1], 1 / 7),  # a cross
        ([0, 0, 0, 2, 2], [0, 0, 0, 4, 4], 4 / 16),  # contained
        ([0, 0, 0, 2, 2], [3, 0, 0, 2, 2], 0.0),  # disjoint
        ([0, 0, 0, 2, 2], [2, 0, 0, 2, 2], 0.0),  # touching along an edge
        ([0, 0, 0, 2, 2], [1, 1, 0, 2, 2], 1 / 7),  # quarter overlap
        ([0, 0, 0, 0, 2], [0, 0, 0, 0, 2], 0.0),  # no area
    ],
)
def test_rotated_iou_hand_computed(a, b, expected):
    assert rotated_iou(a, b) == pytest.approx(expected, abs=1e-12)
    assert rotated_iou(b, a) == pytest.approx(expected, abs=1e-12)


def test_octagon_polygon_is_exact():
    poly = convex_polygon_intersection(rect_to_corners([0, 0, 0, 2, 2]),
                                       rect_to_corners([0, 0, math.pi / 4, 2, 2]))
    assert len(poly) == 8
    assert polygon_area(poly) == pytest.approx(8 * (math.sqrt(2) - 1), abs=1e-12)


offset = st.floats(-150, 150, allow_nan=False)


@settings(max_examples=300)
@given(grasp, offset, offset, angle, size, size)
def test_iou_symmetric_bounded_and_matches_shapely(a, dx, dy, theta, w, h):
    # b near a (generated so, not filtered: filtering most pairs away trips Hypothesis' health
    # check)
    b = np.array([a[0] + dx, a[1] + dy, theta, w, h])
    ab, ba = rotated_iou(a, b), rotated_iou(b, a)
    assert ab == pytest.approx(ba, abs=1e-9)
    assert 0.0 <= ab <= 1.0 + 1e-12
    pa, pb = Polygon(rect_to_corners(a)), Polygon(rect_to_corners(b))
    ref = pa.intersection(pb).area / pa.union(pb).area
    assert ab == pytest.approx(ref, abs=1e-7)


@given(grasp)
def test_iou_with_itself_is_one(g):
    assert rotated_iou(g, g) == pytest.approx(1.0, abs=1e-9)


def test_iou_matrix_shapes():
    a = np.array([[0, 0, 0, 2, 2], [10, 10, 0.3, 5, 3]])
    b = np.array([[0, 0, 0, 2, 2], [1, 0, 0, 2, 2], [100, 100, 0, 1, 1]])
    m = iou_matrix(a, b)
    assert m.shape == (2, 3)
    assert m[0, 0] == pytest.approx(1.0)
    assert m[0, 1] == pytest.approx(1 / 3)
    assert m[1, 2] == 0.0
    assert iou_matrix(np.zeros((0, 5)), b).shape == (0, 3)


# ---------------------------------------------------------------- rectangle metric
def test_rectangle_metric_thresholds():
    gt = [[100, 100, 0.0, 40, 20]]
    assert rectangle_metric([[100, 100, math.radians(29), 40, 20]], gt)[0]
    assert not rectangle_metric([[100, 100, math.radians(31), 40, 20]], gt)[0]
    # angle modulo 180: -89 deg and +89 deg are 2 deg apart
    assert rectangle_metric([[100, 100, math.radians(-89), 40, 20]],
                            [[100, 100, math.radians(89), 40, 20]])[0]
    # shifted 13 px across: overlap 40x7 = 280, IoU 280/1320 = 0.21 fails; 8 px: 480/1120 = 0.43
    # passes
    assert not rectangle_metric([[100, 113, 0.0, 40, 20]], gt)[0]
    assert rectangle_metric([[100, 108, 0.0, 40, 20]], gt)[0]
    assert rectangle_metric(np.zeros((0, 5)), gt).shape == (0,)
    assert not rectangle_metric([[0, 0, 0, 1, 1]], np.zeros((0, 5)))[0]


def test_as_grasps_errors_name_the_problem():
    with pytest.raises(ValueError, match=r'shape \(N, 5\)'):
        as_grasps([1, 2, 3])
    with pytest.raises(ValueError, match='NaN'):
        as_grasps([1, 2, float('nan'), 3, 4])
    with pytest.raises(ValueError, match='must be >= 0'):
        as_grasps([1, 2, 0, -3, 4])
    with pytest.raises(ValueError, match='corners'):
        corners_to_rect(np.zeros((3, 2)))


# ---------------------------------------------------------------- camera geometry
D435_COLOR = CameraIntrinsics(640, 480, fx=615.0, fy=615.5, cx=321.2, cy=239.4)
DISTORTED = CameraIntrinsics(640, 480, fx=600.0, fy=605.0, cx=320.0, cy=240.0,
                             distortion=(0.08, -0.2, 0.001, -0.0015, 0.05))


@pytest.mark.parametrize('cam', [D435_COLOR, DISTORTED])
@given(u=st.floats(0, 639), v=st.floats(0, 479), z=st.floats(0.2, 5.0))
def test_deproject_project_roundtrip(cam, u, v, z):
    p = cam.deproject(u, v, z)
    assert p[2] == pytest.approx(z)
    np.testing.assert_allclose(cam.project(p), [u, v], atol=1e-6)


def test_deproject_known_point():
    cam = CameraIntrinsics(640, 480, fx=500.0, fy=500.0, cx=320.0, cy=240.0)
    np.testing.assert_allclose(cam.deproject(420.0, 140.0, 2.0), [0.4, -0.4, 2.0])
    assert np.all(np.isnan(cam.project([0.0, 0.0, -1.0])))


def test_intrinsics_validation():
    with pytest.raises(ValueError, match='fx'):
        CameraIntrinsics(640, 480, fx=0.0, fy=1.0, cx=0, cy=0)
    with pytest.raises(ValueError, match='width'):
        CameraIntrinsics(0, 480, fx=1.0, fy=1.0, cx=0, cy=0)
    with pytest.raises(ValueError, match='distortion_model'):
        CameraIntrinsics(640, 480, fx=1.0, fy=1.0, cx=0, cy=0, distortion_model='equidistant',
                         distortion=(0.1, 0, 0, 0))


def test_depth_at_is_robust_to_holes():
    d = np.full((50, 50), 1.5, dtype=np.float32)
    d[20:30, 20:30] = 0.0  # a hole under the grasp centre
    d[24, 24] = 1.0
    assert depth_at(d, 25, 25, radius=3) == pytest.approx(1.0)
    assert depth_at(d, 25, 25, radius=2) == pytest.approx(1.0)  # one valid pixel in the window
    d[22:28, 22:28] = 0.0
    assert np.isnan(depth_at(d, 25, 25, radius=2))
    assert depth_at(d, 25, 25, radius=6) == pytest.approx(1.5)
    assert np.isnan(depth_at(d, -100, 25))


def test_grasp_pose_orientation_and_opening():
    cam = CameraIntrinsics(640, 480, fx=500.0, fy=500.0, cx=320.0, cy=240.0)
    theta = math.radians(30)
    pose = grasp_pose([320, 240, theta, 100, 20], 2.0, cam)
    assert pose.valid
    np.testing.assert_allclose(pose.position, [0, 0, 2.0])
    assert pose.opening_m == pytest.approx(100 * 2.0 / 500)
    # the quaternion turns the x axis into the closing direction, z stays the optical axis
    x, y, z, w = pose.orientation
    rot_x = np.array([1 - 2 * (y * y + z * z), 2 * (x * y + z * w), 2 * (x * z - y * w)])
    np.testing.assert_allclose(rot_x, [math.cos(theta), math.sin(theta), 0], atol=1e-12)
    assert not grasp_pose([320, 240, 0, 10, 10], float('nan'), cam).valid
    assert not grasp_pose([320, 240, 0, 10, 10], 0.0, cam).valid


def test_grasp_poses_matches_grasp_pose():
    from grasp_autolabel.core.camera import grasp_poses

    g = np.array([[320, 240, 0.3, 80, 20], [100, 50, -1.2, 40, 10], [600, 400, 1.5, 10, 5]], float)
    z = [1.5, float('nan'), 2.2]
    for cam in (D435_COLOR, DISTORTED):
        many = grasp_poses(g, z, cam)
        for gi, zi, p in zip(g, z, many):
            one = grasp_pose(gi, zi, cam)
            assert p.valid == one.valid
            if one.valid:
                np.testing.assert_allclose(p.position, one.position)
                np.testing.assert_allclose(p.orientation, one.orientation)
                assert p.opening_m == pytest.approx(one.opening_m)
