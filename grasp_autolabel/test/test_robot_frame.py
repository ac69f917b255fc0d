"""The camera's mounting, grasp poses in the robot's frame, the simulated robot, model paths.

No ROS needed (issue 22): poses in base_frame are the camera-frame poses transformed by the
mounting (a property test over random mountings); a mounting that is not a rigid transform is
refused naming the value; the simulated robot holds a grasp across a free log and misses for
each physical cause; only models inside model_dir load.
"""
import math
import os

from grasp_autolabel.core.camera import CameraIntrinsics, grasp_poses
from grasp_autolabel.core.mounting import (matrix_to_quaternion, Mounting, MountingError,
                                           pick_geometry, quaternion_to_matrix)
from grasp_autolabel.detector.model_files import allowed_model_path, ModelPathError
from grasp_autolabel.sim.cell import CellConfig, SimCell
from grasp_autolabel.sim.robot import Gripper, judge_grasp
from grasp_autolabel.sim.scene import Log, Pile
from hypothesis import given, strategies as st
import numpy as np
import pytest

INTR = CameraIntrinsics(640, 480, fx=615.0, fy=615.0, cx=319.5, cy=239.5)
DOWN = [1.0, 0.0, 0.0, 0.0]  # the optical axis along base -z


def _unit_quaternion(v):
    q = np.asarray(v, dtype=np.float64)
    return q / np.linalg.norm(q)


quaternions = st.lists(st.floats(-1, 1), min_size=4, max_size=4).filter(
    lambda v: np.linalg.norm(v) > 0.1).map(_unit_quaternion)
translations = st.lists(st.floats(-3, 3), min_size=3, max_size=3)
grasp_sets = st.lists(st.tuples(st.floats(20, 620), st.floats(20, 460),
                                st.floats(-math.pi / 2, math.pi / 2 - 1e-6), st.floats(5, 120),
                                st.floats(5, 60), st.floats(0.5, 3.0)), min_size=1, max_size=6)


@given(quaternions, translations, grasp_sets, st.floats(0.0, 1.0))
def test_base_frame_pose_is_the_camera_pose_transformed_by_the_mounting(q, t, grasps, ratio):
    mounting = Mounting.from_values('base_link', 'cam', t, q)
    g = np.array([row[:5] for row in grasps])
    poses = grasp_poses(g, [row[5] for row in grasps], INTR)
    geo = pick_geometry(mounting, [p.position for p in poses], [p.orientation for p in poses],
                        [p.opening_m for p in poses], tcp_depth_ratio=ratio, stroke_m=10.0)
    r = quaternion_to_matrix(q)
    for i, p in enumerate(poses):
        cam_rot = quaternion_to_matrix(geo.orientations_camera[i])
        # the TCP lies ratio x opening beyond the surface along the line of sight
        sight = p.position / np.linalg.norm(p.position)
        expected_cam = p.position + sight * ratio * p.opening_m
        np.testing.assert_allclose(geo.camera_positions[i], expected_cam, atol=1e-9)
        np.testing.assert_allclose(geo.positions[i], r @ expected_cam + np.asarray(t),
                                   atol=1e-9)
        np.testing.assert_allclose(quaternion_to_matrix(geo.orientations[i]), r @ cam_rot,
                                   atol=1e-9)
        np.testing.assert_allclose(geo.approach[i], r @ cam_rot[:, 2], atol=1e-9)
    assert geo.offered.all()


@given(quaternions)
def test_quaternion_and_matrix_round_trip(q):
    m = quaternion_to_matrix(q)
    np.testing.assert_allclose(m.T @ m, np.eye(3), atol=1e-12)
    back = matrix_to_quaternion(m)
    assert np.allclose(back, q, atol=1e-9) or np.allclose(back, -q, atol=1e-9)


def test_a_matrix_and_a_quaternion_give_the_same_mounting():
    r = quaternion_to_matrix(_unit_quaternion([0.2, -0.9, 0.1, 0.3]))
    a = Mounting.from_values('b', 'c', [1, 2, 3], r.reshape(-1))
    b = Mounting.from_values('b', 'c', [1, 2, 3], matrix_to_quaternion(r))
    np.testing.assert_allclose(a.rotation, b.rotation, atol=1e-12)
    np.testing.assert_allclose(a.points_to_base([[0.0, 0.0, 1.0]]), [r[:, 2] + [1, 2, 3]])


