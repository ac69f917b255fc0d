"""The grasp dataset on disk (what ``label`` and the bag exporter write, what training reads).

::

    DATASET/dataset.json        meta: format, tool version, grasp convention, jaw width, the
                                annotation settings, source sessions (with their cameras), splits
    DATASET/images/000000.png   RGB frame before the pick
    DATASET/depth/000000.png    its depth (uint16, the source's depth_scale)
    DATASET/masks/000000.png    removed object's mask, uint8 0/255
    DATASET/labels/000000.json  the item's LabelRecord (dataset/labels.py): accepted, reason,
                                pick_index, grasps [[x, y, theta, w, h]], ...
    DATASET/viz/000000.png      overlays, when asked for

An item is complete when its labels file exists: it is written last, atomically, after the
images, so a crash never leaves an item that looks complete but is not, and a rerun that
finds images without a labels file rewrites them.
"""
from __future__ import annotations

from dataclasses import dataclass
import json
import os
from pathlib import Path
import re

from grasp_autolabel import __version__
from grasp_autolabel.core.camera import CameraIntrinsics
from grasp_autolabel.core.errors import DatasetError
from grasp_autolabel.core.fsio import (check_not_input, copy_atomic, FolderLock, LOCK_NAME, MARKER,
                                       OutputError, remove_owned)
from grasp_autolabel.core.session import read_json, read_png, write_png_atomic, write_text_atomic
from grasp_autolabel.dataset.labels import LabelRecord
import numpy as np

__all__ = ['GraspDataset', 'DatasetError', 'FORMAT', 'CONVENTION', 'intrinsics_to_dict',
           'intrinsics_from_dict']

FORMAT = 'grasp_autolabel.dataset'
FORMAT_VERSION = 1
CONVENTION = ('grasp = [x, y, theta, w, h] in RGB pixels: centre (x, y); theta = closing '
              'direction from image +x towards +y, radians in [-pi/2, pi/2); w = opening along '
              "the closing direction; h = jaw size along the object's spine")
_ITEM_RE = re.compile(r'^(\d{6})\.json$')
# What a dataset's own files look like (``--overwrite`` removes these and nothing else).
OWNED = (r'dataset\.json', r'(images|depth|masks|viz)/\d{6}\.png', r'labels/\d{6}\.json',
         r'(images|depth|masks|viz)/\.\d{6}\.png\.\w+\.tmp', r'labels/\.\d{6}\.json\.\w+\.tmp',
         r'\.dataset\.json\.\w+\.tmp')


def intrinsics_to_dict(i: CameraIntrinsics, depth_scale: float) -> dict:
    return {'width': i.width, 'height': i.height, 'fx': i.fx, 'fy': i.fy, 'cx': i.cx, 'cy': i.cy,
            'distortion_model': i.distortion_model, 'distortion': list(i.distortion),
            'depth_scale': depth_scale}


def intrinsics_from_dict(d: dict) -> tuple[CameraIntrinsics, float]:
    return (CameraIntrinsics(int(d['width']), int(d['height']), float(d['fx']), float(d['fy']),
                             float(d['cx']),
                             float(d['cy']), d.get('distortion_model', 'plumb_bob'),
                             tuple(d.get('distortion', ()))),
            float(d.get('depth_scale', 0.001)))


