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

__all__ = ['ReviewConflict', 'label_etag', 'save_review', 'item_size']


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
                now: datetime.datetime | None = None) -> str:
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
    ds.write_label(index, label)
    return label_etag(ds, index)
