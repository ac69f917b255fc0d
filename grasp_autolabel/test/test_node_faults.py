"""Faults at the running cell, with the real node processes (issue 23).

* autolabel_node killed (SIGKILL) right after a capture, the cell going on while it is down,
  then restarted: every pick labelled exactly once, in one source, each label naming its
  session frames;
* a full disk (a real tmpfs filled up) under the capture node and under the autolabel node:
  ERROR on /diagnostics with the reason and the path, no half frame, nothing published that
  is not on disk, the node alive, and the work done once space returns.
"""
import os
from pathlib import Path
import subprocess

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402, I100
from grasp_autolabel.core.session import read_stamps, Session  # noqa: E402
from grasp_autolabel.dataset import GraspDataset  # noqa: E402
from ros_helpers import node_status, NodeProcess, wait_for_fresh_frames  # noqa: E402
from test_capture_node_inputs import _capture_node, Feeder  # noqa: E402
from test_cell_nodes import _capture_when_ready, CAM, listen, stop_all  # noqa: E402


def _autolabel(tmp_path, session, dataset, *extra):
    return NodeProcess('autolabel_node', '-p', f'dataset_dir:={dataset}', '-p',
                       f'session_dir:={session}', '-p', 'diagnostics_period_s:=0.3', *extra,
                       log_dir=tmp_path)


def _check_exactly_once(session: Path, dataset: Path) -> list:
    """Every step of the session labelled once, in one source, naming its frames."""
    s, ds = Session.open(session), GraspDataset.open(dataset)
    labels = [ds.read_label(i) for i in ds.item_indices()]
    after = sorted(lab.frame_after for lab in labels)
    assert after == list(range(1, len(s.frames))), f'labelled {after} of {len(s.frames)} frames'
    assert len(ds.meta['sources']) == 1 and ds.meta['sources'][0]['steps'] == len(labels)
    stamps = read_stamps(session)
    for i, lab in zip(ds.item_indices(), labels):
        k = lab.frame_before
        assert lab.frame_after == k + 1 and lab.pick_index == k and lab.source == 0
        assert lab.stamp_before_ns == stamps[k] and lab.stamp_after_ns == stamps[k + 1]
        # the item's image is the session's frame it names
        assert np.array_equal(ds.read_rgb(i), s.read_rgb(k))
    return labels


def _pick_and_capture(lis):
    assert lis.call(f'{CAM}/pick').success
    wait_for_fresh_frames(lis)
    reply = lis.call('/capture_node/capture')
    assert reply.success, reply.message
    return reply


def test_autolabel_killed_and_restarted_labels_every_pick_exactly_once(rclpy_context, tmp_path):
    session, dataset = tmp_path / 'session', tmp_path / 'dataset'
    sim = NodeProcess('sim_camera_node', '-r', '__node:=camera', '-r', '__ns:=/camera', '-p',
                      'width:=320', '-p', 'height:=240', '-p', 'fps:=15.0', '-p', 'logs:=8',
                      '-p', 'seed:=7', '-p', 'tilt_max_deg:=0.0', log_dir=tmp_path)
    cap = NodeProcess('capture_node', '-p', f'session_dir:={session}', log_dir=tmp_path)
    lab = _autolabel(tmp_path, session, dataset)
    procs = [sim, cap, lab]
    lis = listen(rclpy_context, procs)
    try:
        _capture_when_ready(lis)
        _pick_and_capture(lis)
        lis.procs.remove(lab)
        lab.kill()  # right after the capture: the step is in flight (labels follow ~0.2 s later)
        lab.stop()
        _pick_and_capture(lis)  # the cell goes on while the autolabel node is down
        n = len(Session.open(session).frames)
        lab = _autolabel(tmp_path, session, dataset)
        procs[2] = lab
        lis.procs.append(lab)
        assert lis.spin_until(lambda: lis.status.get('autolabel_node', {}).get(
            'labelled_in_dataset') == str(n - 1), 60), lab.output()
        _pick_and_capture(lis)  # and labels go on after the restart
        assert lis.spin_until(lambda: lis.status.get('autolabel_node', {}).get(
            'labelled_in_dataset') == str(n), 30), lab.output()
    finally:
        lis.close()
        stop_all(procs)
    _check_exactly_once(session, dataset)


@pytest.fixture
def small_disks(tmp_path):
    """Two 4 MB tmpfs: disks that fill (``fill(disk)``) and empty (``free(disk)``)."""
    disks = []
    for name in ('disk_a', 'disk_b'):
        mnt = tmp_path / name
        mnt.mkdir()
        if subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', str(mnt)],
                          capture_output=True).returncode != 0:
            pytest.skip('cannot mount a tmpfs here (needs root): the full-disk cases are not run')
        disks.append(mnt)
    try:
        yield disks
    finally:
        for mnt in disks:
            subprocess.run(['umount', '-l', str(mnt)], capture_output=True)


def fill(disk: Path) -> None:
    with open(disk / 'filler.bin', 'ab') as f:
        try:
            while True:
                f.write(b'\0' * 65536)
                f.flush()
        except OSError:
            pass


def free(disk: Path) -> None:
    (disk / 'filler.bin').unlink()


def _level(client, node: str):
    status = node_status(client.diagnostics, node)
    return (status.level, status.message) if status else (None, '')


