"""The detector (issue 12) with tiny models.

The grasp-map encoding round trip, training (the loss falls), checkpoints, torch = ONNX Runtime,
predict's layout, the dense evaluation, the Faster R-CNN's anchors, and bad input.
"""
from dataclasses import replace
import json
import math

from hypothesis import given
from hypothesis import strategies as st
import numpy as np
import pytest

torch = pytest.importorskip('torch')
pytest.importorskip('torchvision')

from grasp_autolabel.cli import main as cli  # noqa: E402, I100
from grasp_autolabel.core.camera import depth_at  # noqa: E402
from grasp_autolabel.core.geometry import angle_difference, rectangle_metric  # noqa: E402
from grasp_autolabel.detector.config import DecodeSettings, TrainSettings  # noqa: E402
from grasp_autolabel.detector.evaluate import dense_truth, judge  # noqa: E402
from grasp_autolabel.detector.export import export_onnx  # noqa: E402
from grasp_autolabel.detector.models import family as family_of  # noqa: E402
from grasp_autolabel.detector.models import faster_rcnn as frcnn  # noqa: E402
from grasp_autolabel.detector.models import grasp_map as gm  # noqa: E402
from grasp_autolabel.detector.models import GraspMapNetwork, network_from_dict  # noqa: E402
from grasp_autolabel.detector.predict import (  # noqa: E402
    CheckpointError,
    load_checkpoint,
    OnnxPredictor,
    TorchPredictor,
)
from grasp_autolabel.detector.train import train  # noqa: E402
from grasp_autolabel.jobs.label import label_sessions  # noqa: E402
from grasp_autolabel.jobs.simulate import simulate  # noqa: E402
from grasp_autolabel.sim import CellConfig  # noqa: E402

TINY_NET = GraspMapNetwork(input_size=96, width=8)
TINY_TRAIN = {'batch_size': 2, 'max_steps': 40, 'split': 'none', 'val_every': 20, 'lr': 3e-3,
              'augment': False}
ANY = DecodeSettings(score_threshold=0.0, jaw_width_m=0.04)


@pytest.fixture(scope='module')
def sessions(tmp_path_factory):
    root = tmp_path_factory.mktemp('det')
    return simulate(root / 'sim', sequences=2, seed=41, progress=False,
                    config=CellConfig(width=160, height=120, n_logs=(4, 4), tilt_max_deg=0.0))


@pytest.fixture(scope='module')
def dataset(sessions):
    out = sessions[0].parent.parent / 'ds'
    label_sessions(sessions, out, progress=False)
    return out


