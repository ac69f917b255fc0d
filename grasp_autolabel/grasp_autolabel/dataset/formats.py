"""Cornell and Jacquard grasp formats, both ways.

So labels train other grasp networks (GG-CNN, GR-ConvNet) and their data trains ours.

Cornell (Jiang et al. 2011), one folder::

    pcdNNNNr.png      RGB
    pcdNNNNd.tiff     depth, float32 metres (as the GG-CNN tooling converts it)
    pcdNNNNcpos.txt   positive rectangles: four lines "x y" per rectangle, Cornell corner order
                      (p0 -> p1 along the closing direction, p1 -> p2 along a jaw); NaN = skip

Jacquard (Depierre et al. 2018), one folder::

    NNNNNN_RGB.png, NNNNNN_perfect_depth.tiff (float32 metres), NNNNNN_mask.png,
    NNNNNN_grasps.txt  one grasp per line "x;y;theta_deg;opening;jaw"

Jacquard's ``theta_deg`` turns from image +x towards +y, as ``theta`` here (the GG-CNN reader
negates it into its own y-up frame), and ``opening``/``jaw`` are ``w``/``h``; so the conversion is
a change of unit only.
"""
from __future__ import annotations

import math
from pathlib import Path
import re

import cv2
from grasp_autolabel.core.fsio import (claim_output, copy_atomic, FolderLock, OutputError,
                                       write_atomic, write_text_atomic)
from grasp_autolabel.core.geometry import (as_grasps, corners_to_rect, normalize_angle,
                                           rect_to_corners)
from grasp_autolabel.core.session import read_png
from grasp_autolabel.dataset.labels import LabelRecord
from grasp_autolabel.dataset.store import DatasetError, GraspDataset
import numpy as np

__all__ = ['export_cornell', 'export_jacquard', 'import_cornell', 'import_jacquard',
           'read_cornell_rectangles']


def _depth_m(ds: GraspDataset, index: int, label: LabelRecord) -> np.ndarray | None:
    return ds.read_depth_m(index, label) if ds.has_depth(index, label) else None


def _items(ds: GraspDataset, accepted_only: bool):
    for i in ds.item_indices():
        label = ds.read_label(i)
        if accepted_only and not label.accepted:
            continue
        yield i, label


# What each export writes (``--overwrite`` removes these and nothing else).
_OWNED = {'cornell': (r'pcd\d{4,}(r\.png|d\.tiff|cpos\.txt|cneg\.txt)', r'\.pcd.*\.tmp'),
          'jacquard': (r'\d{6,}_(RGB\.png|perfect_depth\.tiff|mask\.png|grasps\.txt)',
                       r'\.\d{6,}_.*\.tmp')}


def _write_tiff(path: Path, depth: np.ndarray) -> None:
    ok, buf = cv2.imencode('.tiff', depth)
    if not ok:
        raise DatasetError(f'{path}: could not encode depth as TIFF')
    write_atomic(path, lambda f: f.write(buf.tobytes()))


def _export(dataset, out, write_sample, *, kind: str, accepted_only: bool,
            overwrite: bool) -> int:
    """Call ``write_sample(out, index, label, rgb_path, depth_m, dataset)`` for every item."""
    ds = GraspDataset.open(dataset)
    try:
        out, earlier = claim_output(out, kind=f'{kind} export', inputs=[ds.path],
                                    overwrite=overwrite, owned=_OWNED[kind])
    except OutputError as exc:
        raise DatasetError(str(exc)) from None
    if earlier:
        raise DatasetError(f'{out} holds an earlier {kind} export; choose another --out or pass '
                           '--overwrite to replace it')
    n = 0
    with FolderLock(out):
        for i, label in _items(ds, accepted_only):
            write_sample(out, i, label, ds.rgb_path(i, label), _depth_m(ds, i, label), ds)
            n += 1
    return n


def _cornell_sample(out: Path, i: int, label: LabelRecord, rgb_path: Path, depth, ds) -> None:
    stem = f'pcd{i:04d}'
    copy_atomic(rgb_path, out / f'{stem}r.png')
    if depth is not None:
        _write_tiff(out / f'{stem}d.tiff', depth)
    corners = rect_to_corners(label.grasps)
    lines = [f'{x:.3f} {y:.3f}' for rect in corners.reshape(-1, 4, 2) for x, y in rect]
    write_text_atomic(out / f'{stem}cpos.txt', '\n'.join(lines) + ('\n' if lines else ''))
    write_text_atomic(out / f'{stem}cneg.txt', '')


def _jacquard_sample(out: Path, i: int, label: LabelRecord, rgb_path: Path, depth, ds) -> None:
    stem = f'{i:06d}'
    copy_atomic(rgb_path, out / f'{stem}_RGB.png')
    if depth is not None:
        _write_tiff(out / f'{stem}_perfect_depth.tiff', depth)
    mask = ds.resolve(i, label, 'mask', f'masks/{i:06d}.png')
    if mask.is_file():
        copy_atomic(mask, out / f'{stem}_mask.png')
    lines = [f'{x:.3f};{y:.3f};{math.degrees(t):.4f};{w:.3f};{h:.3f}'
             for x, y, t, w, h in label.grasps]
    write_text_atomic(out / f'{stem}_grasps.txt', '\n'.join(lines) + ('\n' if lines else ''))


def export_cornell(dataset, out, *, accepted_only: bool = True, overwrite: bool = False) -> int:
    """Write the dataset's items as a Cornell folder; returns the number of samples."""
    return _export(dataset, out, _cornell_sample, kind='cornell', accepted_only=accepted_only,
                   overwrite=overwrite)


