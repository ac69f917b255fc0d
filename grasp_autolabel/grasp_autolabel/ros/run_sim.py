"""``grasp-autolabel run-sim``.

The simulated cell graph as real processes (what ``ros2 launch grasp_autolabel sim.launch.py``
starts, for machines without ``ros2 launch``).

Starts sim_camera_node, capture_node (auto capture) and autolabel_node, waits for the capture
node to capture the untouched pile on its own, then performs N picks through
``/camera/camera/pick``; after each pick
the operator's arm withdraws, the capture node captures on its own once the scene is still,
and the autolabel node publishes the step's grasps. Leaves DIR/session (capture layout),
DIR/dataset (grasp dataset) and DIR/logs; exits non-zero if a node failed.
"""
from __future__ import annotations

import os
from pathlib import Path
import signal
import subprocess
import sys

from grasp_autolabel.core.errors import CommandError

CAM = '/camera/camera'


def node_command(executable: str, *ros_args: str) -> list[str]:
    """Return the command line that runs node ``executable`` of this package with ``ros_args``."""
    return [sys.executable, '-m', f'grasp_autolabel.ros.{executable}', '--ros-args', *ros_args]


class NodeProc:
    """A node in its own process group, its output in ``log_dir/NAME.log``."""

    def __init__(self, name: str, cmd: list[str], log_dir: Path, env: dict):
        self.name = name
        self.log_path = log_dir / f'{name}.log'
        self._log = open(self.log_path, 'w')
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        if self.alive():
            # the whole process group: the ROS 2 wheels' bootstrapper runs the node in a child
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def tail(self, n: int = 15) -> str:
        return '\n'.join(self.log_path.read_text().splitlines()[-n:])


def run(out: Path, *, picks: int, seed: int = 0, fps: float = 30.0, width: int = 640,
        height: int = 480,
        arm_s: float = 0.6, settle_s: float = 0.5, timeout_s: float = 30.0,
        progress=print) -> dict:
    """Run the simulated cell's graph for ``picks`` picks and return a summary.

    It captures the pile, performs the picks and returns (picks, steps, accepted, grasps,
    exit_codes); CommandError when a node fails or the graph does not answer.
    """
    from grasp_autolabel.ros.cell_client import CellClient

    out = Path(out)
    for sub in ('session', 'dataset'):
        if (out / sub).exists() and any((out / sub).iterdir()):
            raise CommandError(
                f'{out / sub} already exists and is not empty; choose another --out')
    logs = out / 'logs'
    logs.mkdir(parents=True, exist_ok=True)
    procs = _start_graph(out, logs, seed=seed, fps=fps, width=width, height=height, arm_s=arm_s,
                         settle_s=settle_s)
    cell = CellClient(procs, timeout_s)
    failed = None
    summary = {'picks': 0, 'steps': 0, 'accepted': 0, 'grasps': 0}
    try:
        _wait_for_first_frame(cell, out, timeout_s)
        progress(f'first frame captured; performing {picks} picks')
        for i in range(picks):
            reply = _pick(cell, timeout_s, progress)
            summary['picks'] += 1
            k = len(cell.labels[-1].grasps)
            summary['steps'] += 1
            summary['accepted'] += bool(k)
            summary['grasps'] += k
            progress(f'pick {i + 1}/{picks}: {reply.message}; {k} grasps' if k else
                     f'pick {i + 1}/{picks}: {reply.message}; rejected by the gate (see '
                     f"{out / 'dataset' / 'labels'})")
    except RuntimeError as exc:
        failed = str(exc)
    finally:
        cell.close()
        codes = {p.name: p.stop() for p in procs}
    bad = {name: code for name, code in codes.items() if code not in (0, -signal.SIGINT)}
    summary['exit_codes'] = codes
    if failed or bad:
        raise CommandError((failed or '') + (
            f'; node(s) failed: {bad}, logs in {logs}' if bad else f' (logs in {logs})'))
    return summary


def _start_graph(out: Path, logs: Path, *, seed, fps, width, height, arm_s,
                 settle_s) -> list[NodeProc]:
    env = {**os.environ, 'PYTHONUNBUFFERED': '1', 'RCUTILS_LOGGING_BUFFERED_STREAM': '0'}
    return [NodeProc('sim_camera_node',
                     node_command('sim_camera_node', '-r', '__node:=camera', '-r', '__ns:=/camera',
                                  '-p', f'fps:={float(fps)}', '-p', f'seed:={seed}', '-p',
                                  f'width:={width}', '-p', f'height:={height}', '-p',
                                  f'arm_in_view_s:={float(arm_s)}'), logs, env),
            NodeProc('capture_node',
                     node_command('capture_node', '-p', f'session_dir:={out / "session"}', '-p',
                                  'auto_capture:=true', '-p', f'settle_s:={float(settle_s)}'),
                     logs, env),
            NodeProc('autolabel_node',
                     node_command('autolabel_node', '-p', f'dataset_dir:={out / "dataset"}',
                                  '-p', f'session_dir:={out / "session"}'), logs, env)]


def _wait_for_first_frame(cell, out: Path, timeout_s: float) -> None:
    node = cell.node
    if not cell.spin_until(lambda: node.count_subscribers('/capture_node/captured/rgb') >= 1
                           and node.count_publishers('/autolabel_node/grasps') >= 1, timeout_s):
        raise RuntimeError('the nodes did not connect')
    # auto capture takes the untouched pile by itself once it is still
    if not cell.spin_until((out / 'session' / 'rgb' / '000000.png').exists, timeout_s):
        raise RuntimeError(
            'capture_node did not capture the first still scene (no frames from the camera?)')
    # the first pick only once the autolabel node holds the first frame (the captured topics
    # keep only the newest frame for a subscriber that matched late)
    if not cell.spin_until(lambda: cell.autolabel_frames() >= 1, timeout_s):
        raise RuntimeError('autolabel_node did not receive the first captured frame')


def _pick(cell, timeout_s: float, progress):
    """One pick through the sim camera's service; its labels published.

    An empty pile is replaced first (the step from the old pile to the new one is rejected by the
    gate).
    """
    n = len(cell.labels)
    reply = cell.call(f'{CAM}/pick')
    if not reply.success:  # the pile is empty: a new one, and a fresh first frame
        cell.call(f'{CAM}/reset')
        progress(
            'pile empty: new pile (the step from the old pile to the new one is rejected by the '
            'gate)')
        # the capture node captures the new pile on its own; wait for that step's answer
        if not cell.spin_until(lambda: len(cell.labels) > n, timeout_s):
            raise RuntimeError(f'the new pile was not captured within {timeout_s:.0f} s')
        n = len(cell.labels)
        reply = cell.call(f'{CAM}/pick')
    if not cell.spin_until(lambda: len(cell.labels) > n, timeout_s):
        raise RuntimeError(
            f'no grasps published within {timeout_s:.0f} s of the pick ({reply.message})')
    return reply
