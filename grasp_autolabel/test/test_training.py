"""Training a person can follow and scale, the model families' registry, the shipped model.

Issue 24: progress lines and TensorBoard event files when ``train`` writes to a file; ``--init``
starts from the given weights (and refuses another network, or an ONNX file); two gloo processes
under torchrun end with identical weights, in a checkpoint one process loads; the registry
refuses an unknown family in a checkpoint and in an ONNX file; the shipped model finds valid
grasps on a simulated frame; ``evaluate`` counts every missed free log by cause.
"""
import json
import os
from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip('torch')

from grasp_autolabel.detector.config import DecodeSettings, TrainSettings  # noqa: E402, I100
from grasp_autolabel.detector.distributed import weights_digest  # noqa: E402
from grasp_autolabel.detector.evaluate import evaluate, MISSED_CAUSES  # noqa: E402
from grasp_autolabel.detector.export import export_onnx  # noqa: E402
from grasp_autolabel.detector.model_files import shipped_model  # noqa: E402
from grasp_autolabel.detector.models import FAMILIES, GraspMapNetwork  # noqa: E402
from grasp_autolabel.detector.predict import (CheckpointError, load_checkpoint,  # noqa: E402
                                              load_predictor, OnnxPredictor, save_checkpoint,
                                              TorchPredictor)
from grasp_autolabel.detector.train import train  # noqa: E402
from grasp_autolabel.jobs.label import label_sessions  # noqa: E402
from grasp_autolabel.jobs.simulate import simulate  # noqa: E402
from grasp_autolabel.sim import CellConfig, SimCell  # noqa: E402

TINY = {'width': 4, 'input_size': 64}
ANY = DecodeSettings(score_threshold=0.0)


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp('training')
    sessions = simulate(root / 'sim', sequences=2, seed=43, progress=False,
                        config=CellConfig(width=160, height=120, n_logs=(4, 4), tilt_max_deg=0.0))
    label_sessions(sessions, root / 'ds', progress=False)
    return root / 'ds'


def _cli(*args, cwd=None, env=None, module=('-m', 'grasp_autolabel.cli')):
    """Run a command with output to a file (not a terminal), as nohup or CI would."""
    log = Path(cwd) / 'out.log'
    with open(log, 'w') as f:
        rc = subprocess.run([sys.executable, *module, *map(str, args)], stdout=f,
                            stderr=subprocess.STDOUT, cwd=cwd, timeout=300,
                            env={**os.environ, **(env or {})}).returncode
    return rc, log.read_text()


def _config(tmp_path, **train_settings) -> Path:
    import yaml

    path = tmp_path / 'tiny.yaml'
    path.write_text(yaml.safe_dump({'network': TINY, 'train': {'batch_size': 2, 'val_every': 6,
                                                               **train_settings}}))
    return path


def test_train_to_a_file_shows_its_plan_progress_and_tensorboard_events(dataset, tmp_path):
    rc, out = _cli('train', dataset, '--out', tmp_path / 'run', '--max-steps', 14,
                   '--config', _config(tmp_path), '--split', 'session', cwd=tmp_path)
    assert rc == 0, out
    lines = out.splitlines()
    assert lines[0].startswith('train: 14 steps of 2 on ') and 'from random weights' in lines[0]
    assert any('s a step here; 3 steps left, expected end in' in x for x in lines), out
    assert any(x.startswith('train: validation at step 6: validation_score') for x in lines)
    assert any(x.startswith('train: step 14/14 (100 %), loss ') for x in lines), out
    assert '\r' not in out  # no progress bar redrawn into a file
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / 'run' / 'tensorboard'), size_guidance={'images': 0})
    events.Reload()
    scalars, images = events.Tags()['scalars'], events.Tags()['images']
    for tag in ('loss/total', 'loss/quality', 'loss/angle', 'loss/opening', 'learning_rate',
                'validation/rectangle_top1_pct', 'validation/validation_score',
                'validation/rectangle_top5_precision_pct'):
        assert tag in scalars, scalars
    assert [e.step for e in events.Scalars('loss/total')] == list(range(1, 15))
    assert [e.step for e in events.Scalars('validation/rectangle_top1_pct')] == [6, 12, 14]
    assert images and all(len(events.Images(tag)) == 3 for tag in images)


