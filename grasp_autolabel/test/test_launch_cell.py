"""The README's "At a real cell, in an afternoon" steps, command for command, through the real
ROS 2 launch, with the simulated camera in place of the RealSense (started as the README says
for a rehearsal): auto capture with picks only gives labels; a bag of the captured topics
replayed through replay.launch.py gives the same labels; a model trained and exported with the
README's commands is served by cell.launch.py, answers ~/get_grasps, and the example planner
client picks a reachable grasp from it, by subscription and by service."""
import json
import subprocess
import sys
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
pytest.importorskip('rosbags')
pytest.importorskip('onnxruntime')
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402, I100
from grasp_autolabel.ros.messages import msg_to_grasps  # noqa: E402
from grasp_autolabel.ros.qos import LATCHED, RELIABLE  # noqa: E402
from grasp_autolabel.session import Session  # noqa: E402
from grasp_autolabel_msgs.msg import GraspRectArray  # noqa: E402
from grasp_autolabel_msgs.srv import GetGrasps  # noqa: E402
from launch_helpers import HAVE_LAUNCH, Launch, SKIP_REASON  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.serialization import deserialize_message  # noqa: E402
from ros_helpers import call_service, NodeProcess, REPO, spin_until, status_count  # noqa: E402
from rosbags.rosbag2 import Reader, StoragePlugin, Writer  # noqa: E402
from rosbags.typesys import get_typestore, Stores  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

pytestmark = [pytest.mark.skipif(not HAVE_LAUNCH, reason=SKIP_REASON), pytest.mark.slow]

CAPTURED = {'/capture_node/captured/rgb': (Image, 'sensor_msgs/msg/Image'),
            '/capture_node/captured/depth': (Image, 'sensor_msgs/msg/Image'),
            '/capture_node/captured/camera_info': (CameraInfo, 'sensor_msgs/msg/CameraInfo')}
# the tiny network of the tests: the README's train command with this --config
TINY = """network: {input_size: 96, width: 8}
train: {batch_size: 2, max_steps: 3, split: none}
decode: {score_threshold: 0.0, refine: false}
"""


