"""`make demo`: the whole story on the simulated cell, no hardware, a few minutes on a CPU.

1. the node graph (sim camera -> capture_node -> autolabel_node, real processes over DDS)
   captures and labels a pile picked log by log;
2. more simulated sequences are labelled offline into the same dataset (as `label` does);
3. the grasp-map detector trains briefly (about 3 minutes of CPU) on the automatic labels;
4. it is exported to ONNX and evaluated on held-out simulated sequences;
5. inference_node serves it live on new simulated frames; latency is measured per frame;
6. demo/report.html gathers overlays, label statistics, the loss curve, the evaluation figures
   and the latency histogram.

Everything lands in ./demo (or the folder given as the first argument; a folder the demo did not
make is refused). DEMO_STEPS sets the training steps (default 180), DEMO_MINUTES the most minutes
they may take (default 4: fewer steps on a slower machine; at ~110 steps on a 2-core CPU the
network sometimes ends without a candidate above threshold, ~150 leave more margin).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
import sys
import time

from grasp_autolabel.core.fsio import (claim_output, MARKER, OutputError, read_marker,
                                       write_text_atomic)
from grasp_autolabel.jobs.label import label_sessions
from grasp_autolabel.jobs.simulate import simulate
from grasp_autolabel.sim import CellConfig
import numpy as np


def live_inference(out: Path, model: Path, *, seed: int, frames: int = 80, fps: float = 5.0,
                   width: int = 640, height: int = 480, timeout_s: float = 60.0) -> dict:
    """Run sim_camera_node + inference_node as a planner sees them.

    Per-frame latency (image stamp -> grasps received), a few overlays, and one ~/get_grasps
    answer.
    """
    from grasp_autolabel.core.msg_codecs import image_to_numpy
    from grasp_autolabel.ros.cell_client import CellClient
    from grasp_autolabel.ros.qos import RELIABLE
    from grasp_autolabel.ros.run_sim import node_command, NodeProc
    from grasp_autolabel.core.session import write_png_atomic
    from grasp_autolabel_msgs.msg import GraspRectArray
    from grasp_autolabel_msgs.srv import GetGrasps
    from sensor_msgs.msg import Image

    logs = out / 'logs'
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, 'PYTHONUNBUFFERED': '1'}
    camera = node_command('sim_camera_node', '-r', '__node:=camera', '-r', '__ns:=/camera',
                          '-p', f'fps:={fps}', '-p', f'seed:={seed}', '-p', f'width:={width}',
                          '-p', f'height:={height}')
    procs = [NodeProc('sim_camera_live', camera, logs, env),
             NodeProc('inference_node',
                      node_command('inference_node', '-p', f'model_path:={model}'), logs, env)]
    latencies, overlays, counts = [], [], []

    def on_grasps(msg):
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        latencies.append(time.time() - stamp)
        counts.append(len(msg.grasps))

    client = CellClient(procs, timeout_s=10.0, name='demo_planner')
    client.node.create_subscription(GraspRectArray, '/inference_node/grasps', on_grasps, RELIABLE)
    client.node.create_subscription(
        Image, '/inference_node/overlay',
        lambda m: overlays.append(m) if len(overlays) < 40 else None, RELIABLE)
    try:
        client.spin_until(lambda: len(latencies) >= frames, timeout_s + frames / fps)
        try:  # one ~/get_grasps call, as a planner makes it
            answer = client.call('/inference_node/get_grasps', GetGrasps,
                                 GetGrasps.Request(max_grasps=3, timeout_s=2.0), idempotent=True)
        except RuntimeError:
            answer = None
    finally:
        client.close()
        for p in procs:
            p.stop()
    paths = []
    for i, m in enumerate(overlays[-4:]):
        path = out / 'live' / f'overlay_{i}.png'
        write_png_atomic(path, image_to_numpy(m))
        paths.append(path)
    return {'latencies_s': latencies, 'grasps_per_frame': counts, 'overlays': paths,
            'service': {'success': answer.success, 'message': answer.message} if answer else None}


def draw_judged(dataset: Path, per_image: list, out: Path, *, limit: int) -> list:
    """Held-out images with their candidates: green valid, red invalid (with the reason)."""
    import cv2
    from grasp_autolabel.dataset.store import GraspDataset
    from grasp_autolabel.core.geometry import rect_to_corners
    from grasp_autolabel.core.session import write_png_atomic

    ds = GraspDataset.open(dataset)
    step = max(1, len(per_image) // limit)
    paths = []
    for rec in per_image[::step][:limit]:
        img = ds.read_rgb(rec['item']).copy()
        for k, g in enumerate(rec['grasps']):
            ok = rec['valid'] is not None and bool(rec['valid'][k])
            colour = (40, 200, 40) if ok else (230, 40, 40)
            pts = np.round(rect_to_corners(g)).astype(np.int32)
            cv2.polylines(img, [pts], True, colour, 2, cv2.LINE_AA)
            if not ok and rec['valid'] is not None:
                cv2.putText(img, rec['reasons'][k], tuple(int(v) for v in g[:2]),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                            colour, 1, cv2.LINE_AA)
        n_ok = int(np.sum(rec['valid'])) if rec['valid'] is not None else 0
        path = out / f"{rec['item']:06d}.png"
        write_png_atomic(path, img)
        paths.append((path,
                      f"item {rec['item']}: {n_ok} of {len(rec['grasps'])} candidates valid"))
    return paths


DEMO_MARKER = '.grasp_autolabel_demo'  # the marker of earlier versions
# about 50 accepted labels beside the live cell's (with faults, several logs at a time among them)
OFFLINE_SEQUENCES = 10
# What the demo writes (a rerun removes these and nothing else).
DEMO_FILES = (r'(cell|heldout|heldout_dataset|heldout_viz|live|logs|run|sessions)/.+',
              r'(model\.onnx|report\.html|stats\.json|\.grasp_autolabel_demo)')


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0] if argv else 'demo').resolve()
    if (out / DEMO_MARKER).is_file() and not read_marker(out):  # made by an earlier version
        write_text_atomic(out / MARKER, json.dumps({'tool': 'grasp-autolabel', 'kind': 'demo'}))
    try:  # the next run replaces the demo's own files, and nothing else in the folder
        claim_output(out, kind='demo', overwrite=True, owned=DEMO_FILES)
    except OutputError as exc:
        print(f'demo: {exc}', file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    demo = _Demo(out, sys.stderr.isatty())
    demo.step('nodes', demo.nodes)
    demo.step('label', demo.label)
    demo.step('train', lambda: demo.train(int(os.environ.get('DEMO_STEPS', '180')),
                                          float(os.environ.get('DEMO_MINUTES', '4'))))
    onnx, heldout_viz = demo.step('evaluate', demo.evaluate)
    lat, live = demo.step('live', lambda: demo.live(onnx))
    from grasp_autolabel.cli.report import write_report

    demo.stats['total_s'] = round(time.perf_counter() - t0, 1)
    write_text_atomic(out / 'stats.json', json.dumps(demo.stats, indent=1) + '\n')
    report = write_report(out, demo.stats, latencies_ms=lat, overlays=live['overlays'],
                          heldout=heldout_viz)
    print(f'[6/6] report: {report}')
    print(f"\ndone in {demo.stats['total_s']:.0f} s. Open {report} in a browser.")
    return 0


class _Demo:
    """The demo's steps, each printing what it does and adding its figures to ``stats``."""

    def __init__(self, out: Path, tty: bool):
        self.out, self.tty = out, tty
        self.stats: dict = {'timings_s': {}}
        self.cell: dict = {}

    def step(self, name: str, fn):
        t = time.perf_counter()
        result = fn()
        self.stats['timings_s'][name] = round(time.perf_counter() - t, 1)
        return result

    def nodes(self) -> None:
        from grasp_autolabel.ros.run_sim import run

        out = self.out
        print('[1/6] node graph live: sim camera -> capture_node -> autolabel_node, 10 picks -> '
              f"{out / 'cell'}",
              flush=True)
        self.cell = run(out / 'cell', picks=10, seed=2026,
                        progress=lambda s: print('      ' + s, flush=True))
        self.stats['cell'] = {k: v for k, v in self.cell.items() if k != 'exit_codes'}

    def label(self) -> None:
        out, tty, cell = self.out, self.tty, self.cell
        print(
            f'[2/6] {OFFLINE_SEQUENCES} more simulated sequences (with faults) labelled offline '
            'into the same '
            'dataset',
            flush=True,
        )
        sessions = simulate(out / 'sessions', sequences=OFFLINE_SEQUENCES, seed=2027,
                            config=CellConfig(fault_rate=0.2), progress=tty)
        summary = label_sessions(sessions, out / 'cell' / 'dataset', append=True, viz=True,
                                 progress=tty)
        for line in summary.lines():
            print('      ' + line)
        self.stats['labels'] = {'steps': summary.steps + cell['steps'],
                                'accepted': summary.accepted + cell['accepted'],
                                'rejected': dict(summary.rejected)}

    def train(self, steps: int, minutes: float) -> None:
        from grasp_autolabel.detector.config import FINETUNE_LR_FACTOR, TrainSettings
        from grasp_autolabel.detector.models import GraspMapNetwork
        from grasp_autolabel.detector.train import train

        print(f'[3/6] fine-tuning the shipped simulator-trained grasp-map network (RGB-D) on '
              f'these labels for {steps} steps or {minutes:g} min on the CPU', flush=True)
        settings = TrainSettings(max_steps=steps, max_minutes=minutes,
                                 lr=TrainSettings().lr * FINETUNE_LR_FACTOR,
                                 val_every=max(10, steps // 4))
        r = train(self.out / 'cell' / 'dataset', self.out / 'run', GraspMapNetwork(), settings,
                  progress=self.tty, init='shipped',
                  log=lambda *a, **k: print('      ' + ' '.join(map(str, a)), flush=True))
        best = r['best']
        print(f"      {r['steps_run']} steps in {r['seconds']:.0f} s on {r['train_items']} "
              'images; last loss '
              f"{r['loss']:.3f}" + ('; best held-out rectangle metric '
                                    f"{best['rectangle_top1_pct']} % at step "
                                    f"{best['step']}" if best else ''))
        self.stats['train'] = {k: r[k] for k in ('step', 'loss', 'seconds', 'train_items',
                                                 'held_out_items')}

    def evaluate(self):
        from grasp_autolabel.detector.evaluate import evaluate
        from grasp_autolabel.detector.export import export_onnx
        from grasp_autolabel.detector.model_files import shipped_model

        out, tty = self.out, self.tty
        print('[4/6] ONNX export and evaluation on 3 held-out sequences', flush=True)
        onnx = export_onnx(out / 'run', out / 'model.onnx')
        held = simulate(out / 'heldout', sequences=3, seed=2028, progress=tty)
        label_sessions(held, out / 'heldout_dataset', progress=tty)
        ev = evaluate(onnx, out / 'heldout_dataset', part='all', split='none', progress=tty,
                      details=True)
        shipped = evaluate(shipped_model(), out / 'heldout_dataset', part='all', split='none',
                           progress=tty)
        for name, e in (('fine-tuned here', ev), ('shipped', shipped)):
            print(f"      {name + ':':17s}valid grasp candidates {e['valid_candidates_pct']} % "
                  f"({e['candidates_per_image']} per image), top-1 valid {e['valid_top1_pct']} %, "
                  f"coverage of free logs {e['coverage_pct']} %, rectangle metric top-1 "
                  f"{e['rectangle_metric_top1_pct']} %")
        self.stats['evaluation'] = {k: v for k, v in ev.items() if k != 'per_image'}
        self.stats['evaluation_shipped'] = shipped
        # the live stage serves the fine-tuned model unless it is less precise than the shipped
        better = (ev['valid_candidates_pct'] or 0, ev['valid_top1_pct'] or 0) >= (
            shipped['valid_candidates_pct'] or 0, shipped['valid_top1_pct'] or 0)
        self.stats['served'] = ('the model fine-tuned here' if better else
                                'the shipped model (the fine-tuned one was less precise)')
        return (onnx if better else shipped_model()), draw_judged(
            out / 'heldout_dataset', ev['per_image'], out / 'heldout_viz', limit=8)

    def live(self, onnx: Path):
        print('[5/6] inference_node live on new simulated frames (ONNX Runtime, CPU), serving '
              f"{self.stats['served']}", flush=True)
        live = live_inference(self.out, onnx, seed=77, frames=60)
        lat = np.array(live['latencies_s']) * 1000
        if len(lat):
            print(f'      {len(lat)} frames: image stamped -> grasps received p50 '
                  f'{np.percentile(lat, 50):.0f} ms, '
                  f"p99 {np.percentile(lat, 99):.0f} ms; ~/get_grasps: {live['service']}")
        self.stats['live'] = {'frames': len(lat),
                              'latency_ms_p50': round(float(np.percentile(lat, 50)),
                                                      1) if len(lat) else None,
                              'latency_ms_p99': round(float(np.percentile(lat, 99)),
                                                      1) if len(lat) else None,
                              'service': live['service']}
        return lat, live


if __name__ == '__main__':
    sys.exit(main())