def test_init_starts_from_the_given_weights(dataset, tmp_path):
    net = GraspMapNetwork(**TINY)
    train(dataset, tmp_path / 'a', net, TrainSettings(batch_size=2, max_steps=6, split='none'),
          decode=ANY, progress=False, log=lambda *a, **k: None)
    a = load_checkpoint(tmp_path / 'a')  # (a run folder: its best checkpoint)
    said = []
    train(dataset, tmp_path / 'b', net, TrainSettings(batch_size=2, max_steps=1, lr=1e-7,
                                                      split='none'),
          decode=ANY, progress=False, init=tmp_path / 'a', log=lambda *x, **k: said.append(x[0]))
    b = load_checkpoint(tmp_path / 'b')
    params = [k for k, v in a['state_dict'].items() if v.is_floating_point()
              and 'running' not in k]
    moved = max(float((b['state_dict'][k] - a['state_dict'][k]).abs().max()) for k in params)
    assert moved < 1e-5  # one step at lr 1e-7 from a's weights
    random = train(dataset, tmp_path / 'r', net, TrainSettings(batch_size=2, max_steps=1,
                                                               lr=1e-7, split='none'),
                   decode=ANY, progress=False, log=lambda *x, **k: None)
    r = load_checkpoint(random['checkpoint'])['state_dict']
    # (the same seed's random weights, before a's six steps at lr 2e-3: 100 times further)
    assert max(float((r[k] - a['state_dict'][k]).abs().max()) for k in params) > 1e-3
    assert b['init']['path'] == a['path'] and b['optimizer']['state'] != {}
    assert json.loads((tmp_path / 'b' / 'config.json').read_text())['init']['path'] == a['path']
    assert f"from {a['model_id']} ({a['path']})" in said[0]
    # a model of another network, or an ONNX file: one line naming the file and the mismatch
    wider = tmp_path / 'wider.yaml'
    wider.write_text('network: {width: 8, input_size: 64}\n')
    rc, out = _cli('train', dataset, '--out', tmp_path / 'c', '--init', tmp_path / 'a',
                   '--max-steps', 1, '--config', wider, cwd=tmp_path)
    assert rc == 2 and out.count('\n') == 1, out
    assert f"--init {a['path']}: its network differs" in out and 'width: 4 -> 8' in out
    onnx = export_onnx(tmp_path / 'a', tmp_path / 'a.onnx')
    rc, out = _cli('train', dataset, '--out', tmp_path / 'd', '--init', onnx, cwd=tmp_path)
    assert rc == 2 and 'an ONNX model holds no trainable weights' in out and str(onnx) in out


def test_two_gloo_processes_end_with_identical_weights(dataset, tmp_path):
    rc, out = _cli('--nproc_per_node', 2, '-m', 'grasp_autolabel.cli', 'train', dataset,
                   '--out', tmp_path / 'run', '--max-steps', 8, '--config', _config(tmp_path),
                   '--split', 'image', cwd=tmp_path, module=('-m', 'torch.distributed.run'),
                   env={'OMP_NUM_THREADS': '1'})
    assert rc == 0, out
    assert out.count('trained grasp-map to step 8') == 1, out  # the first process reports
    ckpt = load_checkpoint(tmp_path / 'run' / 'checkpoints' / 'last.pt')
    digests = ckpt['weight_digests']
    assert ckpt['processes'] == 2 and len(digests) == 2 and digests[0] == digests[1]
    assert weights_digest(ckpt['state_dict']) == digests[0]  # what rank 0 saved = what both hold
    # the checkpoint loads and predicts in one process
    rgb = np.zeros((120, 160, 3), np.uint8)
    grasps, _ = TorchPredictor(ckpt).predict(rgb, np.full((120, 160), 1.0, np.float32),
                                             decode=ANY.with_(refine=False))
    assert grasps.shape[1] == 5


def test_a_dataset_missing_on_one_process_stops_every_process_with_one_line(dataset, tmp_path):
    # a second machine where the dataset is not mounted: its process gets a path that is not there
    launcher = tmp_path / 'launcher.py'
    launcher.write_text('import os, sys\n'
                        'from grasp_autolabel.cli import main\n'
                        "if os.environ['RANK'] == '1':\n"
                        "    sys.argv[2] = sys.argv[2] + '-not-mounted'\n"
                        'sys.exit(main())\n')
    rc, out = _cli('--nproc_per_node', 2, launcher, 'train', dataset, '--out', tmp_path / 'run',
                   '--max-steps', 2, '--config', _config(tmp_path), cwd=tmp_path,
                   module=('-m', 'torch.distributed.run'), env={'OMP_NUM_THREADS': '1'})
    assert rc != 0
    said = [x for x in out.splitlines() if x.startswith('grasp-autolabel')]
    # one line from each process: the one without the dataset names it, the other names the
    # process and its reason (torchrun's own report of the exit codes follows)
    reason = f'{dataset}-not-mounted: not a grasp dataset (no dataset.json)'
    assert sorted(said) == [f'grasp-autolabel: error: {reason}',
                            f'grasp-autolabel: error: process 1 of 2 (torchrun rank 1): {reason}'
                            ], out
    assert not (tmp_path / 'run' / 'checkpoints').exists()


