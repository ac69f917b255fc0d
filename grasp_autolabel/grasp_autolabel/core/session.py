"""Capture sessions on disk (the layout the capture node writes and ``label`` reads).

::

    SESSION/camera_info.yaml   camera_calibration_parsers YAML + depth_scale (m per unit)
    SESSION/rgb/000000.png     8-bit colour, frame k
    SESSION/depth/000000.png   uint16 depth aligned to rgb, 0 = invalid
    SESSION/stamps.csv         optional: ``frame,stamp_ns`` per frame (the capture node's)

Files are written atomically (to a temporary name in the same folder, then renamed), so a
crash never leaves a partial frame, and a frame counts only when both its images exist.
"""
from __future__ import annotations

from dataclasses import dataclass
import os
from pathlib import Path
import re

import cv2
from grasp_autolabel.core.camera import CameraIntrinsics
from grasp_autolabel.core.errors import SessionError
from grasp_autolabel.core.fsio import write_atomic, write_text_atomic
from grasp_autolabel.core.imageheader import check_pixels, encoded_size, PNG_SIGNATURE
import numpy as np
import yaml

__all__ = ['write_atomic', 'expand_sessions', 'Session', 'SessionError', 'read_camera_info_yaml',
           'write_camera_info_yaml', 'write_png_atomic', 'read_png', 'write_text_atomic',
           'FRAME_NAME', 'png_size', 'read_json', 'append_stamp', 'read_stamps']

FRAME_NAME = '{:06d}.png'
_FRAME_RE = re.compile(r'^(\d{6})\.png$')