def export_jacquard(dataset, out, *, accepted_only: bool = True, overwrite: bool = False) -> int:
    """Write the dataset's items as a Jacquard folder; returns the number of samples."""
    return _export(dataset, out, _jacquard_sample, kind='jacquard', accepted_only=accepted_only,
                   overwrite=overwrite)


def read_cornell_rectangles(path) -> np.ndarray:
    """Grasps ``(N, 5)`` from a Cornell ``cpos``/``cneg`` file (rectangles with NaN skipped).

    Raises
    ------
    DatasetError
        The file is missing, or its number of corners is not a multiple of four, or a line is
        not two numbers.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f'{path}: file not found')
    values = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            if len(parts) != 2:
                raise ValueError
            values.append([float(parts[0]), float(parts[1])])
        except ValueError:
            raise DatasetError(
                f"{path}:{lineno}: expected two numbers 'x y', got {line!r}") from None
    if len(values) % 4:
        raise DatasetError(
            f'{path}: {len(values)} corners is not a whole number of rectangles (4 each)')
    pts = np.asarray(values, dtype=np.float64).reshape(-1, 4, 2)
    pts = pts[np.all(np.isfinite(pts), axis=(1, 2))]
    return corners_to_rect(pts) if len(pts) else np.zeros((0, 5))


def _inside(folder: Path, path: Path) -> Path:
    """Return ``path`` resolved; it must stay inside ``folder`` (a symlink may not lead out)."""
    target = path.resolve()
    if folder.resolve() not in target.parents:
        raise DatasetError(f'{path}: leads outside {folder}; refusing to read it')
    return target


def _import(samples, out: Path, *, source_name: str, overwrite: bool,
            jaw_width_m: float = 0.0) -> int:
    ds = GraspDataset.create(out, jaw_width_m=jaw_width_m, settings={'imported_from': source_name},
                             overwrite=overwrite, inputs=[source_name])
    with ds.lock():
        return _import_samples(ds, samples, source_name)


def _import_samples(ds: GraspDataset, samples, source_name: str) -> int:
    folder = Path(source_name)
    src = ds.add_source({'session': source_name, 'name': Path(source_name).name,
                         'first_item': ds.next_index(),
                         'steps': 0, 'complete': False, 'camera': None})
    index = first = ds.next_index()
    for stem, rgb_path, depth_path, grasps in samples:
        rgb = read_png(_inside(folder, rgb_path), kind='rgb')
        depth_u16 = None
        if depth_path is not None and depth_path.is_file():
            d = cv2.imread(str(_inside(folder, depth_path)), cv2.IMREAD_UNCHANGED)
            if d is None or d.ndim != 2:
                raise DatasetError(f'{depth_path}: not a readable single-channel depth TIFF')
            d = np.where(np.isfinite(d) & (d > 0), d, 0).astype(np.float64)
            depth_u16 = np.clip(np.rint(d / 0.001), 0, 65535).astype(np.uint16)
        if depth_u16 is None:
            depth_u16 = np.zeros(rgb.shape[:2], np.uint16)
        g = as_grasps(grasps)
        g[:, 2] = normalize_angle(g[:, 2])
        label = LabelRecord(accepted=True, pick_index=index - first, session=stem, source=src,
                            grasps=np.round(g, 4), scores=np.ones(len(g)),
                            info={'imported': stem})
        ds.write_item(index, rgb=rgb, depth=depth_u16, mask=np.zeros(rgb.shape[:2], bool),
                      label=label)
        index += 1
        ds.update_source(src, steps=index - first)
    ds.finish_source(src)
    return index - first


def import_cornell(folder, out, *, overwrite: bool = False) -> int:
    """Import a Cornell folder into a grasp dataset.

    The folder holds ``pcdNNNNr.png`` + ``pcdNNNNcpos.txt``, optionally ``pcdNNNNd.tiff``; depth
    is stored as uint16 millimetres; there are no masks.
    """
    folder = Path(folder)
    stems = sorted(m.group(1) for p in folder.glob('pcd*cpos.txt') if (m := re.match(
        r'(pcd\d+)cpos\.txt$', p.name)))
    if not stems:
        raise DatasetError(f'{folder}: no Cornell samples (pcdNNNNcpos.txt) found')
    samples = [(s, folder / f'{s}r.png', folder / f'{s}d.tiff',
                read_cornell_rectangles(_inside(folder, folder / f'{s}cpos.txt')))
               for s in stems]
    return _import(samples, out, source_name=str(folder.resolve()), overwrite=overwrite)


def _read_jacquard(path: Path) -> np.ndarray:
    rows = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            x, y, t, w, h = (float(v) for v in line.strip().rstrip(';').split(';'))
        except ValueError:
            raise DatasetError(
                f"{path}:{lineno}: expected 'x;y;theta_deg;opening;jaw', got {line!r}") from None
        rows.append([x, y, math.radians(t), w, h])
    return np.asarray(rows, dtype=np.float64).reshape(-1, 5)


def import_jacquard(folder, out, *, overwrite: bool = False) -> int:
    """Import a Jacquard folder (``*_RGB.png`` + ``*_grasps.txt``, ``*_perfect_depth.tiff``)."""
    folder = Path(folder)
    stems = sorted(p.name[: -len('_grasps.txt')] for p in folder.glob('*_grasps.txt'))
    if not stems:
        raise DatasetError(f'{folder}: no Jacquard samples (*_grasps.txt) found')
    samples = [(s, folder / f'{s}_RGB.png', folder / f'{s}_perfect_depth.tiff',
                _read_jacquard(_inside(folder, folder / f'{s}_grasps.txt')))
               for s in stems]
    return _import(samples, out, source_name=str(folder.resolve()), overwrite=overwrite)
