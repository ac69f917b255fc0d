"""``grasp-autolabel evaluate``: how good a detector's grasps are.

Figures (on the simulator's ground truth where the images have it, ``gt/frames/`` of the source
session; on the dataset's labels otherwise):

* **valid candidates %**: a precision. Every candidate (after the score threshold and NMS) is
  valid when it is a valid grasp (:func:`evaluation.valid_for_log`: centre within 0.3
  diameters of the axis, closing within 20 deg of perpendicular to it, opening 0.9-2 diameters)
  on a log nothing rests on, judged on the log's visible axis;
* **top-1 valid %**: the best-scored candidate is valid;
* **coverage %**: free logs (nothing rests on them, some of their axis visible) with at least
  one valid candidate;
* **rectangle metric, top-1 %**: the best candidate has IoU > 0.25 and an angle within 30 deg
  with some ground-truth rectangle. With the simulator's truth the ground truth is dense:
  rectangles every quarter jaw along each free log's whole visible axis (a correct grasp
  between two sparse labels is not punished); without, the dataset's labels;
* every invalid candidate counted by why: ``on_no_log`` (its centre is on no log's axis),
  ``log_not_free`` (on a log something rests on), ``angle``, ``opening``;
* every free log **missed** (no valid candidate) counted by where its grasp was lost, the first
  that applies: ``invalid`` (a candidate on it, but at a wrong angle or opening),
  ``depth_check`` (a peak on it that the depth check dropped), ``overlap`` (a peak on it
  suppressed by a better candidate's rectangle), ``cap`` (a peak on it past the candidate cap),
  ``low_score`` (peaks on it only below the score threshold), ``merged_peak`` (a peak on it only
  when peaks may lie closer than ``peak_distance_px``), ``no_peak`` (the network sees no grasp
  there).
"""
from __future__ import annotations

from collections import Counter
import math
from pathlib import Path
import time

from grasp_autolabel.core.evaluation import valid_for_log, ValidityRule
from grasp_autolabel.core.geometry import (angle_difference, as_grasps, normalize_angle,
                                           point_segment_distance, rectangle_metric)
from grasp_autolabel.core.session import read_json
from grasp_autolabel.dataset.labels import LabelRecord
from grasp_autolabel.dataset.store import DatasetError, GraspDataset
from grasp_autolabel.detector.data import item_grasps, select_items
from grasp_autolabel.detector.predict import load_predictor
import numpy as np

__all__ = ['evaluate', 'frame_truth', 'dense_truth', 'judge', 'missed_causes', 'INVALID_REASONS',
           'MISSED_CAUSES']

INVALID_REASONS = ('on_no_log', 'log_not_free', 'angle', 'opening')
MISSED_CAUSES = ('invalid', 'depth_check', 'overlap', 'cap', 'low_score', 'merged_peak',
                 'no_peak')
LOW_SCORE = 0.02  # peaks down to this score are looked for on a missed log


def frame_truth(ds: GraspDataset, index: int, label: LabelRecord) -> dict | None:
    """Return the simulator's truth of the frame an item shows, when its source session has one."""
    if label.origin is not None or label.augmentation:
        return None
    session = ds.source_of(index, label).get('session')
    if not session:
        return None
    path = Path(session) / 'gt' / 'frames' / f'{label.pick_index:06d}.json'
    return read_json(path) if path.is_file() else None


def _visible(log: dict) -> dict:
    return {**log, 'axis_px': log['axis_visible_px']}


def dense_truth(log: dict, jaw_px: float, *, margin: float = 1.3) -> np.ndarray:
    """Return ground-truth rectangles every quarter jaw along a log's whole visible axis.

    Closing across it, opening ``margin`` diameters.
    """
    a, b = (np.asarray(p, dtype=np.float64) for p in log['axis_visible_px'])
    n = max(2, int(math.ceil(np.linalg.norm(b - a) / max(jaw_px / 4, 1.0))) + 1)
    t = np.linspace(0.0, 1.0, n)[:, None]
    out = np.zeros((n, 5))
    out[:, :2] = a + t * (b - a)
    out[:, 2] = normalize_angle(math.atan2(b[1] - a[1], b[0] - a[0]) + math.pi / 2)
    out[:, 3] = margin * float(log['diameter_px'])
    out[:, 4] = jaw_px
    return out


