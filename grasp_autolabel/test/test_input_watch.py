"""Inputs that stop flowing are reported on /diagnostics within seconds and recovered.

In process (a publisher that matches but delivers nothing: the subscription is made afresh) and
with real nodes (the camera dies and comes back).
"""
import time

import pytest

rclpy = pytest.importorskip('rclpy')
from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402, I100
from grasp_autolabel.ros.cell_client import CellClient  # noqa: E402
from grasp_autolabel.ros.qos import SENSOR  # noqa: E402
from grasp_autolabel.ros.watch import StreamWatch  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from ros_helpers import node_status, NodeProcess, spin_until  # noqa: E402
from std_msgs.msg import String  # noqa: E402


def test_a_silent_stream_is_named_resubscribed_and_seen_to_recover(rclpy_context):
    pub_node = rclpy.create_node('silent_publisher', context=rclpy_context)
    sub_node = rclpy.create_node('watched', context=rclpy_context)
    ex = SingleThreadedExecutor(context=rclpy_context)
    ex.add_node(pub_node)
    ex.add_node(sub_node)
    pub = pub_node.create_publisher(String, '/watched/in', SENSOR)
    got = []
    watch = StreamWatch(sub_node, timeout_s=0.5)
    watch.subscribe('color', String, '/watched/in', got.append, SENSOR)
    watch.subscribe('depth', String, '/watched/nobody', got.append, SENSOR)
    assert spin_until(ex, lambda: sub_node.count_publishers('/watched/in') == 1, 10)
    assert watch.check() == []  # not silent for long yet
    spin_until(ex, lambda: False, 0.7)
    problems = watch.check()
    assert len(problems) == 2
    assert problems[0] == ('color: no message yet, on /watched/in although 1 publisher(s) match '
                           '(subscribing afresh)')
    assert problems[1] == ('depth: no message yet, no publisher on /watched/nobody '
                           '(subscribing afresh)')
    # both subscribed afresh: a publisher in the graph is no proof that its data will come, and
    # one missing from it may be a discovery that never completed
    assert watch.values()['resubscribed'] == '2'
    # backing off: the next fresh subscriptions after 1 s, then 2 s, ...
    spin_until(ex, lambda: False, 0.6)
    watch.check()
    assert watch.values()['resubscribed'] == '2'
    spin_until(ex, lambda: False, 0.5)
    watch.check()
    assert watch.values()['resubscribed'] == '4'
    assert watch.streams['depth'].backoff == watch.streams['color'].backoff == 2.0
    # the new subscription works: messages flow and the stream is no longer reported
    assert spin_until(ex, lambda: (pub.publish(String(data='x')), bool(got))[1], 10)
    spin_until(ex, lambda: (pub.publish(String(data='x')), False)[1], 0.6)
    assert [p.split(':')[0] for p in watch.check()] == ['depth']
    assert float(watch.values()['color_silent_s']) < 0.5
    assert watch.streams['color'].backoff == 0.0  # flowing: the next silence starts over
    sub_node.destroy_node()
    pub_node.destroy_node()


@pytest.mark.slow
def test_capture_node_reports_a_dead_camera_and_recovers_when_it_returns(rclpy_context, tmp_path):
    def camera():
        return NodeProcess('sim_camera_node', '-r', '__node:=camera', '-r', '__ns:=/camera', '-p',
                           'width:=160',
                           '-p', 'height:=120', '-p', 'fps:=15.0', log_dir=tmp_path)

    cam = camera()
    cap = NodeProcess('capture_node', '-p', f"session_dir:={tmp_path / 'session'}", '-p',
                      'input_timeout_s:=1.0',
                      log_dir=tmp_path)
    c = CellClient([cap], name='diag_listener', context=rclpy_context)

    def level_is(level):
        st = node_status(c.diagnostics, 'capture_node')
        return st is not None and st.level == level

    try:
        assert c.spin_until(lambda: level_is(DiagnosticStatus.OK), 60), cap.output()
        assert cam.stop() in (0, -2)
        t0 = time.monotonic()
        assert c.spin_until(lambda: level_is(DiagnosticStatus.ERROR), 10), cap.output()
        assert time.monotonic() - t0 < 4.0  # timeout 1 s + one diagnostics period + slack
        message = node_status(c.diagnostics, 'capture_node').message
        assert 'color: no message for' in message and '/camera/camera/color/image_raw' in message
        cam = camera()
        assert c.spin_until(lambda: level_is(DiagnosticStatus.OK), 60), cap.output()
        assert 'flow again' in cap.output()
    finally:
        c.close()
        cam.stop()
        assert cap.stop() in (0, -2), cap.output()


HUNG_NODE = """
import signal, sys, time
from rclpy.node import Node
from grasp_autolabel.ros.runner import run_node

class Hung(Node):
    def __init__(self):
        super().__init__("hung_node")
        self.create_timer(0.05, self.tick)
        print("spinning", flush=True)

    def tick(self):
        # a callback that cannot return (as one blocked in a C call would): signals reach the
        # other threads only
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        time.sleep(60)

sys.exit(run_node(Hung, "hung_node"))
"""


def test_a_stop_that_hangs_prints_the_stacks_and_exits_within_seconds(tmp_path):
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, '-c', HUNG_NODE], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == 'spinning'
        time.sleep(0.5)  # the timer has fired: the main thread is stuck in tick
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3, err
    assert time.monotonic() - t0 < 2.5  # 1.5 s of grace, then out
    assert 'hung_node: still running 1.5 s after the stop signal' in err and 'in tick' in err
