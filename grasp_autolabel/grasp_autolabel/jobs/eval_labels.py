"""``grasp-autolabel eval-labels``: a labelled dataset against the simulator's ground truth.

Metrics (JSON on the last line):

``mask_iou_median``, ``mask_iou_p10``
    IoU of the refined mask with the removed log's visible mask, over accepted clean steps.
``valid_grasps_pct``
    Share of all grasps of accepted steps that are valid for a removed log
    (:mod:`grasp_autolabel.core.evaluation`); a grasp on a fault step with nothing removed is
    invalid.
``coverage_pct``
    Share of good steps (a clean single removal, the log wholly in view) with at least one
    valid grasp.
``faults_rejected_pct``
    Share of fault steps (any simulated fault) that the gate rejected.
``good_rejected_pct``
    Share of good steps that the gate rejected.
``several_removed``, ``several_removed_camera_moved``
    Steps where two or more logs went at once, and how many of them the gate called
    ``camera_moved`` (it must not: the camera did not move).
``by_sensor``
    The same metrics for each simulated sensor model (``d4xx``, ``two-sided``), from each
    session's ``gt/sequence.json``.

Clean steps whose log lies partly outside the image are neither good nor faults: the gate
rejects them on purpose (``mask_touches_border``); their count and how many were accepted are
reported as ``partly_out_of_view`` and ``partly_out_of_view_accepted``. So are clean steps whose
log showed under a quarter of itself (hidden under or behind others: no label can be read from
the image), as ``mostly_hidden`` and ``mostly_hidden_accepted``.
"""
from __future__ import annotations

from collections import Counter
import json
from pathlib import Path

from grasp_autolabel.annotate.reasons import Reason
from grasp_autolabel.core.errors import CommandError
from grasp_autolabel.core.evaluation import mask_iou, valid_for_log
from grasp_autolabel.core.session import read_png
from grasp_autolabel.dataset.labels import LabelRecord
from grasp_autolabel.dataset.store import GraspDataset
import numpy as np

__all__ = ['evaluate_labels', 'sensor_name', 'visible_share']


def _gt_folders(ds: GraspDataset, gt_args) -> dict[int, Path]:
    sources = ds.sources
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


def sensor_name(gt_dir: Path) -> str:
    """Return the simulated sensor model of a session's ground truth (``unknown`` if none)."""
    try:
        meta = json.loads((gt_dir / 'sequence.json').read_text())
        sensor = meta['config']['sensor']
    except (OSError, ValueError, KeyError, TypeError):
        return 'unknown'
    return str(sensor.get('name', 'd4xx')) if isinstance(sensor, dict) else 'unknown'


MIN_VISIBLE_SHARE = 0.25  # a log showing less of itself than this is not a good step


def visible_share(log: dict) -> float:
    """Return the share of a log's projected outline that is visible (ground truth).

    The outline approximated as its axis's length times its diameter plus the two end caps.
    """
    (u0, v0), (u1, v1) = log['axis_px']
    d = float(log['diameter_px'])
    full = np.hypot(u1 - u0, v1 - v0) * d + 0.25 * np.pi * d * d
    return float(log['visible_px']) / full if full > 0 else 0.0


class _Tally:
    """The counts behind the metrics, for one group of steps."""

    def __init__(self):
        self.ious, self.n_grasps, self.n_valid = [], 0, 0
        self.good = self.good_covered = self.good_rejected = 0
        self.faults = self.faults_rejected = 0
        self.partial = self.partial_accepted = 0
        self.hidden = self.hidden_accepted = 0
        self.several = self.several_camera_moved = 0
        self.steps = 0
        self.by_fault = Counter()

    def add(self, label: LabelRecord, truth: dict, valid: np.ndarray, iou) -> None:
        self.steps += 1
        fault, removed, accepted = truth['fault'], truth['removed_logs'], label.accepted
        if accepted:
            self.n_grasps += len(valid)
            self.n_valid += int(valid.sum())
        self.by_fault[(fault or 'none', 'accepted' if accepted else str(label.reason))] += 1
        if len(removed) >= 2:
            self.several += 1
            self.several_camera_moved += label.reason == Reason.CAMERA_MOVED
        if fault is not None:
            self.faults += 1
            self.faults_rejected += not accepted
            return
        if not all(log['in_view'] for log in removed):
            self.partial += 1
            self.partial_accepted += bool(accepted)
            return
        if any(visible_share(log) < MIN_VISIBLE_SHARE for log in removed):
            self.hidden += 1
            self.hidden_accepted += bool(accepted)
            return
        self.good += 1
        self.good_rejected += not accepted
        self.good_covered += bool(accepted and valid.any())
        if iou is not None:
            self.ious.append(iou)

    def metrics(self) -> dict:
        def pct(a, b):
            return round(100.0 * a / b, 2) if b else None

        ious = self.ious
        return {'steps': self.steps,
                'mask_iou_median': round(float(np.median(ious)), 4) if ious else None,
                'mask_iou_p10': round(float(np.percentile(ious, 10)), 4) if ious else None,
                'valid_grasps_pct': pct(self.n_valid, self.n_grasps), 'grasps': self.n_grasps,
                'coverage_pct': pct(self.good_covered, self.good),
                'faults_rejected_pct': pct(self.faults_rejected, self.faults),
                'good_rejected_pct': pct(self.good_rejected, self.good), 'good_steps': self.good,
                'fault_steps': self.faults, 'partly_out_of_view': self.partial,
                'partly_out_of_view_accepted': self.partial_accepted,
                'mostly_hidden': self.hidden, 'mostly_hidden_accepted': self.hidden_accepted,
                'several_removed': self.several,
                'several_removed_camera_moved': self.several_camera_moved,
                'outcomes': {f'{k[0]}/{k[1]}': v for k, v in sorted(self.by_fault.items())}}


def evaluate_labels(dataset, gt=None) -> dict:
    """Return the metrics of a labelled dataset against its ground truth, all and per sensor."""
    ds = GraspDataset.open(dataset)
    folders = _gt_folders(ds, gt)
    sensors = {i: sensor_name(f) for i, f in folders.items()}
    total, per_sensor = _Tally(), {}
    for idx in ds.item_indices():
        label = ds.read_label(idx)
        gt_dir = folders[label.source]
        truth_path = gt_dir / f'{label.pick_index:06d}.json'
        try:
            truth = json.loads(truth_path.read_text())
        except FileNotFoundError:
            raise CommandError(
                f'{truth_path}: no ground truth for item {idx} (pick {label.pick_index})'
            ) from None
        grasps = label.grasps
        valid = np.zeros(len(grasps), dtype=bool)
        for log in truth['removed_logs']:
            valid |= valid_for_log(grasps, log)
        iou = None
        if label.accepted and truth['fault'] is None:
            gt_mask = read_png(gt_dir / 'masks' / f'{label.pick_index:06d}.png',
                               kind='mask') > 0
            iou = mask_iou(ds.read_mask(idx), gt_mask)
        for tally in (total, per_sensor.setdefault(sensors[label.source], _Tally())):
            tally.add(label, truth, valid, iou)
    metrics = total.metrics()
    metrics['by_sensor'] = {name: t.metrics() for name, t in sorted(per_sensor.items())}
    return metrics
