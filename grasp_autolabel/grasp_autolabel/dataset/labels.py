"""The labels record of one dataset item (``labels/NNNNNN.json``): :class:`LabelRecord`.

The one owner of the format: every writer builds a :class:`LabelRecord` and hands it to
:class:`~grasp_autolabel.dataset.store.GraspDataset`, every reader gets one back from it. A file
is read through :meth:`LabelRecord.from_json`, which checks every field and brings files of
earlier versions up to date (migration on read; the file on disk is left as it is).

Versions: 1, the files written before this module (no ``version`` key); 2, the same fields plus
``version``. A file of a later version is refused (written by a newer grasp_autolabel).
"""
from __future__ import annotations

from dataclasses import dataclass, field
import math

from grasp_autolabel.annotate.reasons import Reason
from grasp_autolabel.core.errors import DatasetError
from grasp_autolabel.core.geometry import as_grasps
import numpy as np

__all__ = ['LabelRecord', 'LABEL_VERSION', 'VERDICTS', 'check_review']

LABEL_VERSION = 2
# optional fields: written only when set (a labels file of `label` has no stamps)
_OPTIONAL = ('stamp_before_ns', 'stamp_after_ns', 'frames_averaged', 'later_picks',
             'later_grasps', 'origin', 'augmentation', 'logs', 'review')
VERDICTS = ('accepted', 'rejected')


