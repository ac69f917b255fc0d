"""What the stages of one annotation share, and what each stage declares it reads and writes.

:class:`Step` holds the inputs (the frames, the camera, the settings) and what each stage finds,
field by field, with the stage that writes it. Every stage of ``stages.py`` is declared with
:func:`stage`: the fields it reads, the fields it writes, the reasons it may reject for; a stage
returning another reason is a bug, stopped in ``pipeline.annotate_step``, and a test traces each
stage's field accesses against its declaration.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from grasp_autolabel.annotate.config import AnnotateConfig
from grasp_autolabel.annotate.grasps import Spine
from grasp_autolabel.annotate.reasons import Reason
from grasp_autolabel.core.camera import CameraIntrinsics
import numpy as np

__all__ = ['Step', 'StageSpec', 'stage', 'start', 'INPUTS']

# the fields a Step starts with (``shape`` and ``half`` are views of the frames)
INPUTS = frozenset({'cfg', 'intrinsics', 'before_m', 'after_m', 'ds', 'before_rgb', 'after_rgb',
                    'shape', 'half'})


@dataclass
class Step:
    """What the stages of one annotation share: inputs, then each stage's findings in order.

    ``info`` collects every stage's measurements (for the labels file); ``mask`` and ``ends`` are
    what a rejection at the current stage carries.
    """

    cfg: AnnotateConfig
    intrinsics: CameraIntrinsics
    before_m: np.ndarray  # full resolution, metres
    after_m: np.ndarray
    ds: int  # detection runs at 1/ds resolution
    before_rgb: np.ndarray | None = None  # the aligned colour images, when given
    after_rgb: np.ndarray | None = None
    info: dict = field(default_factory=dict)
    mask: np.ndarray | None = None  # find_removed, full_resolution_mask (None: empty)
    ends: np.ndarray | None = None  # fit_straight_spine: the spine's end points
    change: object = None  # detect_change: segment.DepthChange at detection resolution
    colour_model: tuple | None = None  # detect_change: colour_change's (gain, threshold)
    min_log_px: float = 0.0  # measure_scale: the smallest log's area, detection pixels
    open_px: int = 0  # measure_scale: morphology sizes, detection pixels
    close_px: int = 0
    thin_px: float = 0.0  # measure_scale: the thinnest log's diameter, full-resolution pixels
    labels: np.ndarray | None = None  # find_removed: connected components of what went farther
    stats: np.ndarray | None = None
    pieces: list = field(default_factory=list)  # find_removed: the removed log's components
    box: tuple = ()  # full_resolution_mask: (cx0, cy0, cx1, cy1) of the full-resolution crop
    crop: np.ndarray | None = None  # full_resolution_mask: the grown mask in the crop
    core: np.ndarray | None = None  # full_resolution_mask: the conservative mask in the crop
    z_obj: float = 0.0  # check_size: the log's top surface depth, metres
    m_per_px: float = 0.0  # check_size: metres per pixel at z_obj
    spine: Spine | None = None  # fit_straight_spine: in crop coordinates
    spine_full: Spine | None = None  # fit_straight_spine: in image coordinates
    grasps: np.ndarray | None = None  # place_grasps: (N, 5) in crop coordinates
    scores: np.ndarray | None = None  # place_grasps

    @property
    def shape(self) -> tuple:
        """Return the frames' ``(H, W)``."""
        return self.before_m.shape[:2]

    @property
    def half(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the frames at detection resolution (every ``ds``-th pixel)."""
        return self.before_m[::self.ds, ::self.ds], self.after_m[::self.ds, ::self.ds]


@dataclass(frozen=True)
class StageSpec:
    """What a stage reads and writes of the :class:`Step`, and the reasons it may reject for."""

    reads: frozenset
    writes: frozenset
    rejects: frozenset


def stage(*, reads=(), writes=(), rejects=()):
    """Declare a stage: the Step fields it reads and writes, the :class:`Reason` s it returns."""
    spec = StageSpec(frozenset(reads), frozenset(writes), frozenset(Reason(r) for r in rejects))

    def declare(fn):
        fn.spec = spec
        return fn
    return declare


def start(before_m, after_m, intrinsics: CameraIntrinsics, cfg: AnnotateConfig,
          before_rgb=None, after_rgb=None) -> Step:
    """Return the Step of one pick, its inputs checked (ValueError naming the mismatch)."""
    before_m, after_m = np.asarray(before_m), np.asarray(after_m)
    if before_m.shape != after_m.shape:
        raise ValueError(f'depth frames differ in size: {before_m.shape} vs {after_m.shape}')
    if (before_rgb is None) != (after_rgb is None):
        raise ValueError('colour images: give both (before and after) or neither')
    for name, rgb in (('before_rgb', before_rgb), ('after_rgb', after_rgb)):
        if rgb is not None and np.shape(rgb)[:2] != before_m.shape[:2]:
            raise ValueError(f'{name}: {np.shape(rgb)} is not aligned with the depth frames '
                             f'{before_m.shape}')
    h, w = before_m.shape[:2]
    if (w, h) != (intrinsics.width, intrinsics.height):
        raise ValueError(
            f'depth is {w}x{h} but the camera intrinsics are '
            f'{intrinsics.width}x{intrinsics.height}')
    # Detection (what changed, where, how many objects, did the view move) runs at half
    # resolution, where it costs a quarter; the removed object's mask is then made again at
    # full resolution inside its own bounding box.
    return Step(cfg, intrinsics, before_m.astype(np.float32, copy=False),
                after_m.astype(np.float32, copy=False), ds=2 if w >= 320 else 1,
                before_rgb=before_rgb, after_rgb=after_rgb)
