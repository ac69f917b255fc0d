"""Detector serving speed (issue 7 and 8 targets).

1. predictor: 640x480 RGB-D in, grasps out (input + network + decode + jaw size + rotated NMS),
   ONNX Runtime on this CPU (target for the grasp-map network: p50 <= 25 ms, p99 <= 35 ms), at
   the model's score threshold and at 0 (every peak decoded); and torch for comparison;
2. inference_node over DDS, with the sim camera at 30 Hz on the same cores (issue 22 targets):
   a frame's arrival -> its grasps published, p50/p99 over --frames frames, from the node's own
   per-frame measurement (target p99 <= 150 ms); ~/get_grasps asking for a frame newer than now,
   request sent -> answer received (target p99 <= 200 ms); ~/sample_grasp_poses, goal sent ->
   first feedback received (target p99 <= 200 ms), --requests of each;
3. --soak-minutes: 30 Hz input; RSS and latency sampled each minute (target: no growth).

A model: --model (an .onnx); without one, the shipped simulator-trained model (a trained model:
the depth check's work depends on the candidates it proposes); --random FAMILY: random weights.

Run: scripts/in-env.sh python bench/inference.py [--model M.onnx] [--frames 1000] [--soak-minutes 10]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


from common import group_rss_mb  # noqa: E402


def random_model(tmp: Path, model: str) -> Path:
    """A checkpoint of ``model`` with random weights, exported to ONNX (speed does not depend
    on the weights, except through the number of candidates: decoding is timed at threshold 0)."""
    from grasp_autolabel.detector.config import DecodeSettings
    from grasp_autolabel.detector.export import export_onnx
    from grasp_autolabel.detector.models import build_model, network_from_dict
    from grasp_autolabel.detector.predict import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, checkpoint_meta, \
        save_checkpoint

    network = network_from_dict({"model": model})
    save_checkpoint(tmp / "random.pt", {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
                                        **checkpoint_meta(network, DecodeSettings()), "train": {}, "step": 0,
                                        "state_dict": build_model(network).state_dict(), "image_size": [640, 480],
                                        "camera_fx": 615.0, "model_id": f"{model}-random"})
    return export_onnx(tmp / "random.pt", tmp / "random.onnx", overwrite=True)


def bench_predictor(model: Path, n: int, *, threads: int | None) -> None:
    from grasp_autolabel.detector.predict import OnnxPredictor, TorchPredictor
    from grasp_autolabel.sim import SimCell

    cell = SimCell(seed=5)
    scale = cell.config.sensor.depth_scale  # the simulator's depth is uint16 in these units
    frames = [(rgb, depth.astype(np.float32) * scale) for rgb, depth in
              (cell.frame() for _ in range(4))]
    preds = [("onnxruntime", OnnxPredictor(model, threads=threads))]
    pt = model.with_suffix(".pt")
    if pt.is_file():
        preds.append(("torch", TorchPredictor(pt)))
    for name, pred in preds:
        for threshold in (pred.decode.score_threshold, 0.0):
            decode = pred.decode.with_(score_threshold=threshold)  # 0: every candidate through decoding and NMS
            for rgb, depth in frames[:2]:
                pred.predict(rgb, depth, fx=cell.intrinsics.fx, decode=decode)
            times = []
            for i in range(n):
                rgb, depth = frames[i % len(frames)]
                t = time.perf_counter()
                pred.predict(rgb, depth, fx=cell.intrinsics.fx, decode=decode)
                times.append(time.perf_counter() - t)
            ms = np.array(times) * 1000
            print(f"predictor {name:11s} {pred.model_id} (score threshold {threshold:g}, {threads or 'all'} threads): "
                  f"640x480 RGB-D -> grasps p50 {np.percentile(ms, 50):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms "
                  f"over {n} frames", flush=True)


def bench_requests(n, ex, requests: int) -> None:
    """~/get_grasps for a frame newer than now, and the action's first feedback: client-side times."""
    from builtin_interfaces.msg import Time
    from grasp_autolabel_msgs.action import SampleGraspPoses
    from grasp_autolabel_msgs.srv import GetGrasps
    from rclpy.action import ActionClient

    def wait(future, seconds=10.0):
        end = time.monotonic() + seconds
        while not future.done() and time.monotonic() < end:
            ex.spin_once(timeout_sec=0.01)
        return future.result() if future.done() else None

    client = n.create_client(GetGrasps, "/inference_node/get_grasps")
    action = ActionClient(n, SampleGraspPoses, "/inference_node/sample_grasp_poses")
    client.wait_for_service(timeout_sec=30)
    action.wait_for_server(timeout_sec=30)
    service_ms, action_ms, failed = [], [], 0
    for i in range(requests):
        now = n.get_clock().now().nanoseconds
        t0 = time.perf_counter()
        reply = wait(client.call_async(GetGrasps.Request(
            newer_than=Time(sec=now // 10**9, nanosec=now % 10**9), timeout_s=2.0)))
        if reply is not None and reply.success:
            service_ms.append((time.perf_counter() - t0) * 1000)
        else:
            failed += 1
        first = []
        t0 = time.perf_counter()
        handle = wait(action.send_goal_async(SampleGraspPoses.Goal(), feedback_callback=lambda f: first.append(
            time.perf_counter()) if not first else None))
        if handle is None or not handle.accepted:
            failed += 1
            continue
        result = wait(handle.get_result_async())
        if first:
            action_ms.append((first[0] - t0) * 1000)
        elif result is not None:
            failed += 1
        ex.spin_once(timeout_sec=0.02 * (i % 5))  # requests at varied phases of the frame clock

    def pct(v, q):
        return f"{np.percentile(v, q):.0f}" if len(v) else "n/a"

    print(f"~/get_grasps, a frame newer than now: request -> answer p50 {pct(service_ms, 50)} ms, p99 "
          f"{pct(service_ms, 99)} ms over {len(service_ms)}; ~/sample_grasp_poses goal -> first feedback p50 "
          f"{pct(action_ms, 50)} ms, p99 {pct(action_ms, 99)} ms over {len(action_ms)}; {failed} failed", flush=True)
    action.destroy()


def bench_node(model: Path, frames: int, soak_min: float, fps: float, threshold: float = -1.0,
               requests: int = 100) -> None:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor

    from grasp_autolabel.ros.qos import RELIABLE

    tmp = Path(tempfile.mkdtemp(prefix="bench_inference_"))
    os.environ.setdefault("ROS_DOMAIN_ID", "88")

    def start(name, *args):
        log = open(tmp / f"{name}.log", "w")
        return subprocess.Popen([sys.executable, "-m", f"grasp_autolabel.ros.{name}", "--ros-args", *args], stdout=log,
                                stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                start_new_session=True)

    cam = start("sim_camera_node", "-r", "__node:=camera", "-r", "__ns:=/camera", "-p", f"fps:={fps}")
    node = start("inference_node", "-p", f"model_path:={Path(model).resolve()}", "-p",
                 f"score_threshold:={threshold}")
    rclpy.init()
    n = rclpy.create_node("bench_inference")
    ex = SingleThreadedExecutor()
    ex.add_node(n)
    diag = {}

    def on_diag(msg):
        for s in msg.status:
            if s.name.endswith("inference_node"):
                diag.update({kv.key: kv.value for kv in s.values})

    n.create_subscription(DiagnosticArray, "/diagnostics", on_diag, RELIABLE)

    def spin(seconds, pred=lambda: False):
        end = time.monotonic() + seconds
        while time.monotonic() < end and not pred():
            ex.spin_once(timeout_sec=0.05)

    try:
        spin(120, lambda: int(diag.get("published", 0)) >= 5)
        start_pub = int(diag.get("published", 0))
        t0 = time.monotonic()
        spin(3600, lambda: int(diag.get("published", 0)) - start_pub >= frames)
        got = int(diag.get("published", 0)) - start_pub
        which = "the model's" if threshold < 0 else f"{threshold:g}"
        print(f"inference_node, ONNX Runtime CPU, 640x480 at {fps:g} Hz in, score threshold {which}: {got} frames "
              f"published in "
              f"{time.monotonic() - t0:.0f} s ({diag.get('rate_hz')} Hz); image received -> grasps published "
              f"p50 {diag.get('latency_ms_p50')} ms, p99 {diag.get('latency_ms_p99')} ms (last 1000 frames); "
              f"frames dropped as stale {diag.get('dropped_stale', 0)} of {diag.get('frames')}", flush=True)
        bench_requests(n, ex, requests)
        if soak_min > 0:
            print(f"soak: {soak_min:g} min at {fps:g} Hz", flush=True)
            for minute in range(int(soak_min) + 1):
                print(f"  t={minute:2d} min: RSS inference_node {group_rss_mb(node.pid):.0f} MB, latency p50 "
                      f"{diag.get('latency_ms_p50')} ms p99 {diag.get('latency_ms_p99')} ms, rate {diag.get('rate_hz')} Hz, "
                      f"published {diag.get('published')}, stale {diag.get('dropped_stale')}", flush=True)
                if minute < int(soak_min):
                    spin(60)
    finally:
        for p in (cam, node):
            try:
                os.killpg(p.pid, 2)
                p.wait(timeout=10)
            except Exception:  # noqa: BLE001
                os.killpg(p.pid, 9)
        rclpy.shutdown()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help=".onnx model (a .pt beside it is timed with torch too; "
                                               "default: the shipped simulator-trained model)")
    ap.add_argument("--random", metavar="FAMILY", choices=("grasp-map", "faster-rcnn"),
                    help="time a model of this family with random weights instead")
    ap.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads (default: all cores)")
    ap.add_argument("--predict-frames", type=int, default=100)
    ap.add_argument("--frames", type=int, default=1000, help="frames through the node (0: skip)")
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--soak-minutes", type=float, default=0.0)
    ap.add_argument("--requests", type=int, default=100, help="~/get_grasps calls and action goals")
    ap.add_argument("--node-threshold", type=float, default=-1.0,
                    help="inference_node's score_threshold (default -1: the model's own; 0: every peak, the worst "
                         "case, as with a model of random weights)")
    args = ap.parse_args()
    from grasp_autolabel.detector.model_files import shipped_model

    model = (random_model(Path(tempfile.mkdtemp(prefix="bench_model_")), args.random) if args.random
             else args.model or shipped_model())
    bench_predictor(model, args.predict_frames, threads=args.threads)
    if args.frames:
        bench_node(model, args.frames, args.soak_minutes, args.fps, args.node_threshold, args.requests)
    return 0


if __name__ == "__main__":
    sys.exit(main())
