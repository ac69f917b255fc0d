"""Starts and stops of the simulated cell graph through the real ROS 2 launch (issue 13 target):
N consecutive `ros2 launch grasp_autolabel sim.launch.py` runs under a CPU load, each until the
capture node has its first colour + depth pair (or `--wait` s), then SIGINT.

Per start: seconds from the launch command to the capture node's first pair (its own log line),
how often a node reported a silent input (and subscribed afresh), whether every process
"finished cleanly" and how long the launch took to exit after SIGINT. Prints one line per start
and a summary; the target is data within 5 s in N of N and every exit clean within 2 s.

Run: scripts/in-env.sh python bench/launch_starts.py [--starts 100] [--load 2] [--wait 20]
(uses scripts/ros2-launch.sh: the vendored launch libraries; set FASTDDS_BUILTIN_TRANSPORTS to
compare transports)
"""
import argparse
import multiprocessing as mp
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIRST = re.compile(r"\[capture_node\]: first colour\+depth pair")


def burn(stop) -> None:
    a = np.random.rand(256, 256)
    while not stop.is_set():
        a = np.tanh(a @ a.T / 256.0)


def one_start(k: int, home: Path, wait: float, domain: int) -> dict:
    env = {**os.environ, "HOME": str(home), "ROS_DOMAIN_ID": str(domain), "PYTHONUNBUFFERED": "1"}
    t0 = time.monotonic()
    proc = subprocess.Popen([str(ROOT / "scripts" / "ros2-launch.sh"), "grasp_autolabel", "sim.launch.py",
                             f"session_dir:={home / f'session{k}'}", f"dataset_dir:={home / f'dataset{k}'}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines, first = [], [None]

    def read():
        for line in proc.stdout:
            lines.append(line)
            if first[0] is None and FIRST.search(line):
                first[0] = time.monotonic() - t0

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    while first[0] is None and time.monotonic() - t0 < wait and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)
    t_int = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    exit_s = time.monotonic() - t_int
    reader.join(timeout=5)
    text = "".join(lines)
    started = len(re.findall(r"process started with pid", text))
    clean = len(re.findall(r"process has finished cleanly", text))
    return {"first_s": first[0], "exit_s": exit_s, "rc": proc.returncode, "started": started, "clean": clean,
            "silent": len(re.findall(r"no message (yet|for)", text)), "errors": len(re.findall(r"Traceback|RCLError", text)),
            "log": text}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--starts", type=int, default=100)
    ap.add_argument("--load", type=int, default=2, help="CPU-burning processes alongside (default 2: both cores)")
    ap.add_argument("--wait", type=float, default=20.0, help="give up on a start's first pair after this, s")
    ap.add_argument("--domain", type=int, default=91)
    args = ap.parse_args()
    stop = mp.Event()
    burners = [mp.Process(target=burn, args=(stop,), daemon=True) for _ in range(args.load)]
    for b in burners:
        b.start()
    transports = os.environ.get("FASTDDS_BUILTIN_TRANSPORTS", "LARGE_DATA (ros2-launch.sh default)")
    print(f"{args.starts} starts of sim.launch.py, {args.load} CPU burner(s), FASTDDS_BUILTIN_TRANSPORTS={transports}",
          flush=True)
    results = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for k in range(args.starts):
                r = one_start(k, Path(tmp), args.wait, args.domain)
                results.append(r)
                first = f"{r['first_s']:.1f} s" if r["first_s"] is not None else "NEVER"
                print(f"start {k + 1:3d}: first pair {first}, silent-input reports {r['silent']}, "
                      f"exit {r['exit_s']:.2f} s, clean {r['clean']}/{r['started']}, rc {r['rc']}"
                      + (f", {r['errors']} traceback(s)" if r["errors"] else ""), flush=True)
                if r["first_s"] is None or r["clean"] != r["started"] or r["errors"]:
                    Path(tmp, f"start{k}.log").write_text(r["log"])
                    (ROOT / "build").mkdir(exist_ok=True)
                    (ROOT / "build" / f"launch_start_{k}.log").write_text(r["log"])
    finally:
        stop.set()
        for b in burners:
            b.join(timeout=5)
    firsts = np.array([r["first_s"] if r["first_s"] is not None else np.inf for r in results])
    exits = np.array([r["exit_s"] for r in results])
    ok_data = int(np.sum(firsts <= 5.0))
    ok_exit = sum(1 for r in results if r["clean"] == r["started"] == 3 and r["exit_s"] <= 2.0 and not r["errors"])
    finite = firsts[np.isfinite(firsts)]
    print(f"data within 5 s: {ok_data}/{len(results)}; ever: {len(finite)}/{len(results)}; first pair p50 "
          f"{np.median(finite):.1f} s, max {finite.max():.1f} s" if len(finite) else "no start got data")
    print(f"clean exit of all 3 processes within 2 s of SIGINT: {ok_exit}/{len(results)}; exit p50 "
          f"{np.median(exits):.2f} s, max {exits.max():.2f} s")
    print(f"starts with a silent-input report: {sum(1 for r in results if r['silent'])}/{len(results)}")
    return 0 if ok_data == ok_exit == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
