"""The simulated cell: physics of the pile, exact ray casting, sensor model, ground truth."""
import hashlib
import json
import math
from pathlib import Path
import subprocess
import sys

from grasp_autolabel.core.camera import CameraIntrinsics
from grasp_autolabel.core.session import read_png, Session
from grasp_autolabel.jobs.simulate import simulate
from grasp_autolabel.sim import CellConfig, FAULT_KINDS, SimCell
from grasp_autolabel.sim.render import Camera, look_at, render
from grasp_autolabel.sim.scene import build_pile, Log
import numpy as np
import pytest

SMALL = CellConfig(width=320, height=240)


# ---------------------------------------------------------------- ray casting
def test_depth_of_a_single_log_from_above_matches_the_analytic_distance():
    H, r, L = 2.0, 0.1, 1.0
    intr = CameraIntrinsics(320, 240, fx=300.0, fy=300.0, cx=159.5, cy=119.5)
    cam = Camera(intr, np.array([0.0, 0.0, H]), look_at([0.0, 0.0, H], [0.0, 0.0, 0.0]))
    log = Log(1, np.array([0.0, 0.0, r]), np.array([1.0, 0.0, 0.0]), r, L)
    out = render(cam, [log])
    u, v = np.meshgrid(np.arange(320), np.arange(240))
    xn, yn = (u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy
    # world ray (xn, -yn, -1) t from (0, 0, H); the side surface: y^2 + (z - r)^2 = r^2
    a = yn**2 + 1
    b = -2 * (H - r)
    c = (H - r) ** 2 - r**2
    disc = b * b - 4 * a * c
    t_side = (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a)
    on_side = (disc > 0) & (np.abs(xn * t_side) <= L / 2)
    is_log = out.instances == 1
    inner = on_side & (np.abs(np.abs(xn * t_side) - L / 2) > 0.01)  # away from the end faces
    assert inner.sum() > 1000
    assert np.all(is_log[inner])
    np.testing.assert_allclose(out.depth[inner], t_side[inner], atol=1e-9)
    # straight below the camera the depth is to the top of the log: H - 2r (pixel centres sit
    # half a pixel off the optical axis here, hence the tolerance)
    assert out.depth[is_log].min() == pytest.approx(H - 2 * r, abs=1e-4)
    # the ground around it is at the camera height (plane z = 0 seen along the optical axis: z = H)
    assert out.depth[5, 5] == pytest.approx(H, abs=1e-9)
    assert out.instances[5, 5] == 0


def test_end_faces_and_occlusion_order():
    H = 2.0
    intr = CameraIntrinsics(200, 200, fx=200.0, fy=200.0, cx=99.5, cy=99.5)
    cam = Camera(intr, np.array([0.0, 0.0, H]), look_at([0.0, 0.0, H], [0.0, 0.0, 0.0]))
    upright = Log(1, np.array([0.0, 0.0, 0.3]), np.array([0.0, 0.0, 1.0]), 0.1, 0.6)  # end face up
    low = Log(2, np.array([0.0, 0.0, 0.05]), np.array([1.0, 0.0, 0.0]), 0.05, 1.5)  # under it
    out = render(cam, [low, upright])
    assert out.instances[100, 100] == 1
    assert out.depth[100, 100] == pytest.approx(H - 0.6, abs=1e-9)  # the upper end face
    assert out.instances[100, 40] == 2  # the long log shows beside it


# ---------------------------------------------------------------- pile physics
@pytest.mark.parametrize('seed', range(5))
def test_piles_rest_above_ground_and_supports_are_consistent(seed):
    rng = np.random.default_rng(seed)
    pile = build_pile(rng, 14)
    for log in pile.logs.values():
        ends = log.ends
        assert np.all(ends[:, 2] >= log.radius - 1e-6), 'a log sinks into the ground'
        assert 0.04 <= log.radius <= 0.12 and 0.5 <= log.length <= 1.5
        assert abs(np.linalg.norm(log.axis) - 1) < 1e-9
        # a log rests on logs it touches
        for s in pile.supports[log.id]:
            assert s in pile.touching(log.id, gap=0.01)
    heights = [g.centre[2] + g.radius for g in pile.logs.values()]
    assert max(heights) < 0.8, 'piles are a few layers high, not towers'
    for g in pile.graspable():
        assert not pile.resting_on(g)


def test_each_clean_pick_removes_one_graspable_log_until_the_pile_is_empty():
    cell = SimCell(SMALL, seed=3)
    n = len(cell.pile.logs)
    for k in range(n):
        graspable = cell.pile.graspable()
        step = cell.pick(None)
        assert step.step == k and step.fault is None
        assert len(step.removed) == 1 and step.removed[0] in graspable
    assert cell.done
    with pytest.raises(RuntimeError, match='no logs left'):
        cell.pick(None)


@pytest.mark.parametrize('fault', FAULT_KINDS)
def test_fault_steps(fault):
    cell = SimCell(SMALL, seed=11)
    before_rgb, before_depth = cell.frame()
    before = cell.clean()
    pile_before = cell.pile
    step = cell.pick(fault)
    after = cell.clean()
    assert step.fault == fault
    if fault == 'failed_pick':
        assert step.removed == [] and not step.mask.any()
    elif fault == 'double_removal':
        assert len(step.removed) == 2
    elif fault == 'many_removed':
        assert 3 <= len(step.removed) <= 6 and len(set(step.removed)) == len(step.removed)
        assert set(step.removed).isdisjoint(cell.pile.logs)
        # nothing left behind rested on a log that went (the operator cleared top down)
        for log_id in step.removed:
            assert pile_before.resting_on(log_id) <= set(step.removed)
    else:
        assert len(step.removed) == 1
    if fault == 'camera_moved':
        # the whole view shifts: the ground far from the pile changes depth or position
        changed = np.abs(after.depth - before.depth) > 0.005
        assert changed.mean() > 0.3
    if fault == 'arm_in_view':
        assert np.any(after.instances == 255)
        nxt = cell.pick(None)
        assert nxt.fault == 'arm_in_previous'
        assert not np.any(cell.clean().instances == 255)


def test_unknown_fault_is_refused():
    with pytest.raises(ValueError, match='fault: expected one of'):
        SimCell(SMALL, seed=0).pick('earthquake')


def test_config_validation():
    with pytest.raises(ValueError, match='n_logs'):
        CellConfig(n_logs=(5, 3))
    with pytest.raises(ValueError, match='fault_rate'):
        CellConfig(fault_rate=2.0)
    with pytest.raises(ValueError, match='width/height'):
        CellConfig(width=10, height=10)


# ---------------------------------------------------------------- sensor model
def test_sensor_depth_noise_grows_with_z_squared_and_is_quantised():
    cell = SimCell(SMALL, seed=0)
    s = cell.config.sensor
    rng = np.random.default_rng(0)
    flat1 = np.full((240, 320), 1.0)
    flat2 = np.full((240, 320), 2.0)
    d1 = s.depth(flat1, 300.0, rng)
    d2 = s.depth(flat2, 300.0, rng)
    assert d1.dtype == np.uint16
    e1 = d1[d1 > 0].astype(float) / 1000 - 1.0
    e2 = d2[d2 > 0].astype(float) / 1000 - 2.0
    assert abs(e1.mean()) < 0.001 and abs(e2.mean()) < 0.002
    ratio = e2.std() / e1.std()
    assert 3.0 < ratio < 5.0  # sigma ~ z^2: 4x from 1 m to 2 m (quantisation blurs it a little)
    assert 0.001 < (d1 == 0).mean() < 0.05  # random dropouts, not more


def test_occlusion_band_is_on_the_left_of_near_objects():
    s = CellConfig().sensor
    z = np.full((50, 100), 2.0)
    z[:, 50:] = 1.5  # a near object on the right half
    d = s.depth(z, 615.0, np.random.default_rng(1))
    band = 615 * 0.05 * (1 / 1.5 - 1 / 2.0)  # 5.1 px
    left = d[:, 50 - int(band) + 1:50]
    assert (left == 0).mean() > 0.95
    assert (d[:, 60:] == 0).mean() < 0.1


# ---------------------------------------------------------------- sessions and ground truth
@pytest.fixture(scope='module')
def sessions(tmp_path_factory):
    out = tmp_path_factory.mktemp('sim')
    paths = simulate(out, sequences=2, seed=5,
                     config=CellConfig(width=320, height=240, fault_rate=0.3), progress=False)
    return out, paths


def test_session_layout_and_truth_files(sessions):
    _, paths = sessions
    for path in paths:
        s = Session.open(path)
        assert s.intrinsics.width == 320 and s.depth_scale == 0.001
        steps = json.loads((path / 'gt' / 'sequence.json').read_text())['steps']
        assert len(s.frames) == len(steps) + 1
        for k in s.frames[:-1]:
            assert (path / 'gt' / f'{k:06d}.json').is_file()
            assert (path / 'gt' / 'masks' / f'{k:06d}.png').is_file()
        for k in s.frames:
            truth = json.loads((path / 'gt' / 'frames' / f'{k:06d}.json').read_text())
            assert all(set(t) >= {'id', 'axis_px', 'diameter_px',
                                  'graspable'} for t in truth['logs'])


def _clean_steps(paths):
    for path in paths:
        s = Session.open(path)
        for k in s.frames[:-1]:
            truth = json.loads((path / 'gt' / f'{k:06d}.json').read_text())
            if truth['fault'] is None:
                yield s, k, truth


def test_gt_mask_lies_where_depth_changed(sessions):
    _, paths = sessions
    checked = 0
    for s, k, truth in _clean_steps(paths):
        mask = read_png(s.path / 'gt' / 'masks' / f'{k:06d}.png', kind='mask') > 0
        d0, d1 = s.read_depth_m(k), s.read_depth_m(k + 1)
        valid = (d0 > 0) & (d1 > 0)
        grew = (d1 - d0) > 0.01  # the removed log leaves centimetres of change
        inside = mask & valid
        if inside.sum() < 50:
            continue
        assert grew[inside].mean() > 0.9, f'{s.path} step {k}: GT mask where depth did not change'
        # what changed by centimetres is the removed log (nudged neighbours change a little at
        # their edges)
        big = (np.abs(d1 - d0) > 0.05) & valid  # 5 sigma of the noise at 2.5 m
        assert mask[big].mean() > 0.8, f'{s.path} step {k}: large change outside the mask'
        assert big[~mask & valid].mean() < 0.03, f'{s.path} step {k}: change outside the mask'
        checked += 1
    assert checked >= 5


def test_projected_axis_lies_inside_the_mask(sessions):
    import cv2

    _, paths = sessions
    checked = 0
    for s, k, truth in _clean_steps(paths):
        mask = read_png(s.path / 'gt' / 'masks' / f'{k:06d}.png', kind='mask')
        mask = cv2.dilate(mask, np.ones((3, 3), np.uint8)) > 0
        instances = read_png(s.path / 'gt' / 'instances' / f'{k:06d}.png', kind='mask')
        for log in truth['removed_logs']:
            if not log['axis_visible_px']:
                continue
            a, b = np.array(log['axis_visible_px'])
            pts = a + np.linspace(0, 1, 50)[:, None] * (b - a)
            u, v = np.rint(pts).astype(int).T
            # on the log, or under another log lying across it; never over bare ground
            on_log = mask[v, u]
            assert on_log.mean() > 0.5
            assert np.all(on_log | (instances[v, u] != 0))
            assert log['diameter_px'] > 0
            checked += 1
    assert checked >= 5


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob('*') if p.is_file()):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def test_same_seed_gives_identical_files(tmp_path):
    cfg = CellConfig(width=160, height=120, n_logs=(5, 5), fault_rate=0.5)
    simulate(tmp_path / 'a', sequences=1, seed=42, config=cfg, progress=False)
    simulate(tmp_path / 'b', sequences=1, seed=42, config=cfg, progress=False)
    simulate(tmp_path / 'c', sequences=1, seed=43, config=cfg, progress=False)
    assert _tree_hash(tmp_path / 'a') == _tree_hash(tmp_path / 'b')
    assert _tree_hash(tmp_path / 'a') != _tree_hash(tmp_path / 'c')


def test_simulate_cli(tmp_path):
    cmd = [sys.executable, '-m', 'grasp_autolabel.cli', 'simulate', '--out', str(tmp_path),
           '--sequences', '2',
           '--logs', '4', '--width', '160', '--height', '120', '--faults', '--seed', '7']
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert 'wrote 2 sequence(s)' in out.stdout
    for seq in ('seq_000', 'seq_001'):
        frames = Session.open(tmp_path / seq).frames
        # 4 logs: 5 frames, one more for each failed pick, one less for a double removal
        assert frames == list(range(len(frames))) and 3 <= len(frames) <= 9
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2
    assert 'already exists' in again.stderr and 'Traceback' not in again.stderr
    bad = subprocess.run(cmd[:-2] + ['--width', '10'], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and 'width/height' in bad.stderr


def test_camera_tilt_keeps_the_pile_in_view():
    for seed in range(6):
        cell = SimCell(CellConfig(width=160, height=120, tilt_max_deg=20), seed=seed)
        # optical axis within 20 deg of straight down, and looking at the pile
        down = cell.camera.rotation[:, 2] @ np.array([0, 0, -1.0])
        assert down >= math.cos(math.radians(20)) - 1e-9
        assert (cell.clean().instances > 0).mean() > 0.05