def judge(grasps, truth: dict,
          rule: ValidityRule | None = None) -> tuple[np.ndarray, list, np.ndarray]:
    """Return ``(valid (N,) bool, reason per grasp (None: valid), covered (F,) bool)``.

    ``covered`` has one entry per free log.
    """
    rule = rule or ValidityRule()
    g = as_grasps(grasps)
    logs = [_visible(log) for log in truth['logs'] if log.get('axis_visible_px')]
    free = [log for log in logs if log['graspable']]
    ok = np.zeros(len(g), bool)
    covered = np.zeros(len(free), bool)
    for k, log in enumerate(free):
        v = valid_for_log(g, log, rule)
        ok |= v
        covered[k] = v.any()
    reasons: list = [None] * len(g)
    for i in np.nonzero(~ok)[0]:
        reasons[i] = _why_invalid(g[i], logs, rule)
    return ok, reasons, covered


def _why_invalid(grasp, logs: list, rule: ValidityRule) -> str:
    on = []
    for log in logs:
        a, b = (np.asarray(p, dtype=np.float64) for p in log['axis_px'])
        if point_segment_distance(grasp[None, :2], a,
                                  b)[0][0] <= rule.centre_tolerance * float(log['diameter_px']):
            on.append(log)
    free = [log for log in on if log['graspable']]
    if not on:
        return 'on_no_log'
    if not free:
        return 'log_not_free'
    for log in free:
        (a, b) = log['axis_px']
        axis = math.atan2(b[1] - a[1], b[0] - a[0])
        if abs(float(angle_difference(grasp[2], axis)) - math.pi / 2) <= rule.angle_tolerance:
            return 'opening'
    return 'angle'


def _on_log(grasps, log: dict, rule: ValidityRule) -> np.ndarray:
    g = as_grasps(grasps)
    if not len(g):
        return np.zeros(0, bool)
    a, b = (np.asarray(p, dtype=np.float64) for p in log['axis_visible_px'])
    return point_segment_distance(g[:, :2], a, b)[0] <= rule.centre_tolerance * float(
        log['diameter_px'])


def missed_causes(grasps, trace: dict, free: list, covered, network, decode,
                  rule: ValidityRule | None = None) -> list[str]:
    """Return, for each free log not ``covered``, where its grasp was lost (:data:`MISSED_CAUSES`).

    ``trace`` is what :meth:`Predictor.predict` filled; ``free`` the free logs' truth.
    """
    from grasp_autolabel.detector.models import decode_outputs

    rule = rule or ValidityRule()
    size = trace['size']
    low = {}
    out = []
    for log, ok in zip(free, covered):
        if ok:
            continue
        fates = {f for f, on in zip(trace['fates'], _on_log(trace['peaks'], log, rule)) if on}
        if _on_log(grasps, log, rule).any():
            out.append('invalid')
            continue
        checked = sorted(f for f in fates if f.startswith('depth_check'))
        cause = checked[0] if checked else next(
            (c for c, f in (('overlap', 'overlap'), ('cap', 'not_tried')) if f in fates), None)
        for name, changes in (('low_score', {}), ('merged_peak', {'peak_distance_px': 1.0})):
            if cause is None:
                if name not in low:
                    low[name] = decode_outputs(network, trace['outputs'], trace['scale'], size,
                                               decode.with_(score_threshold=LOW_SCORE,
                                                            **changes))[0]
                cause = name if _on_log(low[name], log, rule).any() else None
        out.append(cause or 'no_peak')
    return out