@pytest.fixture(scope='module')
def run(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp('run') / 'run'
    r = train(dataset, out, TINY_NET, TrainSettings(**TINY_TRAIN), decode=ANY, progress=False)
    return out, r


# ----------------------------------------------------------------------- grasp-map encoding
@given(x=st.floats(20, 140), y=st.floats(20, 100),
       theta=st.floats(-math.pi / 2, math.pi / 2 - 1e-6),
       w=st.floats(12, 60), scale=st.sampled_from([1.0, 0.5, 0.6]))
def test_maps_drawn_from_a_grasp_decode_back_to_it(x, y, theta, w, scale):
    """Target maps of one grasp, decoded.

    The same centre (within an output pixel), angle and opening (the one OPENING_SCALE both ways).
    """
    g_img = np.array([[x, y, theta, w, 20.0]])
    g_in = g_img.copy()
    g_in[:, :2] = (g_in[:, :2] + 0.5) * scale - 0.5
    g_in[:, 3:] *= scale
    maps = gm.draw_targets(g_in, (60, 80))
    out, scores = gm.decode(maps, scale, image_size=(1000, 1000), score_threshold=0.5,
                            peak_distance_px=200)
    assert len(out) == 1 and scores[0] > 0.5
    # the peak lies in the drawn rectangle (0.4 openings across, a jaw along the spine)
    assert np.hypot(out[0, 0] - x,
                    out[0, 1] - y) <= np.hypot(0.2 * w, 10.0) + 1.5 * gm.STRIDE / scale
    assert abs(float(angle_difference(out[0, 2], theta))) < 1e-5
    assert out[0, 3] == pytest.approx(w, rel=1e-5)


def test_decode_never_smooths_the_angle_and_keeps_peaks_apart():
    maps = np.zeros((4, 40, 40), np.float32)
    maps[1], maps[2] = 1.0, 0.0  # theta = 0 everywhere ...
    maps[1, 10, 10], maps[2, 10, 10] = -1.0, 0.0  # ... but pi/2 at the first peak
    maps[3] = 0.5
    maps[0, 10, 10] = 0.9
    maps[0, 10, 13] = 0.8  # 6 image px away at scale 1: inside the peak distance
    maps[0, 30, 30] = 0.7
    g, s = gm.decode(maps, 1.0, image_size=(80, 80), score_threshold=0.05, peak_distance_px=10,
                     quality_sigma=0.0)
    assert len(g) == 2 and s[0] == pytest.approx(0.9) and s[1] == pytest.approx(0.7)
    assert abs(g[0, 2]) == pytest.approx(
        math.pi / 2)  # read at the peak, not blended with its neighbours
    assert g[1, 2] == pytest.approx(0.0)
    assert g[0, 3] == pytest.approx(0.5 * gm.OPENING_SCALE)


def test_height_channel_ignores_camera_height_and_tilt():
    """The same pile seen from 1.5 m and from 2.5 m with a tilt: the same heights above ground."""
    vv, uu = np.mgrid[0:120, 0:160].astype(np.float32)
    log = ((uu - 80) ** 2 / 30 ** 2 + (vv - 60) ** 2 / 8 ** 2) < 1
    for base, tilt in ((1.5, 0.0), (2.5, 0.002)):
        depth = base + tilt * uu
        depth = np.where(log, depth - 0.1, depth).astype(np.float32)
        h = gm.ground_height(depth)
        assert h[60,
                 80] == pytest.approx(0.1, abs=2e-3) and h[5, 5] == pytest.approx(0.0, abs=2e-3)


# ----------------------------------------------------------------------- training and files
def test_training_reduces_the_loss_and_writes_the_run(run):
    out, r = run
    losses = [float(line.split(',')[1]) for line in (out / 'loss.csv').read_text().split()[1:]]
    assert len(losses) == 40 and r['step'] == 40
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:3])
    assert (out / 'loss.png').stat().st_size > 1000
    ckpt = load_checkpoint(out)
    assert (
        ckpt['step'] == 40 and ckpt['network']['model'] == 'grasp-map' and ckpt['image_size'] == [
            160, 120])
    assert ckpt['decode']['jaw_width_m'] == pytest.approx(0.04)
    assert json.loads((out / 'config.json').read_text())['network'] == ckpt['network']


def test_training_plans_fewer_steps_where_the_machine_is_too_slow_for_max_minutes(dataset,
                                                                                  tmp_path):
    """The first steps are timed.

    Where max_steps would overrun max_minutes, the run is planned to the steps that fit (said in
    one line, saved with the checkpoint's settings).
    """
    said = []
    settings = TrainSettings(**{**TINY_TRAIN, 'max_steps': 400, 'max_minutes': 0.004})  # 0.24 s
    r = train(dataset, tmp_path / 'r', TINY_NET, settings, decode=ANY, progress=False,
              log=lambda *a, **k: said.append(' '.join(map(str, a))))
    assert 11 <= r['step'] < 400
    planned = [line for line in said if 'steps would take' in line]
    assert (
        len(planned) == 1
        and '400 steps would take' in planned[0]
        and f'planned {r["step"]} steps' in planned[0]
    )
    # the plan first, then the time a step and the expected end, then progress to the end
    assert said[0].startswith('train: 400 steps of 2 on ') and 'from random weights' in said[0]
    assert any('expected end in' in line for line in said)
    assert said[-1].startswith(f"train: step {r['step']}/{r['step']} (100 %)")
    assert load_checkpoint(tmp_path / 'r')['train']['max_steps'] == r['step']
    # 0: no plan, every step
    again = []
    r = train(dataset, tmp_path / 'r0', TINY_NET,
              TrainSettings(**{**TINY_TRAIN, 'max_steps': 15, 'max_minutes': 0}),
              decode=ANY, progress=False, log=lambda *a, **k: again.append(' '.join(a)))
    assert r['step'] == 15 and not any('would take' in line for line in again)
    assert again[-1].startswith('train: step 15/15 (100 %)')


