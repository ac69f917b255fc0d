"""Checkpoints and predictors (torch and ONNX Runtime: the same grasps from both).

A checkpoint is a plain dict saved with ``torch.save`` and loaded with ``weights_only=True``::

    {"format": "grasp_autolabel.detector", "version": 2,
     "network": {...},        # models.*Network: what the weights depend on
     "decode": {...},         # config.DecodeSettings: the model's default decoding
     "train": {...},          # config.TrainSettings it was trained with
     "state_dict": ..., "optimizer": ..., "step": int, "image_size": [W, H],
     "camera_fx": float | None, "model_id": str, "validation": {...}}

A predictor turns one RGB-D frame into grasps ``(K, 5)`` (the grasp convention, image pixels)
and scores ``(K,)``, best first: network input (the family's ``make_input``), the network, its
decoding, the jaw size ``h = jaw_width_m · fx / z`` at the depth under each grasp, rotated NMS.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from grasp_autolabel.core.camera import depth_at
from grasp_autolabel.core.errors import CheckpointError
from grasp_autolabel.core.geometry import rotated_iou
from grasp_autolabel.detector.config import (DecodeSettings, settings_from_dict, settings_to_dict,
                                             TrainSettings)
from grasp_autolabel.detector.models import (build_model, decode_outputs, family,
                                             network_from_dict, network_to_dict,
                                             UnknownFamilyError)
import numpy as np

__all__ = ['CheckpointError', 'load_checkpoint', 'save_checkpoint', 'find_checkpoint', 'Predictor',
           'TorchPredictor',
           'OnnxPredictor', 'load_predictor', 'CHECKPOINT_FORMAT', 'CHECKPOINT_VERSION',
           'rotated_nms',
           'load_weights']

CHECKPOINT_FORMAT = 'grasp_autolabel.detector'
CHECKPOINT_VERSION = 2
# the layout of an exported model (inputs, outputs, metadata keys); files exported before the
# version was written down (no 'grasp_autolabel_format' key) are version 1
ONNX_FORMAT_VERSION = 1


def find_checkpoint(run_or_file) -> Path:
    """Return a run folder's ``checkpoints/best.pt`` (else ``last.pt``), or the file itself."""
    p = Path(run_or_file)
    if p.is_dir():
        for name in ('best.pt', 'last.pt'):
            if (p / 'checkpoints' / name).is_file():
                return p / 'checkpoints' / name
        raise CheckpointError(f'{run_or_file}: no checkpoint (expected a run folder with '
                              'checkpoints/best.pt or '
                              'last.pt, a .pt file or an .onnx file)')
    if not p.is_file():
        raise CheckpointError(f'{run_or_file}: no such model file')
    return p


def save_checkpoint(path, ckpt: dict) -> None:
    from grasp_autolabel.core.session import write_atomic
    import torch

    write_atomic(path, lambda f: torch.save(ckpt, f))


def load_checkpoint(path) -> dict:
    """Read a checkpoint dict, checked, with ``network_obj``, ``decode_obj``, ``train_obj``.

    Raises
    ------
    CheckpointError
        Unreadable, not ours, of another format version, or without its config.
    """
    import torch

    path = find_checkpoint(path)
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:  # noqa: B902 - torch raises many kinds for a damaged file
        raise CheckpointError(
            f'{path}: not a readable checkpoint ({type(exc).__name__}: {str(exc)[:200]})'
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get('format') != CHECKPOINT_FORMAT:
        raise CheckpointError(f'{path}: not a grasp_autolabel detector checkpoint')
    if ckpt.get('version') != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {ckpt.get('version')}, this "
                              'grasp_autolabel reads '
                              f'version {CHECKPOINT_VERSION}; retrain with this version')
    for key in ('network', 'decode', 'state_dict'):
        if not isinstance(ckpt.get(key), dict):
            raise CheckpointError(
                f'{path}: has no {key} (a checkpoint without its config cannot be used)')
    try:
        ckpt['network_obj'] = network_from_dict(ckpt['network'], require_model=True,
                                                where=str(path))
        ckpt['decode_obj'] = settings_from_dict(DecodeSettings, ckpt['decode'], what='decode')
        ckpt['train_obj'] = settings_from_dict(TrainSettings, ckpt.get('train') or {},
                                               what='train')
    except UnknownFamilyError as exc:
        raise CheckpointError(str(exc)) from None
    except ValueError as exc:
        raise CheckpointError(f'{path}: its config is not valid ({exc})') from None
    ckpt['path'] = str(path)
    return ckpt


