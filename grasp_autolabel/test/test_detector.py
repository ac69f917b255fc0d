"""The detector (issue 7) with a tiny model: encoding, training (the loss falls), save/load,
ONNX export agreeing with torch, evaluation, and bad input."""
import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from grasp_autolabel.annotate.label import label_sessions  # noqa: E402
from grasp_autolabel.cli import main as cli  # noqa: E402
from grasp_autolabel.detector.model import DetectorConfig, decode_detections, encode_grasps, preprocess  # noqa: E402
from grasp_autolabel.detector.predict import CheckpointError, OnnxPredictor, TorchPredictor, load_checkpoint  # noqa: E402
from grasp_autolabel.detector.train import train  # noqa: E402
from grasp_autolabel.sim import CellConfig  # noqa: E402
from grasp_autolabel.sim.writer import simulate  # noqa: E402

TINY = dict(backbone="resnet18", input_size=96, batch_size=2, max_steps=12, split="none", score_threshold=0.0)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("det")
    paths = simulate(root / "sim", sequences=2, seed=41, progress=False,
                     config=CellConfig(width=160, height=120, n_logs=(4, 4), tilt_max_deg=0.0))
    label_sessions(paths, root / "ds", progress=False)
    return root / "ds"


@pytest.fixture(scope="module")
def run(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    r = train(dataset, out, DetectorConfig(**TINY), progress=False, save_every=5)
    return out, r


def test_encode_decode_round_trip():
    cfg = DetectorConfig(input_size=227, score_threshold=0.0, nms_iou=1.0)
    g = np.array([[320.0, 240.0, math.radians(47), 60.0, 20.0], [100.0, 50.0, -math.pi / 2, 30.0, 12.0]])
    s = 227 / 640
    boxes, labels = encode_grasps(g, s, cfg)
    assert labels.tolist() == [1 + 13, 1]  # 47 deg is in bin [40, 50) -> index 13; -90 deg in the first bin
    out, _ = decode_detections(boxes, [0.9, 0.8], labels, s, cfg)
    assert out[:, [0, 1, 3, 4]] == pytest.approx(g[:, [0, 1, 3, 4]], abs=1e-4)  # float32 boxes
    assert np.degrees(out[:, 2]) == pytest.approx([45.0, -85.0])  # bin centres: within 5 deg


def test_preprocess_letterbox_and_rgd():
    rgb = np.full((120, 160, 3), 200, np.uint8)
    depth = np.full((120, 160), 1.5, np.float32)
    depth[:, :80] = 1.0
    depth[0, 0] = 0
    x, s = preprocess(rgb, depth, DetectorConfig(input_size=96, channels="rgd"))
    assert x.shape == (3, 96, 96) and s == pytest.approx(0.6)
    assert x[:, 72:, :].max() == 0  # padding below the letterboxed image
    assert x[2, 10, 10] == pytest.approx(0.0) and x[2, 10, 80] == pytest.approx(1.0)  # depth in blue
    with pytest.raises(ValueError, match="depth"):
        preprocess(rgb, None, DetectorConfig(channels="rgd"))


def test_training_reduces_the_loss_and_writes_the_run(run):
    out, r = run
    losses = [float(line.split(",")[1]) for line in (out / "loss.csv").read_text().split()[1:]]
    assert len(losses) == 12 and r["step"] == 12
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:2])
    assert (out / "loss.png").stat().st_size > 1000
    ckpt = load_checkpoint(out)
    assert ckpt["step"] == 12 and ckpt["config"]["backbone"] == "resnet18" and ckpt["image_size"] == [160, 120]


def test_resume_continues_and_refuses_another_config(dataset, tmp_path):
    cfg = DetectorConfig(**{**TINY, "max_steps": 3})
    train(dataset, tmp_path / "r", cfg, progress=False)
    with pytest.raises(Exception, match="--resume"):
        train(dataset, tmp_path / "r", cfg, progress=False)
    r = train(dataset, tmp_path / "r", DetectorConfig(**{**TINY, "max_steps": 5}), resume=True, progress=False)
    assert r["step"] == 5 and r["steps_run"] == 2
    with pytest.raises(CheckpointError, match="input_size"):
        train(dataset, tmp_path / "r", DetectorConfig(**{**TINY, "max_steps": 8, "input_size": 128}), resume=True,
              progress=False)