@pytest.mark.parametrize('translation, rotation, words', [
    ([0, 0, float('nan')], DOWN, 'translation'),
    ([0, 0], DOWN, '3 finite numbers'),
    ([0, 0, 1], [0, 0, 0, 0], 'zero quaternion'),
    ([0, 0, 1], [0, 0, 0, 2], 'length 2.0000, not 1'),
    ([0, 0, 1], [0, 0, float('inf'), 1], 'not finite'),
    ([0, 0, 1], [1, 0, 0, 0, 1, 0, 0, 0, 1.1], 'not orthonormal'),
    ([0, 0, 1], [1, 0, 0, 0, 1, 0, 0, 0, -1], 'reflection'),
    ([0, 0, 1], [1, 0, 0], 'expected a quaternion'),
])
def test_a_mounting_that_is_not_rigid_is_refused_naming_it(translation, rotation, words):
    with pytest.raises(MountingError, match='mounting') as info:
        Mounting.from_values('base_link', 'cam', translation, rotation)
    assert words in str(info.value) and '\n' not in str(info.value)


def test_grasps_wider_than_the_stroke_are_not_offered():
    poses = grasp_poses(np.array([[320, 240, 0.0, 40, 20], [320, 240, 0.0, 200, 20]]), [1.0, 1.0],
                        INTR)
    geo = pick_geometry(Mounting.identity('cam'), [p.position for p in poses],
                        [p.orientation for p in poses], [p.opening_m for p in poses],
                        tcp_depth_ratio=0.0, stroke_m=0.2)
    assert [p.opening_m < 0.2 for p in poses] == [True, False]
    assert geo.offered.tolist() == [True, False]


# ------------------------------------------------------------------ the simulated robot
def _log(i, centre, yaw=0.0, radius=0.08, length=1.0):
    return Log(i, np.array(centre, float), np.array([math.cos(yaw), math.sin(yaw), 0.0]), radius,
               length)


DOWN_A = np.array([0.0, 0.0, -1.0])
ACROSS = np.array([0.0, 1.0, 0.0])  # closing across a log lying along x


@pytest.mark.parametrize('tcp, closing, opening, outcome', [
    ([0.0, 0.0, 0.08], ACROSS, 0.21, 'held'),
    ([0.0, 0.0, 0.08], [1.0, 0.0, 0.0], 0.21, 'not_across'),
    ([0.0, 0.0, 0.08], ACROSS, 0.15, 'too_narrow'),
    ([0.0, 0.05, 0.08], ACROSS, 0.21, 'off_centre'),
    ([0.0, 0.0, 0.16], ACROSS, 0.21, 'too_shallow'),
    ([0.0, 0.0, 0.08], ACROSS, 0.40, 'beyond_stroke'),
    ([0.49, 0.0, 0.08], ACROSS, 0.21, 'past_end'),
    ([0.0, 0.8, 0.08], ACROSS, 0.21, 'no_log'),
])
def test_the_simulated_robot_judges_a_grasp_by_its_physics(tcp, closing, opening, outcome):
    pile = Pile({1: _log(1, [0, 0, 0.08])}, {1: set()})
    verdict = judge_grasp(pile, tcp, DOWN_A, closing, opening, Gripper(stroke_m=0.35))
    assert verdict.outcome == outcome, verdict.message
    assert verdict.log_id == (-1 if outcome == 'no_log' else 1)


def test_a_log_with_another_on_it_is_not_free_and_a_higher_neighbour_blocks_a_finger():
    under = _log(1, [0, 0, 0.08])
    on_top = _log(2, [0, 0, 0.24], yaw=math.pi / 2)
    pile = Pile({1: under, 2: on_top}, {1: set(), 2: {1}})
    assert judge_grasp(pile, [0.3, 0, 0.08], DOWN_A, ACROSS, 0.21).outcome == 'not_free'
    # a log beside the grasped one, lying higher (on a third), stands where a finger goes
    beside = _log(3, [0.0, 0.17, 0.2])
    pile = Pile({1: under, 3: beside}, {1: set(), 3: set()})
    assert judge_grasp(pile, [0, 0, 0.08], DOWN_A, ACROSS, 0.21).outcome == 'jaw_collision'
    # the same neighbour at the grasped log's level rolls aside
    level = _log(3, [0.0, 0.17, 0.08])
    pile = Pile({1: under, 3: level}, {1: set(), 3: set()})
    assert judge_grasp(pile, [0, 0, 0.08], DOWN_A, ACROSS, 0.21).held


