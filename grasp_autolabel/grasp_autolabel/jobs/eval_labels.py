"""``grasp-autolabel eval-labels``: a labelled dataset against the simulator's ground truth.

Metrics (JSON on the last line):

``mask_iou_median``, ``mask_iou_p10``
    IoU of the refined mask with the removed log's visible mask, over accepted clean steps.
``valid_grasps_pct``
    Share of all grasps of accepted steps that are valid for a removed log
    (:mod:`grasp_autolabel.evaluation`); a grasp on a fault step with nothing removed is invalid.
``coverage_pct``
    Share of good steps (a clean single removal, the log wholly in view) with at least one
    valid grasp.
``faults_rejected_pct``
    Share of fault steps (any simulated fault) that the gate rejected.
``good_rejected_pct``
    Share of good steps that the gate rejected.

Clean steps whose log lies partly outside the image are neither good nor faults: the gate
rejects them on purpose (``mask_touches_border``); their count and how many were accepted are
reported as ``partly_out_of_view`` and ``partly_out_of_view_accepted``.
"""
from __future__ import annotations

from collections import Counter
import json
from pathlib import Path

from grasp_autolabel.dataset.store import GraspDataset
from grasp_autolabel.errors import CommandError
from grasp_autolabel.evaluation import mask_iou, valid_for_log
from grasp_autolabel.session import read_png
import numpy as np

__all__ = ['evaluate_labels']


def _gt_folders(ds: GraspDataset, gt_args) -> dict[int, Path]:
    sources = ds.meta['sources']
    if gt_args:
        if len(gt_args) != len(sources):
            raise CommandError(f'--gt: {len(gt_args)} folder(s) for {len(sources)} source '
                               f'session(s) in {ds.path}; '
                               'give one per source, in the order they were labelled, or none to '
                               'use each '
                               "session's own gt/")
        folders = {i: Path(g) for i, g in enumerate(gt_args)}
    else:
        folders = {i: Path(src['session']) / 'gt' for i, src in enumerate(sources)}
    for i, f in folders.items():
        if not f.is_dir():
            raise CommandError(f"{f}: ground-truth folder not found (source {sources[i]['name']})")
    return folders


def evaluate_labels(dataset, gt=None) -> dict:
    ds = GraspDataset.open(dataset)
    folders = _gt_folders(ds, gt)
    ious, n_grasps, n_valid = [], 0, 0
    good = good_covered = good_rejected = 0
    faults = faults_rejected = 0
    partial = partial_accepted = 0
    by_fault = Counter()
    for idx in ds.item_indices():
        label = ds.read_label(idx)
        gt_dir = folders[label['source']]
        truth_path = gt_dir / f"{label['pick_index']:06d}.json"
        try:
            truth = json.loads(truth_path.read_text())
        except FileNotFoundError:
            raise CommandError(
                f'{truth_path}: no ground truth for item {idx} (pick {label["pick_index"]})'
            ) from None
        fault = truth['fault']
        removed = truth['removed_logs']
        grasps = np.asarray(label['grasps'], dtype=np.float64).reshape(-1, 5)
        valid = np.zeros(len(grasps), dtype=bool)
        for log in removed:
            valid |= valid_for_log(grasps, log)
        if label['accepted']:
            n_grasps += len(grasps)
            n_valid += int(valid.sum())
        by_fault[(fault or 'none', 'accepted' if label['accepted'] else label['reason'])] += 1
        if fault is not None:
            faults += 1
            faults_rejected += not label['accepted']
            continue
        in_view = all(log['in_view'] for log in removed)
        if not in_view:
            partial += 1
            partial_accepted += bool(label['accepted'])
            continue
        good += 1
        good_rejected += not label['accepted']
        good_covered += bool(label['accepted'] and valid.any())
        if label['accepted']:
            gt_mask = read_png(gt_dir / 'masks' / f"{label['pick_index']:06d}.png",
                               kind='mask') > 0
            ious.append(mask_iou(ds.read_mask(idx), gt_mask))

    def pct(a, b):
        return round(100.0 * a / b, 2) if b else None

    return {'steps': len(ds.item_indices()),
            'mask_iou_median': round(float(np.median(ious)), 4) if ious else None,
            'mask_iou_p10': round(float(np.percentile(ious, 10)), 4) if ious else None,
            'valid_grasps_pct': pct(n_valid, n_grasps), 'grasps': n_grasps,
            'coverage_pct': pct(good_covered, good),
            'faults_rejected_pct': pct(faults_rejected, faults),
            'good_rejected_pct': pct(good_rejected, good), 'good_steps': good,
            'fault_steps': faults, 'partly_out_of_view': partial,
            'partly_out_of_view_accepted': partial_accepted,
            'outcomes': {f'{k[0]}/{k[1]}': v for k, v in sorted(by_fault.items())}}
