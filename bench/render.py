"""Rendering speed of the simulated cell (issue target: >= 20 frames/s at 640x480, one core).

Measures, over several piles:
  * scene render: exact ray casting of a changed scene (depth, instances, shaded RGB);
  * sensor: noise, quantisation and invalid pixels applied to a rendered frame;
  * frame after a pick: both together, what `simulate` and sim_camera_node pay per new scene;
  * streaming frame: sensor only, what sim_camera_node pays per published frame.

Run: scripts/in-env.sh python bench/render.py [--width 640 --height 480 --piles 8]
"""
import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from grasp_autolabel.sim import CellConfig, SimCell  # noqa: E402
from grasp_autolabel.sim.render import render  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--piles", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    try:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    except (AttributeError, OSError):
        pass
    cfg = CellConfig(width=args.width, height=args.height, n_logs=(14, 14))
    t_render, t_sensor, logs = [], [], []
    for seed in range(args.piles):
        cell = SimCell(cfg, seed=seed)
        cell.clean()  # textures and the per-camera ground are built once per cell
        r = None
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            r = render(cell.camera, cell.pile.logs, rays=cell._rays)
            t1 = time.perf_counter()
            cell.config.sensor.depth(r.depth, cell.intrinsics.fx, cell.rng)
            cell.config.sensor.rgb(r.rgb, cell.rng)
            t2 = time.perf_counter()
            t_render.append(t1 - t0)
            t_sensor.append(t2 - t1)
        logs.append(len(cell.pile.logs))
    render_ms = 1e3 * np.median(t_render)
    sensor_ms = 1e3 * np.median(t_sensor)
    full = np.array(t_render) + np.array(t_sensor)
    print(f"simulated cell, {args.width}x{args.height}, {args.piles} piles of {logs[0]} logs, one core")
    print(f"  scene render       median {render_ms:6.1f} ms")
    print(f"  sensor model       median {sensor_ms:6.1f} ms")
    print(f"  frame after a pick median {1e3 * np.median(full):6.1f} ms  p90 {1e3 * np.percentile(full, 90):6.1f} ms"
          f"  -> {1 / np.median(full):5.1f} frames/s (target >= 20)")
    print(f"  streaming frame    median {sensor_ms:6.1f} ms  -> {1e3 / sensor_ms:5.1f} frames/s")


if __name__ == "__main__":
    main()