@dataclass(eq=False)
class LabelRecord:
    """One dataset item's labels: the gate's verdict, the grasps, where the item came from.

    Grasps follow the project's convention (DESIGN.md): rows ``[x, y, theta, w, h]``, x and y the
    centre in image pixels, theta the closing direction in radians from the image x axis
    (theta and theta + pi are one grasp), w the opening and h the jaw size in pixels.
    """

    accepted: bool  # the quality gate's verdict on the pick
    reason: Reason | None = None  # why it was rejected (None: accepted, or imported)
    pick_index: int = 0  # the pick's number in its source (its before-frame, for a session)
    source: int = 0  # index into dataset.json's ``sources``
    session: str = ''  # the source's name (a session folder's, a bag's, an imported sample's)
    frame_before: int | None = None  # the source's frame numbers of the step (None: unknown)
    frame_after: int | None = None
    grasps: np.ndarray = field(default_factory=lambda: np.zeros((0, 5)))  # (N, 5), see above
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (N,) in [0, 1], best first
    # each grasp's 3-D pose in the camera optical frame: position (m), orientation (quaternion
    # x, y, z, w), opening_m (m), valid (False: no depth under it; the others then None); None
    # where the image was transformed (an augmented copy)
    poses: list[dict] | None = field(default_factory=list)
    spine: np.ndarray | None = None  # (2, 2) end points (x, y) of the log's spine, pixels
    info: dict = field(default_factory=dict)  # the gate's measurements (units in their names)
    stamp_before_ns: int | None = None  # the frames' stamps (ns since the epoch), when known
    stamp_after_ns: int | None = None
    frames_averaged: list[int] | None = None  # an exported pick: messages averaged per frame
    later_picks: list[int] | None = None  # later picks whose grasps hold in this frame ...
    later_grasps: np.ndarray | None = None  # ... and those grasps, (M, 5) in this image
    origin: dict | None = None  # an augmented copy: {source (str or int), pick_index}
    augmentation: dict | None = None  # an augmented copy: from_item, copy, matrix (2x3), ...
    logs: list[dict] | None = None  # ground truth: [{spine, grasps}] of every log it teaches
    # a person's review (grasp-autolabel review): {verdict: 'accepted' | 'rejected' | None
    # (edited, not decided), grasps: (K, 5) as edited or drawn by hand, at: ISO 8601 UTC};
    # the automatic grasps above stay as the gate made them
    review: dict | None = None
    image: str = ''  # the item's files, relative to the dataset (set by GraspDataset)
    depth: str = ''
    mask: str = ''
    extra: dict = field(default_factory=dict)  # fields this version does not know, kept as read

    @property
    def detail(self) -> str | None:
        """Return the rejection reason's description (None when accepted)."""
        return self.reason.description if self.reason else None

    @classmethod
    def from_step(cls, step, *, pick_index: int, source: int, session: str,
                  frame_after: int | None, frame_before: int | None = None) -> LabelRecord:
        """Return the record of one annotated step (a :class:`~..annotate.StepLabel`).

        ``frame_before`` defaults to ``frame_after - 1``.
        """
        if frame_before is None and frame_after is not None:
            frame_before = int(frame_after) - 1
        return cls(accepted=bool(step.accepted), reason=step.reason, pick_index=int(pick_index),
                   source=int(source), session=session,
                   frame_before=None if frame_before is None else int(frame_before),
                   frame_after=None if frame_after is None else int(frame_after),
                   grasps=np.round(step.grasps, 3), scores=np.round(step.scores, 4),
                   poses=[_pose(p) for p in step.poses],
                   spine=None if step.spine is None else np.round(step.spine, 2),
                   info=step.info)

    def to_json(self) -> dict:
        """Return the labels file's content (plain JSON types; version :data:`LABEL_VERSION`)."""
        out = {'image': self.image, 'depth': self.depth, 'mask': self.mask,
               'version': LABEL_VERSION, 'accepted': self.accepted,
               'reason': None if self.reason is None else str(self.reason),
               'detail': self.detail, 'pick_index': self.pick_index,
               'frame_before': self.frame_before, 'frame_after': self.frame_after,
               'session': self.session, 'source': self.source,
               'grasps': np.round(self.grasps, 4).tolist(),
               'scores': np.round(self.scores, 4).tolist(), 'poses': self.poses,
               'spine': None if self.spine is None else np.round(self.spine, 2).tolist(),
               'info': self.info}
        for name in _OPTIONAL:
            value = getattr(self, name)
            if value is not None:
                out[name] = np.round(value, 4).tolist() if name == 'later_grasps' else value
        return {**out, **self.extra}

    @classmethod
    def from_json(cls, data, where: str = 'labels file') -> LabelRecord:
        """Return the record of a labels file's content, checked; DatasetError naming ``where``."""
        if not isinstance(data, dict):
            raise DatasetError(f'{where}: a labels file holds a JSON object, not '
                               f'{type(data).__name__}')
        version = data.get('version', 1)
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise DatasetError(f'{where}: version {version!r} is not a labels format version')
        if version > LABEL_VERSION:
            raise DatasetError(f'{where}: labels format version {version}; this grasp_autolabel '
                               f'reads up to {LABEL_VERSION} (update it)')
        return cls(**_checked(dict(data), where))

    @property
    def left_out(self) -> bool:
        """Return whether a person rejected the item: it teaches nothing, later grasps neither."""
        return (self.review or {}).get('verdict') == 'rejected'

    @property
    def reviewed(self) -> bool:
        """Return whether a person decided on this item or marked a detector's candidate."""
        review = self.review or {}
        return review.get('verdict') in VERDICTS or bool(review.get('candidates'))

    def _marked(self, mark: str) -> np.ndarray:
        rows = [c['grasp'] for c in (self.review or {}).get('candidates') or []
                if c.get('mark') == mark]
        return as_grasps(rows)

    def negatives(self) -> np.ndarray:
        """Return the detector's candidates a person marked wrong, ``(M, 5)``."""
        return self._marked('wrong')

    def own_grasps(self) -> np.ndarray:
        """Return the item's own grasps: a person's where reviewed, else the gate's.

        A person's rejection leaves none; their accepted (edited or hand-drawn) grasps replace
        the automatic ones, also on a pick the gate rejected; candidates they marked right join.
        """
        if self.left_out:
            return np.zeros((0, 5))
        if (self.review or {}).get('verdict') == 'accepted':
            base = as_grasps(self.review.get('grasps') or [])
        else:
            base = self.grasps if self.accepted else np.zeros((0, 5))
        return np.concatenate([base, self._marked('right')])

    def all_grasps(self, use_later: bool = True) -> np.ndarray:
        """Return the grasps the item teaches: its own (:meth:`own_grasps`), and later picks'."""
        own = self.own_grasps()  # none where a person left the item out: its later grasps too
        if (use_later and not self.left_out and self.later_grasps is not None
                and len(self.later_grasps)):
            return np.concatenate([own, self.later_grasps])
        return own


