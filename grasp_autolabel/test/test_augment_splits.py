"""Augmentation (exact grasp/mask transforms, seeded, resumable) and train/test splits."""
import json
import math

from grasp_autolabel.cli import main as cli
from grasp_autolabel.core.geometry import rect_to_corners
from grasp_autolabel.dataset.augment import augment_dataset, transform_grasps
from grasp_autolabel.dataset.splits import assign_splits
from grasp_autolabel.dataset.store import GraspDataset
from grasp_autolabel.jobs.label import label_sessions
from grasp_autolabel.jobs.simulate import simulate
from grasp_autolabel.sim import CellConfig
import numpy as np
import pytest


@pytest.fixture(scope='module')
def labelled(tmp_path_factory):
    root = tmp_path_factory.mktemp('aug')
    paths = simulate(root / 'sim', sequences=3, seed=31, progress=False,
                     config=CellConfig(width=320, height=240, n_logs=(4, 4), tilt_max_deg=0.0))
    label_sessions(paths, root / 'ds', progress=False)
    return root / 'ds'


def test_transform_grasps_exactly():
    g = np.array([[100.0, 50.0, 0.3, 20.0, 10.0]])
    # rotation by +90 deg about the origin in image coordinates: (x, y) -> (-y, x), then a shift
    m = np.array([[0.0, -1.0, 200.0], [1.0, 0.0, 10.0]])
    out, kept = transform_grasps(g, m, 400, 400)
    assert kept.all()
    assert out[0, :2] == pytest.approx([150.0, 110.0])
    assert out[0, 2] == pytest.approx(0.3 + math.pi / 2 - math.pi)  # normalised to [-pi/2, pi/2)
    assert out[0, 3:] == pytest.approx([20.0, 10.0])
    # corners move as the image does
    c0 = rect_to_corners(g)[0]
    moved = c0 @ m[:, :2].T + m[:, 2]
    c1 = rect_to_corners(out)[0]
    assert sorted(map(tuple, np.round(moved, 6))) == sorted(map(tuple, np.round(c1, 6)))
    # a grasp pushed out of the image is dropped
    out, kept = transform_grasps(g, np.array([[1.0, 0, 300.0], [0, 1.0, 0]]), 400, 400)
    assert not kept.any() and len(out) == 0


def test_augmented_grasps_stay_on_their_object(labelled, tmp_path):
    c = augment_dataset(labelled, tmp_path / 'aug', factor=6, seed=3, progress=False)
    src = GraspDataset.open(labelled)
    ds = GraspDataset.open(tmp_path / 'aug')
    accepted = [i for i in src.item_indices() if src.read_label(i).accepted]
    assert len(ds.item_indices()) == c['items'] == 6 * len(accepted) - c['copies_without_grasps']
    rotations = []
    for i in ds.item_indices():
        lab = ds.read_label(i)
        mask = ds.read_mask(i)
        g = np.array(lab.grasps)
        assert len(g)
        h, w = mask.shape
        for x, y, *_ in g:  # every grasp centre lies on the (transformed) mask of its object
            assert mask[int(round(y)), int(round(x))], (i, x, y)
        corners = rect_to_corners(g)
        assert corners.min() >= 0 and corners[...,
                                              0].max() <= w - 1 and corners[..., 1].max() <= h - 1
        rotations.append(lab.augmentation['rotation_deg'])
        if lab.augmentation['copy'] == 0:  # the original, unchanged
            j = lab.augmentation['from_item']
            assert np.array_equal(ds.read_rgb(i), src.read_rgb(j))
            assert np.array_equal(lab.grasps, src.read_label(j).grasps)
    assert np.ptp(rotations) > 90  # rotations really vary
    # the same seed gives the same items; another seed others
    augment_dataset(labelled, tmp_path / 'again', factor=6, seed=3, progress=False)
    augment_dataset(labelled, tmp_path / 'other', factor=6, seed=4, progress=False)
    a, b, o = (GraspDataset.open(tmp_path / n) for n in ('aug', 'again', 'other'))
    assert np.array_equal(a.read_label(1).grasps, b.read_label(1).grasps)
    assert not np.array_equal(a.read_label(1).grasps, o.read_label(1).grasps)
    assert np.array_equal(a.read_rgb(1), b.read_rgb(1))


def test_augment_resumes_and_refuses_another_dataset(labelled, tmp_path, capsys):
    out = tmp_path / 'aug'
    augment_dataset(labelled, out, factor=3, seed=1, progress=False)
    (out / 'labels' / '000004.json').unlink()
    c = augment_dataset(labelled, out, factor=3, seed=1, progress=False)
    assert c['items'] == 1 and c['skipped'] == len(GraspDataset.open(out).item_indices()) - 1
    rc = cli(['augment', str(labelled), '--out', str(out), '--factor', '5'])
    assert rc == 2 and '--overwrite' in capsys.readouterr().err
    rc = cli(['augment', str(labelled), '--out', str(out), '--factor', '2', '--overwrite'])
    assert rc == 0 and 'items written' in capsys.readouterr().out


def test_splits_session_wise_and_image_wise(labelled, tmp_path):
    ds = GraspDataset.open(labelled)
    s = ds.meta['splits']  # label wrote them
    items = set(ds.item_indices())
    for kind in ('image', 'session'):
        assert set(s[kind]['train']) | set(s[kind]['test']) == items
        assert not set(s[kind]['train']) & set(s[kind]['test'])
    by_source = {}
    for i in items:
        by_source.setdefault(ds.read_label(i).source, set()).add(i)
    test = set(s['session']['test'])
    assert len(
        s['session']['test_sources']) == 1  # round(0.2 * 3) -> at least one of three sessions
    assert all(grp <= test or not grp & test for grp in by_source.values())  # whole sessions only
    # re-splitting with another fraction and seed is recorded; the image split does not depend on
    # order
    s2 = assign_splits(ds, test_fraction=0.5, seed=7)
    assert json.loads((labelled / 'dataset.json').read_text())['splits']['test_fraction'] == 0.5
    assert 0 < len(s2['image']['test']) < len(items)
    assign_splits(ds, test_fraction=0.2, seed=0)
    # augmented copies keep their original's split
    augment_dataset(labelled, tmp_path / 'aug', factor=3, seed=0, progress=False)
    aug = GraspDataset.open(tmp_path / 'aug')
    src_test = set(ds.meta['splits']['image']['test'])
    for i in aug.item_indices():
        from_item = aug.read_label(i).augmentation['from_item']
        assert (i in aug.meta['splits']['image']['test']) == (from_item in src_test)
        assert (i in aug.meta['splits']['session']['test']) == (from_item in set(
            ds.meta['splits']['session']['test']))


def test_later_picks_are_carried_back_only_onto_free_logs(labelled):
    """Every later pick carried back to frame k is a log nothing rests on in frame k (the
    simulator's truth), and some are carried at all."""
    from pathlib import Path

    ds = GraspDataset.open(labelled)
    carried = 0
    for i in ds.item_indices():
        lab = ds.read_label(i)
        session = Path(ds.meta['sources'][lab.source]['session'])
        frame = json.loads((
            session / 'gt' / 'frames' / f'{lab.pick_index:06d}.json').read_text())
        free = {log['id']: log['graspable'] for log in frame['logs']}
        assert len(lab.later_picks) <= len(lab.later_grasps)
        for j in lab.later_picks:
            assert j > lab.pick_index
            step = json.loads((session / 'gt' / f'{j:06d}.json').read_text())
            assert all(free[log_id] for log_id in step['removed']), (i, j)
            carried += 1
    assert carried >= 3