def test_robot_pick_removes_a_held_log_and_leaves_a_missed_one_nudged():
    pose = ((0.9, 0.0, 1.9), quaternion_to_matrix(DOWN))
    cell = SimCell(CellConfig(camera_pose=pose, n_logs=(5, 5)), seed=3)
    # the pile lies under the camera: where the optical axis meets the ground
    centre = np.mean([g.centre for g in cell.pile.logs.values()], axis=0)
    assert abs(centre[0] - 0.9) < 0.5 and abs(centre[1]) < 0.5
    free = cell.pile.graspable()
    log = cell.pile.logs[free[0]]
    closing = np.cross(DOWN_A, log.axis)
    opening = 1.3 * 2 * log.radius
    step, verdict = cell.robot_pick(log.centre + [0.3, 0, 0], DOWN_A, closing, opening)
    before = {i: g.centre.copy() for i, g in cell.pile.logs.items()}
    if verdict.log_id >= 0:
        assert not verdict.held and step.removed == [] and step.fault == 'failed_pick'
    step, verdict = cell.robot_pick(log.centre, DOWN_A, closing, opening)
    assert verdict.held, verdict.message
    assert step.removed == [log.id] and log.id not in cell.pile.logs and step.fault is None
    assert len(cell.pile.logs) == 4 and set(before) - set(cell.pile.logs) == {log.id}


def test_ideal_grasps_on_the_highest_free_log_clear_simulated_piles():
    pose = ((0.9, 0.0, 1.9), quaternion_to_matrix(DOWN))
    held = tried = 0
    for seed in range(3):
        cell = SimCell(CellConfig(camera_pose=pose), seed=seed)
        a = cell.camera.rotation[:, 2]
        missed = set()
        while not cell.done and tried < 60:
            # the highest free log not missed since the last pick that held
            free = [k for k in cell.pile.graspable() if k not in missed] or cell.pile.graspable()
            log = cell.pile.logs[max(free, key=lambda k: cell.pile.logs[k].centre[2])]
            c = np.cross(a, log.axis)
            _, verdict = cell.robot_pick(log.centre, a, c, 2.6 * log.radius)
            tried += 1
            held += verdict.held
            missed = set() if verdict.held else missed | {log.id}
        assert cell.done
    assert held >= 0.95 * tried and tried >= 24


# ------------------------------------------------------------------ model paths
@pytest.fixture
def model_dir(tmp_path):
    models = tmp_path / 'models'
    (models / 'run' / 'checkpoints').mkdir(parents=True)
    (models / 'run' / 'checkpoints' / 'best.pt').write_bytes(b'x')
    (models / 'm.onnx').write_bytes(b'x')
    (tmp_path / 'outside.onnx').write_bytes(b'x')
    return models


def test_models_inside_model_dir_load_by_relative_or_absolute_path(model_dir):
    assert allowed_model_path('run', model_dir) == (model_dir / 'run').resolve()
    assert allowed_model_path(str(model_dir / 'run' / 'checkpoints' / 'best.pt'),
                              model_dir).name == 'best.pt'


@pytest.mark.parametrize('make, words', [
    (lambda d: str(d.parent / 'outside.onnx'), 'outside model_dir'),
    (lambda d: str(d / '..' / 'outside.onnx'), 'outside model_dir'),
    (lambda d: (os.symlink(d.parent / 'outside.onnx', d / 'link.onnx'), 'link.onnx')[1],
     'resolves to'),
    (lambda d: (d / 'empty').mkdir() or 'empty', 'not a training run'),
    (lambda d: (d / 'notes.txt').write_text('x') and 'notes.txt', 'not a model'),
    (lambda d: 'missing.onnx', 'no such model'),
])
def test_paths_outside_model_dir_and_non_models_are_refused(model_dir, make, words):
    with pytest.raises(ModelPathError, match=words):
        allowed_model_path(make(model_dir), model_dir)


def test_an_onnx_model_whose_external_data_lies_outside_its_folder_is_refused(model_dir):
    onnx = pytest.importorskip('onnx')
    from onnx import helper, TensorProto

    tensor = helper.make_tensor('w', TensorProto.FLOAT, [1], [1.0])
    tensor.data_location = TensorProto.EXTERNAL
    del tensor.float_data[:]
    entry = tensor.external_data.add()
    entry.key, entry.value = 'location', '../../etc/passwd'
    graph = helper.make_graph([helper.make_node('Identity', ['w'], ['y'])], 'g', [],
                              [helper.make_tensor_value_info('y', TensorProto.FLOAT, [1])],
                              initializer=[tensor])
    path = model_dir / 'external.onnx'
    path.write_bytes(helper.make_model(graph).SerializeToString())
    with pytest.raises(ModelPathError, match="outside the model's folder"):
        allowed_model_path('external.onnx', model_dir)
    assert onnx is not None
