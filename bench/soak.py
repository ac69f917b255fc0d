"""Soak: the simulated cell for an hour, a pick every few seconds, a node SIGKILLed every few
minutes (issue 23 target: 0 picks lost, 0 duplicated, RSS flat).

The real node processes (sim camera, capture, autolabel with ``session_dir``) as
``run-sim`` starts them. Each pick: the simulated arm takes a log (``~/pick``; a new pile when
the last log is gone), then the capture button (``/capture_node/capture``), pressed again until
it is answered (the capture node may be down). Every ``--kill-every-s`` the capture or the
autolabel node (in turn) gets SIGKILL at a random moment of a pick and is restarted. At the
end: every session step labelled exactly once (labels name their frames), one dataset source,
and each node's RSS at the start and end of the run (killed nodes: since their last restart).

Run it on a ROS domain of its own (above 100: the tests use 1-100), e.g.
ROS_DOMAIN_ID=150 scripts/in-env.sh python bench/soak.py [--minutes 60] [--pick-every-s 3]
     [--kill-every-s 120] [--out DIR]
"""
import argparse
from collections import Counter
import json
import os
from pathlib import Path
import random
import signal
import sys
import tempfile
import time

from grasp_autolabel.dataset import GraspDataset
from grasp_autolabel.ros.cell_client import CellClient
from grasp_autolabel.ros.run_sim import CAM, node_command, NodeProc
from grasp_autolabel.core.session import Session

from common import group_rss_mb  # noqa: E402


def commands(out: Path) -> dict:
    return {
        'sim_camera_node': node_command('sim_camera_node', '-r', '__node:=camera', '-r',
                                        '__ns:=/camera', '-p', 'fps:=15.0', '-p', 'width:=640',
                                        '-p', 'height:=480', '-p', 'logs:=12', '-p',
                                        'arm_in_view_s:=0.0'),
        'capture_node': node_command('capture_node', '-p', f'session_dir:={out / "session"}'),
        'autolabel_node': node_command('autolabel_node', '-p',
                                       f'dataset_dir:={out / "dataset"}', '-p',
                                       f'session_dir:={out / "session"}'),
    }