# --------------------------------------------------------------------------------------------
# Atomic file writing and checked reading
# --------------------------------------------------------------------------------------------
def write_png_atomic(path, image: np.ndarray, *, rgb: bool = True, compression: int = 1) -> None:
    """Write an image as PNG atomically.

    Parameters
    ----------
    path : path-like
    image : ndarray
        ``(H, W, 3)`` uint8 RGB (converted to PNG's byte order here), ``(H, W)`` uint8 or
        uint16 single channel.
    rgb : bool
        The colour image's channel order is RGB (the project's convention everywhere).
    compression : int
        zlib level 0-9; 1 is fast and only slightly larger.
    """
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 3 and rgb:
        a = a[:, :, ::-1]
    ok, buf = cv2.imencode('.png', np.ascontiguousarray(a),
                           [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:
        raise SessionError(
            f'{path}: could not encode image of shape {a.shape} and dtype {a.dtype} as PNG')
    write_atomic(Path(path), lambda f: f.write(buf.tobytes()))


def read_png(path, *, kind: str) -> np.ndarray:
    """Read a session PNG and check it is what ``kind`` says.

    Parameters
    ----------
    kind : {"rgb", "depth", "mask"}
        ``rgb``: 8-bit colour, returned as ``(H, W, 3)`` uint8 RGB. ``depth``: 16-bit single
        channel, ``(H, W)`` uint16. ``mask``: 8-bit single channel, ``(H, W)`` uint8.

    Raises
    ------
    SessionError
        Naming the file: missing, unreadable, or of the wrong type.
    """
    path = Path(path)
    if not path.is_file():
        raise SessionError(f'{path}: file not found')
    data = np.fromfile(path, dtype=np.uint8)
    size = encoded_size(data[:64].tobytes()) if data.size else None
    if size is None:
        raise SessionError(f'{path}: not a PNG file')
    try:
        check_pixels(*size, str(path))
    except ValueError as exc:
        raise SessionError(str(exc)) from None
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None or img.shape[:2] != size[::-1]:
        raise SessionError(f'{path}: not a readable image (truncated or corrupt PNG?)')
    if kind == 'rgb':
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] not in (3, 4):
            raise SessionError(
                f'{path}: expected 8-bit colour, got {img.dtype} with shape {img.shape}')
        return np.ascontiguousarray(img[:, :, 2::-1])
    if kind == 'depth':
        if img.dtype != np.uint16 or img.ndim != 2:
            raise SessionError(
                f'{path}: expected 16-bit single-channel depth, got {img.dtype} with shape '
                f'{img.shape}')
        return img
    if kind == 'mask':
        if img.dtype != np.uint8 or img.ndim != 2:
            raise SessionError(
                f'{path}: expected 8-bit single-channel mask, got {img.dtype} with shape '
                f'{img.shape}')
        return img
    raise ValueError(f"kind: expected 'rgb', 'depth' or 'mask', got {kind!r}")


def read_json(path, *, what: str = 'file', kind: type = dict):
    """Read a JSON file holding a ``kind`` (an object unless said).

    A missing, malformed or other-shaped one raises SessionError naming it.
    """
    import json

    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise SessionError(f'{path}: {what} not found') from None
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        raise SessionError(f'{path}: not valid JSON ({exc})') from None
    if not isinstance(data, kind):
        raise SessionError(f'{path}: expected a JSON {"object" if kind is dict else kind.__name__}'
                           f', got {type(data).__name__}')
    return data


def png_size(path) -> tuple[int, int]:
    """``(width, height)`` of a PNG from its header, without decoding it.

    Raises
    ------
    SessionError
        The file is missing or is not a PNG.
    """
    path = Path(path)
    try:
        with open(path, 'rb') as f:
            head = f.read(24)
    except FileNotFoundError:
        raise SessionError(f'{path}: file not found') from None
    size = encoded_size(head) if head[:8] == PNG_SIGNATURE else None
    if size is None:
        raise SessionError(f'{path}: not a PNG file')
    return size


# --------------------------------------------------------------------------------------------
# camera_info.yaml (camera_calibration_parsers format + depth_scale)
# --------------------------------------------------------------------------------------------
def _matrix(rows: int, cols: int, data) -> dict:
    return {'rows': rows, 'cols': cols, 'data': [float(v) for v in data]}


def write_camera_info_yaml(path, intrinsics: CameraIntrinsics, *, depth_scale: float,
                           camera_name: str = 'camera') -> None:
    """Write ``camera_info.yaml`` as camera_calibration_parsers does, plus ``depth_scale``."""
    i = intrinsics
    doc = {
        'image_width': int(i.width),
        'image_height': int(i.height),
        'camera_name': camera_name,
        'camera_matrix': _matrix(3, 3, i.K.ravel()),
        'distortion_model': i.distortion_model,
        'distortion_coefficients': _matrix(1, len(i.distortion) or 5, i.distortion or [0.0] * 5),
        'rectification_matrix': _matrix(3, 3, np.eye(3).ravel()),
        'projection_matrix': _matrix(3, 4, [i.fx, 0, i.cx, 0, 0, i.fy, i.cy, 0, 0, 0, 1, 0]),
        'depth_scale': float(depth_scale),
    }
    write_text_atomic(path, yaml.safe_dump(doc, sort_keys=False, default_flow_style=None))


def read_camera_info_yaml(path) -> tuple[CameraIntrinsics, float]:
    """Read ``camera_info.yaml``; returns the intrinsics and the depth scale (metres per unit).

    A file without ``depth_scale`` (a plain camera_calibration_parsers file) gets 0.001, the
    RealSense default, since ``16UC1`` depth in ROS is millimetres by convention (REP 118).
    """
    path = Path(path)
    if not path.is_file():
        raise SessionError(f'{path}: file not found (every session needs its camera_info.yaml)')
    try:
        doc = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise SessionError(f'{path}: not valid YAML ({exc})') from None
    if not isinstance(doc, dict):
        raise SessionError(f'{path}: expected a mapping of camera_calibration_parsers fields')
    try:
        k = [float(v) for v in doc['camera_matrix']['data']]
        if len(k) != 9:
            raise SessionError(f'{path}: camera_matrix.data has {len(k)} values, expected 9')
        dist = doc.get('distortion_coefficients') or {}
        intr = CameraIntrinsics(width=int(doc['image_width']), height=int(doc['image_height']),
                                fx=k[0], fy=k[4], cx=k[2], cy=k[5],
                                distortion_model=str(doc.get('distortion_model') or 'plumb_bob'),
                                distortion=tuple(float(v) for v in (dist.get('data') or [])))
    except KeyError as exc:
        raise SessionError(f'{path}: missing field {exc.args[0]!r}') from None
    except (TypeError, ValueError) as exc:
        raise SessionError(f'{path}: {exc}') from None
    scale = float(doc.get('depth_scale', 0.001))
    if not (np.isfinite(scale) and scale > 0):
        raise SessionError(f'{path}: depth_scale must be > 0 metres per unit, got {scale}')
    return intr, scale


# --------------------------------------------------------------------------------------------
# Sessions
# --------------------------------------------------------------------------------------------
@dataclass
class Session:
    """A capture session folder: frames ``0..n-1`` with RGB, depth and one camera_info.yaml."""

    path: Path
    intrinsics: CameraIntrinsics
    depth_scale: float
    frames: list[int]

    @classmethod
    def open(cls, path) -> 'Session':  # noqa: A003
        """Open and check a session folder (frame files are read lazily).

        Raises
        ------
        SessionError
            Missing folder or camera_info.yaml, no frames, or a frame with only one image.
        """
        path = Path(path)
        if not path.is_dir():
            raise SessionError(f'{path}: session folder not found')
        intr, scale = read_camera_info_yaml(path / 'camera_info.yaml')
        rgb = _frame_indices(path / 'rgb')
        depth = _frame_indices(path / 'depth')
        if not rgb and not depth:
            raise SessionError(f'{path}: no frames (expected rgb/000000.png and depth/000000.png)')
        lonely = sorted(set(rgb) ^ set(depth))
        if lonely:
            k = lonely[0]
            which = 'depth' if k in rgb else 'rgb'
            raise SessionError(f'{path}: frame {k} has no {which}/{FRAME_NAME.format(k)}')
        return cls(path, intr, scale, sorted(rgb))

    def rgb_path(self, k: int) -> Path:
        return self.path / 'rgb' / FRAME_NAME.format(k)

    def depth_path(self, k: int) -> Path:
        return self.path / 'depth' / FRAME_NAME.format(k)

    def read_rgb(self, k: int) -> np.ndarray:
        """Frame k's colour image, ``(H, W, 3)`` uint8 RGB, checked against camera_info."""
        img = read_png(self.rgb_path(k), kind='rgb')
        self._check_size(self.rgb_path(k), img)
        return img

    def read_depth(self, k: int) -> np.ndarray:
        """Frame k's raw depth, ``(H, W)`` uint16 in units of ``depth_scale`` metres."""
        img = read_png(self.depth_path(k), kind='depth')
        self._check_size(self.depth_path(k), img)
        return img

    def read_depth_m(self, k: int) -> np.ndarray:
        """Frame k's depth in metres, float32, 0 where invalid."""
        return self.read_depth(k).astype(np.float32) * np.float32(self.depth_scale)

    def _check_size(self, path: Path, img: np.ndarray) -> None:
        h, w = img.shape[:2]
        if (w, h) != (self.intrinsics.width, self.intrinsics.height):
            raise SessionError(f'{path}: image is {w}x{h} but camera_info.yaml says '
                               f'{self.intrinsics.width}x{self.intrinsics.height}')


STAMPS_NAME = 'stamps.csv'


def append_stamp(path, k: int, stamp_ns: int) -> None:
    """Append frame ``k``'s stamp to ``path/stamps.csv`` durably (a line per frame)."""
    target = Path(path) / STAMPS_NAME
    with open(target, 'ab') as f:
        head = b'' if f.tell() else b'frame,stamp_ns\n'
        if f.tell():  # a crash may have cut the last line short: never glue onto it
            with open(target, 'rb') as r:
                r.seek(-1, os.SEEK_END)
                head = b'' if r.read(1) == b'\n' else b'\n'
        f.write(head + f'{int(k)},{int(stamp_ns)}\n'.encode())
        f.flush()
        os.fsync(f.fileno())


def read_stamps(path) -> dict[int, int]:
    """Return ``{frame: stamp_ns}`` from ``path/stamps.csv`` ({} without one).

    Lines that do not parse (a crash's) are skipped; a frame written again after a crash takes
    its last line.
    """
    try:
        text = (Path(path) / STAMPS_NAME).read_text(encoding='utf-8', errors='replace')
    except FileNotFoundError:
        return {}
    out = {}
    for line in text.splitlines():
        parts = line.split(',')
        if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
            out[int(parts[0])] = int(parts[1])
    return out


def _frame_indices(folder: Path) -> list[int]:
    if not folder.is_dir():
        return []
    return [int(m.group(1)) for name in os.listdir(folder) if (m := _FRAME_RE.match(name))]


def expand_sessions(paths) -> list[Path]:
    """Return the session folders ``paths`` name.

    Each path is a session (it has camera_info.yaml) or a folder of sessions (its sub-folders that
    have one, in name order), as ``simulate --out DIR`` writes them.

    Raises
    ------
    SessionError
        A path is neither, or two sessions share a folder name.
    """
    out: list[Path] = []
    for p in map(Path, paths):
        if (p / 'camera_info.yaml').is_file() or (p / 'rgb').is_dir() or (p / 'depth').is_dir():
            out.append(p)  # a session (Session.open names what it lacks)
        elif p.is_dir():
            subs = sorted(s for s in p.iterdir() if s.is_dir() and (
                s / 'camera_info.yaml').is_file())
            if not subs:
                raise SessionError(
                    f'{p}: neither a capture session (no camera_info.yaml) nor a folder of '
                    'sessions')
            out.extend(subs)
        else:
            raise SessionError(f'{p}: session folder not found')
    names = [s.name for s in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SessionError(
            f'two sessions named {dup[0]!r}; give each its own folder name')
    return out
