"""inference_node's interfaces for a motion planner, in real processes over DDS (issue 22).

With a mounting: ~/sample_grasp_poses (MoveIt Task Constructor's DeepGraspPose action) answers
with candidates in base_frame sorted by cost, each the camera-frame pose transformed by the
mounting; ~/grasp_poses in base_frame; the mounting on /tf_static; ~/load_model refuses a path
outside model_dir, through a symlink, and a directory that is not a run while the old model keeps
serving; a goal with no model aborts with the reason; a mounting that is not a rigid transform
stops the node at start-up with one line.
"""
import os
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
pytest.importorskip('torch')
pytest.importorskip('onnxruntime')
from geometry_msgs.msg import PoseArray, PoseStamped  # noqa: E402, I100
from grasp_autolabel.core.mounting import Mounting, quaternion_to_matrix  # noqa: E402
from grasp_autolabel.ros.cell_client import CellClient  # noqa: E402
from grasp_autolabel_msgs.action import SampleGraspPoses  # noqa: E402
from grasp_autolabel_msgs.msg import GraspRect  # noqa: E402
from grasp_autolabel_msgs.srv import ExecuteGrasp, LoadModel  # noqa: E402
from rclpy.action import ActionClient  # noqa: E402
from ros_helpers import node_status, NodeProcess  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

W, H = 160, 120
TRANSLATION, ROTATION = [0.9, 0.1, 1.9], [0.9961947, 0.0, 0.0, 0.0871557]  # looking down, 10 deg
MOUNTING = ['-p', 'base_frame:=base_link', '-p', f'mounting_translation:={TRANSLATION}', '-p',
            f'mounting_rotation:={ROTATION}']


def _camera(tmp_path, *extra):
    return NodeProcess('sim_camera_node', '-r', '__node:=camera', '-r', '__ns:=/camera', '-p',
                       f'width:={W}', '-p', f'height:={H}', '-p', 'fps:=10.0', '-p', 'logs:=5',
                       *extra, log_dir=tmp_path)


def _inference(tmp_path, *extra):
    return NodeProcess('inference_node', '-p', 'diagnostics_period_s:=0.3', *extra,
                       log_dir=tmp_path)


def _values(client) -> dict:
    status = node_status(client.diagnostics, 'inference_node')
    return {kv.key: kv.value for kv in status.values} if status else {}


def _goal(client, action, timeout_s=5.0):
    """Send one goal; return ``(status, result, [feedback])``."""
    feedback = []
    future = action.send_goal_async(SampleGraspPoses.Goal(action_name='test'),
                                    feedback_callback=lambda f: feedback.append(f.feedback))
    assert client.spin_until(future.done, 10)
    handle = future.result()
    assert handle.accepted
    result = handle.get_result_async()
    assert client.spin_until(result.done, timeout_s + 10)
    return result.result().status, result.result().result, feedback


def test_action_pose_array_and_tf_in_the_robots_frame(rclpy_context, tmp_path, tiny_models):
    camera = _camera(tmp_path, *MOUNTING)
    node = _inference(tmp_path, '-p', f"model_path:={tiny_models['onnx']}", *MOUNTING)
    procs = [camera, node]
    c = CellClient(procs, timeout_s=20.0, name='planner', context=rclpy_context)
    poses = c.listen(PoseArray, '/inference_node/grasp_poses')
    tf_msgs = None
    try:
        from grasp_autolabel.ros.robot_frame import TF_STATIC_QOS
        from tf2_msgs.msg import TFMessage
        tf_msgs = c.listen(TFMessage, '/tf_static', TF_STATIC_QOS)
    except ImportError:
        pass
    action = ActionClient(c.node, SampleGraspPoses, '/inference_node/sample_grasp_poses')
    mounting = Mounting.from_values('base_link', 'camera_color_optical_frame', TRANSLATION,
                                    ROTATION)
    try:
        assert action.wait_for_server(timeout_sec=30), node.output()
        fb = None
        for _ in range(20):  # a tiny model: wait for a frame with candidates
            status, result, feedback = _goal(c, action)
            if feedback and feedback[-1].grasp_candidates:
                fb = feedback[-1]
                break
        assert fb is not None, node.tail()
        assert status == 4 and 'candidates for the frame' in result.grasp_state  # SUCCEEDED
        costs = list(fb.costs)
        assert costs == sorted(costs) and len(costs) == len(fb.grasp_candidates) == len(
            fb.grasps.grasps)
        for pose, g in zip(fb.grasp_candidates, fb.grasps.grasps):
            assert pose.header.frame_id == 'base_link' == g.grasp_pose.header.frame_id
            assert pose == g.grasp_pose and g.pose_valid
            cam = g.pose
            expected = mounting.points_to_base([[cam.position.x, cam.position.y,
                                                 cam.position.z]])[0]
            got = [pose.pose.position.x, pose.pose.position.y, pose.pose.position.z]
            assert np.allclose(got, expected, atol=1e-6)
            q = cam.orientation
            r_cam = quaternion_to_matrix([q.x, q.y, q.z, q.w])
            q = pose.pose.orientation
            assert np.allclose(quaternion_to_matrix([q.x, q.y, q.z, q.w]),
                               mounting.rotation @ r_cam, atol=1e-6)
            a = g.pre_grasp_approach
            assert a.direction.header.frame_id == 'base_link' and a.desired_distance == \
                pytest.approx(0.10)
            assert np.allclose([a.direction.vector.x, a.direction.vector.y,
                                a.direction.vector.z], mounting.rotation @ r_cam[:, 2],
                               atol=1e-6)
            assert g.post_grasp_retreat.desired_distance == pytest.approx(0.15)
            assert 0 < g.opening_m <= 0.35
        # the simulated robot refuses what it cannot do, naming it, and nothing moves
        for request, words in ((ExecuteGrasp.Request(rect=GraspRect(x=-50.0, y=10.0, w=20.0,
                                                                    h=10.0), opening_m=0.1),
                                'outside the 160x120 image'),
                               (ExecuteGrasp.Request(pose=PoseStamped(header=Header(
                                   frame_id='map')), opening_m=0.1), "pose in frame 'map'"),
                               (ExecuteGrasp.Request(pose=fb.grasp_candidates[0],
                                                     opening_m=float('nan')), 'opening_m = nan')):
            r = c.call('/camera/camera/execute_grasp', ExecuteGrasp, request)
            assert not r.success and r.outcome == 'refused' and words in r.message, r.message
            assert r.logs_left == 5
        # a later goal gets a later frame: never grasps from before the goal
        _, _, later = _goal(c, action)
        assert later and later[-1].grasps.header.stamp != fb.grasps.header.stamp
        assert c.spin_until(lambda: poses and poses[-1].poses, 20)
        assert poses[-1].header.frame_id == 'base_link'
        if tf_msgs is not None:
            assert c.spin_until(lambda: tf_msgs, 10), 'no /tf_static'
            t = tf_msgs[-1].transforms[0]
            frames = (t.header.frame_id, t.child_frame_id)
            assert frames == ('base_link', 'camera_color_optical_frame')
            assert [t.transform.translation.x, t.transform.translation.y,
                    t.transform.translation.z] == pytest.approx(TRANSLATION)
    finally:
        action.destroy()
        c.close()
        for p in procs:
            assert p.stop() in (0, -2), p.output()


