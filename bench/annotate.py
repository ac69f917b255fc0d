"""Speed of the annotation itself (issue target: >= 200 steps/s at 640x480 on one core,
excluding PNG I/O) and of the whole `label` command against just reading the PNGs
(target: within 3x).

Run: scripts/in-env.sh python bench/annotate.py [--sequences 6 --seed 900]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from grasp_autolabel.annotate import annotate_step  # noqa: E402
from grasp_autolabel.session import Session  # noqa: E402
from grasp_autolabel.sim import CellConfig  # noqa: E402
from grasp_autolabel.jobs.simulate import simulate  # noqa: E402


from common import one_core  # noqa: E402

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sequences", type=int, default=6)
    ap.add_argument("--seed", type=int, default=900)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    one_core()
    tmp = Path(tempfile.mkdtemp(prefix="bench_annotate_"))
    try:
        paths = simulate(tmp / "sim", sequences=args.sequences, seed=args.seed,
                         config=CellConfig(fault_rate=0.25), progress=False)
        # 1. annotation alone, frames already decoded
        pairs = []
        for p in paths:
            s = Session.open(p)
            depth = [s.read_depth_m(k) for k in s.frames]
            pairs += [(depth[i], depth[i + 1], s.intrinsics) for i in range(len(depth) - 1)]
        times = []
        for _ in range(args.repeats):
            for b, a, intr in pairs:
                t0 = time.perf_counter()
                annotate_step(b, a, intr)
                times.append(time.perf_counter() - t0)
        t = np.array(times)
        print(f"annotation, 640x480, {len(pairs)} steps x {args.repeats}, one core:")
        print(f"  mean {1e3 * t.mean():.2f} ms  median {1e3 * np.median(t):.2f} ms  p90 {1e3 * np.percentile(t, 90):.2f} ms"
              f"  -> {1 / t.mean():.0f} steps/s (target >= 200)")
        # 2. reading every PNG of the sessions (what `label` cannot avoid)
        t0 = time.perf_counter()
        for p in paths:
            s = Session.open(p)
            for k in s.frames:
                s.read_rgb(k)
                s.read_depth(k)
        read_s = time.perf_counter() - t0
        # 3. the whole label command, as a user runs it
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "grasp_autolabel.cli", "label", *map(str, paths), "--out",
                        str(tmp / "ds")], check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        label_s = time.perf_counter() - t0
        print(f"label command: {label_s:.2f} s for {len(pairs)} steps; reading the sessions' PNGs: {read_s:.2f} s"
              f"  -> {label_s / read_s:.2f}x (target <= 3x; includes interpreter start-up)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
