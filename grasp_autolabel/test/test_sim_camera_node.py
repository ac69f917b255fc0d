"""sim_camera_node over real DDS: realsense-style topics, ~/pick changes the scene."""
import json

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
from grasp_autolabel.ros.cell_client import CellClient  # noqa: E402, I100
from grasp_autolabel.ros.convert import (  # noqa: E402
    camera_info_to_intrinsics, image_to_numpy)
from grasp_autolabel.ros.qos import SENSOR  # noqa: E402
from grasp_autolabel.ros.sim_camera_node import GROUND_TRUTH_QOS  # noqa: E402
from ros_helpers import NodeProcess  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

NS = '/camera/camera'


@pytest.fixture
def sim_camera(tmp_path):
    node = NodeProcess('sim_camera_node', '-r', '__node:=camera', '-r', '__ns:=/camera',
                       '-p', 'width:=160', '-p', 'height:=120', '-p', 'fps:=20.0', '-p', 'logs:=5',
                       '-p', 'seed:=3', log_dir=tmp_path)
    yield node
    assert node.stop() in (0, -2), node.output()


def test_publishes_realsense_topics_and_pick_changes_the_scene(rclpy_context, sim_camera):
    with CellClient([sim_camera], timeout_s=20.0, name='sim_camera_test',
                    context=rclpy_context) as c:
        got = {'rgb': c.listen(Image, f'{NS}/color/image_raw', SENSOR),
               'depth': c.listen(Image, f'{NS}/aligned_depth_to_color/image_raw', SENSOR),
               'info': c.listen(CameraInfo, f'{NS}/color/camera_info', SENSOR),
               'depth_info': c.listen(CameraInfo, f'{NS}/aligned_depth_to_color/camera_info',
                                      SENSOR),
               'truth': c.listen(String, f'{NS}/ground_truth', GROUND_TRUTH_QOS)}
        streams = ('rgb', 'depth', 'info', 'depth_info')
        assert c.spin_until(lambda: all(len(got[k]) >= 3 for k in streams), 30), (
            f'no frames: {sim_camera.output()}')
        rgb, depth, info = got['rgb'][-1], got['depth'][-1], got['info'][-1]
        assert rgb.encoding == 'rgb8' and depth.encoding == '16UC1'
        assert rgb.header.frame_id == 'camera_color_optical_frame'
        assert rgb.header.stamp == depth.header.stamp  # aligned pairs share a stamp
        intr = camera_info_to_intrinsics(info)
        assert (intr.width, intr.height) == (160, 120) and intr.fx > 0
        before = image_to_numpy(depth).astype(np.float32)
        assert image_to_numpy(rgb).shape == (120, 160, 3)
        assert (before > 500).mean() > 0.9  # metres away, in millimetres

        reply = c.call(f'{NS}/pick')
        assert reply.success, reply.message
        assert c.spin_until(lambda: len(got['truth']) >= 1, 10)
        truth = json.loads(got['truth'][0].data)
        assert len(truth['removed']) == 1
        # frames published after the pick show the removed log gone: depth grew over its pixels
        n = len(got['depth'])
        assert c.spin_until(lambda: len(got['depth']) >= n + 3, 10)
    after = image_to_numpy(got['depth'][-1]).astype(np.float32)
    valid = (before > 0) & (after > 0)
    grew = (after - before > 20) & valid
    assert grew.sum() > 30, 'nothing in the scene changed after ~/pick'
    u, v = np.rint(np.mean(
        truth['removed_logs'][0]['axis_visible_px'] or truth['removed_logs'][0]['axis_px'],
        axis=0)).astype(int)
    window = grew[max(v - 4, 0):v + 5, max(u - 4, 0):u + 5]
    assert window.mean() > 0.5, 'the change is not where the ground truth says the log was'


def test_pick_on_an_empty_pile_fails_with_a_reason_and_reset_starts_over(rclpy_context,
                                                                         sim_camera):
    c = CellClient([sim_camera], timeout_s=20.0, name='sim_camera_test2', context=rclpy_context)
    try:
        for _ in range(5):
            assert c.call(f'{NS}/pick').success
        reply = c.call(f'{NS}/pick')
        assert not reply.success and 'empty' in reply.message
        reply = c.call(f'{NS}/reset')
        assert reply.success and 'new pile of 5 logs' in reply.message
        assert c.call(f'{NS}/pick').success
    finally:
        c.close()


def test_bad_parameter_exits_with_a_clear_message(tmp_path):
    node = NodeProcess('sim_camera_node', '-p', 'fps:=500.0', log_dir=tmp_path)
    node.proc.wait(timeout=30)
    out = node.output()
    assert node.proc.returncode != 0
    assert 'fps' in out and 'Traceback' not in out
    node.stop()