@dataclass
class GraspDataset:
    """A grasp dataset folder: its ``dataset.json`` (``meta``) and its items.

    The only writer of its files: items through :meth:`write_item` / :meth:`write_label`
    (a :class:`LabelRecord` each), sources through :meth:`add_source`, :meth:`update_source` and
    :meth:`finish_source`, the rest of ``meta`` through :meth:`save_meta`. Open with
    :meth:`open` or :meth:`create`; hold :meth:`lock` while writing.
    """

    path: Path
    meta: dict

    # ---------------------------------------------------------------- opening
    @classmethod
    def open(cls, path) -> 'GraspDataset':  # noqa: A003
        path = Path(path)
        meta_path = path / 'dataset.json'
        if not meta_path.is_file():
            raise DatasetError(f'{path}: not a grasp dataset (no dataset.json)')
        meta = read_json(meta_path)
        if meta.get('format') != FORMAT:
            raise DatasetError(
                f"{meta_path}: format is {meta.get('format')!r}, expected {FORMAT!r}")
        if int(meta.get('format_version', 0)) > FORMAT_VERSION:
            raise DatasetError(f'{meta_path}: written by a newer grasp_autolabel (format version '
                               f"{meta.get('format_version')}); upgrade to read it")
        return cls(path, meta)

    @classmethod
    def create(cls, path, *, jaw_width_m: float, settings: dict, append: bool = False,
               overwrite: bool = False, inputs=()) -> 'GraspDataset':
        """Start a new dataset in ``path``, or continue the one there.

        Raises
        ------
        DatasetError
            ``path`` already holds a dataset and neither ``append`` nor ``overwrite`` was given,
            or ``append`` was given but the dataset was made with another jaw width or settings;
            or ``path`` holds other files, or is, holds or lies inside one of ``inputs``.
            ``overwrite`` removes only the dataset's own files (nothing else in ``path``).
        """
        path = Path(path)
        try:
            check_not_input(path, inputs)
        except OutputError as exc:
            raise DatasetError(str(exc)) from None
        if (path / 'dataset.json').exists():
            existing = cls.open(path)  # the dataset.json of this format is the tool's marker
            if overwrite:
                remove_owned(path, OWNED)
            elif append:
                existing.check_same(jaw_width_m, settings)
                return existing
            else:
                raise DatasetError(f'{path} already holds a dataset '
                                   f'({len(existing.item_indices())} items); pass --append to '
                                   'add to it or --overwrite to replace it')
        elif path.exists() and any(e.name not in (MARKER, LOCK_NAME) for e in path.iterdir()):
            raise DatasetError(f'{path} exists and is not empty (and holds no dataset.json); '
                               'choose another folder')
        meta = {'format': FORMAT, 'format_version': FORMAT_VERSION, 'tool_version': __version__,
                'grasp_convention': CONVENTION, 'jaw_width_m': jaw_width_m, 'settings': settings,
                'sources': [], 'splits': {}}
        path.mkdir(parents=True, exist_ok=True)
        ds = cls(path, meta)
        ds.save_meta()
        return ds

    def check_same(self, jaw_width_m: float, settings: dict) -> None:
        """Refuse to add items made with another jaw width or other settings (DatasetError)."""
        if abs(float(self.meta.get('jaw_width_m', -1)) - jaw_width_m) > 1e-9:
            raise DatasetError(f'{self.path}: was labelled with jaw_width_m='
                               f"{self.meta.get('jaw_width_m')}, not {jaw_width_m}; label into a "
                               'new dataset')
        if self.meta.get('settings') != settings:
            mine = self.meta.get('settings') or {}
            changed = sorted(k for k in set(settings) | set(mine)
                             if settings.get(k) != mine.get(k))
            raise DatasetError(f'{self.path}: was labelled with other settings '
                               f"({', '.join(changed)}); label into a new dataset")

    def lock(self) -> FolderLock:
        """Hold the dataset for one writer at a time; a second writer gets a one-line error."""
        return FolderLock(self.path)

    def resolve(self, index: int, label: LabelRecord | None, field: str, default: str) -> Path:
        """Return the file a labels file names in ``field``, which must lie inside the dataset."""
        rel = (getattr(label, field) if label is not None else '') or default
        if not isinstance(rel, str):
            raise DatasetError(f'{self.path}/labels/{index:06d}.json: {field}: expected a path, '
                               f'got {type(rel).__name__}')
        root = self.path.resolve()
        target = (root / rel).resolve()
        if root not in target.parents:
            raise DatasetError(f'{self.path}/labels/{index:06d}.json: {field}: {rel!r} lies '
                               'outside the dataset')
        return target

    def save_meta(self) -> None:
        write_text_atomic(self.path / 'dataset.json', json.dumps(self.meta, indent=1) + '\n')

    # ---------------------------------------------------------------- items
    def item_indices(self) -> list[int]:
        """Return the indices of the complete items (those with a labels file), sorted."""
        folder = self.path / 'labels'
        if not folder.is_dir():
            return []
        return sorted(int(m.group(1)) for name in os.listdir(folder) if (m := _ITEM_RE.match(
            name)))

    def next_index(self) -> int:
        idx = self.item_indices()
        return idx[-1] + 1 if idx else 0

    @property
    def sources(self) -> list[dict]:
        """Return copies of the source records (sessions, bags, imports), in order."""
        return [dict(s) for s in self.meta.get('sources') or []]

    def find_source(self, key: str, value) -> int | None:
        """Return the index of the last source whose ``key`` is ``value`` (None: none)."""
        found = [i for i, s in enumerate(self.meta.get('sources') or []) if s.get(key) == value]
        return found[-1] if found else None

    def add_source(self, record: dict) -> int:
        """Record a source (a session or a bag); returns its index in ``meta['sources']``.

        Saved at once; on OSError nothing is recorded.
        """
        self.meta['sources'].append(dict(record))
        try:
            self.save_meta()
        except OSError:
            self.meta['sources'].pop()
            raise
        return len(self.meta['sources']) - 1

    def update_source(self, index: int, **fields) -> None:
        """Change fields of source ``index`` (saved with the next :meth:`save_meta`)."""
        self.meta['sources'][index].update(fields)

    def finish_source(self, index: int, **fields) -> None:
        """Mark source ``index`` complete (with ``fields``) and save ``dataset.json``."""
        self.update_source(index, complete=True, **fields)
        self.save_meta()

    def write_item(self, index: int, *, rgb_png: Path | None = None, rgb: np.ndarray | None = None,
                   depth_png: Path | None = None, depth: np.ndarray | None = None,
                   mask: np.ndarray,
                   label: LabelRecord) -> None:
        """Write one item; the images first, the labels file last.

        Images given as existing PNG files are copied byte for byte (no decode, no re-encode).
        """
        name = f'{index:06d}.png'
        for sub, png, arr in (('images', rgb_png, rgb), ('depth', depth_png, depth)):
            target = self.path / sub / name
            if png is not None:
                copy_atomic(png, target)
            elif arr is not None:
                write_png_atomic(target, arr)
            else:
                raise ValueError(f'write_item: no {sub} image for item {index}')
        write_png_atomic(self.path / 'masks' / name,
                         np.asarray(mask, dtype=bool).astype(np.uint8) * 255)
        label.image, label.depth, label.mask = f'images/{name}', f'depth/{name}', f'masks/{name}'
        self.write_label(index, label)

    def read_label(self, index: int) -> LabelRecord:
        """Return item ``index``'s labels, checked (DatasetError naming the file)."""
        path = self.path / 'labels' / f'{index:06d}.json'
        return LabelRecord.from_json(read_json(path, what='labels file'), where=str(path))

    def write_label(self, index: int, label: LabelRecord) -> None:
        """Write item ``index``'s labels file (atomically; its images stay)."""
        write_text_atomic(self.path / 'labels' / f'{index:06d}.json',
                          json.dumps(label.to_json(), indent=1) + '\n')

    def depth_path(self, index: int, label: LabelRecord | None = None) -> Path:
        """Item ``index``'s depth PNG (an imported dataset's labels file may name another)."""
        return self.resolve(index, label, 'depth', f'depth/{index:06d}.png')

    def has_depth(self, index: int, label: LabelRecord | None = None) -> bool:
        return self.depth_path(index, label).is_file()

    def read_depth(self, index: int, label: LabelRecord | None = None) -> np.ndarray:
        """Item ``index``'s raw depth ``(H, W)`` uint16, in units of its camera's depth scale."""
        return read_png(self.depth_path(index, label), kind='depth')

    def read_mask(self, index: int, label: LabelRecord | None = None) -> np.ndarray:
        path = self.resolve(index, label, 'mask', f'masks/{index:06d}.png')
        return read_png(path, kind='mask') > 0

    def rgb_path(self, index: int, label: LabelRecord | None = None) -> Path:
        return self.resolve(index, label, 'image', f'images/{index:06d}.png')

    def read_rgb(self, index: int, label: LabelRecord | None = None) -> np.ndarray:
        return read_png(self.rgb_path(index, label), kind='rgb')

    def source_of(self, index: int, label: LabelRecord | None = None) -> dict:
        """Return the source record (session or bag) item ``index`` came from.

        Raises
        ------
        DatasetError
            The labels file names a source the dataset does not have.
        """
        label = self.read_label(index) if label is None else label
        sources = self.meta.get('sources') or []
        k = label.source
        if not 0 <= k < len(sources):
            raise DatasetError(f"{self.path / 'labels' / f'{index:06d}.json'}: source {k!r} is "
                               f"not one of the dataset's {len(sources)} sources")
        return sources[k]

    def intrinsics(self, index: int,
                   label: LabelRecord | None = None) -> tuple[CameraIntrinsics, float] | None:
        """Return ``(intrinsics, depth_scale)`` of item ``index``'s camera.

        None when its source recorded no camera.
        """
        camera = self.source_of(index, label).get('camera')
        return intrinsics_from_dict(camera) if camera else None

    def read_depth_m(self, index: int, label: LabelRecord | None = None) -> np.ndarray:
        """Return item ``index``'s depth in metres ``(H, W)`` float32 (0 = invalid).

        Scaled with the depth scale of its own source's camera (datasets may mix cameras).
        """
        cam = self.intrinsics(index, label)
        scale = cam[1] if cam else 0.001
        return self.read_depth(index, label).astype(np.float32) * np.float32(scale)