def test_load_model_refuses_what_lies_outside_model_dir(rclpy_context, tmp_path, tiny_models):
    models = tiny_models['onnx'].parent
    outside = tmp_path / 'outside'
    outside.mkdir()
    (outside / 'evil.onnx').write_bytes(tiny_models['onnx'].read_bytes())
    link = models / f'link-{os.getpid()}-{time.monotonic_ns()}.onnx'
    os.symlink(outside / 'evil.onnx', link)
    camera = _camera(tmp_path)
    node = _inference(tmp_path, '-p', f"model_path:={tiny_models['onnx']}")
    procs = [camera, node]
    c = CellClient(procs, timeout_s=20.0, name='planner', context=rclpy_context)
    try:
        for path, words in ((outside / 'evil.onnx', 'outside model_dir'),
                            (link, 'resolves to'),
                            (models / 'ds', 'not a training run'),
                            (models / 'sim', 'not a training run')):
            r = c.call('/inference_node/load_model', LoadModel,
                       LoadModel.Request(model_path=str(path)), idempotent=True)
            assert not r.success and 'refused' in r.message and words in r.message, r.message
            assert r.model_id == 'grasp-map-rgbd-step4'
        # the old model keeps serving
        from grasp_autolabel_msgs.msg import GraspRectArray

        grasps = c.listen(GraspRectArray, '/inference_node/grasps')
        assert c.spin_until(lambda: len(grasps) >= 2, 30), node.tail()
        assert grasps[-1].model_id == 'grasp-map-rgbd-step4'
        assert c.spin_until(lambda: _values(c).get('model_refused') == '4', 10), _values(c)
    finally:
        link.unlink()
        c.close()
        for p in procs:
            assert p.stop() in (0, -2), p.output()


def test_a_goal_without_a_model_or_a_frame_aborts_with_the_reason(rclpy_context, tmp_path,
                                                                  tiny_models):
    node = _inference(tmp_path, '-p', 'model_path:=none', '-p', 'color_topic:=/none/color', '-p',
                      f"model_dir:={tiny_models['onnx'].parent}", '-p', 'action_timeout_s:=1.0')
    c = CellClient([node], timeout_s=20.0, name='planner', context=rclpy_context)
    action = ActionClient(c.node, SampleGraspPoses, '/inference_node/sample_grasp_poses')
    try:
        assert action.wait_for_server(timeout_sec=30), node.output()
        status, result, feedback = _goal(c, action)
        assert status == 6 and 'no model loaded' in result.grasp_state and not feedback  # ABORTED
        r = c.call('/inference_node/load_model', LoadModel,
                   LoadModel.Request(model_path=tiny_models['onnx'].name), idempotent=True)
        assert r.success, r.message
        status, result, feedback = _goal(c, action)
        assert status == 6 and not feedback
        assert result.grasp_state == 'no camera frame arrived on /none/color within 1 s'
        assert node.alive()
    finally:
        action.destroy()
        c.close()
        assert node.stop() in (0, -2), node.output()


@pytest.mark.parametrize('rotation, words', [
    ('[0.0, 0.0, 0.0, 0.0]', 'zero quaternion'),
    ('[1.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 1.0]', 'not orthonormal'),
    ('[.nan, 0.0, 0.0, 1.0]', 'not finite'),
])
def test_a_mounting_that_is_not_rigid_stops_the_node_in_one_line(tmp_path, rotation, words):
    node = _inference(tmp_path, '-p', 'base_frame:=base_link', '-p',
                      f'mounting_rotation:={rotation}')
    assert node.proc.wait(timeout=60) == 2
    out = node.output().strip()
    assert words in out and 'mounting_rotation' in out and 'Traceback' not in out, out
