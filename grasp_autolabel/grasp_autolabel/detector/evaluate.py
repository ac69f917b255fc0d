"""``grasp-autolabel evaluate`` and ``export-onnx``.

Two figures:

* rectangle metric, top-1: the best-scored grasp of an image is a success when some labelled
  rectangle of that image has IoU > 0.25 with it (exact polygons) and an angle within 30 deg;
* valid grasp candidates % (the paper's figure, made automatic on simulated data): every
  candidate after NMS and the score threshold is valid when it is valid (centre on the axis,
  closing within 20 deg of perpendicular, opening 0.9-2.0 diameters) for a log that nothing rests
  on. A **precision**: how many of the grasps offered are executable, not how many logs got one.
  Needs the simulator's ground truth (the source session's ``gt/frames/``); absent -> null.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from grasp_autolabel.dataset.store import DatasetError, GraspDataset
from grasp_autolabel.detector.data import select_items
from grasp_autolabel.detector.predict import CheckpointError, load_checkpoint, load_predictor
from grasp_autolabel.errors import CommandError
from grasp_autolabel.evaluation import valid_for_log
from grasp_autolabel.geometry import as_grasps, rectangle_metric
from grasp_autolabel.session import SessionError, read_json, read_png

__all__ = ["evaluate", "frame_truth", "export_onnx"]


def frame_truth(ds: GraspDataset, label: dict) -> dict | None:
    """The simulator's truth of the frame an item shows, when its source session has one."""
    if "origin" in label or label.get("augmentation"):
        return None
    src = ds.meta["sources"][int(label.get("source", 0))]
    session = src.get("session")
    if not session:
        return None
    path = Path(session) / "gt" / "frames" / f"{int(label['pick_index']):06d}.json"
    return read_json(path) if path.is_file() else None


def evaluate(model, dataset, *, part: str = "test", split: str | None = None, backend: str = "auto",
             device: str = "cpu", progress: bool = True) -> dict:
    """Evaluate a run folder / checkpoint / ONNX model on ``part`` of ``dataset``."""
    from tqdm import tqdm

    pred = load_predictor(model, backend=backend, device=device)
    ds = GraspDataset.open(dataset)
    split = split or pred.config.split
    items = select_items(ds, part, split)
    if not items:
        raise DatasetError(f"{dataset}: no accepted item with grasps in the {split}-wise {part} split")
    scale = float((ds.meta["sources"][0].get("camera") or {}).get("depth_scale", 0.001)) if ds.meta["sources"] else 0.001
    top1, cand, cand_valid, top1_valid, with_truth, times = 0, 0, 0, 0, 0, []
    for i in tqdm(items, unit="image", desc="evaluate", disable=not progress, dynamic_ncols=True):
        label = ds.read_label(i)
        rgb = ds.read_rgb(i)
        depth = read_png(ds.path / "depth" / f"{i:06d}.png", kind="depth").astype(np.float32) * scale
        t0 = time.perf_counter()
        grasps, scores = pred.predict(rgb, depth)
        times.append(time.perf_counter() - t0)
        gt = as_grasps(label["grasps"])
        if len(grasps) and rectangle_metric(grasps[:1], gt)[0]:
            top1 += 1
        truth = frame_truth(ds, label)
        if truth is not None:
            with_truth += 1
            # every log nothing rests on, partly out of view too (a grasp on its visible part is
            # executable); its visible axis, where the grasp must lie
            free = [{**log, "axis_px": log["axis_visible_px"]} for log in truth["logs"]
                    if log["graspable"] and log.get("axis_visible_px")]
            ok = np.zeros(len(grasps), bool)
            for log in free:
                ok |= valid_for_log(grasps, log)
            cand += len(grasps)
            cand_valid += int(ok.sum())
            top1_valid += int(len(ok) > 0 and ok[0])
    n = len(items)
    return {
        "images": n, "model_id": pred.model_id,
        "rectangle_metric_top1_pct": round(100.0 * top1 / n, 2),
        "valid_candidates_pct": round(100.0 * cand_valid / cand, 2) if cand else None,
        "valid_top1_pct": round(100.0 * top1_valid / with_truth, 2) if with_truth else None,
        "candidates_per_image": round(cand / with_truth, 2) if with_truth else None,
        "images_with_truth": with_truth,
        "latency_ms_p50": round(1000 * float(np.median(times)), 1),
    }


def main(args) -> int:
    try:
        r = evaluate(args.run, args.dataset, part=args.part, split=args.split, backend=args.backend,
                     device=args.device, progress=sys.stderr.isatty())
    except (DatasetError, SessionError, CheckpointError) as exc:
        raise CommandError(str(exc)) from None
    print(f"{r['images']} images, model {r['model_id']}")
    print(f"  rectangle metric, top-1 (IoU > 0.25, angle < 30 deg): {r['rectangle_metric_top1_pct']:.2f} %")
    if r["valid_candidates_pct"] is not None:
        print(f"  valid grasp candidates (a precision; {r['candidates_per_image']} per image): "
              f"{r['valid_candidates_pct']:.2f} %; top-1 valid {r['valid_top1_pct']:.2f} %")
    else:
        print("  valid grasp candidates: no simulator ground truth for these images")
    print(json.dumps(r))
    return 0


# ---------------------------------------------------------------------------- ONNX
def export_onnx(run, out, *, opset: int = 17) -> Path:
    """Export a checkpoint to ONNX (the network from image tensor to boxes, scores, labels; the
    decoding and the rotated NMS stay in Python, shared with the torch predictor)."""
    import warnings

    import onnx
    import torch

    from grasp_autolabel.detector.model import build_model
    from grasp_autolabel.detector.predict import load_weights

    ckpt = load_checkpoint(run)
    cfg = ckpt["config_obj"]
    model = build_model(cfg)
    load_weights(model, ckpt["state_dict"], run)
    model.eval()
    x = torch.rand(3, cfg.input_size, cfg.input_size)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, ([x],), str(tmp), opset_version=opset, dynamo=False, input_names=["image"],
                          output_names=["boxes", "labels", "scores"])  # torchvision's dict order
    m = onnx.load(str(tmp))
    for key, value in (("grasp_autolabel_config", json.dumps(cfg.to_dict())),
                       ("image_size", json.dumps(ckpt.get("image_size"))),
                       ("model_id", str(ckpt.get("model_id", "detector")))):
        entry = m.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(m, str(tmp))
    tmp.replace(out)
    return out


def export_main(args) -> int:
    try:
        path = export_onnx(args.run, args.out)
    except CheckpointError as exc:
        raise CommandError(str(exc)) from None
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0