def test_best_checkpoint_kept_by_validation(dataset, tmp_path):
    r = train(dataset, tmp_path / 'r', TINY_NET,
              TrainSettings(**{**TINY_TRAIN, 'split': 'session', 'max_steps': 6, 'val_every': 3}),
              decode=ANY, progress=False)
    hist = load_checkpoint(tmp_path / 'r' / 'checkpoints' / 'last.pt')['validation_history']
    assert [v['step'] for v in hist] == [3, 6] and r['held_out_items'] > 0
    for v in hist:  # the score is the mean of top-1 and the top-5 precision
        assert v['validation_score'] == round(
            (v['rectangle_top1_pct'] + v['rectangle_top5_precision_pct']) / 2, 2)
        assert 0 <= v['rectangle_top5_precision_pct'] <= 100
    best = max(hist, key=lambda v: (v['validation_score'], v['step']))
    assert load_checkpoint(tmp_path / 'r' / 'checkpoints' / 'best.pt')['step'] == best['step']
    assert (tmp_path / 'r' / 'validation.csv').read_text().count('\n') == 3


def test_resume_continues_and_refuses_another_network(dataset, tmp_path):
    cfg = TrainSettings(**{**TINY_TRAIN, 'max_steps': 3})
    train(dataset, tmp_path / 'r', TINY_NET, cfg, decode=ANY, progress=False)
    with pytest.raises(Exception, match='--resume'):
        train(dataset, tmp_path / 'r', TINY_NET, cfg, progress=False)
    r = train(dataset, tmp_path / 'r', TINY_NET, TrainSettings(**{**TINY_TRAIN, 'max_steps': 5}),
              resume=True,
              progress=False)
    assert r['step'] == 5 and r['steps_run'] == 2
    with pytest.raises(CheckpointError, match='width'):
        train(dataset, tmp_path / 'r', GraspMapNetwork(input_size=96, width=12),
              TrainSettings(**TINY_TRAIN),
              resume=True, progress=False)


@pytest.mark.parametrize('family', ['grasp-map', 'faster-rcnn'])
def test_torch_and_onnx_agree(family, dataset, run, tmp_path):
    from grasp_autolabel.dataset.store import GraspDataset

    if family == 'grasp-map':
        out = run[0]
    else:
        out = tmp_path / 'frcnn'
        net = network_from_dict({'model': 'faster-rcnn', 'input_size': 96,
                                 'anchor_sizes': [16, 32]})
        train(dataset, out, net, TrainSettings(lr=1e-4, batch_size=2, max_steps=3, split='none'),
              decode=ANY,
              progress=False)
    ds = GraspDataset.open(dataset)
    i = ds.item_indices()[0]
    rgb, depth = ds.read_rgb(i), ds.read_depth_m(i)
    tp = TorchPredictor(out)
    op = OnnxPredictor(export_onnx(out, tmp_path / 'm.onnx'))
    assert op.network == tp.network and op.decode == tp.decode and op.image_size == (160, 120)
    x, _ = family_of(tp.network).make_input(rgb, depth, tp.network)
    a, b = tp.run_network(x), op.run_network(x)
    if family == 'grasp-map':
        assert a[0].shape == b[0].shape and np.abs(a[0] - b[0]).max() < 1e-3
    # the network's own candidates, and the depth-checked ones on the first frame that keeps some
    # (a barely trained Faster R-CNN's boxes rarely survive the depth check)
    compared = 0
    for decode, frames in ((tp.decode.with_(refine=False), [i]), (tp.decode, ds.item_indices())):
        for k in frames:
            rgb, depth = ds.read_rgb(k), ds.read_depth_m(k)
            g1, s1 = tp.predict(rgb, depth, decode=decode)
            g2, s2 = op.predict(rgb, depth, decode=decode)
            assert g1.shape == g2.shape
            if len(g1):
                assert np.abs(np.column_stack([g1, s1]) - np.column_stack([g2, s2])).max() < 1e-3
                compared += 1
                break
    assert compared == 2
    with pytest.raises(ValueError, match='trained on 160x120'):
        tp.predict(np.zeros((480, 640, 3), np.uint8), np.zeros((480, 640), np.float32))


