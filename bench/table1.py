"""The paper's Table 1 on the simulated cell: the same network and schedule trained once on our
automatic labels and once on ground-truth labels of the same images, evaluated on held-out
sequences seen from a different camera pose (higher and tilted), side by side with the paper's
81.17 % (auto) / 83.43 % (hand labels).

* auto labels: `label` on the training sequences (the gate's accepted items);
* ground-truth labels: the same images, grasps from the simulator's true axis of the removed log
  and of every later-removed log free in that frame (`evaluation.gt_grasps`: the annotator's label
  shape on the true axis), each with its true visible axis as its spine;
* test: every frame of the held-out sequences, labelled with the true grasps of every log nothing
  rests on, on the middle of its visible part (so the rectangle metric does not punish a correct
  grasp on another free log).

Valid grasp candidates % is a precision over all candidates after NMS and the score threshold.

Both models x both label sets, each with `train`'s defaults for the model (grasp-map: 900 steps of 8;
faster-rcnn: resnet18, 700 steps of 4) unless --steps.

Run: scripts/in-env.sh python bench/table1.py [--models grasp-map faster-rcnn] [--out DIR] [--device cuda]
"""
import argparse
from dataclasses import replace
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from grasp_autolabel.jobs.label import label_sessions
from grasp_autolabel.dataset.labels import LabelRecord
from grasp_autolabel.dataset.store import GraspDataset
from grasp_autolabel.detector.config import TrainSettings
from grasp_autolabel.detector.data import GraspItems
from grasp_autolabel.detector.evaluate import evaluate
from grasp_autolabel.detector.models import get_family, network_from_dict
from grasp_autolabel.detector.models.faster_rcnn import anchor_coverage, encode_grasps
from grasp_autolabel.detector.train import train
from grasp_autolabel.core.evaluation import gt_grasps
from grasp_autolabel.core.session import Session, read_json
from grasp_autolabel.sim import CellConfig
from grasp_autolabel.jobs.simulate import simulate


def jaw_px(jaw_m: float, fx: float, depth_m: float) -> float:
    return jaw_m * fx / depth_m


def gt_train_dataset(auto: Path, out: Path, use_later: bool = True) -> int:
    """The auto dataset's training images, relabelled perfectly: the true grasps of the log(s)
    removed at that pick and (``use_later``, as the auto labels' ``later_grasps``) of every log
    removed later that nothing rests on in this frame."""
    from grasp_autolabel.detector.data import item_grasps

    src = GraspDataset.open(auto)
    ds = GraspDataset.create(out, jaw_width_m=src.meta["jaw_width_m"], settings={"labels": "ground truth"})
    for record in src.sources:
        ds.add_source(record)
    n = 0
    for i in src.item_indices():
        lab = src.read_label(i)
        if not len(item_grasps(lab, use_later)):
            continue
        session = Path(src.sources[lab.source]["session"])
        k = lab.pick_index
        fx = Session.open(session).intrinsics.fx
        frame = read_json(session / "gt" / "frames" / f"{k:06d}.json")
        free = {log["id"]: log for log in frame["logs"] if log["graspable"] and log.get("axis_visible_px")}
        steps = json.loads((session / "gt" / "sequence.json").read_text())["steps"]
        later_ids = [r for st in steps if st["step"] > k for r in st["removed"]] if use_later else []
        now_ids = read_json(session / "gt" / f"{k:06d}.json")["removed"]
        logs = [free[x] for x in dict.fromkeys(now_ids + later_ids) if x in free]
        per_log = [gt_grasps(t, jaw_px(src.meta["jaw_width_m"], fx, t["depth_m"])) for t in logs]
        if not per_log:
            continue
        grasps = np.concatenate(per_log)
        ds.write_item(n, rgb_png=src.path / "images" / f"{i:06d}.png", depth_png=src.path / "depth" / f"{i:06d}.png",
                      mask=src.read_mask(i),
                      label=replace(lab, accepted=True, grasps=np.round(grasps, 3), scores=np.ones(len(grasps)),
                                    later_grasps=np.zeros((0, 5)), later_picks=[],
                                    logs=[{"spine": t["axis_visible_px"], "grasps": np.round(g, 3).tolist()}
                                          for t, g in zip(logs, per_log)]))
        n += 1
    from grasp_autolabel.dataset.splits import assign_splits

    assign_splits(ds)  # the same seeded session split as the auto dataset's (same source names)
    return n


