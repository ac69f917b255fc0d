"""Automatic annotation: each stage on constructed cases, the gate on each fault, the metrics."""
import math
from pathlib import Path
import re
import subprocess
import sys

import cv2
from grasp_autolabel.annotate import annotate_step, AnnotateConfig, load_config, Reason
from grasp_autolabel.annotate.grasps import fit_spine, measure_widths
from grasp_autolabel.annotate.segment import depth_change, refine
from grasp_autolabel.core.camera import CameraIntrinsics
from grasp_autolabel.core.depth import noise_sigma
from grasp_autolabel.core.geometry import angle_difference
from grasp_autolabel.sim import CellConfig, SimCell
from grasp_autolabel.sim.render import Camera, look_at, render
from grasp_autolabel.sim.scene import Log
import numpy as np
import pytest

INTR = CameraIntrinsics(640, 480, fx=615.0, fy=615.0, cx=319.5, cy=239.5)
TOP = Camera(INTR, np.array([0.0, 0.0, 2.0]), look_at([0.0, 0.0, 2.0], [0.0, 0.0, 0.0]))


def _noisy(depth, rng, sigma=0.004):
    d = depth + rng.normal(0, sigma, depth.shape)
    return np.round(d, 3).astype(np.float32)  # 1 mm quantisation


# ---------------------------------------------------------------- stage 1 and 2
def test_depth_change_signs_invalid_pixels_and_noise_aware_threshold():
    rng = np.random.default_rng(0)
    before = np.full((120, 160), 2.0)
    after = before.copy()
    before[40:60, 20:140] = 1.85  # a log was here: after the pick the scene is farther
    after[90:110, 10:40] = 1.5  # something appeared: nearer
    b, a = _noisy(before, rng, 0.002), _noisy(after, rng, 0.002)
    b[45, 50] = 0.0  # invalid in one frame: its neighbours there say the log was there
    c = depth_change(b, a, min_change_m=0.02, noise_k=5)
    assert c.threshold_m == pytest.approx(0.02)
    assert c.noise_m == pytest.approx(0.002 * math.sqrt(2), rel=0.25)
    assert c.increased[40:60, 20:140].mean() > 0.99
    assert c.increased[45, 50] == 1 and not c.valid[45, 50]
    assert c.decreased[90:110, 10:40].all()
    assert c.increased.sum() < 20 * 120 + 5
    # a noisy camera raises the threshold by itself
    noisy = depth_change(_noisy(before, rng, 0.01), _noisy(after, rng, 0.01), min_change_m=0.02,
                         noise_k=5)
    assert noisy.threshold_m > 0.06


def test_noise_is_measured_where_the_scene_did_not_change_however_much_changed():
    """Issue 16, item 3: 54 % of the view changed (several logs, a bin emptied) at once."""
    rng = np.random.default_rng(3)
    before = np.full((240, 320), 2.0)
    for k in range(6):  # logs 15 cm thick covering 54 % of the view, of different heights
        before[k * 40:k * 40 + 36, :int(320 * 0.6)] = 1.85 - 0.02 * k
    after = np.full((240, 320), 2.0)
    b, a = _noisy(before, rng, 0.003), _noisy(after, rng, 0.003)
    c = depth_change(b, a, min_change_m=0.02, noise_k=5)
    assert 0.50 < c.increased.mean() < 0.6
    assert c.noise_m == pytest.approx(0.003 * math.sqrt(2), rel=0.25)  # not the change's spread
    assert c.threshold_m < 0.025
    assert noise_sigma((a - b)[::4, ::4]) > 0.02  # what the whole view's spread would say
    intr = CameraIntrinsics(320, 240, fx=300.0, fy=300.0, cx=159.5, cy=119.5)
    step = annotate_step(b, a, intr, AnnotateConfig())
    assert not step.accepted and step.reason == 'large_change', step.reason
    # the camera did move: the still part shifted
    moved = annotate_step(b, np.roll(b, 12, axis=1), intr, AnnotateConfig())
    assert moved.reason == 'camera_moved'


