"""Annotation and quality-gate settings: one dataclass, documented defaults, YAML in and out.

The same keys are the autolabel node's parameters, so one YAML file serves the node
(``/autolabel_node: ros__parameters: ...``) and ``grasp-autolabel label --config FILE``
(either that ROS parameter-file form or a plain mapping).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
import math
from pathlib import Path

import yaml

__all__ = ['AnnotateConfig', 'load_config']


def _setting(default, doc: str, lo: float, hi: float, *, low_open: bool = True):
    """Declare a setting with its one-line description and its range.

    The range is ``(lo, hi]``, or ``[lo, hi]`` with ``low_open=False``; integers always
    ``[lo, hi]``.
    """
    return field(default=default, metadata={'doc': doc, 'range': (lo, hi), 'low_open': low_open})


@dataclass(frozen=True)
class AnnotateConfig:
    """Every threshold of the pipeline, in physical units where there is one.

    Segmentation
    ------------
    min_change_m : float
        Smallest depth increase that counts as "something was removed", metres. A removed log
        leaves centimetres (its diameter); sensor noise is millimetres.
    noise_k : float
        The change threshold is also at least ``noise_k`` times the frame pair's noise level,
        estimated robustly (MAD) from the difference image itself, so a noisier camera or a
        farther scene raises it automatically.
    open_px, close_px : int
        Structuring element sizes (pixels at 640 px width; scaled with the image width) of the
        opening that removes noise specks and the closing that fills holes and invalid pixels.
    gaussian_sigma : float
        The paper's Gaussian smoothing of the refined mask, pixels.

    Gripper
    -------
    jaw_width_m : float
        Size of the gripper's jaws along the object's spine, metres; becomes ``h`` in pixels at
        the grasp's depth.
    opening_margin : float
        The opening ``w`` is the mask's width across the spine times this (the jaws must open
        wider than the log).
    n_grasps : int
        Grasp proposals per accepted step.
    grasp_spread : float
        Proposals are centred on the spine around the mask's centre of mass, spread with this
        standard deviation as a fraction of the spine's length.

    Quality gate (a rejected step keeps its label file with ``accepted: false`` and the reason)
    -------------------------------------------------------------------------------------------
    min_diameter_m, max_diameter_m : float
        A log's plausible diameter range; the mask's median width must fall inside.
    min_visible_length_m : float
        The visible part of the spine must be at least this long.
    max_length_m : float
        Longest plausible log.
    second_object_fraction : float
        Another region of increased depth larger than this fraction of the smallest plausible
        log's area means more than one object was removed.
    new_object_fraction : float
        A region of decreased depth (something appeared) larger than this fraction of the
        smallest plausible log's area means something is in view that was not there before.
    max_changed_fraction : float
        More than this fraction of the image changing at once is rejected (``large_change``;
        ``camera_moved`` only where the still part of the view shifted or tilted).
    max_shift_px : float
        A global image shift larger than this (phase correlation of the two depth frames) means
        the camera moved, if the shift also explains the change (next).
    min_shift_explains : float
        ... that is, if applying the shift removes at least this share of the depth mismatch
        outside the removed object.
    max_view_ramp_m : float
        Largest depth change of the unchanged part of the view (a plane fitted to the
        difference, at the image corners) before the camera counts as moved, metres.
    min_line_share : float
        Share of the mask that must lie within 1.5 typical radii of the spine line (one
        straight log; an L, T or X of two logs fails).
    max_width_ratio : float
        The mask's width may be at most this multiple of the depth change along the spine: one
        removed cylinder is about as wide as it was thick; two logs side by side are twice as wide.
    border_px : int
        A mask within this many pixels of the image border touches it.
    """

    # segmentation
    min_change_m: float = _setting(0.02, 'smallest depth increase that counts as removed, m', 0.0,
                                   1.0)
    noise_k: float = _setting(5.0, 'the change threshold is at least this many noise sigmas', 0.0,
                              100.0)
    open_px: int = _setting(3, 'opening that removes specks, px at 640 px width', 1, 99)
    close_px: int = _setting(7, 'closing that fills holes, px at 640 px width', 1, 99)
    gaussian_sigma: float = _setting(1.0, 'Gaussian smoothing of the refined mask, px', 0.0, 50.0)
    # gripper and proposals
    jaw_width_m: float = _setting(0.04, "the gripper's jaw size along the log, m", 0.0, 1.0)
    opening_margin: float = _setting(1.3, "opening = the log's width times this (>= 1)", 1.0, 5.0,
                                     low_open=False)
    n_grasps: int = _setting(9, 'grasp proposals per accepted step', 1, 1000)
    grasp_spread: float = _setting(
        0.15, 'spread of proposals along the spine, share of its length', 0.0, 1.0)
    # quality gate
    min_diameter_m: float = _setting(0.05, 'thinnest plausible log, m', 0.0, 2.0)
    max_diameter_m: float = _setting(0.30, 'thickest plausible log, m', 0.0, 2.0)
    min_visible_length_m: float = _setting(0.15, 'shortest visible spine, m', 0.0, 10.0)
    max_length_m: float = _setting(2.0, 'longest plausible log, m', 0.0, 20.0)
    second_object_fraction: float = _setting(
        0.35, 'another removed region this share of a log: two removed', 0.0, 1.0)
    new_object_fraction: float = _setting(
        0.35, 'a nearer region this share of a log: something appeared', 0.0, 1.0)
    max_changed_fraction: float = _setting(0.25, 'more of the image changed at once: rejected',
                                           0.0, 1.0)
    max_shift_px: float = _setting(
        1.5, 'a global shift larger than this (if it explains the change): moved', 0.0, 1000.0)
    min_shift_explains: float = _setting(0.2, 'share of the mismatch a shift must explain', 0.0,
                                         1.0)
    max_view_ramp_m: float = _setting(0.008, 'largest depth ramp across the unchanged view, m',
                                      0.0, 1.0)
    min_line_share: float = _setting(
        0.85, 'share of the mask near the spine line (one straight log)', 0.0, 1.0)
    max_width_ratio: float = _setting(
        1.8, 'width at most this times the depth step (one log, not two)', 0.0, 10.0)
    border_px: int = _setting(2, 'a mask this close to the border touches it, px', 0, 100,
                              low_open=False)

    def __post_init__(self):
        for f in fields(self):
            v, (lo,
                hi), low_open = getattr(self, f.name), f.metadata['range'], f.metadata['low_open']
            if isinstance(f.default, int):
                if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                    raise ValueError(f'{f.name}: must be an integer in [{lo}, {hi}], got {v!r}')
            elif not (
                isinstance(v, (int, float))
                and math.isfinite(v)
                and (lo < v if low_open else lo <= v)
                and v <= hi
            ):
                raise ValueError(
                    f"{f.name}: must be a number in {'(' if low_open else '['}{lo}, {hi}], got "
                    f'{v!r}')
        if self.min_diameter_m >= self.max_diameter_m:
            raise ValueError('min_diameter_m must be smaller than max_diameter_m')

    @staticmethod
    def describe(name: str) -> tuple[str, float, float]:
        """Return ``(description, min, max)`` of setting ``name`` (the node's descriptors)."""
        f = {f.name: f for f in fields(AnnotateConfig)}[name]
        return (f.metadata['doc'], *f.metadata['range'])

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict, *, source: str = 'config') -> 'AnnotateConfig':
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"{source}: unknown setting(s) {', '.join(unknown)} "
                             f"(known: {', '.join(known)})")
        cleaned = {}
        for k, v in values.items():
            default = known[k].default
            if isinstance(default, float) and isinstance(v, int) and not isinstance(v, bool):
                v = float(v)
            if type(v) is not type(default):
                raise ValueError(f'{source}: {k} must be {type(default).__name__}, got {v!r}')
            cleaned[k] = v
        try:
            return cls(**cleaned)
        except ValueError as exc:
            raise ValueError(f'{source}: {exc}') from None


def load_config(path) -> AnnotateConfig:
    """Read settings from YAML.

    A plain mapping, or a ROS 2 parameter file whose node section holds them under
    ``ros__parameters`` (other node parameters there are ignored).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f'{path}: config file not found')
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f'{path}: not valid YAML ({exc})') from None
    if not isinstance(doc, dict):
        raise ValueError(f'{path}: expected a mapping of settings')
    for section in doc.values():
        if isinstance(section, dict) and 'ros__parameters' in section:
            params = section['ros__parameters'] or {}
            known = {f.name for f in fields(AnnotateConfig)}
            return AnnotateConfig.from_dict({k: v for k, v in params.items() if k in known},
                                            source=str(path))
    return AnnotateConfig.from_dict(doc, source=str(path))
