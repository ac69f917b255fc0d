"""Checkpoints and predictors: torch and ONNX Runtime, the same grasps from both.

A checkpoint is a plain dict saved with ``torch.save`` and loaded with ``weights_only=True``:
``{"format", "version", "config", "step", "state_dict", "optimizer", "image_size", "model_id"}``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from grasp_autolabel.detector.model import DetectorConfig, build_model, decode_detections, preprocess

__all__ = ["CheckpointError", "load_checkpoint", "save_checkpoint", "find_checkpoint", "TorchPredictor",
           "OnnxPredictor", "load_predictor", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "grasp_autolabel.detector"


class CheckpointError(ValueError):
    """A checkpoint or model file is missing, corrupt, or does not fit."""


def find_checkpoint(run_or_file) -> Path:
    """A run folder's ``checkpoints/last.pt``, or the file itself."""
    p = Path(run_or_file)
    if p.is_dir():
        p = p / "checkpoints" / "last.pt"
    if not p.is_file():
        raise CheckpointError(f"{run_or_file}: no checkpoint (expected a run folder with checkpoints/last.pt or a .pt file)")
    return p


def save_checkpoint(path, ckpt: dict) -> None:
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(ckpt, tmp)
    os.replace(tmp, path)


def load_checkpoint(path) -> dict:
    import torch

    path = find_checkpoint(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a damaged file
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a grasp_autolabel detector checkpoint")
    try:
        ckpt["config_obj"] = DetectorConfig.from_dict(ckpt["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: its config is not valid ({exc})") from None
    return ckpt


def load_weights(model, state_dict, path) -> None:
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"{path}: its weights do not fit this detector's config (another backbone or number "
                              f"of classes?): {first[:200]}") from None


class _Base:
    config: DetectorConfig
    image_size: tuple | None
    model_id: str

    def _check(self, rgb):
        h, w = np.asarray(rgb).shape[:2]
        if self.image_size is not None and (w, h) != tuple(self.image_size):
            raise ValueError(f"image is {w}x{h} but the detector {self.model_id} was trained on "
                             f"{self.image_size[0]}x{self.image_size[1]} images")

    def predict(self, rgb, depth_m=None) -> tuple[np.ndarray, np.ndarray]:
        """Grasps ``(K, 5)`` in image pixels (the grasp convention) and scores ``(K,)``, best first."""
        self._check(rgb)
        x, scale = preprocess(rgb, depth_m, self.config)
        boxes, scores, labels = self._run(x)
        h, w = np.asarray(rgb).shape[:2]
        return decode_detections(boxes, scores, labels, scale, self.config, image_size=(w, h))


class TorchPredictor(_Base):
    def __init__(self, checkpoint, *, device: str = "cpu"):
        import torch

        ckpt = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
        self.config = ckpt["config_obj"]
        self.model = build_model(self.config)
        load_weights(self.model, ckpt["state_dict"], ckpt.get("path", checkpoint if not isinstance(checkpoint, dict) else "checkpoint"))
        self.device = torch.device(device)
        self.model.to(self.device).eval()
        self.image_size = tuple(ckpt["image_size"]) if ckpt.get("image_size") else None
        self.model_id = str(ckpt.get("model_id", "detector"))
        self._torch = torch

    def _run(self, x):
        with self._torch.inference_mode():
            out = self.model([self._torch.from_numpy(x).to(self.device)])[0]
        return (out["boxes"].cpu().numpy(), out["scores"].cpu().numpy(), out["labels"].cpu().numpy())


class OnnxPredictor(_Base):
    """The exported model in ONNX Runtime; the config and image size travel in the ONNX metadata."""

    def __init__(self, path, *, threads: int | None = None):
        import json

        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"{path}: no such ONNX model")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
            meta = self.session.get_modelmeta().custom_metadata_map
            self.config = DetectorConfig.from_dict(json.loads(meta["grasp_autolabel_config"]))
        except KeyError:
            raise CheckpointError(f"{path}: not exported by grasp-autolabel export-onnx (no config in its metadata)") from None
        except Exception as exc:  # noqa: BLE001 - onnxruntime's errors are its own classes
            raise CheckpointError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {str(exc)[:200]})") from None
        self.image_size = tuple(json.loads(meta.get("image_size", "null")) or ()) or None
        self.model_id = meta.get("model_id", path.stem)
        self.input_name = self.session.get_inputs()[0].name

    def _run(self, x):
        boxes, scores, labels = self.session.run(["boxes", "scores", "labels"], {self.input_name: x})
        return boxes, scores, labels


def load_predictor(path, *, backend: str = "auto", device: str = "cpu"):
    """A predictor for a run folder, a ``.pt`` checkpoint or an ``.onnx`` model."""
    p = Path(path)
    if backend == "onnx" or (backend == "auto" and p.suffix == ".onnx"):
        return OnnxPredictor(p)
    return TorchPredictor(p, device=device)
