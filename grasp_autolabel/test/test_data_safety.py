"""A user's data is never lost, overwritten or read from outside the input (issue 15's cases)."""
import json
import os
from pathlib import Path

from grasp_autolabel.cli import main as cli
from grasp_autolabel.core.fsio import claim_output, FolderLock, MARKER, OutputError, write_atomic
from grasp_autolabel.dataset import GraspDataset
from grasp_autolabel.jobs.label import label_sessions
from grasp_autolabel.jobs.simulate import simulate
from grasp_autolabel.sim import CellConfig
import pytest


@pytest.fixture(scope='module')
def labelled(tmp_path_factory):
    root = tmp_path_factory.mktemp('safety')
    config = CellConfig(width=96, height=72, n_logs=(3, 3))
    sessions = simulate(root / 'sim', sequences=2, seed=8, config=config, progress=False)
    label_sessions(sessions[:1], root / 'ds', progress=False)
    return root, sessions


def _tree(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob('*')) if p.is_file()}


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert '\n' not in err and 'Traceback' not in err
    return err


def test_convert_overwrite_never_deletes_a_folder_it_did_not_make(labelled, tmp_path, capsys):
    root, _ = labelled
    mine = tmp_path / 'notes'
    mine.mkdir()
    (mine / 'notes.txt').write_text('weeks of picking')
    before = _tree(root / 'ds')
    rc = cli(['convert', str(root / 'ds'), '--to', 'cornell', '--out', str(mine), '--overwrite'])
    assert rc == 2 and 'did not make' in _err(capsys)
    assert (mine / 'notes.txt').read_text() == 'weeks of picking'
    # the source dataset itself as the output: refused, untouched
    rc = cli(['convert', str(root / 'ds'), '--to', 'cornell', '--out', str(root / 'ds'),
              '--overwrite'])
    assert rc == 2 and 'is the input' in _err(capsys)
    assert _tree(root / 'ds') == before
    # its own earlier export: --overwrite replaces only its files, a user's file stays
    out = tmp_path / 'cornell'
    assert cli(['convert', str(root / 'ds'), '--to', 'cornell', '--out', str(out)]) == 0
    (out / 'README.txt').write_text('mine')
    assert cli(['convert', str(root / 'ds'), '--to', 'cornell', '--out', str(out)]) == 2
    assert '--overwrite' in _err(capsys)
    assert cli(['convert', str(root / 'ds'), '--to', 'cornell', '--out', str(out),
                '--overwrite']) == 0
    assert (out / 'README.txt').read_text() == 'mine' and (out / 'pcd0000r.png').is_file()


def test_augment_into_its_own_input_is_refused(labelled, capsys):
    root, _ = labelled
    before = _tree(root / 'ds')
    for out in (root / 'ds', root / 'ds' / 'aug', root):
        rc = cli(['augment', str(root / 'ds'), '--out', str(out), '--overwrite'])
        assert rc == 2 and 'input' in _err(capsys)
    assert _tree(root / 'ds') == before


def test_label_overwrite_removes_only_the_datasets_own_files(labelled, tmp_path, capsys):
    root, sessions = labelled
    out = tmp_path / 'ds'
    label_sessions(sessions[:1], out, progress=False)
    (out / 'images' / 'my_photo.jpg').write_bytes(b'mine')
    (out / 'notes.md').write_text('mine')
    assert cli(['label', str(sessions[1]), '--out', str(out), '--overwrite']) == 0
    assert (out / 'images' / 'my_photo.jpg').read_bytes() == b'mine'
    assert (out / 'notes.md').read_text() == 'mine'
    ds = GraspDataset.open(out)
    assert [s['name'] for s in ds.meta['sources']] == [sessions[1].name]
    # a session as the output of label
    rc = cli(['label', str(sessions[0]), '--out', str(sessions[0] / 'ds')])
    assert rc == 2 and 'inside the input' in _err(capsys)


def test_a_second_writer_is_refused_in_one_line_naming_the_holder(labelled, tmp_path, capsys):
    root, sessions = labelled
    out = tmp_path / 'ds'
    label_sessions(sessions[:1], out, progress=False)
    before = _tree(out)
    with FolderLock(out):
        rc = cli(['label', str(sessions[1]), '--out', str(out), '--append'])
        err = _err(capsys)
    assert rc == 2 and 'in use by process' in err and str(os.getpid()) in err
    assert _tree(out) == before  # nothing written by the refused writer
    assert cli(['label', str(sessions[1]), '--out', str(out), '--append']) == 0


def test_temporary_files_never_follow_a_planted_symlink(labelled, tmp_path):
    root, sessions = labelled
    out = tmp_path / 'ds'
    label_sessions(sessions[:1], out, progress=False)
    victim = tmp_path / 'victim.txt'
    victim.write_text('keep')
    n = len(GraspDataset.open(out).item_indices())
    for sub, name in (('labels', f'{n:06d}.json'), ('images', f'{n:06d}.png'),
                      ('masks', f'{n:06d}.png'), ('.', 'dataset.json')):
        for tmp in (f'.{name}.tmp', f'.{name}.0.tmp'):
            (out / sub / tmp).symlink_to(victim)
    label_sessions(sessions[1:], out, append=True, progress=False)
    assert victim.read_text() == 'keep'
    assert len(GraspDataset.open(out).item_indices()) > n