def load_weights(model, state_dict, path) -> None:
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(
            f'{path}: its weights do not fit its network config: {first[:200]}') from None


def rotated_nms(grasps: np.ndarray, iou_threshold: float, *,
                limit: int | None = None) -> list[int]:
    """Greedy NMS over grasps sorted best first, on the exact rotated-rectangle IoU."""
    kept: list[int] = []
    for i in range(len(grasps)):
        if all(rotated_iou(grasps[i], grasps[j]) <= iou_threshold for j in kept):
            kept.append(i)
            if limit is not None and len(kept) >= limit:
                break
    return kept


class Predictor:
    """Frame in, grasps out; subclasses run the network (:meth:`_run`)."""

    network = None
    family = None  # the network's models.ModelFamily
    decode: DecodeSettings
    image_size: tuple | None
    camera_fx: float | None
    model_id: str

    @property
    def uses_depth(self) -> bool:
        return bool(self.network.uses_depth)

    def check_size(self, width: int, height: int, *, where: str = 'image') -> None:
        """Raise ValueError (naming ``where``) for frames of another size than the training's."""
        if self.image_size is not None and (width, height) != tuple(self.image_size):
            raise ValueError(f'{where} is {width}x{height} but the detector {self.model_id} was '
                             'trained on '
                             f'{self.image_size[0]}x{self.image_size[1]} images')

    def check_frame(self, rgb, depth_m=None, *, where: str = 'image') -> None:
        """Raise ValueError (naming ``where``) for a frame this model cannot read."""
        a = rgb if rgb is not None else depth_m
        h, w = np.asarray(a).shape[:2]
        self.check_size(w, h, where=where)
        if self.uses_depth and depth_m is None:
            raise ValueError(f'{where}: the detector {self.model_id} reads depth '
                             f'({self.network.channels}) and the '
                             'frame has none')

    def predict(self, rgb, depth_m=None, *, fx: float | None = None,
                decode: DecodeSettings | None = None,
                trace: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Grasps ``(K, 5)`` in image pixels (grasp convention) and scores ``(K,)``, best first.

        Parameters
        ----------
        rgb : ndarray (H, W, 3) uint8
        depth_m : ndarray (H, W) float, metres (0 = invalid); needed by RGB-D models, and used
            for the jaw size by all
        fx : float, optional
            The camera's focal length in pixels (default: the training camera's).
        decode : DecodeSettings, optional
            Instead of the model's own.
        trace : dict, optional
            Filled with what happened to every decoded peak (``evaluate`` counts missed logs by
            cause from it): ``outputs``, ``scale``, ``size``, ``peaks`` ``(P, 5)``,
            ``peak_scores`` and ``fates`` (per peak: ``kept``, ``overlap`` (NMS),
            ``depth_check:REASON`` (refine dropped it, :data:`.refine.REFINE_REASONS`) or
            ``not_tried`` (past the candidate cap or the tries)).
        """
        self.check_frame(rgb, depth_m)
        d = decode or self.decode
        x, scale = self.family.make_input(rgb, depth_m, self.network)
        h, w = np.asarray(rgb if rgb is not None else depth_m).shape[:2]
        outputs = self.run_network(x)
        grasps, scores = decode_outputs(self.network, outputs, scale, (w, h), d)
        fates = ['not_tried'] * len(grasps)
        if trace is not None:
            trace.update(outputs=outputs, scale=scale, size=(w, h), peaks=grasps.copy(),
                         peak_scores=scores.copy(), fates=fates)
        if d.refine and depth_m is not None and np.any(np.asarray(depth_m) > 0):
            grasps, scores = self._refined(grasps, scores, depth_m, fx, d, fates)
        else:
            keep = rotated_nms(grasps, d.nms_iou, limit=d.max_candidates)
            for k in range(len(grasps)):
                fates[k] = 'kept' if k in keep else 'overlap'
            grasps, scores = grasps[keep], scores[keep]
        grasps[:, 4] = self._jaw_px(grasps, depth_m, fx, d)
        return grasps, scores

    def _refined(self, grasps, scores, depth_m, fx, d: DecodeSettings, fates: list):
        """Best first.

        Skip a candidate overlapping one kept, check and refine it against the depth
        (:mod:`.refine`), keep it unless its refined rectangle overlaps one kept; stop at
        ``max_candidates`` kept or ``2 max_candidates + 5`` tried.
        """
        from grasp_autolabel.refine import refine_grasps, RefineSettings

        settings = RefineSettings(opening_margin=d.opening_margin)
        out, out_scores = [], []
        jaw = d.fallback_jaw_px

        def overlaps(g) -> bool:
            reach = 0.5 * math.hypot(g[3], g[4])
            return any(math.hypot(g[0] - k[0], g[1] - k[1]) < reach + 0.5 * math.hypot(k[3], k[4])
                       and rotated_iou(g, k) > d.nms_iou for k in out)

        # bounded work per frame: a frame of many rejected peaks must not stall a live node
        tries = 2 * d.max_candidates + 5
        logs: list = []  # the logs followed so far: one walk per log (refine_grasps)
        for k, (g, sc) in enumerate(zip(grasps[:tries], scores[:tries])):
            probe = np.array([g[0], g[1], g[2], g[3], jaw])
            if overlaps(probe):
                fates[k] = 'overlap'
                continue
            why = []
            refined, kept = refine_grasps(probe[None], depth_m, fx=fx or self.camera_fx,
                                          settings=settings, reasons=why, logs=logs)
            if not len(kept) or overlaps(refined[0]):
                fates[k] = 'overlap' if len(kept) else f'depth_check:{why[0]}'
                continue
            fates[k] = 'kept'
            out.append(refined[0])
            out_scores.append(sc)
            if len(out) >= d.max_candidates:
                break
        return np.array(out).reshape(-1, 5), np.array(out_scores, dtype=np.float64)

    def _jaw_px(self, grasps, depth_m, fx, d: DecodeSettings) -> np.ndarray:
        fx = fx or self.camera_fx
        out = np.full(len(grasps), d.fallback_jaw_px)
        if depth_m is None or not fx:
            return out
        for k, g in enumerate(grasps):
            z = depth_at(depth_m, g[0], g[1], radius=3)
            if math.isfinite(z) and z > 0:
                out[k] = d.jaw_width_m * fx / z
        return out

    def run_network(self, x: np.ndarray) -> tuple:
        raise NotImplementedError


class TorchPredictor(Predictor):
    """A checkpoint (path or loaded dict), or an in-memory model (``model=``) during training."""

    def __init__(self, checkpoint=None, *, device: str = 'cpu', model=None, network=None,
                 decode: DecodeSettings | None = None, image_size=None, camera_fx=None,
                 model_id: str = 'detector'):
        import torch

        if model is None:
            ckpt = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
            network, decode = ckpt['network_obj'], ckpt['decode_obj']
            model = build_model(network)
            load_weights(model, ckpt['state_dict'], ckpt.get('path', 'checkpoint'))
            image_size = ckpt.get('image_size')
            camera_fx = ckpt.get('camera_fx')
            model_id = str(ckpt.get('model_id', 'detector'))
            self.device = torch.device(device)
            model.to(self.device)
        else:
            self.device = next(model.parameters()).device
        self.model = model.eval()
        self.network, self.decode = network, decode
        self.image_size = tuple(image_size) if image_size else None
        self.camera_fx = camera_fx
        self.model_id = model_id
        self.family = family(network)
        self._torch = torch

    def run_network(self, x):
        torch = self._torch
        with torch.inference_mode():
            return self.family.infer(self.model, torch.from_numpy(x).to(self.device))


class OnnxPredictor(Predictor):
    """The exported model in ONNX Runtime; its config and image size travel in the metadata."""

    def __init__(self, path, *, threads: int | None = None):
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f'{path}: no such ONNX model')
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        # idle worker threads sleep instead of spinning: a live node shares its cores with the
        # camera driver and DDS, and spinning threads starve them (measured: p99 1.2 s -> see
        # README)
        opts.add_session_config_entry('session.intra_op.allow_spinning', '0')
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts,
                                                providers=['CPUExecutionProvider'])
        except Exception as exc:  # noqa: B902 - onnxruntime's errors are its own classes
            raise CheckpointError(
                f'{path}: not a readable ONNX model ({type(exc).__name__}: {str(exc)[:200]})'
            ) from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if 'grasp_autolabel_network' not in meta:
            raise CheckpointError(f"{path}: not exported by this grasp-autolabel's export-onnx "
                                  '(no network config in '
                                  'its metadata; an older export? export it again)')
        version = meta.get('grasp_autolabel_format', str(ONNX_FORMAT_VERSION))
        if version != str(ONNX_FORMAT_VERSION):
            raise CheckpointError(f'{path}: ONNX model format version {version}, this '
                                  f'grasp_autolabel reads version {ONNX_FORMAT_VERSION}; export '
                                  'it again with this version')
        try:
            self.network = network_from_dict(json.loads(meta['grasp_autolabel_network']),
                                             require_model=True, where=str(path))
            self.decode = settings_from_dict(DecodeSettings, json.loads(
                meta['grasp_autolabel_decode']), what='decode')
            self.image_size = tuple(json.loads(meta.get('image_size', 'null')) or ()) or None
            self.camera_fx = json.loads(meta.get('camera_fx', 'null'))
        except UnknownFamilyError as exc:
            raise CheckpointError(str(exc)) from None
        except (KeyError, ValueError) as exc:
            raise CheckpointError(f'{path}: its metadata is not valid ({exc})') from None
        self.family = family(self.network)
        self.names = ([i.name for i in self.session.get_inputs()],
                      [o.name for o in self.session.get_outputs()])
        self.model_id = meta.get('model_id', path.stem)

    def run_network(self, x):
        return self.family.onnx_outputs(self.session, x, *self.names)


def load_predictor(path, *, backend: str = 'auto', device: str = 'cpu',
                   threads: int | None = None):
    """Return a predictor for a run folder, a ``.pt`` checkpoint or an ``.onnx`` model.

    ``path`` 'shipped' is the package's simulator-trained model (its ONNX file, or its
    checkpoint with ``backend='torch'``). ``threads``: ONNX Runtime's intra-op threads (default
    one per core).
    """
    if str(path) == 'shipped':
        from grasp_autolabel.detector.model_files import ModelPathError, shipped_model

        try:
            path = shipped_model('.pt' if backend == 'torch' else '.onnx')
        except ModelPathError as exc:
            raise CheckpointError(f'shipped: {exc}') from None
    p = Path(path)
    if backend == 'onnx' or (backend == 'auto' and p.suffix == '.onnx'):
        return OnnxPredictor(p, threads=threads)
    return TorchPredictor(p, device=device)


def checkpoint_meta(network, decode: DecodeSettings) -> dict:
    """Return the config entries of a checkpoint (also written into ONNX metadata)."""
    return {'network': network_to_dict(network), 'decode': settings_to_dict(decode)}