def test_jaw_size_from_the_gripper_and_the_depth(run, dataset):
    from grasp_autolabel.dataset.store import GraspDataset

    ds = GraspDataset.open(dataset)
    i = ds.item_indices()[0]
    tp = TorchPredictor(run[0])
    depth = np.full((120, 160), 2.0,
                    np.float32)  # a floor: the depth check would drop every candidate
    g, _ = tp.predict(ds.read_rgb(i), depth, fx=300.0, decode=tp.decode.with_(refine=False))
    assert len(g) and np.allclose(g[:, 4], 0.04 * 300.0 / 2.0)
    # the depth check keeps the jaw size from the depth under the refined grasp
    g, _ = tp.predict(ds.read_rgb(i), ds.read_depth_m(i), fx=300.0)
    z = np.array([depth_at(ds.read_depth_m(i), x, y, radius=3) for x, y in g[:, :2]])
    assert len(g) and np.allclose(g[:, 4], 0.04 * 300.0 / z)


def test_anchors_cover_the_square_boxes():
    """The measurement that chose the Faster R-CNN's box encoding.

    Square boxes of the opening are covered by the anchors (the paper's thin w x h boxes were not).
    """
    net = frcnn.FasterRCNNNetwork()
    rng = np.random.default_rng(0)
    g = np.column_stack([rng.uniform(30, 290, 300), rng.uniform(30, 210, 300),
                         rng.uniform(-1.5, 1.5, 300),
                         rng.uniform(20, 60, 300), rng.uniform(6, 12, 300)])
    square = frcnn.anchor_coverage(frcnn.encode_grasps(g, net)['boxes'], net)
    thin = np.column_stack([g[:, 0] - g[:, 3] / 2, g[:, 1] - g[:, 4] / 2, g[:, 0] + g[:, 3] / 2,
                            g[:, 1] + g[:, 4] / 2])
    paper = frcnn.anchor_coverage(thin, frcnn.FasterRCNNNetwork(anchor_sizes=(8, 16, 24, 28),
                                                                aspect_ratios=(0.5, 1.0, 2.0)))
    assert (
        square['share_above_0.3'] == 1.0
        and square['share_above_0.5'] > 0.9
        and square['median_best_iou'] > 0.6
    )
    assert paper['share_above_0.5'] < 0.3 and paper['median_best_iou'] < 0.45


# ----------------------------------------------------------------------- evaluation
def test_dense_rectangle_metric_accepts_between_samples_and_rejects_across():
    log = {'axis_visible_px': [[100.0, 200.0], [400.0, 200.0]],
           'axis_px': [[100.0, 200.0], [400.0, 200.0]],
           'diameter_px': 40.0, 'graspable': True, 'depth_m': 2.0}
    truth = dense_truth(log, 20.0)
    between = np.array([[287.5, 201.0, math.pi / 2, 52.0,
                         20.0]])  # between the old 7 middle samples' spacing
    across = np.array([[250.0, 200.0, 0.0, 52.0, 20.0]])  # closing along the log
    assert rectangle_metric(between, truth)[0] and not rectangle_metric(across, truth)[0]
    ok, why, covered = judge(np.vstack([between, across]), {'logs': [log]})
    assert ok.tolist() == [True, False] and why == [None, 'angle'] and covered.tolist() == [True]


def test_invalid_candidates_counted_by_why():
    free = {'axis_visible_px': [[0.0, 50.0], [200.0, 50.0]], 'diameter_px': 20.0,
            'graspable': True}
    under = {'axis_visible_px': [[0.0, 150.0], [200.0, 150.0]], 'diameter_px': 20.0,
             'graspable': False}
    g = np.array([[100, 50, math.pi / 2, 26, 10], [100, 150, math.pi / 2, 26, 10],
                  [100, 100, math.pi / 2, 26, 10],
                  [100, 50, math.pi / 2, 80, 10], [100, 52, 0.0, 26, 10]], float)
    ok, why, covered = judge(g, {'logs': [free, under]})
    assert why == [None, 'log_not_free', 'on_no_log', 'opening',
                   'angle'] and covered.tolist() == [True]


def test_cli_evaluate_prints_json(run, dataset, capsys):
    out, _ = run
    assert cli(['evaluate', str(out), str(dataset), '--part', 'all', '--split', 'none']) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert r['images'] == r['images_with_truth'] > 0
    assert r['candidates'] == sum(r['invalid_by_reason'].values()) + round(
        r['valid_candidates_pct'] * r['candidates'] / 100)
    assert r['free_logs'] > 0 and r['rectangle_metric_truth'] == 'dense'


