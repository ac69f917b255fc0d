"""The autolabel node's bookkeeping, without ROS: exactly once across restarts.

A live cell labels each pick once, whatever is killed when. What is labelled is what the
dataset holds (a labels file is written last, so it is the truth); on start the node's source
(one per session, continued across restarts) is found in ``dataset.json`` and its labelled
steps read back. With the capture session's folder at hand (the same PC), the frames are
numbered as the session numbers them and any step not yet labelled is labelled from the
session's files; without it, steps are known by their frames' stamps (a replayed bag labelled
again adds nothing).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from grasp_autolabel.annotate import AnnotateConfig, StepLabel
from grasp_autolabel.core.camera import CameraIntrinsics
from grasp_autolabel.core.session import FRAME_NAME, read_camera_info_yaml, read_stamps, Session
from grasp_autolabel.dataset.labels import LabelRecord
from grasp_autolabel.dataset.store import GraspDataset, intrinsics_to_dict
import numpy as np

__all__ = ['Frame', 'LiveDataset', 'SessionView']


@dataclass
class Frame:
    """One captured frame: its stamp, its number in the session (None: unknown), its images."""

    stamp_ns: int
    rgb: np.ndarray
    depth_u16: np.ndarray
    depth_m: np.ndarray
    intr: CameraIntrinsics
    index: int | None = None
    frame_id: str = ''


class SessionView:
    """The capture session as the capture node writes it, read while it grows.

    A frame exists once its colour image does (the capture node writes depth, stamp, colour);
    ``stamps.csv`` numbers the frames that arrive as messages.
    """

    def __init__(self, path):
        self.path = Path(path).expanduser().absolute()
        self.stamps: dict[int, int] = {}
        self.by_stamp: dict[int, int] = {}
        self.camera: tuple[CameraIntrinsics, float] | None = None

    def count(self) -> int:
        """Return how many frames the session holds now (0 before the first)."""
        k = 0
        try:
            names = {p.name for p in (self.path / 'rgb').iterdir()}
        except OSError:
            return 0
        while FRAME_NAME.format(k) in names:
            k += 1
        return k

    def index_of(self, stamp_ns: int) -> int | None:
        """Return the session's number of the frame stamped ``stamp_ns`` (None: not in it)."""
        if stamp_ns not in self.by_stamp:
            self.stamps = read_stamps(self.path)
            self.by_stamp = {s: k for k, s in self.stamps.items()}
        return self.by_stamp.get(stamp_ns)

    def read(self, k: int, frame_id: str = '') -> Frame:
        """Return frame ``k`` from the files (OSError, SessionError when it cannot be read)."""
        if self.camera is None:
            self.camera = read_camera_info_yaml(self.path / 'camera_info.yaml')
        intr, scale = self.camera
        view = Session(self.path, intr, scale, [k])
        rgb, depth = view.read_rgb(k), view.read_depth(k)
        if k not in self.stamps:
            self.index_of(-1)  # reread stamps.csv
        return Frame(self.stamps.get(k, 0), rgb, depth,
                     depth.astype(np.float32) * np.float32(scale), intr, k, frame_id)


class LiveDataset:
    """The dataset the node appends to: its source, what is labelled, each step written once.

    Parameters
    ----------
    path : path-like
    config : AnnotateConfig
    key : str
        What names the source in ``dataset.json`` (the session's folder, or ``live:TOPIC``):
        a restart continues the source with the same key.
    name : str
        The ``session`` each label names.
    depth_scale : float
    """

    def __init__(self, path, config: AnnotateConfig, key: str, name: str, depth_scale: float):
        self.path = Path(path).expanduser()
        self.config, self.key, self.name, self.depth_scale = config, key, name, depth_scale
        self.dataset: GraspDataset | None = None
        self.lock = None
        self.source: int | None = None
        self.done_frames: set[int] = set()  # the session numbers of labelled steps' after-frames
        self.done_stamps: set[int] = set()  # their stamps
        self.steps = 0
        self.meta_dirty = False

    def open(self) -> None:  # noqa: A003
        """Open (or create) the dataset and find this node's source and what it labelled.

        Raises DatasetError / OutputError for a dataset it may not append to (another jaw,
        other settings, another writer), OSError when the disk refuses (retry later).
        """
        ds = GraspDataset.create(self.path, jaw_width_m=self.config.jaw_width_m,
                                 settings=self.config.to_dict(), append=True)
        self.lock = ds.lock().__enter__()
        self.dataset = ds
        self.source = ds.find_source('session', self.key)
        if self.source is not None:
            first = ds.sources[self.source].get('first_item', 0)
            for i in ds.item_indices():
                if i < first:
                    continue
                label = ds.read_label(i)
                if label.source != self.source:
                    continue
                self.steps += 1
                if label.frame_after is not None:
                    self.done_frames.add(label.frame_after)
                if label.stamp_after_ns is not None:
                    self.done_stamps.add(label.stamp_after_ns)

    def done(self, frame: Frame) -> bool:
        """Return whether the step that ends with ``frame`` is labelled already."""
        if frame.index is not None and frame.index in self.done_frames:
            return True
        return bool(frame.stamp_ns) and frame.stamp_ns in self.done_stamps

    def write(self, step: StepLabel, before: Frame, after: Frame) -> int:
        """Write the step as the next item; return its index (OSError: nothing counted done)."""
        ds = self.dataset
        if self.source is None:
            self.source = ds.add_source({
                'session': self.key, 'name': self.name, 'first_item': ds.next_index(),
                'steps': 0, 'complete': False,
                'camera': intrinsics_to_dict(before.intr, self.depth_scale)})
        index = ds.next_index()
        pick = before.index if before.index is not None else self.steps
        rec = LabelRecord.from_step(step, pick_index=pick, source=self.source, session=self.name,
                                    frame_after=after.index, frame_before=before.index)
        rec.stamp_before_ns, rec.stamp_after_ns = int(before.stamp_ns), int(after.stamp_ns)
        ds.write_item(index, rgb=before.rgb, depth=before.depth_u16, mask=step.mask, label=rec)
        self.steps += 1
        if after.index is not None:
            self.done_frames.add(after.index)
        if after.stamp_ns:
            self.done_stamps.add(after.stamp_ns)
        ds.update_source(self.source, steps=self.steps, complete=False)
        self.meta_dirty = True
        return index

    def save_meta(self, *, complete: bool = False) -> None:
        """Save ``dataset.json`` if it changed (OSError: still to save)."""
        if self.dataset is None or self.source is None:
            return
        if complete and not self.dataset.sources[self.source].get('complete'):
            self.dataset.update_source(self.source, complete=True)
            self.meta_dirty = True
        if self.meta_dirty:
            self.dataset.save_meta()
            self.meta_dirty = False

    def close(self) -> None:
        try:
            self.save_meta(complete=True)
        except OSError:
            pass  # the labels files are the truth; the next start recounts them
        if self.lock is not None:
            self.lock.__exit__(None, None, None)
            self.lock = None