def test_depth_read_in_one_frame_only_counts_as_evidence():
    """Issue 16: a removed log with unreadable patches and an invalid band at its edge."""
    before = np.full((120, 160), 2.0, np.float32)
    before[40:60, 20:140] = 1.85  # the log
    after = np.full((120, 160), 2.0, np.float32)
    b, a = before.copy(), after.copy()
    b[47:53, 60:66] = 0  # a dark patch on the log reads nothing before the pick
    a[47:53, 100:106] = 0  # and a patch of the ground reads nothing after it
    b[38:40, 20:140] = 0  # an invalid band just outside the log's upper edge
    c = depth_change(b, a, min_change_m=0.02, noise_k=5)
    assert c.increased[47:53, 60:66].all() and c.increased[47:53, 100:106].all()
    assert not c.increased[38:40, 20:140].any()  # its neighbours include the ground: not evidence
    assert c.increased.sum() == 20 * 120


def test_depth_change_rejects_bad_input():
    with pytest.raises(ValueError, match='shapes differ'):
        depth_change(np.ones((4, 4)), np.ones((4, 5)))
    with pytest.raises(ValueError, match='2-D depth image'):
        depth_change(np.ones((4, 4, 3)), np.ones((4, 4, 3)))
    with pytest.raises(ValueError, match='dtype'):
        depth_change(np.ones((4, 4), bool), np.ones((4, 4), bool))


def test_refine_fills_holes_and_invalid_pixels_and_removes_specks():
    cand = np.zeros((60, 80), np.uint8)
    cand[20:40, 10:70] = 1
    cand[30, 20:60] = 0  # a band of invalid pixels across the log
    unknown = np.zeros((60, 80), bool)
    unknown[30, 20:60] = True
    cand[5, 5] = 1  # a noise speck
    out = refine(cand, unknown, open_px=3, close_px=7)
    assert out[20:40, 12:68].all()
    assert out[5, 5] == 0


def test_spine_and_widths_of_a_rotated_bar():
    mask = np.zeros((200, 300), np.uint8)
    box = cv2.boxPoints(((150, 100), (220, 30), 25.0))
    cv2.fillPoly(mask, [np.rint(box).astype(np.int32)], 1)
    spine = fit_spine(mask.astype(bool))
    angle = math.atan2(spine.direction[1], spine.direction[0])
    assert angle_difference(angle, math.radians(25)) < math.radians(1.5)
    assert spine.length == pytest.approx(220, abs=40)
    centres = spine.point + np.linspace(-60, 60, 5)[:, None] * spine.direction
    lo, hi, ok = measure_widths(mask.astype(bool), centres, spine.normal, max_half_px=60)
    assert ok.all()
    np.testing.assert_allclose(hi - lo, 30, atol=2.0)


