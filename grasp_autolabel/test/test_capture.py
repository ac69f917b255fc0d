"""The capture core: atomic, gap-free session writing across crashes; pairing; auto-trigger."""
import os
import signal
import subprocess
import sys
import time

from grasp_autolabel.capture import SessionWriter, SettleDetector
from grasp_autolabel.core.camera import CameraIntrinsics
from grasp_autolabel.core.session import Session, SessionError
from grasp_autolabel.core.stamps import StampPairer
from grasp_autolabel.sim import CellConfig, SimCell
import numpy as np
import pytest

INTR = CameraIntrinsics(64, 48, fx=60.0, fy=60.0, cx=31.5, cy=23.5)


def _frame(value=1000):
    return np.full((48, 64, 3), 90, np.uint8), np.full((48, 64), value, np.uint16)


def test_frames_are_numbered_without_gaps_across_restarts_and_crashes(tmp_path):
    w = SessionWriter(tmp_path / 's', INTR, 0.001)
    assert [w.write(*_frame()) for _ in range(3)] == [0, 1, 2]
    # a crash while writing frame 3: its depth was renamed, its colour was still a temp file
    w.write(*_frame())
    (tmp_path / 's' / 'rgb' / '000003.png').rename(tmp_path / 's' / 'rgb' / '.000003.png.abc.tmp')
    w2 = SessionWriter(tmp_path / 's', INTR, 0.001)
    assert w2.next_index == 3
    assert {p.name for p in w2.removed} == {'000003.png', '.000003.png.abc.tmp'}
    assert w2.write(*_frame()) == 3
    s = Session.open(tmp_path / 's')
    assert s.frames == [0, 1, 2, 3]
    with pytest.raises(SessionError, match='another camera'):
        SessionWriter(tmp_path / 's', CameraIntrinsics(64, 48, fx=70.0, fy=70.0, cx=31.5, cy=23.5),
                      0.001)
    with pytest.raises(ValueError, match='must both be 64x48'):
        w2.write(np.zeros((10, 10, 3), np.uint8), np.zeros((10, 10), np.uint16))
    with pytest.raises(ValueError, match='expected uint16'):
        w2.write(np.zeros((48, 64, 3), np.uint8), np.zeros((48, 64), np.float32))


WRITER = """
import sys, numpy as np
from grasp_autolabel.core.camera import CameraIntrinsics
from grasp_autolabel.capture import SessionWriter
intr = CameraIntrinsics(640, 480, fx=600.0, fy=600.0, cx=319.5, cy=239.5)
w = SessionWriter(sys.argv[1], intr, 0.001)
rng = np.random.default_rng(0)
print("ready", flush=True)
while True:
    w.write(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8),
            rng.integers(0, 5000, (480, 640), dtype=np.uint16))
"""


def test_sigkill_in_the_middle_of_writing_leaves_no_partial_frame(tmp_path):
    for attempt in range(3):  # each kill lands at a different point of a write
        proc = subprocess.Popen([sys.executable, '-c', WRITER, str(tmp_path / 's')],
                                stdout=subprocess.PIPE, text=True,
                                start_new_session=True)
        assert proc.stdout.readline().strip() == 'ready'
        time.sleep(0.7 + 0.13 * attempt)
        os.killpg(proc.pid,
                  signal.SIGKILL)  # the group: a bootstrapper may run the code in a child
        proc.wait()
        w = SessionWriter(tmp_path / 's', CameraIntrinsics(640, 480, fx=600.0, fy=600.0, cx=319.5,
                                                           cy=239.5), 0.001)
        s = Session.open(tmp_path / 's')
        assert s.frames == list(range(w.next_index)) and w.next_index > 0
        for k in s.frames:  # every frame decodes completely
            assert s.read_rgb(k).shape == (480, 640, 3) and s.read_depth(k).shape == (480, 640)
        assert not [n for sub in ('rgb', 'depth') for n in os.listdir(
            tmp_path / 's' / sub) if n.endswith('.tmp')]


def test_stamp_pairer_pairs_colour_and_depth_by_nearest_stamp():
    p = StampPairer(max_dt=0.01)
    assert p.add('colour', 1.000, 'c1') is None
    assert p.add('depth', 1.030, 'd-late') is None  # 30 ms apart: no pair
    assert p.add('depth', 1.004, 'd1') == {'colour': (1.000, 'c1'), 'depth': (1.004, 'd1')}
    assert p.add('colour', 1.031, 'c2') == {'colour': (1.031, 'c2'), 'depth': (1.030, 'd-late')}
    assert p.add('colour', 2.0, 'c3') is None
    assert p.add('depth', 1.995, 'd0') == {'colour': (2.0, 'c3'), 'depth': (1.995, 'd0')}
    assert not p.queues['colour'] and not p.queues['depth'] and p.dropped == 0


def test_stamp_pairer_matches_three_parts_exactly_and_counts_lost_ones():
    p = StampPairer(('rgb', 'depth', 'info'), max_dt=0, keep=2)
    assert p.add('rgb', 10, 'r10') is None and p.add('depth', 10, 'd10') is None
    assert p.add('info', 11, 'i11') is None  # another stamp: no match
    assert p.add('info', 10, 'i10') == {'rgb': (10, 'r10'), 'depth': (10, 'd10'),
                                        'info': (10, 'i10')}
    for stamp in (20, 30, 40):  # colour parts whose depth never comes: one falls out
        assert p.add('rgb', stamp, f'r{stamp}') is None
    assert p.dropped == 1 and [s for s, _ in p.queues['rgb']] == [30, 40]


def test_stamp_pairer_take_removes_the_nearest_item_within_max_dt():
    p = StampPairer(max_dt=5)
    for stamp in (100, 110, 120):
        assert p.add('depth', stamp, f'd{stamp}') is None  # no colour ever comes
    assert p.take('depth', 112) == (110, 'd110')
    assert p.take('depth', 112) is None  # 100 and 120 are more than 5 away
    assert p.take('depth', 118) == (120, 'd120') and len(p.queues['depth']) == 1


def test_settle_detector_captures_after_a_change_once_the_scene_is_still():
    cell = SimCell(CellConfig(width=160, height=120, n_logs=(6, 6)), seed=2)
    scale = np.float32(cell.config.sensor.depth_scale)

    def depth():
        return cell.frame()[1] * scale

    det = SettleDetector(settle_s=1.0)
    assert not det.update(0.0, depth())  # nothing captured yet: the button comes first
    det.captured(depth())
    t = 0.0
    for _ in range(30):  # the same scene, new noise: never a capture
        t += 0.1
        assert not det.update(t, depth())
    cell.pick(None)
    arm = cell.arm()
    for i in range(10):  # the arm moves through the view: not still
        t += 0.1
        arm_i = type(arm)(arm.start, arm.end + np.array([0.03 * i, 0.0, 0.0]), arm.radius)
        assert not det.update(t, cell.frame(occluders=(arm_i,))[1] * scale)
    fired = []
    for _ in range(20):  # the arm has left: still, and changed since the capture
        t += 0.1
        fired.append(det.update(t, depth()))
    assert any(fired), 'never captured after the arm left'
    assert 9 <= fired.index(True) <= 13  # after about settle_s (10 frames) of stillness
