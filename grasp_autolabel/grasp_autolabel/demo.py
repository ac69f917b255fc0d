"""`make demo`: the main job on the simulated cell, no hardware.

1. simulate picking sequences (with the faults a real cell produces) as capture sessions;
2. label every pick automatically, with the quality gate, into a grasp dataset with overlays;
3. score the labels against the simulator's ground truth.

Everything lands in ./demo (or the folder given as the first argument).
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

from grasp_autolabel.annotate.eval_labels import evaluate_labels
from grasp_autolabel.annotate.label import label_sessions
from grasp_autolabel.sim import CellConfig
from grasp_autolabel.sim.writer import simulate


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0] if argv else "demo").resolve()
    if out.exists():
        shutil.rmtree(out)
    tty = sys.stderr.isatty()
    t0 = time.perf_counter()
    print(f"[1/3] simulating 6 picking sequences with faults -> {out / 'sessions'}")
    sessions = simulate(out / "sessions", sequences=6, seed=2026, config=CellConfig(fault_rate=0.25), progress=tty)
    print(f"[2/3] labelling every pick -> {out / 'dataset'}")
    summary = label_sessions(sessions, out / "dataset", viz=True, progress=tty)
    for line in summary.lines():
        print("      " + line)
    print("[3/3] scoring the labels against the simulator's ground truth")
    metrics = evaluate_labels(out / "dataset")
    shown = {k: v for k, v in metrics.items() if k != "outcomes"}
    for k, v in shown.items():
        print(f"      {k:28s} {v}")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    print(f"\ndone in {time.perf_counter() - t0:.0f} s. Look at the overlays in {out / 'dataset' / 'viz'} "
          "(mask outline yellow, spine cyan, jaw edges green, opening edges red);\n"
          f"metrics in {out / 'metrics.json'}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
