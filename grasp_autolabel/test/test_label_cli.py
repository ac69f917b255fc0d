"""`label` and `eval-labels` end to end, and every kind of bad input."""
import json
import shutil
import subprocess
import sys

from grasp_autolabel.core.session import Session
from grasp_autolabel.dataset import GraspDataset
from grasp_autolabel.jobs.simulate import simulate
from grasp_autolabel.sim import CellConfig
import numpy as np
import pytest


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, '-m', 'grasp_autolabel.cli', *map(str, args)],
                          capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope='module')
def sim(tmp_path_factory):
    out = tmp_path_factory.mktemp('sim')
    simulate(out, sequences=4, seed=321, config=CellConfig(fault_rate=0.25), progress=False)
    return out


def test_label_then_eval_labels_end_to_end(sim, tmp_path):
    sessions = sorted(sim.glob('seq_*'))
    out = cli('label', *sessions, '--out', tmp_path / 'ds', '--viz')
    assert out.returncode == 0, out.stderr
    assert 'steps:' in out.stdout and 'accepted' in out.stdout and 'steps/s' in out.stdout
    ds = GraspDataset.open(tmp_path / 'ds')
    n_steps = sum(len(Session.open(s).frames) - 1 for s in sessions)
    assert ds.item_indices() == list(range(n_steps))
    # item k of the first session is the pick between its frames k and k+1, drawn on rgb/k
    first = Session.open(sessions[0])
    label = ds.read_label(1)
    assert label.pick_index == 1 and label.frame_after == 2 and label.session == 'seq_000'
    assert (tmp_path / 'ds' / 'images' / '000001.png').read_bytes() == first.rgb_path(
        1).read_bytes()
    assert (tmp_path / 'ds' / 'viz' / '000001.png').is_file()
    for i in ds.item_indices():
        lab = ds.read_label(i)
        on_disk = json.loads((tmp_path / 'ds' / 'labels' / f'{i:06d}.json').read_text())
        assert set(on_disk) >= {'version', 'accepted', 'reason', 'pick_index', 'grasps'}
        assert lab.accepted == (lab.reason is None)
        for g in lab.grasps:
            assert len(g) == 5 and -np.pi / 2 <= g[2] < np.pi / 2 and g[3] > 0 and g[4] > 0
    meta = json.loads((tmp_path / 'ds' / 'dataset.json').read_text())
    assert meta['jaw_width_m'] == 0.04 and len(meta['sources']) == 4 and all(
        s['complete'] for s in meta['sources'])
    assert 'closing direction' in meta['grasp_convention']

    ev = cli('eval-labels', tmp_path / 'ds')
    assert ev.returncode == 0, ev.stderr
    m = json.loads(ev.stdout.strip().splitlines()[-1])
    # regression bounds on simulated sequences (the targets are checked in bench/ and
    # on larger sets; these guard against a broken pipeline)
    assert m['mask_iou_median'] >= 0.92 and m['mask_iou_p10'] >= 0.8
    assert m['valid_grasps_pct'] >= 97
    assert m['coverage_pct'] >= 90
    assert m['faults_rejected_pct'] >= 80
    assert m['good_rejected_pct'] <= 10
    assert m['good_steps'] >= 10 and m['fault_steps'] >= 3


def test_an_existing_dataset_is_refused_extended_or_replaced(sim, tmp_path):
    a, b = sorted(sim.glob('seq_*'))[:2]
    assert cli('label', a, '--out', tmp_path / 'ds').returncode == 0
    n_a = len(Session.open(a).frames) - 1
    again = cli('label', b, '--out', tmp_path / 'ds')
    assert again.returncode == 2 and 'already holds a dataset' in again.stderr
    assert '--append' in again.stderr
    # the same command again (after a crash, say) finishes the work: nothing twice
    for args in ((), ('--append',)):
        same = cli('label', a, '--out', tmp_path / 'ds', *args)
        assert same.returncode == 0 and 'already labelled' in same.stdout
        assert GraspDataset.open(tmp_path / 'ds').item_indices() == list(range(n_a))
    other = cli('label', b, '--out', tmp_path / 'ds', '--append', '--config',
                _config(tmp_path, 'jaw_width_m: 0.05'))
    assert other.returncode == 2 and 'jaw_width_m' in other.stderr
    assert cli('label', b, '--out', tmp_path / 'ds', '--append').returncode == 0
    ds = GraspDataset.open(tmp_path / 'ds')
    n_b = len(Session.open(b).frames) - 1
    assert ds.item_indices() == list(range(n_a + n_b))
    assert ds.read_label(n_a).session == b.name and ds.read_label(n_a).pick_index == 0
    assert cli('label', b, '--out', tmp_path / 'ds', '--overwrite').returncode == 0
    assert GraspDataset.open(tmp_path / 'ds').item_indices() == list(range(n_b))
    (tmp_path / 'junk').mkdir()
    (tmp_path / 'junk' / 'notes.txt').write_text('mine')
    junk = cli('label', a, '--out', tmp_path / 'junk')
    assert junk.returncode == 2 and 'not empty' in junk.stderr


