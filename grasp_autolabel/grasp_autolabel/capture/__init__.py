"""Capturing frames after each pick (the capture node's core; no ROS).

* :class:`SessionWriter` appends frames to a capture session atomically and numbers them
  without gaps across restarts: a frame counts when both its images exist; what a crash left
  half-written is removed when the writer opens the session again.
* colour and depth are paired by :class:`~grasp_autolabel.core.stamps.StampPairer`.
* :class:`SettleDetector` decides when to capture on its own: the scene has changed since the
  last capture and has then stayed still for a while (the arm has left).
"""
from __future__ import annotations

from dataclasses import dataclass
import os
from pathlib import Path

import cv2
from grasp_autolabel.core.camera import CameraIntrinsics, same_camera
from grasp_autolabel.core.depth import noise_sigma
from grasp_autolabel.core.session import (append_stamp, FRAME_NAME, read_camera_info_yaml,
                                          SessionError, write_camera_info_yaml, write_png_atomic)
import numpy as np

__all__ = ['SessionWriter', 'SettleDetector']


class SessionWriter:
    """Append frames to a capture session folder (DESIGN.md layout).

    Parameters
    ----------
    path : path-like
        The session folder; created if missing, continued if it holds frames.
    intrinsics : CameraIntrinsics
    depth_scale : float
        Metres per depth unit.

    Raises
    ------
    SessionError
        The folder holds a session of another camera (size or intrinsics differ).
    """

    def __init__(self, path, intrinsics: CameraIntrinsics, depth_scale: float):
        self.path = Path(path)
        self.intrinsics = intrinsics
        self.depth_scale = float(depth_scale)
        info = self.path / 'camera_info.yaml'
        if info.exists():
            old, old_scale = read_camera_info_yaml(info)
            if not same_camera(old, intrinsics) or abs(old_scale - self.depth_scale) > 1e-12:
                raise SessionError(f'{info}: the session was captured with another camera '
                                   f'({old.width}x{old.height}, fx={old.fx:.1f}); start a new '
                                   'session folder')
        else:
            write_camera_info_yaml(info, intrinsics, depth_scale=self.depth_scale)
        self.removed = self._recover()
        self.next_index = self._count()

    def _recover(self) -> list[Path]:
        """Delete temporary files and frames that have only one of their two images."""
        removed = []
        for sub in ('rgb', 'depth'):
            folder = self.path / sub
            folder.mkdir(parents=True, exist_ok=True)
            for name in os.listdir(folder):
                if name.endswith('.tmp'):
                    (folder / name).unlink()
                    removed.append(folder / name)
        rgb = {n for n in os.listdir(self.path / 'rgb') if n.endswith('.png')}
        depth = {n for n in os.listdir(self.path / 'depth') if n.endswith('.png')}
        for name in rgb ^ depth:
            target = self.path / ('rgb' if name in rgb else 'depth') / name
            target.unlink()
            removed.append(target)
        return removed

    def _count(self) -> int:
        names = sorted(n for n in os.listdir(self.path / 'rgb') if n.endswith('.png'))
        indices = [int(n[:-4]) for n in names if n[:-4].isdigit()]
        if indices != list(range(len(indices))):
            raise SessionError(
                f'{self.path}: frames are not numbered 0..{len(indices) - 1} without gaps')
        return len(indices)

    def write(self, rgb: np.ndarray, depth: np.ndarray, stamp_ns: int | None = None) -> int:
        """Write the next frame whole or not at all; return its index.

        Depth first, then the frame's stamp (``stamps.csv``, when given), colour last: the frame
        exists once its colour does. A failed write (a full disk) removes what it wrote of the
        frame, so the session stays readable and the next frame takes the same index.
        """
        h, w = self.intrinsics.height, self.intrinsics.width
        if rgb.shape[:2] != (h, w) or depth.shape[:2] != (h, w):
            raise ValueError(f'frame size: colour {rgb.shape[1]}x{rgb.shape[0]} and depth '
                             f'{depth.shape[1]}x{depth.shape[0]} must both be {w}x{h}')
        if depth.dtype != np.uint16:
            raise ValueError(
                f'depth: expected uint16 units of {self.depth_scale} m, got {depth.dtype}')
        k = self.next_index
        depth_path = self.path / 'depth' / FRAME_NAME.format(k)
        try:
            write_png_atomic(depth_path, depth)
            if stamp_ns is not None:
                append_stamp(self.path, k, stamp_ns)
            write_png_atomic(self.path / 'rgb' / FRAME_NAME.format(k), rgb)
        except BaseException:  # noqa: B902 (the half frame removed, then re-raised)
            depth_path.unlink(missing_ok=True)
            raise
        self.next_index += 1
        return k