def test_saved_model_and_onnx_agree(run, dataset, tmp_path):
    from grasp_autolabel.dataset.store import GraspDataset
    from grasp_autolabel.detector.evaluate import export_onnx

    out, _ = run
    ds = GraspDataset.open(dataset)
    rgb = ds.read_rgb(ds.item_indices()[0])
    tp = TorchPredictor(out)
    onnx_path = export_onnx(out, tmp_path / "m.onnx")
    op = OnnxPredictor(onnx_path)
    assert op.config == tp.config and op.image_size == (160, 120)
    x, _ = preprocess(rgb, None, tp.config)
    b1, s1, l1 = tp._run(x)
    b2, s2, l2 = op._run(x)
    assert len(b1) == len(b2) > 0
    # the same detections (an untrained net has near-ties, so match them up rather than by order)
    rows1 = np.column_stack([b1, s1, l1])
    rows2 = np.column_stack([b2, s2, l2])
    for r in rows1:
        assert np.abs(rows2 - r).max(axis=1).min() < 1e-3
    g1, sc1 = tp.predict(rgb)
    g2, sc2 = op.predict(rgb)
    assert g1.shape == g2.shape
    both1, both2 = np.column_stack([g1, sc1]), np.column_stack([g2, sc2])
    for r in both1:
        assert np.abs(both2 - r).max(axis=1).min() < 1e-3
    # a second load of the checkpoint gives the same grasps
    g3, _ = TorchPredictor(out).predict(rgb)
    assert np.allclose(g1, g3, atol=1e-5)
    # images of another size: a clear error
    with pytest.raises(ValueError, match="trained on 160x120"):
        tp.predict(np.zeros((480, 640, 3), np.uint8))


def test_cli_evaluate_prints_json(run, dataset, capsys):
    out, _ = run
    assert cli(["evaluate", str(out), str(dataset), "--part", "all"]) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert r["images"] > 0 and r["images_with_truth"] == r["images"]
    assert 0.0 <= r["rectangle_metric_top1_pct"] <= 100.0


def test_bad_input(dataset, run, tmp_path, capsys):
    out, _ = run
    # a damaged checkpoint
    bad = tmp_path / "bad.pt"
    bad.write_bytes((out / "checkpoints" / "last.pt").read_bytes()[:5000])
    assert cli(["evaluate", str(bad), str(dataset)]) == 2
    assert "not a readable checkpoint" in capsys.readouterr().err
    # a dataset with no accepted labels
    from grasp_autolabel.dataset.store import GraspDataset

    ds = GraspDataset.open(dataset)
    empty = GraspDataset.create(tmp_path / "empty", jaw_width_m=0.04, settings={})
    lab = ds.read_label(0)
    empty.write_item(0, rgb=ds.read_rgb(0), depth=np.zeros((120, 160), np.uint16), mask=ds.read_mask(0),
                     label={**lab, "accepted": False})
    assert cli(["train", str(tmp_path / "empty"), "--out", str(tmp_path / "r1"), "--backbone", "resnet18"]) == 2
    assert "no accepted labels" in capsys.readouterr().err
    # a GPU asked for and absent
    if not torch.cuda.is_available():
        assert cli(["train", str(dataset), "--out", str(tmp_path / "r2"), "--device", "cuda"]) == 2
        assert "no CUDA GPU" in capsys.readouterr().err
    # an unknown setting in the config file
    (tmp_path / "c.yaml").write_text("backbone: resnet18\nwidth_mult: 2\n")
    assert cli(["train", str(dataset), "--out", str(tmp_path / "r3"), "--config", str(tmp_path / "c.yaml")]) == 2
    assert "width_mult" in capsys.readouterr().err
    # an ONNX file that is not ours
    (tmp_path / "x.onnx").write_bytes(b"not onnx")
    assert cli(["evaluate", str(tmp_path / "x.onnx"), str(dataset)]) == 2
    assert "ONNX" in capsys.readouterr().err
