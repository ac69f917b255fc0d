"""The paper's strategy, measured: automatic labels, then a few frames corrected by a person.

A model trained on automatic labels (the shipped one: the simulator's automatic labels) meets a
new cell (dense, tilted piles it never saw). Its labels are made automatically; a "person" (the
simulator's truth standing in) reviews --frames of them through the review's own code
(`dataset/review.py`), drawing one grasp across the middle of every free log. Then, from the same
start (`--init shipped`), the same steps:

* automatic: fine-tuned on those frames' automatic labels alone;
* reviewed: fine-tuned on the same frames as the person left them (`--reviewed-only`);

each evaluated on held-out sequences of the new cell, with the model before fine-tuning.

    scripts/in-env.sh python bench/review_finetune.py [--frames 10] [--steps 150]
"""
import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from grasp_autolabel.core.fsio import FolderLock
from grasp_autolabel.dataset.review import label_etag, save_review
from grasp_autolabel.dataset.store import GraspDataset
from grasp_autolabel.detector.config import TrainSettings
from grasp_autolabel.detector.evaluate import dense_truth, evaluate, frame_truth
from grasp_autolabel.detector.models import GraspMapNetwork
from grasp_autolabel.detector.train import train
from grasp_autolabel.jobs.label import label_sessions
from grasp_autolabel.jobs.simulate import simulate
from grasp_autolabel.sim import CellConfig

SHIPPED = Path(__file__).resolve().parents[1] / 'grasp_autolabel' / 'models'
CELL = CellConfig(n_logs=(14, 14), tilt_max_deg=20.0)


def person(ds: GraspDataset, items: list[int]) -> int:
    """Review ``items`` as a person would: one grasp across the middle of every free log."""
    drawn = 0
    with FolderLock(ds.path):
        for i in items:
            label = ds.read_label(i)
            truth = frame_truth(ds, i, label)
            jaw = ds.meta['jaw_width_m'] * ds.intrinsics(i, label)[0].fx
            grasps = []
            for log in truth['logs']:
                if log['graspable'] and log.get('axis_visible_px'):
                    along = dense_truth(log, jaw / log['depth_m'])
                    grasps.append(along[len(along) // 2])
            save_review(ds, i, verdict='accepted', grasps=np.asarray(grasps).reshape(-1, 5),
                        etag=label_etag(ds, i))
            drawn += len(grasps)
    return drawn


def figures(model, test: Path) -> dict:
    r = evaluate(model, test, part='all', split='none', progress=False)
    return {k: r[k] for k in ('valid_candidates_pct', 'valid_top1_pct', 'coverage_pct')}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--frames', type=int, default=10)
    ap.add_argument('--steps', type=int, default=150)
    ap.add_argument('--seed', type=int, default=2626)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cell = simulate(root / 'cell', sequences=2, seed=args.seed, config=CELL, progress=False)
        test = simulate(root / 'test', sequences=3, seed=args.seed + 1, config=CELL,
                        progress=False)
        label_sessions(cell, root / 'auto', progress=False)
        label_sessions(test, root / 'test_ds', progress=False)
        ds = GraspDataset.open(root / 'auto')
        rng = np.random.default_rng(args.seed)
        picked = sorted(rng.choice(ds.item_indices(), size=args.frames, replace=False).tolist())
        drawn = person(ds, picked)
        print(f'new cell: {len(ds.item_indices())} automatic labels; a person reviewed '
              f'{len(picked)} frames, drawing {drawn} grasps', flush=True)
        network = GraspMapNetwork()  # the family's defaults: the shipped model's network
        before = figures(SHIPPED / 'sim_grasp_map.onnx', root / 'test_ds')
        print(f'before fine-tuning (shipped): {json.dumps(before)}', flush=True)
        for name, reviewed in (('automatic', False), ('reviewed', True)):
            settings = TrainSettings(max_steps=args.steps, max_minutes=0, split='none',
                                     reviewed_only=True, batch_size=8, lr=4e-4)
            data = root / 'auto'
            if not reviewed:  # the same frames, with the gate's labels: the review set aside
                data = root / 'auto_only'
                _without_review(ds, data, picked)
            train(data, root / f'run_{name}', network, settings, progress=False,
                  init='shipped', log=lambda *a, **k: None)
            after = figures(root / f'run_{name}', root / 'test_ds')
            print(f'fine-tuned on {len(picked)} frames, {name} labels ({args.steps} steps): '
                  f'{json.dumps(after)}', flush=True)


def _without_review(ds: GraspDataset, out: Path, picked: list[int]) -> None:
    """Copy of the dataset whose picked items carry an 'accepted' review of the gate's grasps."""
    import shutil

    shutil.copytree(ds.path, out)
    auto = GraspDataset.open(out)
    with FolderLock(out):
        for i in picked:
            label = auto.read_label(i)
            label.review = None
            auto.write_label(i, label)
            save_review(auto, i, verdict='accepted' if label.accepted else 'rejected',
                        grasps=label.grasps if label.accepted else [], etag=label_etag(auto, i))


if __name__ == '__main__':
    main()