def evaluate(model, dataset, *, part: str = 'test', split: str | None = None,
             backend: str = 'auto',
             device: str = 'cpu', progress: bool = True, details: bool = False,
             decode=None) -> dict:
    """Evaluate a run folder / checkpoint / ONNX model on ``part`` of ``dataset``.

    Raises
    ------
    DatasetError
        No such part (a dataset without splits has no test part), or no item to evaluate.
    """
    from tqdm import tqdm

    pred = load_predictor(model, backend=backend, device=device)
    ds = GraspDataset.open(dataset)
    split = split or 'session'
    items = select_items(ds, part, split,
                         use_later=True) if part != 'all' or split != 'none' else None
    if items is None:
        items = ds.item_indices()
    if not items:
        raise DatasetError(f'{dataset}: no item to evaluate in the {split}-wise {part} part')
    counts, reasons, missed = Counter(), Counter(), Counter()
    times, per_image, rev = [], [], {'items': [], 'counts': Counter(), 'reasons': Counter(),
                                     'times': []}
    for i in tqdm(items, unit='image', desc='evaluate', disable=not progress, dynamic_ncols=True):
        label = ds.read_label(i)
        rgb = ds.read_rgb(i)
        depth = ds.read_depth_m(i, label)
        cam = ds.intrinsics(i, label)
        pred.check_frame(rgb, depth, where=f"{ds.path / 'images' / f'{i:06d}.png'}")
        t0 = time.perf_counter()
        trace = {}
        grasps, scores = pred.predict(rgb, depth, fx=cam[0].fx if cam else None, decode=decode,
                                      trace=trace)
        times.append(time.perf_counter() - t0)
        mine, why = Counter(), Counter()
        record = _score_image(ds, i, label, grasps, scores,
                              pred.decode.jaw_width_m * (cam[0].fx if cam else 615.0), mine, why)
        _add(counts, reasons, mine, why)
        if label.reviewed:  # the items a person reviewed, reported apart as well
            _add(rev['counts'], rev['reasons'], mine, why)
            rev['items'].append(i)
            rev['times'].append(times[-1])
        if record['valid'] is not None:
            missed.update(missed_causes(grasps, trace, record.pop('free'), record.pop('covered'),
                                        pred.network, decode or pred.decode))
        if details:
            per_image.append(record)
    r = _summary(items, pred, counts, reasons, times)
    r['reviewed'] = (_summary(rev['items'], pred, rev['counts'], rev['reasons'], rev['times'])
                     if rev['items'] else None)
    r['missed_by_cause'] = {k: sum(v for c, v in missed.items() if c.split(':')[0] == k)
                            for k in MISSED_CAUSES}
    r['missed_by_depth_check'] = {c.split(':')[1]: v for c, v in sorted(missed.items())
                                  if c.startswith('depth_check:')}
    if details:
        r['per_image'] = per_image
    return r


def _add(counts: Counter, reasons: Counter, mine: Counter, why: Counter) -> None:
    counts.update(mine)
    reasons.update(why)


def _score_image(ds, i: int, label: LabelRecord, grasps, scores, jaw_px_m: float, counts: Counter,
                 reasons: Counter) -> dict:
    """Judge one image's candidates against the simulator's truth.

    Valid, coverage, why not; and the top one by the rectangle metric (dense truth where there is
    truth, else the labels). ``jaw_px_m``: the jaw size in pixels at 1 m.
    """
    truth = frame_truth(ds, i, label)
    record = {'item': i, 'grasps': grasps, 'scores': scores, 'valid': None}
    if truth is not None:
        ok, why, covered = judge(grasps, truth)
        free = [log for log in truth['logs'] if log['graspable'] and log.get('axis_visible_px')]
        gt = (np.concatenate([dense_truth(log, jaw_px_m / log['depth_m']) for log in free]) if free
              else np.zeros((0, 5)))
        counts['truth_images'] += 1
        counts['candidates'] += len(grasps)
        counts['valid'] += int(ok.sum())
        counts['top1_valid'] += int(len(ok) > 0 and ok[0])
        counts['free_logs'] += len(covered)
        counts['covered'] += int(covered.sum())
        reasons.update(r for r in why if r)
        record.update(valid=ok, reasons=why, free=free, covered=covered)
    else:
        gt = as_grasps(item_grasps(label, True))
    if len(gt):
        counts['rect_images'] += 1
        counts['rect_hits'] += int(len(grasps) > 0 and bool(rectangle_metric(grasps[:1], gt)[0]))
    return record


def _summary(items, pred, counts: Counter, reasons: Counter, times: list) -> dict:
    def pct(a, b):
        return round(100.0 * counts[a] / counts[b], 2) if counts[b] else None

    return {
        'images': len(items),
        'model_id': pred.model_id,
        'model': pred.network.model,
        'valid_candidates_pct': pct('valid', 'candidates'),
        'valid_top1_pct': pct('top1_valid', 'truth_images'),
        'coverage_pct': pct('covered', 'free_logs'),
        'rectangle_metric_top1_pct': pct('rect_hits', 'rect_images'),
        'rectangle_metric_truth': 'dense' if counts['truth_images'] else 'labels',
        'candidates_per_image': round(counts['candidates'] / counts['truth_images'], 2)
        if counts['truth_images']
        else None,
        'candidates': counts['candidates'],
        'free_logs': counts['free_logs'],
        'invalid_by_reason': {k: reasons.get(k, 0) for k in INVALID_REASONS},
        'images_with_truth': counts['truth_images'],
        'latency_ms_p50': round(1000 * float(np.median(times)), 1),
    }
