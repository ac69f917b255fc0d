"""Closed loop (issue 22): a simulated robot clears piles using the detector's grasps.

sim_camera_node (the simulated cell, mounted as config/sim_mounting.yaml, piles of 8-14 logs) and
inference_node (the model, the same mounting) run as real processes over DDS; the planner of
examples/planner_client.py asks ~/sample_grasp_poses (MoveIt Task Constructor's DeepGraspPose
interface) for a fresh frame's candidates, takes the best reachable one and has the simulated
robot (~/execute_grasp) carry it out; the simulator decides from its truth whether the grasp
held. Each pile ends when it is empty, after two misses in a row, or when no reachable grasp
comes. Prints per pile and in total: picks tried, picks that held, piles cleared, time per pick
(detect + plan: goal sent -> grasp chosen), and the cause of every miss.

Targets: >= 98 % of picks hold, >= 95 % of piles cleared (a model trained with `train`'s
defaults on this CPU).

Run: scripts/in-env.sh python bench/closed_loop.py --model model.onnx [--piles 20] [--seed 100]
"""
import argparse
import json
import os
from pathlib import Path
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples"))

import planner_client  # noqa: E402


def start(tmp: Path, name: str, *args: str) -> subprocess.Popen:
    log = open(tmp / f"{name}.log", "w")
    return subprocess.Popen([sys.executable, "-m", f"grasp_autolabel.ros.{name}", "--ros-args", *args],
                            stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)


def stop(procs) -> None:
    for p in procs:
        try:
            os.killpg(p.pid, 2)
            p.wait(timeout=10)
        except Exception:  # noqa: BLE001
            os.killpg(p.pid, 9)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True, help=".onnx model, .pt or run folder")
    ap.add_argument("--piles", type=int, default=20)
    ap.add_argument("--seed", type=int, default=100, help="the first pile's seed (each reset adds 1)")
    ap.add_argument("--fps", type=float, default=30.0, help="the simulated camera's frame rate")
    ap.add_argument("--mounting", type=Path, default=REPO / "grasp_autolabel" / "config" / "sim_mounting.yaml")
    ap.add_argument("--max-picks", type=int, default=40, help="per pile")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--prefer", choices=("top", "score"), default="top",
                    help="the planner's choice among reachable grasps (examples/planner_client.py)")
    ap.add_argument("--label", action="store_true",
                    help="also run capture_node (auto capture) and autolabel_node: the robot's picks are "
                         "labelled as a person's (the planner pauses 2.5 s after each pick for the capture)")
    args = ap.parse_args()
    if not args.model.exists():
        print(f"closed_loop: --model {args.model}: no such file", file=sys.stderr)
        return 2
    import rclpy

    tmp = Path(tempfile.mkdtemp(prefix="bench_closed_loop_"))
    os.environ.setdefault("ROS_DOMAIN_ID", "89")
    mounting = ["--params-file", str(args.mounting)]
    cam = start(tmp, "sim_camera_node", "-r", "__node:=camera", "-r", "__ns:=/camera", *mounting,
                "-p", f"fps:={args.fps}", "-p", f"seed:={args.seed}")
    node = start(tmp, "inference_node", *mounting, "-p", f"model_path:={args.model.resolve()}",
                 "-p", "publish_overlay:=false")
    procs = [cam, node]
    if args.label:
        procs += [start(tmp, "capture_node", "-p", "auto_capture:=true", "-p", f"session_dir:={tmp / 'session'}"),
                  start(tmp, "autolabel_node", "-p", f"dataset_dir:={tmp / 'dataset'}")]
    rclpy.init()
    pargs = planner_client.parser().parse_args(
        ["--execute", "/camera/camera/execute_grasp", "--picks", str(args.max_picks), "--timeout", "10",
         "--prefer", args.prefer]
        + (["--pause-s", "2.5"] if args.label else []))
    planner = planner_client.Planner(pargs)
    from std_srvs.srv import Trigger

    reset = planner.create_client(Trigger, "/camera/camera/reset")
    piles, t_start = [], time.monotonic()
    try:
        if not planner.action.wait_for_server(timeout_sec=120):
            print(f"closed_loop: no action server; see {tmp}", file=sys.stderr)
            return 1
        for k in range(args.piles):
            if k:
                reset.wait_for_service(timeout_sec=10)
                future = reset.call_async(Trigger.Request())
                rclpy.spin_until_future_complete(planner, future, timeout_sec=10)
            t0 = time.monotonic()
            s = planner_client.run(planner, pargs, out=open(os.devnull, "w"))
            s["seconds"] = time.monotonic() - t0
            s["seed"] = args.seed + k
            s["cleared"] = s["logs_left"] == 0
            piles.append(s)
            print(f"pile {k + 1:2d} (seed {s['seed']}): {s['held']}/{s['picks']} picks held, "
                  f"{'cleared' if s['cleared'] else str(s['logs_left']) + ' logs left'} "
                  f"({s['stopped']}), {s['seconds']:.0f} s", flush=True)
            for line in s["miss_details"]:
                print(f"    miss {line}", flush=True)
        if args.label:
            planner.spin_for(5.0)  # the last pick's capture and label
    finally:
        planner.destroy_node()
        rclpy.try_shutdown()
        stop(procs)
    times = np.array([t for s in piles for t in s["detect_plan_s"]]) * 1000
    picks, held = sum(s["picks"] for s in piles), sum(s["held"] for s in piles)
    cleared = sum(s["cleared"] for s in piles)
    causes = {}
    for s in piles:
        for cause, n in s["misses"].items():
            causes[cause] = causes.get(cause, 0) + n
    figures = {"piles": len(piles), "piles_cleared": cleared, "picks": picks, "held": held,
               "held_pct": round(100 * held / max(picks, 1), 2),
               "cleared_pct": round(100 * cleared / max(len(piles), 1), 2),
               "detect_plan_ms_p50": round(float(np.percentile(times, 50)), 1) if len(times) else None,
               "detect_plan_ms_p95": round(float(np.percentile(times, 95)), 1) if len(times) else None,
               "misses_by_cause": causes, "wall_s": round(time.monotonic() - t_start, 1)}
    print(f"closed loop, {len(piles)} piles of 8-14 logs, model {args.model.name}, camera at {args.fps:g} Hz, "
          f"planner --prefer {args.prefer}: "
          f"{held}/{picks} picks held ({figures['held_pct']} %), {cleared}/{len(piles)} piles cleared "
          f"({figures['cleared_pct']} %); detect + plan per pick p50 {figures['detect_plan_ms_p50']} ms, "
          f"p95 {figures['detect_plan_ms_p95']} ms; misses by cause {causes or 'none'}; "
          f"{figures['wall_s']:.0f} s", flush=True)
    if args.label:
        labels = [json.loads(p.read_text()) for p in sorted((tmp / "dataset" / "labels").glob("*.json"))]
        reasons = {}
        for r in labels:
            if not r["accepted"]:
                reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
        figures.update(labelled_steps=len(labels), accepted=sum(r["accepted"] for r in labels),
                       rejected_by_reason=reasons)
        print(f"labelled by capture_node + autolabel_node: {len(labels)} steps for {held} picks that held "
              f"({len(piles)} piles), {figures['accepted']} accepted, rejected {reasons or 'none'}", flush=True)
    print(json.dumps(figures))
    if args.json:
        args.json.write_text(json.dumps({"figures": figures, "piles": piles}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