class Cell:
    def __init__(self, out: Path):
        self.out, self.cmds = out, commands(out)
        self.logs = out / 'logs'
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, 'PYTHONUNBUFFERED': '1'}
        self.procs = {name: self.start(name) for name in self.cmds}
        self.rss = {name: [] for name in self.cmds}  # (t, MB) since the last (re)start
        self.client = CellClient([], timeout_s=5.0, name='soak')
        self.restarts = Counter()
        self.started = time.monotonic()
        self.camera_rss = []  # (minute, MB) of the simulated camera, never killed
        self.kill_minutes = []
        self.lives = {name: [] for name in self.cmds}  # peak RSS of each life of a killed node

    def start(self, name: str) -> NodeProc:
        log_dir = self.logs / f'{name}.{int(time.time() * 1000)}'
        log_dir.mkdir()
        return NodeProc(name, self.cmds[name], log_dir, self.env)

    def kill_and_restart(self, name: str) -> None:
        proc = self.procs[name]
        os.killpg(proc.proc.pid, signal.SIGKILL)
        proc.proc.wait()
        self.procs[name] = self.start(name)
        if self.rss[name]:
            self.lives[name].append(round(max(mb for _, mb in self.rss[name]), 1))
        self.rss[name] = []
        self.restarts[name] += 1
        self.kill_minutes.append(round((time.monotonic() - self.started) / 60, 1))

    def call(self, name: str, deadline_s: float = 120.0):
        """Call a Trigger service until it answers (the node may be restarting)."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            try:
                return self.client.call(name)
            except RuntimeError:
                self.client._clients.pop(name, None)  # a fresh client for the new server
        raise RuntimeError(f'{name} did not answer for {deadline_s:.0f} s')

    def sample_rss(self) -> None:
        minute = int((time.monotonic() - self.started) // 60)
        if len(self.camera_rss) <= minute and self.procs['sim_camera_node'].alive():
            self.camera_rss.append((minute, round(group_rss_mb(
                self.procs['sim_camera_node'].proc.pid), 1)))
        for name, proc in self.procs.items():
            if proc.alive():
                self.rss[name].append((time.monotonic(), group_rss_mb(proc.proc.pid)))

    def shm_segments(self) -> dict:
        """Fast DDS shared-memory segments each node has mapped (one per peer it sent to)."""
        out = {}
        for name, proc in self.procs.items():
            segments = set()
            for pid in _group_pids(proc.proc.pid):
                try:
                    maps = Path(f'/proc/{pid}/maps').read_text()
                except OSError:
                    continue
                segments |= {line.split()[-1] for line in maps.splitlines()
                             if '/dev/shm/fastdds_' in line and not line.endswith('_el')}
            out[name] = len(segments)
        return out

    def stop(self) -> dict:
        self.client.close()
        return {name: proc.stop() for name, proc in self.procs.items()}


def _group_pids(pgid: int) -> list:
    pids = []
    for entry in Path('/proc').iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def pick(cell: Cell) -> str:
    reply = cell.call(f'{CAM}/pick')
    if not reply.success:  # the pile is cleared: a new one
        cell.call(f'{CAM}/reset')
    cell.client.spin_for(0.5)  # fresh frames of the changed pile reach the capture node
    for _ in range(20):
        reply = cell.call('/capture_node/capture')
        if reply.success:
            return reply.message
        cell.client.spin_for(0.5)  # "no new frame" right after a restart: the camera again
    raise RuntimeError(f'capture refused 20 times: {reply.message}')


def check(out: Path) -> dict:
    session, ds = Session.open(out / 'session'), GraspDataset.open(out / 'dataset')
    after = [ds.read_label(i).frame_after for i in ds.item_indices()]
    steps = set(range(1, len(session.frames)))
    counts = Counter(after)
    return {'frames': len(session.frames), 'labels': len(after),
            'lost': len(steps - set(after)),
            'duplicated': sum(n - 1 for n in counts.values() if n > 1),
            'sources': len(ds.meta['sources'])}


def rss_summary(rss: dict) -> dict:
    out = {}
    for name, samples in rss.items():
        if len(samples) >= 4:
            warm = samples[len(samples) // 4:]  # after warm-up
            (t0, m0), (t1, m1) = warm[0], warm[-1]
            out[name] = {'mb_start': round(m0, 1), 'mb_end': round(m1, 1),
                         'mb_per_hour': round((m1 - m0) / max(t1 - t0, 1) * 3600, 1),
                         'minutes': round((t1 - t0) / 60, 1)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--minutes', type=float, default=60.0)
    ap.add_argument('--pick-every-s', type=float, default=3.0)
    ap.add_argument('--kill-every-s', type=float, default=120.0)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--out', type=Path, default=None)
    args = ap.parse_args()

    def stop_on_sigterm(*_):
        raise KeyboardInterrupt  # the finally below stops the nodes (no orphans on DDS)

    signal.signal(signal.SIGTERM, stop_on_sigterm)
    out = args.out or Path(tempfile.mkdtemp(prefix='soak-'))
    rng = random.Random(args.seed)
    cell = Cell(out)
    end = time.monotonic() + args.minutes * 60
    next_kill = time.monotonic() + args.kill_every_s
    victims, picks, kills = ['autolabel_node', 'capture_node'], 0, 0
    try:
        pick(cell)  # the untouched pile: frame 0
        while time.monotonic() < end:
            t0 = time.monotonic()
            if t0 >= next_kill:  # at a random moment of this pick
                cell.client.spin_for(rng.uniform(0.0, 1.0))
                cell.kill_and_restart(victims[kills % 2])
                kills += 1
                next_kill += args.kill_every_s
            pick(cell)
            picks += 1
            cell.sample_rss()
            if picks % 20 == 0:
                print(f'{(time.monotonic() - end) / 60 + args.minutes:.1f} min: {picks} picks, '
                      f'{kills} kills', flush=True)
            cell.client.spin_for(max(0.0, args.pick_every_s - (time.monotonic() - t0)))
        # the last step labelled (the autolabel node may have restarted just now)
        cell.client.spin_until(lambda: check(out)['lost'] == 0, 60)
        shm = cell.shm_segments()
    finally:
        codes = cell.stop()
    result = {'minutes': args.minutes, 'picks': picks, 'kills': dict(cell.restarts),
              **check(out), 'rss': rss_summary(cell.rss), 'shm_segments_mapped': shm,
              'camera_rss_per_minute': [mb for _, mb in cell.camera_rss],
              'kill_minutes': cell.kill_minutes, 'peak_rss_per_life': cell.lives,
              'exit_codes': codes, 'out': str(out)}
    print(json.dumps(result))
    return 0 if result['lost'] == 0 and result['duplicated'] == 0 else 1


if __name__ == '__main__':
    sys.exit(main())
