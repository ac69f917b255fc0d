"""``grasp-autolabel simulate``."""
from __future__ import annotations

import shutil
import sys
import time

from grasp_autolabel.errors import CommandError
from grasp_autolabel.sim.cell import CellConfig
from grasp_autolabel.sim.writer import simulate


def simulate_main(args) -> int:
    n_logs = (args.logs, args.logs) if args.logs else CellConfig.n_logs
    try:
        config = CellConfig(width=args.width, height=args.height, n_logs=n_logs, fault_rate=args.faults,
                            tilt_max_deg=args.tilt_max)
    except ValueError as exc:
        raise CommandError(f"simulate: {exc}") from None
    existing = [args.out / f"seq_{i:03d}" for i in range(args.sequences)
                if (args.out / f"seq_{i:03d}").exists() and any((args.out / f"seq_{i:03d}").iterdir())]
    if existing:
        if not args.overwrite:
            raise CommandError(f"{existing[0]} already exists; choose another --out or pass --overwrite")
        for path in existing:
            shutil.rmtree(path)
            bag = args.out / "bags" / path.name
            if bag.exists():
                shutil.rmtree(bag)
    t0 = time.perf_counter()
    paths = simulate(args.out, sequences=args.sequences, seed=args.seed, config=config,
                     progress=sys.stderr.isatty() or None, bag=args.bag, storage=args.storage, fps=args.fps,
                     trigger=args.trigger)
    frames = sum(len(list((p / "rgb").glob("*.png"))) for p in paths)
    print(f"wrote {len(paths)} sequence(s), {frames} frames, to {args.out} in {time.perf_counter() - t0:.1f} s")
    if args.bag:
        print(f"bags ({args.bag}, {args.storage}): {args.out / 'bags'}")
    return 0
