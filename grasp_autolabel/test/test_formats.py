"""Cornell and Jacquard conversion both ways, and the real Cornell samples."""
import math
from pathlib import Path
import subprocess
import sys

from grasp_autolabel.core.geometry import angle_difference, rectangle_metric
from grasp_autolabel.dataset import DatasetError, GraspDataset
from grasp_autolabel.dataset.formats import (export_cornell, export_jacquard, import_cornell,
                                             import_jacquard, read_cornell_rectangles)
import numpy as np
import pytest

CORNELL = Path(__file__).resolve().parents[2].parent / 'shared' / 'data' / 'cornell'


@pytest.fixture(scope='module')
def labelled(tmp_path_factory):
    from grasp_autolabel.jobs.label import label_sessions
    from grasp_autolabel.jobs.simulate import simulate
    from grasp_autolabel.sim import CellConfig

    root = tmp_path_factory.mktemp('fmt')
    paths = simulate(root / 'sim', sequences=1, seed=11, config=CellConfig(n_logs=(6, 6)),
                     progress=False)
    label_sessions(paths, root / 'ds', progress=False)
    return root / 'ds'


def _same_grasps(a, b, tol=1e-2):
    a, b = np.asarray(a).reshape(-1, 5), np.asarray(b).reshape(-1, 5)
    assert a.shape == b.shape
    np.testing.assert_allclose(a[:, [0, 1, 3, 4]], b[:, [0, 1, 3, 4]], atol=tol)
    assert np.all(angle_difference(a[:, 2], b[:, 2]) < 1e-3)


@pytest.mark.parametrize('fmt', ['cornell', 'jacquard'])
def test_export_then_import_gives_the_same_grasps(labelled, tmp_path, fmt):
    export, imp = {'cornell': (export_cornell, import_cornell),
                   'jacquard': (export_jacquard, import_jacquard)}[fmt]
    n = export(labelled, tmp_path / fmt)
    ds = GraspDataset.open(labelled)
    accepted = [i for i in ds.item_indices() if ds.read_label(i).accepted]
    assert n == len(accepted) > 0
    assert imp(tmp_path / fmt, tmp_path / 'back') == n
    back = GraspDataset.open(tmp_path / 'back')
    for j, i in enumerate(accepted):
        _same_grasps(ds.read_label(i).grasps, back.read_label(j).grasps)
        np.testing.assert_array_equal(ds.read_rgb(i), back.read_rgb(j))
    # depth survives as metres -> millimetres
    d0 = (labelled / 'depth' / f'{accepted[0]:06d}.png').read_bytes()
    assert d0 and (tmp_path / 'back' / 'depth' / '000000.png').is_file()


def test_jacquard_lines_are_x_y_theta_deg_opening_jaw(labelled, tmp_path):
    export_jacquard(labelled, tmp_path / 'j')
    first = sorted((tmp_path / 'j').glob('*_grasps.txt'))[0]
    x, y, t, w, h = (float(v) for v in first.read_text().splitlines()[0].split(';'))
    ds = GraspDataset.open(labelled)
    g = ds.read_label(int(first.name[:6])).grasps[0]
    assert (x, y, w, h) == pytest.approx((g[0], g[1], g[3], g[4]), abs=1e-3)
    assert t == pytest.approx(math.degrees(g[2]), abs=1e-3)


def test_real_cornell_samples_import_and_score_against_themselves(tmp_path):
    if not CORNELL.is_dir():
        pytest.skip('../shared/data/cornell not present')
    n = import_cornell(CORNELL, tmp_path / 'c')
    assert n == 10
    ds = GraspDataset.open(tmp_path / 'c')
    total = 0
    for i in ds.item_indices():
        label = ds.read_label(i)
        g = np.asarray(label.grasps)
        raw = np.loadtxt(CORNELL / f'{label.session}cpos.txt').reshape(-1, 4, 2)
        assert len(g) == int(np.all(np.isfinite(raw), axis=(1, 2)).sum()) > 0
        assert np.all(rectangle_metric(g, g))  # every labelled rectangle is correct against itself
        # the same rectangle moved 60 px away is not
        assert not rectangle_metric(g[:1] + [60, 60, 0, 0, 0], g[:1])[0]
        total += len(g)
        depth = ds.path / 'depth' / f'{i:06d}.png'
        assert depth.is_file()
    assert total > 30
    # draw them on the real images (what a person checks by eye)
    from grasp_autolabel.annotate.viz import draw_label

    img = draw_label(ds.read_rgb(0), grasps=ds.read_label(0).grasps)
    assert img.shape == (480, 640, 3) and np.any(img != ds.read_rgb(0))