def test_the_registry_refuses_an_unknown_family_in_a_checkpoint_and_an_onnx_file(dataset,
                                                                                 tmp_path):
    import onnx

    assert sorted(FAMILIES) == ['faster-rcnn', 'grasp-map']
    r = train(dataset, tmp_path / 'a', GraspMapNetwork(**TINY),
              TrainSettings(batch_size=2, max_steps=1, split='none'), decode=ANY,
              progress=False, log=lambda *a, **k: None)
    ckpt = torch.load(r['checkpoint'], weights_only=True)
    ckpt['network']['model'] = 'yolo-grasp'
    save_checkpoint(tmp_path / 'yolo.pt', ckpt)
    with pytest.raises(CheckpointError, match=r'yolo\.pt: unknown detector family .yolo-grasp. '
                                              r'\(this version has grasp-map, faster-rcnn\)'):
        load_checkpoint(tmp_path / 'yolo.pt')
    path = export_onnx(tmp_path / 'a', tmp_path / 'a.onnx')
    m = onnx.load(str(path))
    for prop in m.metadata_props:
        if prop.key == 'grasp_autolabel_network':
            prop.value = json.dumps({**json.loads(prop.value), 'model': 'yolo-grasp'})
    onnx.save(m, str(tmp_path / 'yolo.onnx'))
    with pytest.raises(CheckpointError, match=r'yolo\.onnx: unknown detector family '):
        OnnxPredictor(tmp_path / 'yolo.onnx')
    # an ONNX model of another format version (a newer grasp_autolabel's export)
    m = onnx.load(str(path))
    formats = [p for p in m.metadata_props if p.key == 'grasp_autolabel_format']
    assert [p.value for p in formats] == ['1']
    formats[0].value = '7'
    onnx.save(m, str(tmp_path / 'v7.onnx'))
    with pytest.raises(CheckpointError, match=r'v7\.onnx: ONNX model format version 7, this '
                                              r'grasp_autolabel reads version 1; export it again'):
        OnnxPredictor(tmp_path / 'v7.onnx')
    del ckpt['network']['model']  # a model file that names no family is not taken for one
    save_checkpoint(tmp_path / 'none.pt', ckpt)
    with pytest.raises(CheckpointError, match='names no detector family'):
        load_checkpoint(tmp_path / 'none.pt')


def test_the_shipped_model_finds_valid_grasps_on_a_simulated_frame():
    from grasp_autolabel.detector.evaluate import judge

    pred = OnnxPredictor(shipped_model())
    assert load_checkpoint(shipped_model('.pt'))['network_obj'] == pred.network
    # 'shipped' names it wherever a model is given (predict, evaluate), as with train --init
    assert load_predictor('shipped').model_id == pred.model_id
    assert load_predictor('shipped', backend='torch').network == pred.network
    valid = 0
    for seed in (1, 2):
        cell = SimCell(CellConfig(n_logs=(6, 6)), seed=seed)
        rgb, depth = cell.frame()
        depth_m = depth.astype(np.float32) * cell.config.sensor.depth_scale
        grasps, scores = pred.predict(rgb, depth_m, fx=cell.intrinsics.fx)
        assert len(grasps) >= 1 and np.all(np.diff(scores) <= 0)
        ok, _, _ = judge(grasps, cell.frame_truth())
        valid += int(ok[0])
    assert valid == 2  # the best grasp of each frame is on a free log, across it, wide enough


def test_evaluate_counts_every_missed_free_log_by_cause(tmp_path):
    sessions = simulate(tmp_path / 'sim', sequences=1, seed=44, progress=False,
                        config=CellConfig(n_logs=(7, 7)))
    label_sessions(sessions, tmp_path / 'ds', progress=False)
    r = evaluate(shipped_model(), tmp_path / 'ds', part='all', split='none', progress=False)
    missed = r['missed_by_cause']
    assert set(missed) == set(MISSED_CAUSES)
    assert sum(missed.values()) == round(r['free_logs'] * (1 - r['coverage_pct'] / 100))
    assert sum(r['missed_by_depth_check'].values()) == missed['depth_check']


def test_v2_input_fills_depth_holes_from_the_higher_surface_and_v1_does_not():
    from grasp_autolabel.detector.models import grasp_map as gm

    depth = np.full((48, 64), 2.0, np.float32)
    depth[:, 30:] = 1.8  # a surface 0.2 m higher on the right
    depth[:, 28:32] = 0  # a band without depth at the edge (a two-sided sensor's)
    rgb = np.zeros((48, 64, 3), np.uint8)
    v2 = gm.to_tensor(rgb, depth, GraspMapNetwork(input_size=64))
    v1 = gm.to_tensor(rgb, depth, GraspMapNetwork(input_size=64, arch='v1', width=24))
    height_v2, height_v1, valid = v2[3, :48, :64], v1[3, :48, :64], v2[4, :48, :64]
    assert np.all(valid[:, 28:32] == 0) and np.all(v1[4, :48, :64] == valid)
    assert np.allclose(height_v1[:, 28:32], 0)  # v1: as trained, holes are 0
    # v2: each half of the band takes its nearest surface's height, the rest is unchanged
    assert np.allclose(height_v2[:, 28:30], height_v2[:, 27:28])
    assert np.allclose(height_v2[:, 30:32], height_v2[:, 32:33])
    assert np.all(height_v2[:, 30:32] > height_v2[:, 28:30] + 0.3)  # the higher surface's
    valid_px = np.ones((48, 64), bool)
    valid_px[:, 28:32] = False
    assert np.allclose(height_v2[valid_px], height_v1[valid_px])
