"""`ros2 launch` in tests.

The real launch / launch_ros libraries through scripts/ros2-launch.sh (their upstream sources in
../shared/vendor/ros2_launch; tests skip where that folder is absent).
"""
from __future__ import annotations

import os
from pathlib import Path
import re
import signal
import subprocess
import time

from ros_helpers import REPO

VENDOR = Path(os.environ.get('ROS2_LAUNCH_VENDOR',
                             REPO.parent / 'shared' / 'vendor' / 'ros2_launch'))
LAUNCH = REPO / 'scripts' / 'ros2-launch.sh'
HAVE_LAUNCH = (VENDOR / 'launch' / 'launch').is_dir() and (
    VENDOR / 'launch_ros' / 'launch_ros').is_dir()
SKIP_REASON = (f"the ROS 2 launch libraries' sources are not at {VENDOR} (a user's clone without "
               '../shared; '
               'CI has them): the launch files are only checked statically here')


def show_args(launch_file: str, env: dict | None = None) -> dict[str, tuple[str, str | None]]:
    """`ros2 launch grasp_autolabel FILE --show-args` -> {name: (description, default or None)}."""
    out = subprocess.run([str(LAUNCH), 'grasp_autolabel', launch_file, '--show-args'],
                         capture_output=True,
                         text=True, timeout=120, env={**os.environ, **(env or {})})
    assert out.returncode == 0, out.stdout + out.stderr
    args = {}
    for m in re.finditer(r"\n    '([^']+)':\n        (.*)\n        \((?:default: (.*)|no "
                         r'default)\)', out.stdout):
        args[m.group(1)] = (m.group(2).strip(), m.group(3))
    return args


class Launch:
    """`ros2 launch grasp_autolabel FILE ARGS...` in its own process; output to a log file."""

    def __init__(self, launch_file: str, *args: str, log_dir: Path, env: dict | None = None):
        self.name = f'launch {launch_file}'
        self.log_path = Path(log_dir) / f'launch-{launch_file}-{time.monotonic_ns()}.log'
        self._log = open(self.log_path, 'w')
        self.proc = subprocess.Popen([str(LAUNCH), 'grasp_autolabel', launch_file, *args],
                                     stdout=self._log,
                                     stderr=subprocess.STDOUT,
                                     env={**os.environ, 'PYTHONUNBUFFERED': '1', **(env or {})},
                                     start_new_session=True)

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.output())
            if m:
                return m
            if not self.alive():
                break
            time.sleep(0.1)
        raise AssertionError(f'{self.name}: no /{pattern}/ within {timeout} s:\n{self.output()}')

    def interrupt(self, within: float = 2.0) -> str:
        """Ctrl-C: SIGINT to the launch process, which passes it on.

        Asserts that the launch ends within ``within`` seconds with every process it started
        "finished cleanly", no traceback. Returns the output.
        """
        assert self.alive(), f'{self.name} ended before the interrupt:\n{self.output()}'
        t0 = time.monotonic()
        os.kill(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(timeout=within + 15)
        finally:
            took = time.monotonic() - t0
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            self._log.close()
        out = self.log_path.read_text()
        started = re.findall(r'\[INFO\] \[([\w-]+)\]: process started', out)
        clean = re.findall(r'\[INFO\] \[([\w-]+)\]: process has finished cleanly', out)
        assert started and sorted(started) == sorted(
            clean), f'{self.name}: not every process finished cleanly:\n{out}'
        assert 'Traceback' not in out and 'RCLError' not in out, (
            f'{self.name}: error output at shutdown:\n{out}')
        assert self.proc.returncode == 0, f'{self.name} exited with {self.proc.returncode}:\n{out}'
        assert took <= within, (
            f'{self.name}: took {took:.2f} s to exit after SIGINT (limit {within} s):\n{out}')
        return out

    def stop_quietly(self) -> None:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if not self._log.closed:
            self._log.close()