# ---------------------------------------------------------------- stage 3 on a constructed scene
@pytest.mark.parametrize('yaw_deg', [0, 30, 75, -50])
def test_a_cylinder_removed_from_a_flat_scene_gives_the_known_axis_angle_and_opening(yaw_deg):
    r, L = 0.08, 1.0
    yaw = math.radians(yaw_deg)
    log = Log(1, np.array([0.05, -0.03, r]), np.array([math.cos(yaw), math.sin(yaw), 0.0]), r, L)
    before = render(TOP, [log]).depth
    after = render(TOP, []).depth
    rng = np.random.default_rng(1)
    cfg = AnnotateConfig()
    out = annotate_step(_noisy(before, rng), _noisy(after, rng), INTR, cfg)
    assert out.accepted, (out.reason, out.info)
    # the log's axis in the image (world y is image -y for this camera)
    axis_px = TOP.project(log.ends)
    axis_angle = math.atan2(*(axis_px[1] - axis_px[0])[::-1])
    diameter_px = 2 * r * INTR.fx / (2.0 - r)  # at the axis depth
    g = out.grasps
    assert len(g) >= 5
    # closing direction perpendicular to the axis, opening = mask width x margin
    assert np.all(np.abs(angle_difference(g[:, 2], axis_angle) - math.pi / 2) < math.radians(3))
    np.testing.assert_allclose(g[:, 3] / diameter_px, cfg.opening_margin, rtol=0.12)
    # centres on the spine
    a, b = axis_px
    d = (b - a) / np.linalg.norm(b - a)
    off = np.abs((g[:, :2] - a) @ np.array([-d[1], d[0]]))
    assert off.max() < 0.1 * diameter_px
    # jaw size from the gripper at the grasp's depth (the log's top, 2 m - 2 r)
    np.testing.assert_allclose(g[:, 4], cfg.jaw_width_m * INTR.fx / (2.0 - 2 * r), rtol=0.05)
    # sorted by score, the best nearest the centre of mass
    assert np.all(np.diff(out.scores) <= 1e-12)
    centre_px = TOP.project(log.centre)
    assert np.linalg.norm(g[0, :2] - centre_px) < 0.15 * np.linalg.norm(b - a)
    # 3-D poses: on the log's top surface, closing direction horizontal
    for p in out.poses:
        assert p.valid and p.position[2] == pytest.approx(2.0 - 2 * r, abs=0.02)
        assert p.opening_m == pytest.approx(cfg.opening_margin * 2 * r, rel=0.15)
    # the mask matches the log's pixels
    truth = render(TOP, [log]).instances == 1
    iou = (out.mask & truth).sum() / (out.mask | truth).sum()
    assert iou > 0.93


# ---------------------------------------------------------------- the gate
def _step(cell, fault):
    _, d0 = cell.frame()
    truth = cell.pick(fault)
    _, d1 = cell.frame()
    s = cell.config.sensor.depth_scale
    return truth, annotate_step(d0 * np.float32(s), d1 * np.float32(s), cell.intrinsics)


def _first_seed(fault, check, seeds=range(40)):
    for seed in seeds:
        cell = SimCell(CellConfig(), seed=seed)
        truth, out = _step(cell, fault)
        if check(truth, cell):
            return truth, out
    pytest.fail(f'no seed gives a usable {fault} step')


def _in_view(truth, cell):
    return all(t.in_view for t in truth.removed_logs)


@pytest.mark.parametrize(
    'fault, reasons',
    [('failed_pick', {'nothing_removed'}),
     ('double_removal', {'multiple_objects_removed', 'skeleton_not_line_like'}),
     ('camera_moved', {'camera_moved'}), ('arm_in_view', {'new_object_in_view'}),
     ('many_removed', {'multiple_objects_removed', 'large_change', 'skeleton_not_line_like'})],
)
def test_gate_rejects_each_fault_with_its_reason(fault, reasons):
    truth, out = _first_seed(fault, _in_view)
    assert not out.accepted
    assert out.reason in reasons, (out.reason, out.info)


def test_gate_rejects_the_step_after_the_arm_left():
    cell = SimCell(CellConfig(), seed=4)
    _step(cell, 'arm_in_view')
    truth, out = _step(cell, None)
    assert truth.fault == 'arm_in_previous'
    # what changed is the arm, come in from the image border, and the log: the border says so
    assert not out.accepted and out.reason == 'mask_touches_border', (out.reason, out.info)


def test_gate_accepts_clean_picks_in_view():
    accepted = 0
    for seed in range(12):
        cell = SimCell(CellConfig(), seed=seed)
        truth, out = _step(cell, None)
        if _in_view(truth, cell):
            assert out.accepted, (seed, out.reason, out.info)
            accepted += 1
    assert accepted >= 3


def test_gate_rejects_a_log_cut_by_the_image_border():
    log = Log(1, np.array([0.9, 0.0, 0.06]), np.array([1.0, 0.0, 0.0]), 0.06,
              1.0)  # runs out of the view
    out = annotate_step(render(TOP, [log]).depth.astype(np.float32),
                        render(TOP, []).depth.astype(np.float32), INTR)
    assert out.reason == 'mask_touches_border'


