"""The node suite in real processes over DDS: sim camera -> capture -> autolabel."""
import json
import re
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
from grasp_autolabel.core.evaluation import valid_for_log  # noqa: E402, I100
from grasp_autolabel.core.session import read_stamps, Session  # noqa: E402
from grasp_autolabel.core.stamps import stamp_ns  # noqa: E402
from grasp_autolabel.dataset import GraspDataset  # noqa: E402
from grasp_autolabel.ros.cell_client import CellClient  # noqa: E402
from grasp_autolabel.ros.messages import msg_to_grasps  # noqa: E402
from grasp_autolabel.ros.sim_camera_node import GROUND_TRUTH_QOS  # noqa: E402
from grasp_autolabel_msgs.msg import GraspRectArray  # noqa: E402
from ros_helpers import node_status, NodeProcess, wait_for_fresh_frames  # noqa: E402
from std_msgs.msg import String  # noqa: E402

CAM = '/camera/camera'


def start_cell(tmp_path, *, auto: bool, arm_s: float = 0.0, seed: int = 5):
    sim = NodeProcess('sim_camera_node', '-r', '__node:=camera', '-r', '__ns:=/camera', '-p',
                      'width:=320',
                      '-p', 'height:=240', '-p', 'fps:=15.0', '-p', 'logs:=6', '-p',
                      f'seed:={seed}',
                      '-p', f'arm_in_view_s:={arm_s}', '-p', 'tilt_max_deg:=0.0', log_dir=tmp_path)
    cap = NodeProcess('capture_node', '-p', f"session_dir:={tmp_path / 'session'}", '-p',
                      f"auto_capture:={'true' if auto else 'false'}", '-p', 'settle_s:=0.6',
                      log_dir=tmp_path)
    lab = NodeProcess('autolabel_node', '-p', f"dataset_dir:={tmp_path / 'dataset'}",
                      log_dir=tmp_path)
    return [sim, cap, lab]


def stop_all(procs):
    codes = [p.stop() for p in procs]
    for p, code in zip(procs, codes):
        assert code in (0, -2), f'{p.name} exited with {code}:\n{p.output()}'


def listen(context, procs=()) -> CellClient:
    """The cell's client, also hearing the simulator's ground truth (``.truth``)."""
    client = CellClient(procs, timeout_s=20.0, name='cell_test', context=context)
    client.truth = client.listen(String, f'{CAM}/ground_truth', GROUND_TRUTH_QOS)
    return client


def _capture_when_ready(lis):
    """The first capture, once the autolabel node really receives captured frames (each of its
    three subscriptions must have matched: the topics keep only the last frame for late
    joiners)."""
    g = lis.node
    assert lis.spin_until(lambda: g.count_subscribers('/capture_node/captured/rgb') >= 1
                          and g.count_publishers('/autolabel_node/grasps') >= 1, 30)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        reply = lis.call('/capture_node/capture')
        if reply.success and lis.spin_until(lambda: lis.autolabel_frames() >= 1, 3):
            return reply
        lis.spin_for(0.3)
    raise AssertionError('the autolabel node never received a captured frame')


def _check_valid(lis, msg, truth):
    decoded = msg_to_grasps(msg)
    assert msg.source == GraspRectArray.SOURCE_ANNOTATION
    if not len(decoded.grasps):
        return False
    assert np.all(np.diff(decoded.scores) <= 0)  # sorted by score
    valid = np.zeros(len(decoded.grasps), bool)
    for log in truth['removed_logs']:
        valid |= valid_for_log(decoded.grasps, log)
    assert valid.all(), "a published grasp is not valid against the simulator's ground truth"
    assert decoded.pose_valid.all() and np.all(decoded.positions[:, 2] > 1.0)
    return True


def test_pick_then_capture_gives_valid_grasps(rclpy_context, tmp_path):
    procs = start_cell(tmp_path, auto=False)
    lis = listen(rclpy_context, procs)
    try:
        _capture_when_ready(lis)
        accepted = 0
        for pick in range(5):
            assert lis.call(f'{CAM}/pick').success
            wait_for_fresh_frames(lis)  # fresh frames after the pick reached the capture node
            reply = lis.call('/capture_node/capture')
            assert reply.success, reply.message
            # this pick's label is the one stamped with the frame captured before it (a label
            # of an earlier step that arrives late, on a loaded machine, is not taken for it)
            k = int(reply.message.split()[-1])
            before_ns = read_stamps(tmp_path / 'session')[k - 1]

            def label(stamp=before_ns):
                return next((m for m in lis.labels if stamp_ns(m.header.stamp) == stamp), None)

            assert lis.spin_until(lambda: label() is not None, 20), 'no GraspRectArray'
            assert lis.spin_until(lambda: len(lis.truth) > pick, 5), 'no ground truth'
            truth = json.loads(lis.truth[pick].data)
            accepted += _check_valid(lis, label(), truth)
            if accepted >= 2 and pick >= 3:
                break
        # every published grasp is valid (checked above); most picks of a 6-log pile seen
        # straight down pass the gate
        assert accepted >= 2, f'{accepted} of {pick + 1} picks gave grasps'
        assert lis.spin_until(lambda: any(
            'autolabel' in s.name for d in lis.diagnostics for s in d.status), 5)
    finally:
        lis.close()
        stop_all(procs)
    s = Session.open(tmp_path / 'session')
    ds = GraspDataset.open(tmp_path / 'dataset')
    # every capture after the first the autolabel node saw is one labelled step (the start-up
    # loop may have captured more than one first frame)
    assert 4 <= len(ds.item_indices()) <= len(s.frames) - 1
    assert ds.meta['sources'][0]['complete']


def test_capture_before_any_frame_is_refused_with_the_reason(rclpy_context, tmp_path):
    cap = NodeProcess('capture_node', '-p', f"session_dir:={tmp_path / 'session'}",
                      log_dir=tmp_path)
    lis = listen(rclpy_context, [cap])
    try:
        reply = lis.call('/capture_node/capture')
        assert not reply.success and 'no colour+depth pair received yet' in reply.message
        assert cap.alive()
    finally:
        lis.close()
        stop_all([cap])
    assert not (tmp_path / 'session' / 'rgb').exists()


def test_auto_capture_after_the_arm_leaves(rclpy_context, tmp_path):
    procs = start_cell(tmp_path, auto=True, arm_s=0.8, seed=9)
    lis = listen(rclpy_context, procs)
    try:
        # no button at all: the untouched pile is captured once it is still, then every pick
        assert lis.spin_until(lambda: lis.autolabel_frames() >= 1, 30), \
            'the first still scene was not captured by itself'
        assert 'captured frame 0 (auto)' in procs[1].output()
        accepted = 0
        for pick in range(5):
            n = len(lis.labels)
            assert lis.call(f'{CAM}/pick').success
            # arm in view 0.8 s (a frame with the arm is not still long enough), then settle 0.6 s
            assert lis.spin_until(lambda: len(lis.labels) > n, 20), (
                f'no auto capture after pick {pick}; capture_node status '
                f'{node_status(lis.diagnostics, "capture_node")}:\n{procs[1].output()}'
            )
            assert lis.spin_until(lambda: len(lis.truth) > pick, 5)
            accepted += _check_valid(lis, lis.labels[-1], json.loads(lis.truth[pick].data))
            if accepted == 2:
                break
        assert accepted >= 2, f'{accepted} of {pick + 1} auto-captured picks gave grasps'
    finally:
        lis.close()
        stop_all(procs)
    assert re.search(r'captured frame \d+ \(auto\)', procs[1].output())