def test_evaluate_refuses_a_dataset_without_splits(run, dataset, tmp_path, capsys):
    import shutil

    copy = tmp_path / 'nosplit'
    shutil.copytree(dataset, copy)
    meta = json.loads((copy / 'dataset.json').read_text())
    meta['splits'] = {}
    (copy / 'dataset.json').write_text(json.dumps(meta))
    assert cli(['evaluate', str(run[0]), str(copy)]) == 2
    assert 'has no session-wise split' in capsys.readouterr().err


# ----------------------------------------------------------------------- predict
def test_predict_writes_the_layout(run, sessions, tmp_path, capsys):
    out = tmp_path / 'pred'
    assert cli(['predict', str(run[0]), str(sessions[0].parent), '--out', str(out), '--viz']) == 0
    for s in sessions:
        files = sorted((out / s.name / 'grasps').glob('*.json'))
        frames = sorted((s / 'rgb').glob('*.png'))
        assert [f.stem for f in files] == [f.stem for f in frames]
        rec = json.loads(files[0].read_text())
        assert len(rec['grasps']) == len(rec['scores']) == len(rec['poses']) > 0
        assert all(len(g) == 5 for g in rec['grasps']) and rec['scores'] == sorted(rec['scores'],
                                                                                   reverse=True)
        assert rec['poses'][0]['valid'] and len(rec['poses'][0]['position']) == 3
        assert (out / s.name / 'viz' / files[0].name.replace('.json', '.png')).is_file()
    # rerun into its own output: fine; into a folder it did not make: refused
    assert cli(['predict', str(run[0]), str(sessions[0]), '--out', str(out)]) == 0
    foreign = tmp_path / 'notes'
    foreign.mkdir()
    (foreign / 'mine.txt').write_text('keep')
    capsys.readouterr()
    assert cli(['predict', str(run[0]), str(sessions[0]), '--out', str(foreign)]) == 2
    assert 'not made by predict' in capsys.readouterr().err and (
        foreign / 'mine.txt').read_text() == 'keep'
    assert cli(['predict', str(run[0]), str(sessions[0]), '--out', str(sessions[0] / 'pred')]) == 2
    assert 'input session' in capsys.readouterr().err