def test_gate_rejects_an_object_too_small_for_a_log():
    stub = Log(1, np.array([0.0, 0.0, 0.03]), np.array([1.0, 0.0, 0.0]), 0.03, 0.08)  # 6 cm x 8 cm
    out = annotate_step(render(TOP, [stub]).depth.astype(np.float32),
                        render(TOP, []).depth.astype(np.float32), INTR)
    # the change (6 x 8 cm) is under the smallest log's area at that depth: no log went
    assert not out.accepted and out.reason == 'nothing_removed', (out.reason, out.info)


def test_gate_rejects_two_crossed_logs_removed_together():
    a = Log(1, np.array([0.0, 0.0, 0.06]), np.array([1.0, 0.0, 0.0]), 0.06, 0.9)
    b = Log(2, np.array([0.0, 0.0, 0.18]), np.array([0.0, 1.0, 0.0]), 0.06, 0.8)
    out = annotate_step(render(TOP, [a, b]).depth.astype(np.float32),
                        render(TOP, []).depth.astype(np.float32), INTR)
    # one connected change (the logs touch), whose skeleton is a cross, not one line
    assert not out.accepted and out.reason == 'skeleton_not_line_like', (out.reason, out.info)


def test_gate_rejects_two_logs_side_by_side_removed_together():
    a = Log(1, np.array([0.0, -0.065, 0.06]), np.array([1.0, 0.0, 0.0]), 0.06, 0.9)
    b = Log(2, np.array([0.05, 0.065, 0.06]), np.array([1.0, 0.0, 0.0]), 0.06, 0.8)
    out = annotate_step(render(TOP, [a, b]).depth.astype(np.float32),
                        render(TOP, []).depth.astype(np.float32), INTR)
    assert not out.accepted and out.reason == 'multiple_objects_removed', out.info


def _slanted_scene(gap_m: float):
    """A log on the ground beside a thicker one lying higher, seen at a slant from its side."""
    eye = np.array([-1.2, 0.0, 1.8])
    cam = Camera(INTR, eye, look_at(eye, [0.0, 0.0, 0.0]))
    low = Log(1, np.array([0.0, 0.0, 0.06]), np.array([0.0, 1.0, 0.0]), 0.06, 0.9, 3)
    high = Log(2, np.array([-gap_m, 0.0, 0.30]), np.array([0.0, 1.0, 0.0]), 0.12, 1.2, 5)
    before, after = render(cam, [low, high]), render(cam, [high])
    shown = (before.instances == 1).sum() / (render(cam, [low]).instances == 1).sum()
    rng = np.random.default_rng(5)
    sensor = CellConfig().sensor
    frames = [(sensor.depth(r.depth, INTR.fx, rng, r.rgb) * np.float32(0.001),
               sensor.rgb(r.rgb, rng)) for r in (before, after)]
    axis = {'axis_px': cam.project(low.ends).tolist(), 'axis_visible_px': None,
            'diameter_px': 2 * low.radius * INTR.fx / float(cam.world_to_camera(low.centre)[2])}
    return frames, shown, axis


@pytest.mark.parametrize('gap_m', [0.29, 0.30, 0.32])
def test_a_log_mostly_hidden_behind_a_nearer_one_is_rejected_with_its_own_reason(gap_m):
    """Issue 16, item 5: a sliver labelled as a thin log puts every grasp off the real axis."""
    ((b, rb), (a, ra)), shown, _ = _slanted_scene(gap_m)
    assert 0.25 < shown < 0.65  # a third to a half of the log is visible
    out = annotate_step(b, a, INTR, before_rgb=rb, after_rgb=ra)
    assert out.reason == 'log_partly_hidden', (out.reason, out.info)
    assert out.info['depth_step_m'] > 1.5 * out.info['width_m']


def test_the_same_log_in_full_view_beside_the_higher_one_is_labelled():
    from grasp_autolabel.core.evaluation import valid_for_log

    ((b, rb), (a, ra)), shown, axis = _slanted_scene(0.40)
    assert shown == 1.0
    out = annotate_step(b, a, INTR, before_rgb=rb, after_rgb=ra)
    assert out.accepted, (out.reason, out.info)
    assert valid_for_log(out.grasps, axis).all()


