"""Helpers for tests that run real nodes in real processes over DDS."""
from __future__ import annotations

import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys
import time

REPO = Path(__file__).resolve().parents[2]


def node_command(executable: str, *ros_args: str) -> list[str]:
    """Return the node's command as `ros2 run grasp_autolabel <executable>` would start it.

    The installed console script in install/grasp_autolabel/lib/grasp_autolabel, with
    --ros-args.
    """
    installed = REPO / 'install' / 'grasp_autolabel' / 'lib' / 'grasp_autolabel' / executable
    cmd = [str(installed)] if installed.exists() else [sys.executable, '-m',
                                                       f'grasp_autolabel.ros.{executable}']
    return cmd + (['--ros-args', *ros_args] if ros_args else [])


class NodeProcess:
    """A node in its own process; output goes to a log file that a failing test prints."""

    def __init__(self, executable: str, *ros_args: str, log_dir: Path, env: dict | None = None):
        self.name = executable
        self.log_path = Path(log_dir) / f'{executable}-{time.monotonic_ns()}.log'
        self._log = open(self.log_path, 'w')
        self.proc = subprocess.Popen(node_command(executable, *ros_args), stdout=self._log,
                                     stderr=subprocess.STDOUT,
                                     env={**os.environ, 'PYTHONUNBUFFERED': '1', **(env or {})},
                                     start_new_session=True)

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, n: int = 40) -> str:
        return '\n'.join(self.output().splitlines()[-n:])

    def kill(self) -> None:
        """SIGKILL the node's whole process group.

        The ROS 2 wheels' bootstrapper runs the node in a child process, which a signal to the
        parent alone would leave running.
        """
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout: float = 10.0) -> int:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def spin_until(executor, predicate, timeout: float, *, processes=()) -> bool:
    """Spin ``executor`` until ``predicate()`` is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        for p in processes:
            if not p.alive():
                raise AssertionError(f'{p.name} exited with {p.proc.returncode}:\n{p.output()}')
        executor.spin_once(timeout_sec=0.05)
    return predicate()


def call_service(node, executor, srv_type, name: str, request=None, timeout: float = 20.0):
    # one client per node and service: a client made per call can be handed the late answer to
    # an earlier client's request (their sequence numbers both start at 1)
    cache = node.__dict__.setdefault('_test_clients', {})
    client = cache.get(name) or cache.setdefault(name, node.create_client(srv_type, name))
    if not spin_until(executor, client.service_is_ready, timeout):
        raise AssertionError(f'service {name} not available within {timeout} s')
    future = client.call_async(request or srv_type.Request())
    if not spin_until(executor, future.done, timeout):
        raise AssertionError(f'service {name} did not answer within {timeout} s')
    return future.result()


def node_status(diagnostics: list, node: str, since: int = 0):
    """Return the newest /diagnostics status of ``node`` from message ``since`` on.

    None: none yet.
    """
    for msg in reversed(diagnostics[since:]):
        for status in msg.status:
            if status.name.endswith(node):
                return status
    return None


def status_count(diagnostics: list, node: str, key: str, since: int = 0) -> int | None:
    """Return an integer of ``node``'s newest status (0: the status lacks it; None: no status)."""
    status = node_status(diagnostics, node, since)
    return None if status is None else int({kv.key: kv.value for kv in status.values}.get(key, 0))


def wait_for_fresh_frames(client, n: int = 5, node: str = 'capture_node') -> None:
    """Wait until ``node`` has paired ``n`` colour+depth frames taken after now.

    Counted from its first /diagnostics status published after now, so frames from before
    cannot count (``client``: a CellClient).
    """
    since = len(client.diagnostics)
    assert client.spin_until(
        lambda: status_count(client.diagnostics, node, 'pairs', since) is not None, 10)
    base = status_count(client.diagnostics, node, 'pairs', since)
    assert client.spin_until(
        lambda: status_count(client.diagnostics, node, 'pairs') >= base + n, 10)


def have_shutil(cmd: str) -> bool:
    return shutil.which(cmd) is not None