# ----------------------------------------------------------------------- bad input
def test_bad_model_files(dataset, run, sessions, tmp_path, capsys):
    out, _ = run
    last = out / 'checkpoints' / 'last.pt'
    bad = tmp_path / 'bad.pt'
    bad.write_bytes(last.read_bytes()[:5000])
    assert cli(['evaluate', str(bad), str(dataset)]) == 2
    assert 'not a readable checkpoint' in capsys.readouterr().err
    ckpt = torch.load(last, weights_only=True)
    for name, change, message in (('v1.pt', {'version': 1}, 'format version 1'),
                                  ('noconf.pt', {'network': None}, 'without its config'),
                                  ('family.pt', {'network': {**ckpt['network'], 'model': 'yolo'}},
                                   "'yolo'")):
        torch.save({**ckpt, **change}, tmp_path / name)
        assert cli(['predict', str(tmp_path / name), str(sessions[0]), '--out',
                    str(tmp_path / 'p')]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count('\n') == 1
    # a Faster R-CNN's weights under a grasp-map config
    frcnn_sd = frcnn.build(frcnn.FasterRCNNNetwork(input_size=96)).state_dict()
    torch.save({**ckpt, 'state_dict': frcnn_sd}, tmp_path / 'other.pt')
    assert cli(['evaluate', str(tmp_path / 'other.pt'), str(dataset), '--split', 'none', '--part',
                'all']) == 2
    assert 'do not fit its network config' in capsys.readouterr().err
    (tmp_path / 'x.onnx').write_bytes(b'not onnx')
    assert cli(['evaluate', str(tmp_path / 'x.onnx'), str(dataset)]) == 2
    assert 'ONNX' in capsys.readouterr().err


def test_bad_frames(run, tmp_path, capsys):
    out, _ = run
    big = simulate(tmp_path / 'big', sequences=1, seed=3, progress=False,
                   config=CellConfig(width=200, height=150, n_logs=(2, 2), tilt_max_deg=0.0))[0]
    assert cli(['predict', str(out), str(big), '--out', str(tmp_path / 'p')]) == 2
    err = capsys.readouterr().err
    assert 'camera_info.yaml is 200x150 but the detector' in err and '160x120' in err
    tp = TorchPredictor(out)
    with pytest.raises(ValueError, match='reads depth'):
        tp.predict(np.zeros((120, 160, 3), np.uint8), None)


def test_bad_training_input(dataset, tmp_path, capsys):
    from grasp_autolabel.dataset.store import GraspDataset

    ds = GraspDataset.open(dataset)
    empty = GraspDataset.create(tmp_path / 'empty', jaw_width_m=0.04, settings={})
    empty.add_source(ds.meta['sources'][0])
    empty.write_item(0, rgb=ds.read_rgb(0), depth=np.zeros((120, 160), np.uint16),
                     mask=ds.read_mask(0),
                     label=replace(ds.read_label(0), source=0, accepted=False,
                                   later_grasps=None))
    assert cli(['train', str(tmp_path / 'empty'), '--out', str(tmp_path / 'r1'), '--split',
                'none']) == 2
    assert 'no accepted labels' in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert cli(['train', str(dataset), '--out', str(tmp_path / 'r2'), '--device', 'cuda']) == 2
        assert 'no CUDA GPU' in capsys.readouterr().err
    (tmp_path / 'c.yaml').write_text('model: grasp-map\nwidth_mult: 2\n')
    assert cli(['train', str(dataset), '--out', str(tmp_path / 'r3'), '--config',
                str(tmp_path / 'c.yaml')]) == 2
    assert 'width_mult' in capsys.readouterr().err
    (tmp_path / 'b.yaml').write_text('train:\n  batch_size: 0\n')
    assert cli(['train', str(dataset), '--out', str(tmp_path / 'r4'), '--config',
                str(tmp_path / 'b.yaml')]) == 2
    assert 'batch_size: 0 is not in 1..1024' in capsys.readouterr().err
    assert cli(['train', str(dataset), '--out', str(tmp_path / 'r5'), '--backbone',
                'resnet50']) == 2
    assert '--backbone: not a setting of the grasp-map model' in capsys.readouterr().err


@pytest.mark.parametrize('model', ['grasp-map', 'faster-rcnn'])
def test_cli_train_export_and_predict(model, dataset, sessions, tmp_path, capsys):
    run = tmp_path / 'run'
    assert cli(['train', str(dataset), '--out', str(run), '--model', model, '--max-steps', '3',
                '--input-size',
                '96', '--batch-size', '2']) == 0
    out = capsys.readouterr().out
    assert f'trained {model} to step 3' in out and 'held-out' in out
    assert (run / 'checkpoints' / 'best.pt').is_file() and (run / 'validation.csv').is_file()
    assert cli(['export-onnx', str(run), '--out', str(tmp_path / 'm.onnx')]) == 0
    assert cli(['export-onnx', str(run), '--out',
                str(tmp_path / 'm.onnx')]) == 2  # never replaced silently
    assert '--overwrite' in capsys.readouterr().err
    assert cli(['predict', str(tmp_path / 'm.onnx'), str(sessions[0]), '--out',
                str(tmp_path / 'p'),
                '--score-threshold', '0']) == 0
    assert len(list((tmp_path / 'p' / sessions[0].name / 'grasps').glob('*.json'))) == len(
        list((sessions[0] / 'rgb').glob('*.png')))


def test_cli_decode_settings_in_the_config(dataset, tmp_path, capsys):
    (tmp_path / 'd.yaml').write_text('decode:\n  score_threshold: 0.2\n  nms_iou: 0.4\n')
    assert cli(['train', str(dataset), '--out', str(tmp_path / 'r'), '--config',
                str(tmp_path / 'd.yaml'),
                '--max-steps', '2', '--input-size', '96', '--split', 'none']) == 0
    d = load_checkpoint(tmp_path / 'r')['decode']
    assert (
        d['score_threshold'] == 0.2 and d['nms_iou'] == 0.4 and d['jaw_width_m'] == pytest.approx(
            0.04))
    (tmp_path / 'e.yaml').write_text('decode:\n  nms_iou: .nan\n')
    assert cli(['train', str(dataset), '--out', str(tmp_path / 'r2'), '--config',
                str(tmp_path / 'e.yaml')]) == 2
    assert 'nms_iou' in capsys.readouterr().err