def _labelled(f, n: int):
    return lambda: f.client.status.get('autolabel_node', {}).get('labelled_in_dataset') == str(n)


def test_a_full_disk_is_an_error_a_person_sees_and_work_resumes_when_space_returns(
        rclpy_context, tmp_path, small_disks):
    session, dataset = small_disks[0] / 'session', small_disks[1] / 'dataset'
    cap = _capture_node(tmp_path, '-p', f'session_dir:={session}', '-p', 'min_free_mb:=1.0')
    lab = _autolabel(tmp_path, session, dataset)
    f = Feeder(rclpy_context, [cap, lab])
    stamps = iter(range(1, 10_000))

    def capture():
        f.until_counted('pairs', lambda: f.send(next(stamps)))
        return f.client.call('/capture_node/capture')

    try:
        assert f.client.spin_until(lambda: f.node.count_subscribers('/t/depth') >= 1, 20)
        assert capture().success  # frame 0
        # the dataset's disk fills before the autolabel node's first step: ERROR with the reason
        # and the path, the node alive, the step written once space returns
        fill(small_disks[1])
        assert capture().success  # frame 1
        assert f.client.spin_until(lambda: _level(f.client, 'autolabel_node')[0]
                                   == DiagnosticStatus.ERROR, 10), lab.output()
        message = _level(f.client, 'autolabel_node')[1]
        assert 'No space left on device' in message and str(dataset) in message, message
        free(small_disks[1])
        assert f.client.spin_until(_labelled(f, 1), 10), lab.output()
        assert f.client.spin_until(lambda: _level(f.client, 'autolabel_node')[0]
                                   == DiagnosticStatus.OK, 5)
        # the session's disk fills: the capture fails whole (no half frame), ERROR with the
        # reason and the path, nothing published (the autolabel node labels nothing)
        fill(small_disks[0])
        reply = capture()
        assert not reply.success and 'No space left on device' in reply.message
        assert f.client.spin_until(lambda: _level(f.client, 'capture_node')[0]
                                   == DiagnosticStatus.ERROR, 5)
        message = _level(f.client, 'capture_node')[1]
        assert 'No space left on device' in message and str(session) in message, message
        assert 'low disk space: 0 MB free' in message, message  # min_free_mb, checked first
        depth = sorted(p.name for p in (session / 'depth').iterdir())
        assert depth == ['000000.png', '000001.png']
        free(small_disks[0])
        assert capture().success  # frame 2
        assert f.client.spin_until(lambda: _level(f.client, 'capture_node')[0]
                                   != DiagnosticStatus.ERROR, 5)
        assert f.client.spin_until(_labelled(f, 2), 20), lab.output()
    finally:
        f.client.close()
        for p in (cap, lab):
            assert p.stop() in (0, -2), p.output()
    _check_exactly_once(session, dataset)
    assert 'Traceback' not in cap.output() + lab.output()


@pytest.mark.parametrize('executable', ['capture_node', 'autolabel_node', 'inference_node'])
def test_a_stop_signal_in_any_state_ends_the_node_within_2_s(tmp_path, executable):
    """SIGINT at chosen moments of the start (loading, DDS discovery) and while running."""
    import signal
    import time

    for delay in (0.3, 1.0, 4.0):
        node = NodeProcess(executable, log_dir=tmp_path)
        time.sleep(delay)
        t0 = time.monotonic()
        os.killpg(node.proc.pid, signal.SIGINT)

        def group_gone():  # the node and the child the wheels' bootstrapper runs it in
            try:
                os.killpg(node.proc.pid, 0)
            except ProcessLookupError:
                return True
            node.proc.poll()  # (reaps the parent, whose pid holds the group otherwise)
            return False

        while not group_gone() and time.monotonic() - t0 < 10:
            time.sleep(0.02)
        took = time.monotonic() - t0
        code = node.stop()
        assert took < 2.0 and code in (0, -2), (
            f'{delay} s after start: exit {code} after {took:.2f} s\n{node.output()}')


def test_a_node_that_sees_no_publisher_for_long_rejoins_dds_and_then_hears(rclpy_context,
                                                                           tmp_path):
    """The cure for a participant DDS left unmatched for good: a fresh one (same process)."""
    import time

    cap = _capture_node(tmp_path, '-p', 'input_timeout_s:=0.3', '-p', 'rejoin_after_s:=1.0')
    try:
        deadline = time.monotonic() + 30
        while not ('rejoin 2)' in cap.output() and cap.output().count('capturing into') >= 3) \
                and time.monotonic() < deadline:
            assert cap.alive(), cap.output()
            time.sleep(0.1)
        out = cap.output()
        # the first after 1 s, the next after 2 s (doubling while nothing is heard)
        assert 'no publisher on any input for 1 s: starting again as a fresh DDS participant ' \
            '(rejoin 1)' in out and 'for 2 s: starting again' in out, out
        assert out.count('capturing into') == 3  # the node started three times, one process
        assert out.count('starting again') == 2 and 'Traceback' not in out
        f = Feeder(rclpy_context, [cap])
        f.until_counted('pairs', lambda: f.send(int(time.time()) % 1000 + 1))
        f.client.close()
    finally:
        assert cap.stop() in (0, -2), cap.output()
