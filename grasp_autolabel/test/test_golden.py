"""Behaviour pinned across refactors.

A fixed set of simulated sequences labelled with `label`, and a fixed continuous bag exported with
`export`, give exactly the labels files and masks recorded in golden/labels.json (written before
the issue-14 redesign).

Labels are compared as canonical JSON, masks as decoded pixels, by SHA-256 per item. A change
that is meant to change labels regenerates the file on purpose:
    GOLDEN_UPDATE=1 python -m pytest grasp_autolabel/test/test_golden.py
and says so in its commit.
"""
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip('rosbags')
from grasp_autolabel.dataset.store import GraspDataset  # noqa: E402, I100
from grasp_autolabel.jobs.export import export_bags  # noqa: E402
from grasp_autolabel.jobs.label import label_sessions  # noqa: E402
from grasp_autolabel.jobs.simulate import simulate  # noqa: E402
from grasp_autolabel.sim import CellConfig  # noqa: E402

GOLDEN = Path(__file__).parent / 'golden' / 'labels.json'
# tilted cameras, faults of every kind, two pile sizes: every stage and gate check runs
LABEL_CFG = CellConfig(width=320, height=240, n_logs=(6, 9), fault_rate=0.3)
BAG_CFG = CellConfig(width=320, height=240, n_logs=(5, 5), tilt_max_deg=0.0)


def _digest(path) -> dict:
    ds = GraspDataset.open(path)
    out = {}
    for i in ds.item_indices():
        label = json.dumps(ds.read_label(i), sort_keys=True, separators=(',', ':'))
        mask = ds.read_mask(i)
        out[f'{i:06d}'] = {'label': hashlib.sha256(label.encode()).hexdigest(),
                           'mask': hashlib.sha256(np.ascontiguousarray(mask).tobytes()
                                                  + str(mask.shape).encode()).hexdigest(),
                           'accepted': bool(ds.read_label(i)['accepted'])}
    return out


def _quiet(*args, **kwargs):
    pass


@pytest.mark.slow
def test_labels_and_export_equal_the_golden_record(tmp_path):
    sessions = simulate(tmp_path / 'sim', sequences=3, seed=1401, config=LABEL_CFG, progress=False)
    label_sessions(sessions, tmp_path / 'labelled', progress=False)
    simulate(tmp_path / 'bagsim', sequences=1, seed=1402, config=BAG_CFG, progress=False,
             bag='continuous',
             fps=10.0)
    export_bags([tmp_path / 'bagsim' / 'bags'], tmp_path / 'exported', progress=False, log=_quiet)
    got = {'label': _digest(tmp_path / 'labelled'), 'export': _digest(tmp_path / 'exported')}
    assert sum(v['accepted'] for v in got['label'].values()) >= 5
    assert any(not v['accepted'] for v in got['label'].values()), (
        'no rejection: the gate is not exercised')
    assert sum(v['accepted'] for v in got['export'].values()) >= 2
    if os.environ.get('GOLDEN_UPDATE') == '1':
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True) + '\n')
    want = json.loads(GOLDEN.read_text())
    for job in ('label', 'export'):
        assert sorted(got[job]) == sorted(want[job]), f'{job}: other items'
        for item, digest in want[job].items():
            assert got[job][item] == digest, f'{job}: item {item} differs from the golden record'
