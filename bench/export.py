"""Bag export: speed on a continuous 640x480 MCAP recording (target >= 5x real time at 30 Hz on
one core) and pick detection on simulated continuous recordings (target >= 98 % of picks found,
no false picks), with and without faults, with and without a trigger topic.

A pick is a step of the simulation that removed something (a failed pick removes nothing and is
not a pick), except with a trigger, which the operator sends after every step. Found: a capture
lies between that pick and the next one. False: more than one capture between two picks (or
before the first).

Run: scripts/in-env.sh python bench/export.py [--sequences 12 --seed 3100]
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


from grasp_autolabel.jobs.export import ExportOptions, export_bags  # noqa: E402
from grasp_autolabel.dataset.store import GraspDataset  # noqa: E402
from grasp_autolabel.sim import CellConfig  # noqa: E402
from grasp_autolabel.jobs.simulate import simulate  # noqa: E402


from common import one_core  # noqa: E402

def quiet(*a, **k):
    pass


def detection(root: Path, ds_path: Path, *, every_step: bool = False) -> dict:
    """Found / missed / false picks of every bag exported into ``ds_path``. ``every_step``: with a
    trigger the operator presses "done" after every step, a failed pick too, so each is a capture."""
    ds = GraspDataset.open(ds_path)
    labels = [ds.read_label(i) for i in ds.item_indices()]
    out = {"picks": 0, "found": 0, "false": 0}
    for src, record in enumerate(ds.meta["sources"]):
        steps = json.loads((root / record["name"] / "gt" / "sequence.json").read_text())["steps"]
        picks = [s["stamp_ns"] for s in steps if s["removed"] or every_step]
        mine = [lab for lab in labels if lab.source == src]
        caps = sorted({lab.stamp_before_ns for lab in mine} | {lab.stamp_after_ns for lab in mine})
        bounds = [-1] + picks + [2 ** 63]
        per = [sum(1 for c in caps if lo < c < hi) for lo, hi in zip(bounds[:-1], bounds[1:])]
        out["picks"] += len(picks)
        out["found"] += sum(1 for n in per[1:] if n >= 1)
        out["false"] += sum(max(0, n - 1) for n in per)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sequences", type=int, default=12, help="sequences per detection scenario (320x240)")
    ap.add_argument("--seed", type=int, default=3100)
    ap.add_argument("--speed-logs", type=int, default=6, help="logs in the 640x480 speed recording")
    args = ap.parse_args()
    one_core()
    tmp = Path(tempfile.mkdtemp(prefix="bench_export_"))
    try:
        # ---- speed: one continuous 640x480 recording at 30 Hz
        t0 = time.perf_counter()
        speed = tmp / "speed"
        simulate(speed, sequences=1, seed=args.seed, config=CellConfig(n_logs=(args.speed_logs, args.speed_logs)),
                 progress=False, bag="continuous", fps=30.0)
        bag = speed / "bags" / "seq_000"
        size_mb = sum(f.stat().st_size for f in bag.iterdir()) / 1e6
        print(f"recording: {size_mb:.0f} MB MCAP, written in {time.perf_counter() - t0:.0f} s", flush=True)
        times = []
        for r in range(3):
            t0 = time.perf_counter()
            s = export_bags([bag], tmp / f"speed_ds{r}", progress=False, log=quiet)
            times.append(time.perf_counter() - t0)
        frames = s.frames
        duration = frames / 30.0
        best = min(times)
        print(f"export, 640x480 continuous MCAP, one core: {frames} frames ({duration:.1f} s at 30 Hz), "
              f"{s.picks_found} picks: best of 3 {best:.2f} s = {frames / best:.0f} frames/s = "
              f"{duration / best:.1f}x real time (target >= 5x)")
        sp = detection(speed, tmp / "speed_ds0")
        print(f"  picks found {sp['found']}/{sp['picks']}, false {sp['false']}")

        # ---- pick detection
        rows = []
        for name, faults, trigger in (("clean", 0.0, False), ("faults 0.25", 0.25, False),
                                      ("faults 0.25 + trigger", 0.25, True)):
            root = tmp / name.replace(" ", "_").replace("+", "")
            cfg = CellConfig(width=320, height=240, fault_rate=faults)
            simulate(root, sequences=args.sequences, seed=args.seed + 1, config=cfg, progress=False,
                     bag="continuous", fps=30.0, trigger=trigger)
            opts = ExportOptions(trigger="/operator/pick_done" if trigger else None)
            export_bags([root / "bags"], root / "ds", options=opts, progress=False, log=quiet)
            d = detection(root, root / "ds", every_step=trigger)
            rows.append((name, d))
            print(f"pick detection, {name:22s} ({args.sequences} recordings, 320x240, 30 Hz): "
                  f"found {d['found']}/{d['picks']} = {100 * d['found'] / max(d['picks'], 1):.1f} %, "
                  f"false picks {d['false']}", flush=True)
        total = {k: sum(d[k] for _, d in rows) + sp[k] for k in ("picks", "found", "false")}
        print(f"all: found {total['found']}/{total['picks']} = {100 * total['found'] / total['picks']:.1f} % "
              f"(target >= 98 %), false picks {total['false']} (target 0)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