def check_review(review, where: str) -> dict:
    """Return a review checked (verdict, grasps with positive sizes, time); DatasetError."""
    if not isinstance(review, dict):
        raise DatasetError(f'{where}: review must be an object, not {type(review).__name__}')
    verdict = review.get('verdict')
    if verdict is not None and verdict not in VERDICTS:
        raise DatasetError(f'{where}: review verdict {verdict!r} is not one of '
                           f"{', '.join(VERDICTS)} or null")
    try:
        grasps = as_grasps(review.get('grasps') or [], name=f'{where} review grasps')
    except ValueError as exc:
        raise DatasetError(str(exc)) from None
    if not np.isfinite(grasps).all() or (grasps[:, 3:5] <= 0).any():
        raise DatasetError(f'{where}: review grasps need finite values and a positive '
                           'opening and jaw size')
    return {**review, 'verdict': verdict, 'grasps': np.round(grasps, 3).tolist()}


def _pose(p) -> dict:
    if not p.valid:
        return {'position': None, 'orientation': None, 'opening_m': None, 'valid': False}
    return {'position': np.round(p.position, 5).tolist(),
            'orientation': np.round(p.orientation, 6).tolist(),
            'opening_m': round(float(p.opening_m), 5), 'valid': True}


def _checked(data: dict, where: str) -> dict:
    """Return ``data``'s fields as :class:`LabelRecord` arguments, each checked."""
    data.pop('version', None)
    data.pop('detail', None)  # derived from the reason
    if not isinstance(data.get('accepted'), bool):
        raise DatasetError(f"{where}: 'accepted' must be true or false, not "
                           f"{data.get('accepted')!r}")
    reason = data.get('reason')
    try:
        data['reason'] = None if reason is None else Reason(reason)
    except ValueError:
        raise DatasetError(f"{where}: reason {reason!r} is not one of the gate's reasons "
                           f"({', '.join(Reason)})") from None
    for name in ('pick_index', 'source'):
        _int(data, name, where, default=0)
    for name in ('frame_before', 'frame_after', 'stamp_before_ns', 'stamp_after_ns'):
        _int(data, name, where, default=None)
    try:
        data['grasps'] = as_grasps(data.get('grasps') or [], name=f'{where} grasps')
        later = data.get('later_grasps')
        data['later_grasps'] = None if later is None else as_grasps(
            later, name=f'{where} later_grasps')
        scores = data.get('scores')
        data['scores'] = np.asarray(scores if scores else [1.0] * len(data['grasps']),
                                    dtype=float).reshape(-1)
        spine = data.get('spine')
        data['spine'] = None if spine is None else np.asarray(spine, float).reshape(2, 2)
    except (ValueError, TypeError) as exc:
        raise DatasetError(f'{where}: {exc}') from None
    if len(data['scores']) != len(data['grasps']):
        raise DatasetError(f"{where}: {len(data['scores'])} scores for "
                           f"{len(data['grasps'])} grasps")
    if data.get('review') is not None:
        data['review'] = check_review(data['review'], where)
    for name in ('image', 'depth', 'mask'):
        if not isinstance(data.setdefault(name, ''), str):
            raise DatasetError(f'{where}: {name}: expected a path, got '
                               f'{type(data[name]).__name__}')
    known = set(LabelRecord.__dataclass_fields__) - {'extra'}
    data['extra'] = {k: data.pop(k) for k in list(data) if k not in known}
    data.setdefault('info', {})
    data['session'] = str(data.get('session') or '')
    return data


def _int(data: dict, name: str, where: str, default):
    value = data.get(name, default)
    if value is default:
        data[name] = default
        return
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise DatasetError(f'{where}: {name} must be a whole number, not {value!r}')
    data[name] = value
