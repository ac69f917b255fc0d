"""``grasp-autolabel augment``: random shifts and rotations of a dataset's accepted items.

As the paper (after Chu et al. 2018): each accepted item gives ``factor`` items, the first the
item itself, the others rotated about the image centre by a random angle and shifted by a
random offset. The RGB image (bilinear), the depth and the mask (nearest, never a blend of two
depths) and the grasps move with exactly the same affine map: a grasp's centre is mapped, its
closing direction is rotated, its opening and jaw size are kept (no scaling). A grasp any of
whose corners leaves the image is dropped; a copy that would keep no grasp is drawn again.
Pixels that come from outside the image are 0 (black, invalid depth, not the object).

Item ``j * factor + c`` is copy ``c`` of the ``j``-th accepted input item, drawn from a random
generator seeded by ``(seed, j, c)``: the output is the same for a given seed whatever ran
before, and a rerun writes only the items that are missing. Rejected items are not copied
(training reads accepted items only). 3-D poses are dropped (a warped image has no camera).
"""
from __future__ import annotations

from dataclasses import replace
import math
from pathlib import Path
import time

import cv2
from grasp_autolabel.core.fsio import check_not_input, OutputError
from grasp_autolabel.core.geometry import as_grasps, normalize_angle, rect_to_corners
from grasp_autolabel.dataset.labels import LabelRecord
from grasp_autolabel.dataset.splits import assign_splits, origin_of
from grasp_autolabel.dataset.store import DatasetError, GraspDataset
import numpy as np

__all__ = ['random_transform', 'transform_grasps', 'augment_item', 'augment_dataset']

MAX_DRAWS = 20


def random_transform(rng: np.random.Generator, width: int, height: int, *, max_shift_px: float,
                     max_rotation_deg: float) -> np.ndarray:
    """Return a 2x3 affine map.

    Rotation about the image centre by U(-r, r) degrees, then a shift of U(-s, s) pixels in x and
    in y.
    """
    angle = rng.uniform(-max_rotation_deg, max_rotation_deg)
    m = cv2.getRotationMatrix2D(((width - 1) / 2.0, (height - 1) / 2.0), angle, 1.0)
    m[:, 2] += rng.uniform(-max_shift_px, max_shift_px, 2)
    return m


def transform_grasps(grasps, matrix: np.ndarray, width: int,
                     height: int) -> tuple[np.ndarray, np.ndarray]:
    """Grasps moved by the rigid 2x3 ``matrix``.

    Returns ``(grasps, kept)`` where ``kept`` flags the input grasps whose four corners stay inside
    the ``width`` x ``height`` image.
    """
    g = as_grasps(grasps)
    m = np.asarray(matrix, dtype=np.float64)
    out = g.copy()
    out[:, :2] = g[:, :2] @ m[:, :2].T + m[:, 2]
    d = np.stack([np.cos(g[:, 2]), np.sin(g[:, 2])], axis=1) @ m[:, :2].T
    out[:, 2] = normalize_angle(np.arctan2(d[:, 1], d[:, 0]))
    corners = rect_to_corners(out) if len(out) else np.zeros((0, 4, 2))
    kept = np.all((corners[..., 0] >= 0) & (corners[..., 0] <= width - 1)
                  & (corners[..., 1] >= 0) & (corners[..., 1] <= height - 1), axis=1)
    return out[kept], kept