def test_dataset(sessions, out: Path, jaw_m: float) -> int:
    """Every frame of ``sessions`` with the true grasps of every log nothing rests on (on the
    middle of its visible axis)."""
    ds = GraspDataset.create(out, jaw_width_m=jaw_m, settings={"labels": "ground truth, all free logs"})
    n = 0
    for src_index, path in enumerate(sessions):
        s = Session.open(path)
        ds.add_source({"session": str(Path(path).resolve()), "name": Path(path).name, "complete": True})
        for k in s.frames:
            truth = read_json(Path(path) / "gt" / "frames" / f"{k:06d}.json")
            free = [log for log in truth["logs"] if log["graspable"] and log.get("axis_visible_px")]
            if not free:
                continue
            grasps = np.concatenate([gt_grasps(log, jaw_px(jaw_m, s.intrinsics.fx, log["depth_m"])) for log in free])
            ds.write_item(n, rgb_png=s.check_rgb(k), depth_png=s.depth_path(k), mask=np.zeros((1, 1), bool),
                          label=LabelRecord(accepted=True, pick_index=k, source=src_index, session=Path(path).name,
                                            grasps=np.round(grasps, 3), scores=np.ones(len(grasps))))
            n += 1
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-seqs", type=int, default=16)
    ap.add_argument("--test-seqs", type=int, default=6)
    ap.add_argument("--models", nargs="+", default=["grasp-map", "faster-rcnn"], choices=["grasp-map", "faster-rcnn"])
    ap.add_argument("--labels", nargs="+", default=["auto", "gt"], choices=["auto", "gt"])
    ap.add_argument("--steps", type=int, default=None, help="training steps (default: train's default per model)")
    ap.add_argument("--backbone", default="resnet18", help="faster-rcnn backbone (default resnet18)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=7000)
    ap.add_argument("--out", type=Path, default=None, help="keep everything here (default: a temp folder); "
                                                           "data already there is reused")
    args = ap.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="table1_"))
    t0 = time.perf_counter()
    if not (root / "test" / "dataset.json").is_file():
        train_cfg = CellConfig(camera_height=(1.5, 2.0), tilt_max_deg=0.0)
        test_cfg = CellConfig(camera_height=(2.0, 2.5), tilt_max_deg=12.0)
        train_paths = simulate(root / "train_sim", sequences=args.train_seqs, seed=args.seed, config=train_cfg,
                               progress=False)
        test_paths = simulate(root / "test_sim", sequences=args.test_seqs, seed=args.seed + 1, config=test_cfg,
                              progress=False)
        label_sessions(train_paths, root / "auto", progress=False)
        gt_train_dataset(root / "auto", root / "gt")
        jaw = GraspDataset.open(root / "auto").meta["jaw_width_m"]
        test_dataset(test_paths, root / "test", jaw)
    from grasp_autolabel.detector.data import select_items

    n_auto = len(select_items(GraspDataset.open(root / "auto"), "all", "none", use_later=True))
    n_gt = len(GraspDataset.open(root / "gt").item_indices())
    n_test = len(GraspDataset.open(root / "test").item_indices())
    print(f"data: {args.train_seqs} training sequences ({n_auto} images with automatic grasps incl. later picks "
          f"carried back; {n_gt} of them with ground-truth grasps), {args.test_seqs} held-out sequences from another "
          f"camera pose, higher and tilted ({n_test} test images); {time.perf_counter() - t0:.0f} s", flush=True)
    results = {}
    for model in args.models:
        for name in args.labels:
            overrides = {"max_steps": args.steps} if args.steps else {}
            network = network_from_dict({"model": model, **({"backbone": args.backbone}
                                                             if model == "faster-rcnn" else {})})
            settings = TrainSettings(**{**get_family(model).train_defaults, **overrides})
            run = root / f"run_{model}_{name}"
            if model == "faster-rcnn" and name == args.labels[0]:
                items = GraspItems(root / name, network, settings, augment=False)
                boxes = np.concatenate([encode_grasps(items.sample(i).grasps, network)["boxes"]
                                        for i in range(len(items))])
                print(f"faster-rcnn anchors vs training boxes: {json.dumps(anchor_coverage(boxes, network))}",
                      flush=True)
            t1 = time.perf_counter()
            r = train(root / name, run, network, settings, device=args.device, progress=False,
                      resume=(run / "checkpoints" / "last.pt").exists())
            t_train = time.perf_counter() - t1
            e = evaluate(run, root / "test", part="all", split="none", device=args.device, progress=False)
            e["train_min"] = round(t_train / 60, 1)
            e["steps"] = r["step"]
            results[(model, name)] = e
            print(f"{model} on {name} labels: {r['step']} steps in {t_train / 60:.1f} min; {json.dumps(e)}",
                  flush=True)
    print()
    print("| model | labels | valid candidates % | top-1 valid % | coverage % | rectangle metric top-1 % (dense) "
          "| train min (this CPU) | paper valid % |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for (model, name), e in results.items():
        paper = ("81.17" if name == "auto" else "83.43 (hand)") if model == "faster-rcnn" else ""
        print(f"| {model} | {'automatic' if name == 'auto' else 'ground truth'} | {e['valid_candidates_pct']} | "
              f"{e['valid_top1_pct']} | {e['coverage_pct']} | {e['rectangle_metric_top1_pct']} | {e['train_min']} "
              f"| {paper} |")
    print(f"device {args.device}; total {(time.perf_counter() - t0) / 60:.0f} min; data in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