def test_a_labels_file_naming_a_path_outside_the_dataset_is_refused(labelled, tmp_path, capsys):
    root, _ = labelled
    ds = tmp_path / 'ds'
    import shutil

    shutil.copytree(root / 'ds', ds)
    label = json.loads((ds / 'labels' / '000000.json').read_text())
    secret = tmp_path / 'secret.png'
    secret.write_bytes((ds / 'images' / '000000.png').read_bytes())
    (ds / 'labels' / '000000.json').write_text(json.dumps({**label, 'image': str(secret)}))
    rc = cli(['convert', str(ds), '--to', 'jacquard', '--out', str(tmp_path / 'j')])
    err = _err(capsys)
    assert rc == 2 and 'labels/000000.json: image' in err and 'outside the dataset' in err
    assert not list((tmp_path / 'j').glob('*_RGB.png'))


def test_claim_output_marks_and_refuses(tmp_path):
    out, earlier = claim_output(tmp_path / 'o', kind='cornell export')
    assert not earlier and json.loads((out / MARKER).read_text())['kind'] == 'cornell export'
    write_atomic(out / 'pcd0000r.png', lambda f: f.write(b'x'))
    with pytest.raises(OutputError, match='a cornell export output'):
        claim_output(out, kind='jacquard export', overwrite=True)
    assert claim_output(out, kind='cornell export')[1] is True
    claim_output(out, kind='cornell export', overwrite=True, owned=[r'pcd\d{4}r\.png'])
    assert not (out / 'pcd0000r.png').exists()


def test_evaluate_refuses_a_dataset_without_splits(labelled, tmp_path, capsys):
    pytest.importorskip('torch')
    root, _ = labelled
    ds = tmp_path / 'ds'
    import shutil

    shutil.copytree(root / 'ds', ds)
    meta = json.loads((ds / 'dataset.json').read_text())
    meta['splits'] = {}
    (ds / 'dataset.json').write_text(json.dumps(meta))
    (tmp_path / 'tiny.yaml').write_text('network: {input_size: 64, width: 4}\n'
                                        'train: {max_steps: 1, batch_size: 2, split: none}\n')
    assert cli(['train', str(ds), '--out', str(tmp_path / 'run'), '--config',
                str(tmp_path / 'tiny.yaml')]) == 0
    capsys.readouterr()
    rc = cli(['evaluate', str(tmp_path / 'run'), str(ds)])
    assert rc == 2 and 'has no session-wise split' in _err(capsys)


def test_a_bag_whose_metadata_names_files_outside_it_is_refused(labelled, tmp_path, capsys):
    pytest.importorskip('rosbags')
    from grasp_autolabel.dataset.bagwrite import write_session_bag

    _, sessions = labelled
    bag = tmp_path / 'bag'
    write_session_bag(sessions[0], bag, storage='mcap')
    storage = next(bag.glob('*.mcap'))
    storage.rename(tmp_path / storage.name)  # the recording now lies outside the bag folder
    meta = (bag / 'metadata.yaml').read_text().replace(f'- {storage.name}',
                                                       f'- ../{storage.name}')
    assert f'../{storage.name}' in meta
    (bag / 'metadata.yaml').write_text(meta)
    rc = cli(['export', str(bag), '--out', str(tmp_path / 'ds')])
    err = _err(capsys)
    assert rc == 2 and 'metadata.yaml: relative_file_paths' in err and 'outside the bag' in err


def test_the_demo_never_replaces_a_folder_it_did_not_make(tmp_path, capsys):
    from grasp_autolabel.cli.demo import main as demo

    (tmp_path / 'notes.txt').write_text('mine')
    assert demo([str(tmp_path)]) == 2
    assert 'did not make' in capsys.readouterr().err
    assert (tmp_path / 'notes.txt').read_text() == 'mine'


@pytest.mark.parametrize('args, option', [
    (['export', 'b', '--out', 'o', '--depth-scale', 'nan'], '--depth-scale'),
    (['export', 'b', '--out', 'o', '--depth-scale', '0'], '--depth-scale'),
    (['export', 'b', '--out', 'o', '--depth-scale', '-1'], '--depth-scale'),
    (['export', 'b', '--out', 'o', '--settle-s', 'nan'], '--settle-s'),
    (['simulate', '--out', 'o', '--fps', '0'], '--fps'),
    (['simulate', '--out', 'o', '--seed', '-1'], '--seed'),
    (['augment', 'd', '--out', 'o', '--max-shift', 'inf'], '--max-shift'),
    (['split', 'd', '--test-fraction', '1.5'], '--test-fraction')])
def test_numeric_options_are_range_checked_with_the_option_named(args, option, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli(args)
    assert exit_.value.code == 2
    assert f'argument {option}' in capsys.readouterr().err


def test_a_gpu_that_is_not_there_is_one_line(capsys):
    pytest.importorskip('torch')
    import torch

    rc = cli(['evaluate', 'run', 'ds', '--device', f'cuda:{torch.cuda.device_count() + 3}'])
    err = _err(capsys)
    assert rc == 2 and f'--device cuda:{torch.cuda.device_count() + 3}' in err