def augment_item(rgb, depth, mask, grasps, matrix):
    """Warp one item with ``matrix``; returns ``(rgb, depth, mask, grasps, kept)``."""
    h, w = mask.shape[:2]
    rgb2 = cv2.warpAffine(rgb, matrix, (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    depth2 = cv2.warpAffine(depth, matrix, (w, h), flags=cv2.INTER_NEAREST,
                            borderMode=cv2.BORDER_CONSTANT,
                            borderValue=0)
    mask2 = cv2.warpAffine(mask.astype(np.uint8), matrix, (w, h), flags=cv2.INTER_NEAREST,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0) > 0
    g2, kept = transform_grasps(grasps, matrix, w, h)
    return rgb2, depth2, mask2, g2, kept


def augment_dataset(source, out, *, factor: int = 100, seed: int = 0, max_shift_px: float = 50.0,
                    max_rotation_deg: float = 180.0, overwrite: bool = False,
                    progress: bool = True) -> dict:
    """Write the augmented copy of ``source`` to ``out``; returns counts.

    Raises
    ------
    DatasetError
        ``source`` is not a dataset or has no accepted item; ``out`` holds another dataset.
    """
    if factor < 1:
        raise DatasetError(f'--factor: {factor} must be at least 1')
    src = GraspDataset.open(source)
    accepted = [i for i in src.item_indices() if src.read_label(i).accepted]
    if not accepted:
        raise DatasetError(f'{source}: has no accepted item to augment')
    params = {'dataset': str(Path(source).resolve()), 'factor': factor, 'seed': seed,
              'max_shift_px': max_shift_px,
              'max_rotation_deg': max_rotation_deg, 'items': len(accepted)}
    ds = _open_output(src, Path(out), params, overwrite)
    with ds.lock():
        return _augment_all(src, ds, accepted, params, progress)


def _augment_all(src, ds, accepted, params, progress) -> dict:
    from tqdm import tqdm

    factor, seed = params['factor'], params['seed']
    max_shift_px, max_rotation_deg = params['max_shift_px'], params['max_rotation_deg']
    done = set(ds.item_indices())
    counts = {'items': 0, 'skipped': len(done), 'grasps_in': 0, 'grasps_out': 0,
              'grasps_dropped': 0, 'copies_without_grasps': 0}
    t0 = time.perf_counter()
    with tqdm(total=len(accepted) * factor, initial=len(done), unit='item', desc='augment',
              disable=not progress, dynamic_ncols=True) as bar:
        for j, i in enumerate(accepted):
            todo = [c for c in range(factor) if j * factor + c not in done]
            if todo:
                _augment_item(src, ds, i, j, todo, factor, seed, (max_shift_px, max_rotation_deg),
                              counts, bar)
    assign_splits(ds, test_fraction=(src.meta.get('splits') or {}).get('test_fraction'),
                  seed=(src.meta.get('splits') or {}).get('seed'))
    counts['seconds'] = time.perf_counter() - t0
    return counts


def _augment_item(src, ds, i, j, copies, factor, seed, limits, counts, bar) -> None:
    """Write copies ``copies`` of accepted item ``i`` (the ``j``-th) into ``ds``."""
    label = src.read_label(i)
    grasps = label.grasps
    rgb, depth, mask = src.read_rgb(i), src.read_depth(i, label), src.read_mask(i)
    h, w = mask.shape
    origin = dict(zip(('source', 'pick_index'), origin_of(src, label, i)))
    for c in copies:
        rng = np.random.default_rng([seed, j, c])
        copy = _draw_copy(rng, c, rgb, depth, mask, grasps, *limits)
        bar.update()
        if copy is None:
            counts['copies_without_grasps'] += 1
            continue
        m, out_rgb, out_depth, out_mask, out_g, kept = copy
        record = _copy_label(label, m, out_g, kept, grasps, origin, i, c, w, h)
        ds.write_item(j * factor + c, rgb=out_rgb, depth=out_depth, mask=out_mask, label=record)
        counts['items'] += 1
        counts['grasps_in'] += len(grasps)
        counts['grasps_out'] += len(out_g)
        counts['grasps_dropped'] += len(grasps) - len(out_g)


def _open_output(src: GraspDataset, out: Path, params: dict, overwrite: bool) -> GraspDataset:
    """Return the output dataset: new, or the same augmentation again (resumed)."""
    try:
        check_not_input(out, [src.path])
    except OutputError as exc:
        raise DatasetError(str(exc)) from None
    if (out / 'dataset.json').exists() and not overwrite:
        existing = GraspDataset.open(out)
        if 'augmentation' not in existing.meta and not existing.item_indices():
            existing.meta['augmentation'] = params  # a crash between creating and recording
        if existing.meta.get('augmentation') != params:
            raise DatasetError(f'{out} already holds a dataset ({len(existing.item_indices())} '
                               'items) that is not this augmentation; pass --overwrite to replace '
                               'it')
        return existing
    ds = GraspDataset.create(out, jaw_width_m=src.meta['jaw_width_m'],
                             settings=src.meta.get('settings', {}), overwrite=overwrite,
                             inputs=[src.path])
    ds.meta['sources'] = src.meta.get('sources', [])
    ds.meta['augmentation'] = params
    ds.save_meta()
    return ds


def _draw_copy(rng, c: int, rgb, depth, mask, grasps, max_shift_px: float,
               max_rotation_deg: float):
    """Copy ``c`` of an item.

    ``(matrix, rgb, depth, mask, grasps, kept)`` (copy 0 untouched), or None when no draw keeps a
    grasp in the image.
    """
    h, w = mask.shape
    if c == 0:
        return np.array([[1.0, 0, 0],
                         [0, 1.0, 0]]), rgb, depth, mask, grasps, np.ones(len(grasps), bool)
    for _ in range(MAX_DRAWS):
        m = random_transform(rng, w, h, max_shift_px=max_shift_px,
                             max_rotation_deg=max_rotation_deg)
        out_rgb, out_depth, out_mask, out_g, kept = augment_item(rgb, depth, mask, grasps, m)
        if kept.any() or not len(grasps):
            return m, out_rgb, out_depth, out_mask, out_g, kept
    return None


def _copy_label(label: LabelRecord, m, out_g, kept, grasps, origin: dict, i: int, c: int,
                w: int, h: int) -> LabelRecord:
    """Return the labels record of a transformed copy: grasps, later grasps and spine moved."""
    later = label.later_grasps
    if later is not None and len(later):
        moved, _ = transform_grasps(later, m, w, h)
        later = np.round(moved, 3)
    return replace(
        label, grasps=np.round(out_g, 3), scores=np.round(label.scores[kept], 4), poses=None,
        spine=_move_points(label.spine, m), origin=origin, later_grasps=later,
        image='', depth='', mask='',
        augmentation={'from_item': i, 'copy': c, 'matrix': np.round(m, 6).tolist(),
                      'rotation_deg': round(math.degrees(math.atan2(m[1, 0], m[0, 0])), 3)})


def _move_points(points, m):
    if points is None:
        return None
    p = np.asarray(points, dtype=float)
    return np.round(p @ m[:, :2].T + m[:, 2], 2)
