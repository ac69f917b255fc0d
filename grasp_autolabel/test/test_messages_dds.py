"""GraspRect / GraspRectArray over real DDS between two processes."""
import math
import os
from pathlib import Path
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
pytest.importorskip('grasp_autolabel_msgs')
from grasp_autolabel.ros.messages import msg_to_grasps  # noqa: E402, I100
from grasp_autolabel_msgs.msg import GraspRectArray  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from dds_peer import expected_message, LATCHED  # noqa: E402, I100


@pytest.fixture
def peer():
    topic = f'/test_grasps_{os.getpid()}'
    proc = subprocess.Popen([sys.executable, str(Path(__file__).parent / 'dds_peer.py'), topic],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    yield topic, proc
    os.killpg(proc.pid, signal.SIGTERM)  # the group: the ROS wheels' bootstrapper runs a child
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def test_grasp_array_roundtrips_exactly_between_processes(rclpy_context, peer):
    topic, proc = peer
    node = rclpy.create_node('dds_listener', context=rclpy_context)
    executor = rclpy.executors.SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    received = []
    node.create_subscription(GraspRectArray, topic, received.append, LATCHED)
    deadline = time.monotonic() + 30
    while not received and time.monotonic() < deadline:
        assert proc.poll() is None, f'publisher process died:\n{proc.stdout.read()}'
        executor.spin_once(timeout_sec=0.2)
    node.destroy_node()
    assert received, 'no GraspRectArray received over DDS within 30 s'

    got, want = received[0], expected_message()
    # every field, nested ones included (rosidl messages compare all fields)
    assert got == want
    assert got.header.stamp.sec == 1764000000 and got.header.stamp.nanosec == 123456789
    assert got.header.frame_id == 'camera_color_optical_frame'
    assert got.source == GraspRectArray.SOURCE_DETECTOR
    assert got.model_id == 'fasterrcnn_resnet50@step-50000'
    assert [g.score for g in got.grasps] == [0.875, 0.5, 0.25]  # sorted by score
    first = got.grasps[0]
    assert (first.x, first.y, first.theta, first.w,
            first.h) == (320.0, 240.0, 0.3333333333333333, 80.0, 30.0)
    assert first.pose_valid and first.pose.position.z == 2.25
    assert got.grasps[2].x == 100.123456789012  # float64 survives exactly
    assert got.grasps[2].theta == -math.pi / 2
    assert not got.grasps[1].pose_valid  # no depth there

    decoded = msg_to_grasps(got)
    assert decoded.grasps.shape == (3, 5)
    assert np.isnan(decoded.positions[1]).all()
    np.testing.assert_array_equal(decoded.pose_valid, [True, False, True])
