"""SIGKILL at many points of label, export, augment and train; the same command again finishes.

Each job runs in a forked child that kills itself (SIGKILL, nothing flushed, no handler runs)
just before its N-th durable write (``fsio``'s fault hook); the parent then runs the same job
to the end and compares the output with an uninterrupted run's, byte for byte: every labels
file, image, depth and mask, and dataset.json (sources, splits, carried-back grasps). The kill
points are spread evenly over each job's writes (``GRASP_AUTOLABEL_FAULT_POINTS`` sets how many
per job; the default keeps the suite within a minute).
"""
import os
from pathlib import Path
import shutil
import signal
import time

from grasp_autolabel.core import fsio
from grasp_autolabel.dataset.augment import augment_dataset
from grasp_autolabel.jobs.label import label_sessions
from grasp_autolabel.jobs.simulate import simulate
from grasp_autolabel.sim import CellConfig
import pytest

POINTS = int(os.environ.get('GRASP_AUTOLABEL_FAULT_POINTS', '0') or 0)


def _run_killed(job, at: int) -> bool:
    """Run ``job()`` in a child killed before its ``at``-th write; True if it was killed."""
    pid = os.fork()
    if pid == 0:  # the child: never returns to pytest
        try:
            import cv2

            cv2.setNumThreads(0)
            fsio._FAULT_AT, fsio._writes = at, 0
            job()
            os._exit(0)
        except BaseException:  # noqa: B902 (the child reports by its exit code)
            os._exit(3)
    deadline = time.monotonic() + 120
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f'the job killed at write {at} hung')
        time.sleep(0.01)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return True
    assert os.WEXITSTATUS(status) == 0, f'the job failed (not killed) at write {at}'
    return False


def _count_writes(job) -> int:
    fsio._FAULT_AT, fsio._writes = 0, 0
    job()
    return fsio._writes


def _snapshot(folder: Path) -> dict:
    """Every file the job made (temporary files of a killed write excluded), by content."""
    out = {}
    for path in sorted(folder.rglob('*')):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and not path.name.endswith('.tmp') and path.name != fsio.LOCK_NAME:
            out[rel] = path.read_bytes()
    return out


def _points(total: int, n: int) -> list[int]:
    n = POINTS or n
    return sorted({1 + round(k * (total - 1) / max(1, n - 1)) for k in range(n)})


@pytest.fixture(scope='module')
def sessions(tmp_path_factory):
    root = tmp_path_factory.mktemp('faults')
    config = CellConfig(width=160, height=120, n_logs=(4, 5), fault_rate=0.2)
    return simulate(root / 'sim', sequences=3, seed=11, config=config, progress=False)


def _check_kills(tmp_path, job_for, total_points: int) -> int:
    """Kill ``job_for(out)`` at spread points, finish each, compare; return kills done."""
    reference = tmp_path / 'reference'
    writes = _count_writes(lambda: job_for(reference))
    expected = _snapshot(reference)
    kills = 0
    for at in _points(writes, total_points):
        out = tmp_path / f'killed_{at}'
        killed = _run_killed(lambda: job_for(out), at)
        kills += killed
        job_for(out)  # the same command again
        got = _snapshot(out)
        assert got.keys() == expected.keys(), (at, sorted(got.keys() ^ expected.keys())[:5])
        for rel in expected:
            assert got[rel] == expected[rel], f'killed at write {at}: {rel} differs after rerun'
        shutil.rmtree(out)
    return kills


def test_label_killed_anywhere_then_rerun_equals_an_uninterrupted_run(sessions, tmp_path):
    def job(out):
        label_sessions(sessions, out, progress=False)

    assert _check_kills(tmp_path, job, 24) >= 20


def test_augment_killed_anywhere_then_rerun_equals_an_uninterrupted_run(sessions, tmp_path):
    source = tmp_path / 'labelled'
    label_sessions(sessions[:2], source, progress=False)

    def job(out):
        augment_dataset(source, out, factor=3, seed=5, progress=False)

    assert _check_kills(tmp_path, job, 16) >= 12


def test_export_killed_anywhere_then_rerun_equals_an_uninterrupted_run(sessions, tmp_path):
    pytest.importorskip('rosbags')
    from grasp_autolabel.dataset.bagwrite import write_session_bag
    from grasp_autolabel.jobs.export import export_bags

    bags = []
    for s in sessions[:2]:
        write_session_bag(s, tmp_path / 'bags' / s.name, storage='mcap')
        bags.append(tmp_path / 'bags' / s.name)

    def job(out):
        export_bags(bags, out, progress=False, log=lambda *a, **k: None)

    assert _check_kills(tmp_path, job, 14) >= 10


TRAIN = """
import sys
from grasp_autolabel.detector.config import TrainSettings
from grasp_autolabel.detector.models import GraspMapNetwork
from grasp_autolabel.detector.train import train
train(sys.argv[1], sys.argv[2], GraspMapNetwork(input_size=64, width=4),
      TrainSettings(batch_size=2, max_steps=6, val_every=3, split='none', augment=False),
      resume=sys.argv[3] == 'resume', progress=False, log=lambda *a, **k: None)
from grasp_autolabel.core import fsio
print('writes', fsio._writes)
"""


def test_train_killed_anywhere_then_resumed_finishes_the_run(sessions, tmp_path):
    """Torch's thread pools do not survive a fork: each kill point is a process of its own."""
    pytest.importorskip('torch')
    import subprocess
    import sys

    import torch

    dataset = tmp_path / 'labelled'
    label_sessions(sessions[:2], dataset, progress=False)

    def run(out, resume, at=0):
        env = {**os.environ, 'GRASP_AUTOLABEL_KILL_AT_WRITE': str(at)}
        return subprocess.run([sys.executable, '-c', TRAIN, str(dataset), str(out),
                               'resume' if resume else 'new'], env=env, capture_output=True,
                              text=True, timeout=300)

    reference = run(tmp_path / 'reference', False)
    assert reference.returncode == 0, reference.stderr
    writes = int(reference.stdout.split()[-1])
    kills = 0
    for at in _points(writes, 4):
        out = tmp_path / f'killed_{at}'
        killed = run(out, False, at)
        kills += killed.returncode == -signal.SIGKILL
        again = run(out, True)
        assert again.returncode == 0, f'killed at write {at}; resume failed:\n{again.stderr}'
        last = torch.load(out / 'checkpoints' / 'last.pt', map_location='cpu', weights_only=False)
        assert last['step'] == 6, f'killed at write {at}: resumed, stopped at {last["step"]}'
    assert kills >= 3