def _border_error_px(mask, truth) -> float:
    """Mean distance, pixels, from the mask's outline to the truth's (and back)."""
    def outline(m):
        return m & ~cv2.erode(m.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)

    def dist_to(m):
        return cv2.distanceTransform((~outline(m)).astype(np.uint8), cv2.DIST_L2, 5)

    return 0.5 * (dist_to(truth)[outline(mask)].mean() + dist_to(mask)[outline(truth)].mean())


@pytest.mark.parametrize('band', ['both sides', 'far side', 'near side'])
@pytest.mark.parametrize('colour', [True, False])
def test_an_invalid_band_at_the_edge_is_split_by_evidence_not_taken_whole(band, colour):
    """Issue 16, item 1: the mask follows the log's silhouette whichever side is blanked."""
    log = Log(1, np.array([0.0, 0.0, 0.08]), np.array([1.0, 0.3, 0.0]) / math.hypot(1, 0.3),
              0.08, 0.9, 7)
    before, after = render(TOP, [log]), render(TOP, [])
    truth = before.instances == 1
    rng = np.random.default_rng(3)
    b, a = _noisy(before.depth, rng, 0.002), _noisy(after.depth, rng, 0.002)
    inner = truth & ~cv2.erode(truth.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    outer = cv2.dilate(truth.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & ~truth
    blank = {'both sides': inner | outer, 'far side': outer, 'near side': inner}[band]
    b[blank] = 0  # 2 px on the chosen side(s) of the log's outline read nothing before the pick
    rgb = {'before_rgb': before.rgb, 'after_rgb': after.rgb} if colour else {}
    out = annotate_step(b, a, INTR, **rgb)
    assert out.accepted, (out.reason, out.info)
    # without colour only geometry tells: a one-sided band is split halfway (half its width off)
    assert _border_error_px(out.mask, truth) <= (1.0 if colour or band == 'both sides' else 1.5)


def test_no_valid_depth_and_size_mismatches():
    z = np.zeros((480, 640), np.float32)
    assert annotate_step(z, z, INTR).reason == 'no_valid_depth'
    with pytest.raises(ValueError, match='differ in size'):
        annotate_step(np.ones((480, 640)), np.ones((240, 320)), INTR)
    with pytest.raises(ValueError, match='intrinsics are 640x480'):
        annotate_step(np.ones((240, 320)), np.ones((240, 320)), INTR)


# ---------------------------------------------------------------- settings
def test_config_from_yaml_plain_and_ros_parameter_file(tmp_path):
    plain = tmp_path / 'plain.yaml'
    plain.write_text('jaw_width_m: 0.05\nn_grasps: 5\n')
    assert load_config(plain).jaw_width_m == 0.05
    ros = tmp_path / 'ros.yaml'
    ros.write_text(
        '/autolabel_node:\n  ros__parameters:\n    jaw_width_m: 0.06\n    dataset_dir: /tmp/x\n')
    assert load_config(ros).jaw_width_m == 0.06
    bad = tmp_path / 'bad.yaml'
    bad.write_text('jaw_width: 0.05\n')
    with pytest.raises(ValueError, match='unknown setting.*jaw_width'):
        load_config(bad)
    bad.write_text('jaw_width_m: -1\n')
    with pytest.raises(ValueError,
                       match=r'jaw_width_m: must be a number in \(0.0, 1.0\], got -1.0'):
        load_config(bad)
    bad.write_text('n_grasps: many\n')
    with pytest.raises(ValueError, match='n_grasps must be int'):
        load_config(bad)


def test_the_label_cli_does_not_import_torch():
    code = ('import sys, grasp_autolabel.cli, grasp_autolabel.jobs.label, '
            "grasp_autolabel.jobs.eval_labels; sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, '-c', code], timeout=60).returncode == 0


def test_every_setting_has_a_description_and_a_range_that_the_node_declares():
    """AnnotateConfig is the one source.

    Each setting's description and range are the autolabel node's parameter descriptor; values just
    outside the range are refused, naming the setting.
    """
    from dataclasses import fields

    pytest.importorskip('rclpy')
    from grasp_autolabel.ros.autolabel_node import PARAMS

    declared = {p.name: p for p in PARAMS}
    for f in fields(AnnotateConfig):
        doc, lo, hi = AnnotateConfig.describe(f.name)
        assert len(doc) > 15 and lo < hi
        p = declared[f.name]
        assert (p.description, p.min, p.max, p.default) == (doc, lo, hi, f.default)
        step = 1 if isinstance(f.default, int) else 1e-6 * max(1.0, abs(hi))
        with pytest.raises(ValueError, match=f'^{f.name}: must be'):
            AnnotateConfig(**{f.name: type(f.default)(hi + step) if isinstance(
                f.default, int) else hi + step})
        below = lo - step if isinstance(f.default, int) or not f.metadata['low_open'] else lo
        with pytest.raises(ValueError, match=f'^{f.name}: must be'):
            AnnotateConfig(**{f.name: below})


def test_every_reason_and_no_other_is_in_the_docs_table():
    from grasp_autolabel.annotate import Reason

    text = (Path(__file__).resolve().parents[2] / 'docs' / 'annotation.md').read_text()
    table = text[text.index('| reason | when |'):]
    table = table[:table.index('\n\n')]
    rows = [re.findall(r'`([a-z_]+)`', line.split('|')[1]) for line in table.splitlines()[2:]]
    named = [name for row in rows for name in row]
    assert sorted(named) == sorted(Reason), set(named) ^ set(Reason)
    assert all(Reason(n).description for n in named)
    with pytest.raises(ValueError):
        Reason('camara_moved')  # a misspelt reason read from a file is refused


class _Tracing:
    """A Step that records which fields a stage reads and writes."""

    def __init__(self, real):
        object.__setattr__(self, '_real', real)
        object.__setattr__(self, 'reads', set())
        object.__setattr__(self, 'writes', set())

    def __getattr__(self, name):
        if name not in self.writes:  # reading back what the stage itself wrote is not an input
            self.reads.add(name)
        return getattr(self._real, name)

    def __setattr__(self, name, value):
        self.writes.add(name)
        setattr(self._real, name, value)


def test_each_stage_reads_and_writes_only_what_it_declares_after_it_is_written():
    from grasp_autolabel.annotate.stages import STAGES
    from grasp_autolabel.annotate.step import INPUTS, start

    seen = set()
    for seed, fault in [(s, None) for s in range(6)] + [(1, 'double_removal'), (2, 'arm_in_view'),
                                                        (3, 'camera_moved')]:
        cell = SimCell(CellConfig(width=320, height=240), seed=seed)
        rgb0, d0 = cell.frame()
        cell.pick(fault)
        rgb1, d1 = cell.frame()
        s = np.float32(cell.config.sensor.depth_scale)
        step = _Tracing(start(d0 * s, d1 * s, cell.intrinsics, AnnotateConfig(), rgb0, rgb1))
        written = set(INPUTS)
        for stage in STAGES:
            step.reads.clear()
            step.writes.clear()
            reason = stage(step)
            reads, spec = step.reads - {'info'}, stage.spec
            assert reads <= spec.reads, (stage.__name__, reads - spec.reads)
            assert step.writes <= spec.writes, (stage.__name__, step.writes - spec.writes)
            assert reads <= written, (stage.__name__, reads - written)
            assert reason is None or reason in spec.rejects, (stage.__name__, reason)
            written |= step.writes
            seen.add((stage.__name__, reason))
            if reason is not None:
                break
    assert ('place_grasps', None) in seen  # accepted picks ran every stage
    assert {r for _, r in seen if r} >= {Reason.CAMERA_MOVED, Reason.NEW_OBJECT_IN_VIEW}, seen
