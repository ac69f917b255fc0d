"""The detector's settings, in three parts kept apart.

* the network (``models.*Network``, frozen): what the weights depend on; saved in every
  checkpoint and in the ONNX metadata, and never changed after training;
* :class:`TrainSettings`: the optimiser, the schedule, the augmentation, the split;
* :class:`DecodeSettings`: how maps or detections become grasps (threshold, peak distance,
  NMS, jaw size); saved with the model as its defaults, and changeable at prediction time.

Every value is range-checked when the settings are made, with the setting named.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
import math

__all__ = ['TrainSettings', 'DecodeSettings', 'settings_from_dict', 'FINETUNE_LR_FACTOR']

# train --init's default learning rate is this share of the family's from scratch (fine-tuning:
# the first steps must not undo what the model knows)
FINETUNE_LR_FACTOR = 0.2


def _check(name: str, value, lo: float, hi: float, *, integer: bool = False):
    try:
        v = int(value) if integer else float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name}: expected a{'n integer' if integer else ' number'}, got {value!r}") from None
    if integer and float(value) != v:
        raise ValueError(f'{name}: expected an integer, got {value!r}')
    if not (math.isfinite(v) and lo <= v <= hi):
        raise ValueError(f'{name}: {value!r} is not in {lo}..{hi}')
    return v


@dataclass(frozen=True)
class TrainSettings:
    """How a detector is trained (not saved into the weights' identity).

    ``max_steps`` of the grasp-map network's default is 900 steps of 8 images (16-25 minutes on
    a 2-core CPU, a minute on a GPU). ``max_minutes``: where the first steps show that
    ``max_steps`` would take longer than this, the run is planned to fewer steps that end in
    time (the schedule is a function of the planned steps; 0: always ``max_steps``).
    ``val_every`` steps the model is scored on the held-out part of the dataset's split and the
    best checkpoint kept.
    """

    lr: float = 2e-3
    batch_size: int = 8
    max_steps: int = 900
    max_minutes: float = 18.0
    weight_decay: float = 1e-4
    augment: bool = True
    max_rotation_deg: float = 180.0
    scale_range: tuple = (0.7, 1.3)
    max_shift_fraction: float = 0.15
    split: str = 'session'  # which split's train part to use: session | image | none
    # also train on later picks' grasps carried back (dataset/propagate.py)
    use_later_grasps: bool = True
    # train only on items a person reviewed (grasp-autolabel review): accepted, edited, drawn
    reviewed_only: bool = False
    val_every: int = 100
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, 'lr', _check('lr', self.lr, 1e-7, 1.0))
        object.__setattr__(self, 'batch_size',
                           _check('batch_size', self.batch_size, 1, 1024, integer=True))
        object.__setattr__(self, 'max_steps',
                           _check('max_steps', self.max_steps, 1, 10_000_000, integer=True))
        object.__setattr__(self, 'max_minutes', _check('max_minutes', self.max_minutes, 0.0, 1e7))
        object.__setattr__(self, 'weight_decay',
                           _check('weight_decay', self.weight_decay, 0.0, 1.0))
        object.__setattr__(self, 'max_rotation_deg',
                           _check('max_rotation_deg', self.max_rotation_deg, 0.0, 180.0))
        object.__setattr__(self, 'max_shift_fraction',
                           _check('max_shift_fraction', self.max_shift_fraction, 0, 0.5))
        object.__setattr__(self, 'val_every',
                           _check('val_every', self.val_every, 1, 10_000_000, integer=True))
        object.__setattr__(self, 'seed', _check('seed', self.seed, 0, 2**32 - 1, integer=True))
        try:
            lo, hi = (float(v) for v in self.scale_range)
        except (TypeError, ValueError):
            raise ValueError(
                f'scale_range: expected [min, max], got {self.scale_range!r}') from None
        if not (math.isfinite(lo) and math.isfinite(hi) and 0.1 <= lo <= hi <= 10):
            raise ValueError(
                f'scale_range: expected 0.1 <= min <= max <= 10, got {self.scale_range!r}')
        object.__setattr__(self, 'scale_range', (lo, hi))
        if self.split not in ('session', 'image', 'none'):
            raise ValueError(f'split: {self.split!r} is not session, image or none')


@dataclass(frozen=True)
class DecodeSettings:
    """From network output to grasps.

    Attributes
    ----------
    score_threshold : float
        Candidates below this score (quality, or class score) are dropped.
    nms_iou : float
        Rotated IoU above which a lower-scored candidate is suppressed.
    max_candidates : int
    peak_distance_px : float
        Grasp-map: the least distance between two quality peaks, image pixels (about half the
        thinnest log's width; set at training from the labels).
    quality_sigma : float
        Grasp-map: Gaussian smoothing of the quality map, output pixels (the angle and opening
        maps are never smoothed).
    jaw_width_m : float
        The gripper's jaw size; a grasp's h = jaw_width_m * fx / z at the depth under it.
    fallback_jaw_px : float
        h where there is no depth under the grasp or no camera (the training labels' median).
    refine : bool
        Check and refine every candidate against the depth image (:mod:`.refine`): centre on
        the log's visible spine, opening ``opening_margin`` times its width, closing across its
        local axis, dropped when something lies on the log.
    opening_margin : float
        Opening / log width, as the annotator's (``AnnotateConfig.opening_margin``).
    """

    score_threshold: float = 0.3
    nms_iou: float = 0.25
    max_candidates: int = 10
    peak_distance_px: float = 10.0
    quality_sigma: float = 1.0
    jaw_width_m: float = 0.04
    fallback_jaw_px: float = 25.0
    refine: bool = True
    opening_margin: float = 1.3

    def __post_init__(self):
        object.__setattr__(self, 'score_threshold',
                           _check('score_threshold', self.score_threshold, 0.0, 1.0))
        object.__setattr__(self, 'nms_iou', _check('nms_iou', self.nms_iou, 0.0, 1.0))
        object.__setattr__(self, 'max_candidates',
                           _check('max_candidates', self.max_candidates, 1, 10000, integer=True))
        object.__setattr__(self, 'peak_distance_px',
                           _check('peak_distance_px', self.peak_distance_px, 1.0, 1e4))
        object.__setattr__(self, 'quality_sigma',
                           _check('quality_sigma', self.quality_sigma, 0.0, 50.0))
        object.__setattr__(self, 'jaw_width_m',
                           _check('jaw_width_m', self.jaw_width_m, 1e-4, 10.0))
        object.__setattr__(self, 'fallback_jaw_px',
                           _check('fallback_jaw_px', self.fallback_jaw_px, 0.1, 1e4))
        object.__setattr__(self, 'opening_margin',
                           _check('opening_margin', self.opening_margin, 1.0, 5.0))
        if not isinstance(self.refine, bool):
            raise ValueError(f'refine: expected true or false, got {self.refine!r}')

    def with_(self, **changes) -> 'DecodeSettings':
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def settings_from_dict(cls, d: dict, *, what: str):
    """``cls(**d)`` with unknown keys and bad values reported as one ValueError naming them."""
    if not isinstance(d, dict):
        raise ValueError(f'{what}: expected a mapping, got {type(d).__name__}')
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"unknown {what} setting(s): {', '.join(unknown)}")
    try:
        return cls(**d)
    except TypeError as exc:
        raise ValueError(f'{what}: {exc}') from None


def settings_to_dict(settings) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(settings).items()}
