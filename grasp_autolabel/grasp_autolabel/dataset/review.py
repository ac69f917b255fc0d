"""A person's review of a dataset's items, saved through the dataset (``grasp-autolabel review``).

Each decision is saved at once, atomically, into the item's labels file: the record keeps its
automatic grasps and gains ``review`` (the verdict, the grasps as edited, when). A save names the
version of the file it was made from (its ``etag``, a digest of the file's bytes); a file changed
on disk since then (another tool, another page) is never overwritten: :class:`ReviewConflict`.
The caller holds the dataset's lock (:meth:`GraspDataset.lock`) while it saves.
"""
from __future__ import annotations

import datetime
import hashlib

from grasp_autolabel.core.errors import DatasetError
from grasp_autolabel.core.geometry import as_grasps, rect_to_corners
from grasp_autolabel.core.session import png_size
from grasp_autolabel.dataset.labels import check_review
from grasp_autolabel.dataset.store import GraspDataset
import numpy as np

__all__ = ['ReviewConflict', 'label_etag', 'save_review', 'item_size', 'load_predictions',
           'MARKS']

MARKS = ('right', 'wrong')  # a person's mark on a detector's candidate


class ReviewConflict(DatasetError):
    """The labels file changed on disk since the page read it; nothing was written."""


def label_etag(ds: GraspDataset, index: int) -> str:
    """Return the digest of item ``index``'s labels file as it is on disk now."""
    path = ds.path / 'labels' / f'{index:06d}.json'
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except FileNotFoundError:
        raise DatasetError(f'{ds.path}: there is no item {index}') from None


def item_size(ds: GraspDataset, index: int) -> tuple[int, int]:
    """Return ``(width, height)`` of item ``index``'s colour image."""
    return png_size(ds.rgb_path(index))


def save_review(ds: GraspDataset, index: int, *, verdict: str | None, grasps, etag: str,
                candidates=None, now: datetime.datetime | None = None) -> str:
    """Save a person's decision on item ``index``; return the file's new etag.

    Raises
    ------
    ReviewConflict
        The file is not the version ``etag`` names.
    DatasetError
        No such item; a grasp outside the image, or with a non-positive size; a bad verdict.
    """
    where = f'item {index}'
    if label_etag(ds, index) != etag:
        raise ReviewConflict(f'{where}: its labels file changed on disk since it was read '
                             '(another tool or page); reload it, nothing was written')
    g = as_grasps(grasps if grasps is not None else [], name=f'{where} grasps')
    review = check_review({'verdict': verdict, 'grasps': g.tolist()}, where)
    w, h = item_size(ds, index)
    if len(g):
        corners = rect_to_corners(g).reshape(-1, 4, 2)
        centre_out = (g[:, 0] < 0) | (g[:, 0] >= w) | (g[:, 1] < 0) | (g[:, 1] >= h)
        far_out = (corners < -0.5 * max(w, h)).any(axis=(1, 2)) | (
            corners[..., 0] > 1.5 * w).any(axis=1) | (corners[..., 1] > 1.5 * h).any(axis=1)
        bad = np.flatnonzero(centre_out | far_out)
        if len(bad):
            x, y = g[bad[0], :2]
            raise DatasetError(f'{where}: grasp {int(bad[0])} at ({x:.1f}, {y:.1f}) lies outside '
                               f'the {w}x{h} image')
    label = ds.read_label(index)
    stamp = (now or datetime.datetime.now(datetime.timezone.utc)).isoformat(timespec='seconds')
    label.review = {**review, 'at': stamp}
    if candidates:
        label.review['candidates'] = _marked(candidates, where)
    ds.write_label(index, label)
    return label_etag(ds, index)


def _marked(candidates, where: str) -> list[dict]:
    """Return the detector's candidates a person marked, ``[{grasp, mark}]``, checked."""
    out = []
    for c in candidates:
        if not isinstance(c, dict) or c.get('mark') not in MARKS:
            raise DatasetError(f'{where}: a candidate mark must be one of {", ".join(MARKS)}')
        g = as_grasps([c.get('grasp')], name=f'{where} candidate')
        out.append({'grasp': np.round(g[0], 3).tolist(), 'mark': c['mark']})
    return out


def load_predictions(ds: GraspDataset, folder) -> dict[int, dict]:
    """Return ``{item: {'grasps': (K, 5) list, 'scores': [...]}}`` from a ``predict`` output.

    ``folder`` is what ``grasp-autolabel predict`` wrote over the dataset's capture sessions
    (``predictions.json``, ``SESSION/grasps/NNNNNN.json``); an item's candidates are those of its
    before-frame.

    Raises
    ------
    DatasetError
        Not a ``predict`` output, or one for other sessions than the dataset's (named).
    """
    from pathlib import Path

    from grasp_autolabel.core.session import read_json

    folder = Path(folder)
    meta = read_json(folder / 'predictions.json', what='predict output (--predictions)')
    predicted = {str(Path(p).resolve()): Path(p).name for p in meta.get('sessions') or []}
    ours = {k: src.get('session') for k, src in enumerate(ds.sources)}
    matched = {k: predicted[str(Path(p).resolve())] for k, p in ours.items()
               if p and str(Path(p).resolve()) in predicted}
    if not matched:
        raise DatasetError(f'--predictions {folder}: predicts sessions '
                           f"{', '.join(sorted(predicted.values())) or 'none'}, none of "
                           f"{ds.path}'s ({', '.join(str(p) for p in ours.values())})")
    out = {}
    for i in ds.item_indices():
        label = ds.read_label(i)
        if label.source not in matched:
            continue
        frame = label.frame_before if label.frame_before is not None else label.pick_index
        path = folder / matched[label.source] / 'grasps' / f'{frame:06d}.json'
        if path.is_file():
            rec = read_json(path, what='predicted grasps')
            out[i] = {'grasps': as_grasps(rec.get('grasps') or [], name=str(path)).tolist(),
                      'scores': [float(s) for s in rec.get('scores') or []]}
    return out