def _config(tmp_path, text):
    p = tmp_path / 'cfg.yaml'
    p.write_text(text + '\n')
    return p


def _copy_session(src, dst):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns('gt'))
    return dst


@pytest.mark.parametrize(
    'case, expect',
    [('missing_camera_info', 'camera_info.yaml: file not found'),
     ('one_frame', 'has 1 frame; labelling needs at least two'),
     ('rgb_other_size', 'rgb/000001.png: image is 320x240 but camera_info.yaml says 640x480'),
     ('depth_8bit', 'depth/000001.png: expected 16-bit single-channel depth'),
     ('missing_depth', 'frame 2 has no depth/000002.png'),
     ('not_a_session', 'session folder not found'),
     ('bad_yaml', 'camera_info.yaml: not valid YAML')],
)
def test_bad_sessions_give_a_clear_error_naming_the_file(sim, tmp_path, case, expect):
    import cv2

    s = _copy_session(sim / 'seq_000', tmp_path / 's')
    if case == 'missing_camera_info':
        (s / 'camera_info.yaml').unlink()
    elif case == 'one_frame':
        for sub in ('rgb', 'depth'):
            for f in sorted((s / sub).glob('*.png'))[1:]:
                f.unlink()
    elif case == 'rgb_other_size':
        cv2.imwrite(str(s / 'rgb' / '000001.png'), np.zeros((240, 320, 3), np.uint8))
    elif case == 'depth_8bit':
        cv2.imwrite(str(s / 'depth' / '000001.png'), np.zeros((480, 640), np.uint8))
    elif case == 'missing_depth':
        (s / 'depth' / '000002.png').unlink()
    elif case == 'not_a_session':
        s = tmp_path / 'nowhere'
    elif case == 'bad_yaml':
        (s / 'camera_info.yaml').write_text('image_width: [640\n')
    out = cli('label', s, '--out', tmp_path / 'ds')
    assert out.returncode == 2
    assert expect in out.stderr, out.stderr
    assert 'Traceback' not in out.stderr


def test_a_corrupt_png_mid_session_stops_with_its_name_and_keeps_the_steps_before(sim, tmp_path):
    s = _copy_session(sim / 'seq_000', tmp_path / 's')
    (s / 'depth' / '000003.png').write_bytes((
        s / 'depth' / '000003.png').read_bytes()[:200])  # truncated
    out = cli('label', s, '--out', tmp_path / 'ds')
    assert out.returncode == 2
    assert 'depth/000003.png: not a readable image' in out.stderr and 'Traceback' not in out.stderr
    ds = GraspDataset.open(tmp_path / 'ds')
    assert ds.item_indices() == [0, 1]  # picks 0->1 and 1->2 were written and are complete
    for i in ds.item_indices():
        assert ds.read_label(i).pick_index == i
        assert ds.read_mask(i).shape == (480, 640)
    meta = json.loads((tmp_path / 'ds' / 'dataset.json').read_text())
    assert meta['sources'][0]['complete'] is False and meta['sources'][0]['steps'] == 2


def test_eval_labels_errors(sim, tmp_path):
    out = cli('eval-labels', tmp_path / 'nothing')
    assert out.returncode == 2 and 'not a grasp dataset' in out.stderr
    assert cli('label', sim / 'seq_000', '--out', tmp_path / 'ds').returncode == 0
    out = cli('eval-labels', tmp_path / 'ds', '--gt', tmp_path / 'a', tmp_path / 'b')
    assert out.returncode == 2 and '2 folder(s) for 1 source' in out.stderr
    out = cli('eval-labels', tmp_path / 'ds', '--gt', tmp_path / 'missing')
    assert out.returncode == 2 and 'ground-truth folder not found' in out.stderr


def test_a_folder_of_sessions_is_labelled_in_name_order(sim, tmp_path):
    """`simulate --out sim` then `label sim`: every seq_NNN in it, in name order."""
    out = cli('label', sim, '--out', tmp_path / 'ds')
    assert out.returncode == 0, out.stderr
    ds = GraspDataset.open(tmp_path / 'ds')
    assert [s['name'] for s in ds.meta['sources']] == sorted(p.name for p in sim.glob('seq_*'))
    empty = tmp_path / 'empty'
    empty.mkdir()
    bad = cli('label', empty, '--out', tmp_path / 'ds2')
    assert bad.returncode == 2 and 'nor a folder of sessions' in bad.stderr