class Operator:
    """The person at the cell (picks) and a recorder of the captured topics (ros2 bag record)."""

    def __init__(self, context):
        self.node = rclpy.create_node('operator', context=context)
        self.ex = SingleThreadedExecutor(context=context)
        self.ex.add_node(self.node)
        self.labels, self.recorded, self.detections, self.diagnostics = [], [], [], []
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self.diagnostics.append,
                                      RELIABLE)
        self.node.create_subscription(GraspRectArray, '/autolabel_node/grasps', self.labels.append,
                                      RELIABLE)
        self.node.create_subscription(GraspRectArray, '/inference_node/grasps',
                                      self.detections.append, RELIABLE)
        for topic, (msg_type, _) in CAPTURED.items():
            self.node.create_subscription(msg_type, topic, lambda raw,
                                          t=topic: self.recorded.append((t, time.time_ns(), bytes(
                                              raw))), LATCHED, raw=True)

    def autolabel_frames(self) -> int:
        return status_count(self.diagnostics, 'autolabel_node', 'frames') or 0

    def spin_for(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.ex.spin_once(timeout_sec=0.02)


def _cli(*args, home, timeout=300):
    out = subprocess.run([sys.executable, '-m', 'grasp_autolabel.cli', *args], capture_output=True,
                         text=True,
                         timeout=timeout, env={**__import__('os').environ, 'HOME': str(home)})
    assert out.returncode == 0, f"grasp-autolabel {' '.join(args)}:\n{out.stdout}{out.stderr}"
    return out.stdout


def _write_bag(path, recorded):
    typestore = get_typestore(Stores.ROS2_KILTED)
    with Writer(path, version=8, storage_plugin=StoragePlugin.SQLITE3) as writer:
        conns = {t: writer.add_connection(t, CAPTURED[t][1],
                                          typestore=typestore) for t in CAPTURED}
        for topic, stamp, raw in recorded:
            writer.write(conns[topic], stamp, raw)


def _play(op, bag):
    """`ros2 bag play BAG --clock`: the recorded QoS (reliable, transient local) and /clock."""
    pubs = {t: op.node.create_publisher(CAPTURED[t][0], t, LATCHED) for t in CAPTURED}
    clock = op.node.create_publisher(Clock, '/clock', 10)
    with Reader(bag) as reader:
        for conn, stamp, raw in reader.messages():
            clock.publish(Clock(clock=rclpy.time.Time(nanoseconds=stamp).to_msg()))
            pubs[conn.topic].publish(deserialize_message(raw, CAPTURED[conn.topic][0]))
            op.spin_for(0.05)


def test_the_readme_cell_steps_with_the_sim_camera(rclpy_context, tmp_path):
    home = tmp_path / 'home'
    env = {'HOME': str(home)}
    cell_dir = home / 'cell'
    picks = 3
    # the RealSense's stand-in, named and namespaced as realsense2_camera's defaults
    camera = NodeProcess('sim_camera_node', '-r', '__node:=camera', '-r', '__ns:=/camera', '-p',
                         'arm_in_view_s:=1.0',
                         '-p', 'width:=320', '-p', 'height:=240', '-p', 'fps:=15.0', '-p',
                         'logs:=8', '-p', 'seed:=5',
                         '-p', 'tilt_max_deg:=0.0', log_dir=tmp_path)
    op = Operator(rclpy_context)
    launches = []
    try:
        # step 2: ros2 launch grasp_autolabel cell.launch.py auto_capture:=true
        # session_dir:=~/cell/session
        #         dataset_dir:=~/cell/dataset   (+ camera:=false: the camera is started apart)
        cell = Launch('cell.launch.py', 'camera:=false', 'auto_capture:=true',
                      'session_dir:=~/cell/session',
                      'dataset_dir:=~/cell/dataset', log_dir=tmp_path, env=env)
        launches.append(cell)
        # nobody presses anything: the untouched pile is captured once it is still
        cell.wait_for(r'captured frame 0 \(auto\)', 60)
        # the first pick once the autolabel node holds that frame (as an operator would check
        # /diagnostics or the overlay): the captured topics keep only the newest frame
        assert spin_until(op.ex, lambda: op.autolabel_frames() >= 1, 30), cell.output()
        for pick in range(picks):
            n = len(op.labels)
            assert call_service(op.node, op.ex, Trigger, '/camera/camera/pick').success
            # the arm stays in view 1 s, then the scene settles: one capture, one labelled step
            assert spin_until(op.ex, lambda: len(op.labels) > n, 30, processes=[camera]), \
                f'pick {pick}: no labels\n{cell.output()}'
        op.spin_for(0.5)
        cell.interrupt()
        launches.remove(cell)
        assert Session.open(cell_dir / 'session').frames == list(range(picks + 1))
        assert len(list((cell_dir / 'dataset' / 'labels').glob('*.json'))) == picks
        assert sum(len(m.grasps) for m in op.labels) > 0, 'no pick was labelled'
        live = {(m.header.stamp.sec, m.header.stamp.nanosec): m for m in op.labels}

        # the same session from a bag: ros2 launch grasp_autolabel replay.launch.py
        # dataset_dir:=... + bag play --clock
        _write_bag(tmp_path / 'session_bag', op.recorded)
        op.labels.clear()
        replay = Launch('replay.launch.py', 'dataset_dir:=~/cell/replayed', log_dir=tmp_path,
                        env=env)
        launches.append(replay)
        assert spin_until(op.ex,
                          lambda: op.node.count_subscribers('/capture_node/captured/rgb') >= 1
                          and op.node.count_publishers('/autolabel_node/grasps') >= 1, 30)
        op.spin_for(0.5)
        _play(op, tmp_path / 'session_bag')
        assert spin_until(op.ex, lambda: len(op.labels) >= picks, 30), replay.output()
        replay.interrupt()
        launches.remove(replay)
        for msg in op.labels:
            ref = live[(msg.header.stamp.sec, msg.header.stamp.nanosec)]
            np.testing.assert_array_equal(msg_to_grasps(msg).grasps, msg_to_grasps(ref).grasps)
        assert len(list((cell_dir / 'replayed' / 'labels').glob('*.json'))) == picks

        # step 3: train, evaluate, export (a tiny network: the README's commands with --config)
        (tmp_path / 'tiny.yaml').write_text(TINY)
        _cli('train', str(cell_dir / 'dataset'), '--out', str(cell_dir / 'run'), '--config',
             str(tmp_path / 'tiny.yaml'),
             home=home)
        assert 'valid' in _cli('evaluate', str(cell_dir / 'run'), str(cell_dir / 'dataset'),
                               '--split', 'none',
                               home=home)
        _cli('export-onnx', str(cell_dir / 'run'), '--out', str(cell_dir / 'model.onnx'),
             home=home)

        # step 4: serve: cell.launch.py model_path:=model.onnx; the planner asks and subscribes
        serve = Launch('cell.launch.py', 'camera:=false', 'model_path:=~/cell/model.onnx',
                       'session_dir:=~/cell/session2', 'dataset_dir:=~/cell/dataset2',
                       log_dir=tmp_path, env=env)
        launches.append(serve)
        serve.wait_for(r'\[inference_node\]: detecting grasps .* with \S+', 60)
        reply = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            reply = call_service(op.node, op.ex, GetGrasps, '/inference_node/get_grasps',
                                 GetGrasps.Request(timeout_s=2.0), timeout=30)
            if reply.success:
                break
        assert reply is not None and reply.success, (reply, serve.output())
        assert (
            reply.grasps.source == GraspRectArray.SOURCE_DETECTOR and reply.grasps.header.frame_id)
        for mode in ('service', 'subscribe'):
            client = subprocess.run([sys.executable, str(REPO / 'examples' / 'planner_client.py'),
                                     '--mode', mode, '--picks', '2', '--timeout', '30'],
                                    capture_output=True, text=True, timeout=120)
            assert client.returncode == 0, (
                f'planner_client --mode {mode}:\n{client.stdout}{client.stderr}')
            lines = client.stdout.strip().splitlines()
            assert len(lines) == 2 and all(line.startswith(f'pick {k + 1}: grasp (') for k,
                                           line in enumerate(lines))
            stamps = [line.rsplit('frame ', 1)[1] for line in lines]
            assert stamps[0] < stamps[1], 'the second pick planned on the same frame'
        serve.interrupt()
        launches.remove(serve)
    finally:
        for launch in launches:
            launch.stop_quietly()
        assert camera.stop() in (0, -2), camera.output()
    json.loads((
        cell_dir / 'run' / 'config.json').read_text())  # the run the README's evaluate reads