@dataclass
class SettleDetector:
    """When to capture without a button.

    The scene changed since the last capture, then stayed still for ``settle_s`` seconds.

    Frames are compared on a coarse grid (every ``stride``-th pixel) in metres: a pixel
    "changed" when both frames are valid there and differ by more than ``change_m``.

    Attributes
    ----------
    change_m : float
        Depth change that counts, metres (well below a log's diameter); at least ``noise_k``
        times the frame pair's own noise (median absolute deviation).
    changed_fraction : float
        Share of the grid that must differ from the last capture for the scene to have changed.
    still_fraction : float
        Share of the grid that may differ between consecutive frames while still "still".
    settle_s : float
        How long the scene must stay still before a capture.
    capture_first : bool
        Also capture the first still scene (a recording's start); otherwise the first capture
        comes from outside (the button) through :meth:`captured`.
    """

    change_m: float = 0.03
    changed_fraction: float = 0.005
    still_fraction: float = 0.002
    settle_s: float = 1.0
    stride: int = 4
    noise_k: float = 5.0
    capture_first: bool = False

    def __post_init__(self):
        self.reference: np.ndarray | None = None
        self.previous: np.ndarray | None = None
        self.anchor: np.ndarray | None = None  # the first frame of the current still period
        self.noise: float | None = None  # the sensor's frame-to-frame noise (robust sigma), metres
        self.still_since: float | None = None

    def _differs(self, a: np.ndarray, b: np.ndarray, *, learn: bool = False) -> float:
        """Return the share of the grid where ``a`` and ``b`` differ.

        Only changes at least 2x2 grid cells across count (an object, an arm), not the isolated
        flicker of noisy pixels at edges.

        Noise-aware, as the annotation: at 2.5 m a D4xx frame pair differs by centimetres at a
        few per cent of the pixels from noise alone. The noise is the sensor's, learnt from
        consecutive frames (``learn``: the pair is mostly unchanged); a pair where most of the
        view changed (a new pile) would inflate its own estimate and hide the change.
        """
        valid = (a > 0) & (b > 0)
        if valid.sum() < 20:
            return 0.0
        diff = np.where(valid, a - b, np.float32(0))
        pair_noise = noise_sigma(diff[valid])
        if learn and (self.noise is None or pair_noise < 3.0 * self.noise):
            self.noise = pair_noise if self.noise is None else 0.9 * self.noise + 0.1 * pair_noise
        noise = pair_noise if self.noise is None else min(pair_noise, 2.0 * self.noise)
        thr = max(self.change_m, self.noise_k * noise)
        changed = cv2.erode((np.abs(diff) > thr).view(np.uint8), np.ones((2, 2), np.uint8))
        return float(np.mean(changed))

    def captured(self, depth_m: np.ndarray) -> None:
        """Note a capture, made by this detector or by the button."""
        self.reference = self._grid(depth_m)
        self.still_since = None

    def _grid(self, depth_m) -> np.ndarray:
        return np.asarray(depth_m)[::self.stride, ::self.stride].astype(np.float32)

    def settled(self, stamp: float, depth_m: np.ndarray) -> bool:
        """Feed the next depth frame (metres); True once the scene has been still ``settle_s``.

        Still: the frame differs neither from the one before nor from the first frame of the
        still period (which catches an arm creeping in a little per frame).
        """
        d = self._grid(depth_m)
        prev, self.previous = self.previous, d
        moving = (prev is None or self._differs(d, prev, learn=True) > self.still_fraction
                  or self.anchor is None or self._differs(d, self.anchor) > self.still_fraction)
        if moving:
            self.still_since = None  # moving (the arm is in view)
            self.anchor = d
            return False
        if self.still_since is None:
            self.still_since = stamp
        return stamp - self.still_since >= self.settle_s

    def update(self, stamp: float, depth_m: np.ndarray) -> bool:
        """Feed the next depth frame (metres); True when it is time to capture it."""
        if not self.settled(stamp, depth_m):
            return False
        if self.reference is None:
            return self.capture_first  # otherwise the first capture comes from the button
        # changed since the last capture, over the whole still period (its first frame too): an
        # arm creeping into view a little per frame changes the newest frame, not the first
        return (self._differs(self.previous, self.reference) > self.changed_fraction
                and self._differs(self.anchor, self.reference) > self.changed_fraction)