def test_bad_cornell_files(tmp_path):
    bad = tmp_path / 'pcd0001cpos.txt'
    bad.write_text('1 2\n3 4\n5 6\n')
    with pytest.raises(DatasetError, match='not a whole number of rectangles'):
        read_cornell_rectangles(bad)
    bad.write_text('1 2\nx y\n')
    with pytest.raises(DatasetError, match='pcd0001cpos.txt:2: expected two numbers'):
        read_cornell_rectangles(bad)
    with pytest.raises(DatasetError, match='no Cornell samples'):
        import_cornell(tmp_path / 'nothing', tmp_path / 'out')


def test_convert_cli(labelled, tmp_path):
    cmd = [sys.executable, '-m', 'grasp_autolabel.cli', 'convert']
    out = subprocess.run(cmd + [str(labelled), '--to', 'cornell', '--out', str(tmp_path / 'c')],
                         capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and 'Cornell samples' in out.stdout, out.stderr
    again = subprocess.run(cmd + [str(labelled), '--to', 'cornell', '--out', str(tmp_path / 'c')],
                           capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 2 and '--overwrite' in again.stderr
    back = subprocess.run(cmd + [str(tmp_path / 'c'), '--from', 'cornell', '--out',
                                 str(tmp_path / 'd')],
                          capture_output=True, text=True, timeout=120)
    assert back.returncode == 0, back.stderr


def test_a_dataset_mixing_two_cameras_reads_every_item_with_its_own_depth_scale(tmp_path):
    """Two sources, one camera in millimetres and one in 0.1 mm.

    The same 1.5 m reads as 1.5 m from both, in the store, in the Cornell export, and in the
    carrying-back of labels.
    """
    import cv2
    from grasp_autolabel.core.camera import CameraIntrinsics
    from grasp_autolabel.dataset.labels import LabelRecord
    from grasp_autolabel.dataset.propagate import propagate_labels
    from grasp_autolabel.dataset.store import intrinsics_to_dict

    cam = CameraIntrinsics(width=64, height=48, fx=60.0, fy=60.0, cx=32.0, cy=24.0)
    ds = GraspDataset.create(tmp_path / 'mixed', jaw_width_m=0.04, settings={})
    mask = np.zeros((48, 64), bool)
    mask[20:28, 10:50] = True
    index = 0
    for scale in (0.001, 0.0001):
        src = ds.add_source({'session': f's{scale}', 'name': f's{scale}', 'first_item': index,
                             'steps': 2,
                             'complete': True, 'camera': intrinsics_to_dict(cam, scale)})
        for pick in range(2):  # pick 1 removes the log that lay untouched under pick 0
            label = LabelRecord(accepted=True, pick_index=pick, source=src, grasps=np.array(
                [[30.0, 24.0, 1.5708, 12.0, 6.0]] if pick == 1 else np.zeros((0, 5))),
                scores=np.ones(pick))
            depth = np.full((48, 64), round(1.5 / scale), np.uint16)
            ds.write_item(index, rgb=np.zeros((48, 64, 3), np.uint8), depth=depth,
                          mask=mask if pick == 1 else np.zeros_like(mask), label=label)
            index += 1
    ds.save_meta()
    for i in range(4):
        np.testing.assert_allclose(ds.read_depth_m(i), 1.5, atol=1e-6)
    assert propagate_labels(ds) == 2  # carried back within each source, not across
    assert [len(ds.read_label(i).later_grasps) for i in range(4)] == [1, 0, 1, 0]
    export_cornell(tmp_path / 'mixed', tmp_path / 'cornell')
    tiffs = sorted((tmp_path / 'cornell').rglob('*d.tiff'))
    assert len(tiffs) == 4
    for path in tiffs:
        np.testing.assert_allclose(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), 1.5, atol=1e-6)
