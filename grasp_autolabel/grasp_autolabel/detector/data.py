"""Training samples from a grasp dataset, with on-the-fly shifts and rotations."""
from __future__ import annotations

import numpy as np

from grasp_autolabel.dataset.augment import augment_item, random_transform
from grasp_autolabel.dataset.store import DatasetError, GraspDataset
from grasp_autolabel.detector.model import DetectorConfig, encode_grasps, preprocess
from grasp_autolabel.geometry import as_grasps
from grasp_autolabel.session import png_size, read_png

__all__ = ["select_items", "item_grasps", "GraspSamples"]


def item_grasps(label: dict, use_later: bool = True) -> list:
    """The grasps an item teaches: its own (when the gate accepted the pick) and, with
    ``use_later``, later picks' grasps valid in this frame (``later_grasps``)."""
    out = list(label.get("grasps") or []) if label.get("accepted") else []
    return out + (list(label.get("later_grasps") or []) if use_later else [])


def select_items(ds: GraspDataset, part: str, split: str, use_later: bool = False) -> list[int]:
    """Items with grasps (see :func:`item_grasps`) in ``part`` ("train", "test" or "all") of the
    ``split`` kind."""
    items = ds.item_indices()
    if split != "none" and part != "all":
        splits = ds.meta.get("splits") or {}
        if split in splits:
            items = sorted(set(items) & set(splits[split][part]))
    out = []
    for i in items:
        if item_grasps(ds.read_label(i), use_later):
            out.append(i)
    return out


class GraspSamples:
    """Items of a dataset as detector inputs and targets.

    Raises
    ------
    DatasetError
        No accepted item with grasps, or images of different sizes (named).
    """

    def __init__(self, path, config: DetectorConfig, *, part: str = "train"):
        self.ds = GraspDataset.open(path)
        self.config = config
        self.items = select_items(self.ds, part, config.split, config.use_later_grasps)
        if not self.items:
            n = len(self.ds.item_indices())
            raise DatasetError(f"{path}: no accepted labels with grasps to train on ({n} items, none accepted"
                               f"{'' if config.split == 'none' else ' in the ' + config.split + '-wise ' + part + ' split'})")
        sizes = {}
        for i in self.items:
            sizes.setdefault(png_size(self.ds.path / "images" / f"{i:06d}.png"), i)
        if len(sizes) > 1:
            (s0, i0), (s1, i1) = list(sizes.items())[:2]
            raise DatasetError(f"{path}: images of different sizes ({s0[0]}x{s0[1]} in item {i0}, {s1[0]}x{s1[1]} in "
                               f"item {i1}); train on one camera's images")
        self.image_size = next(iter(sizes))
        self._cache: dict = {}

    def __len__(self) -> int:
        return len(self.items)

    def load(self, i: int):
        if i not in self._cache:
            rgb = self.ds.read_rgb(i)
            depth = None
            if self.config.channels == "rgd":
                scale = float((self.ds.meta["sources"][0].get("camera") or {}).get("depth_scale", 0.001))
                depth = read_png(self.ds.path / "depth" / f"{i:06d}.png", kind="depth").astype(np.float32) * scale
            grasps = as_grasps(item_grasps(self.ds.read_label(i), self.config.use_later_grasps))
            if len(self._cache) > 256:
                self._cache.pop(next(iter(self._cache)))
            self._cache[i] = (rgb, depth, grasps)
        return self._cache[i]

    def sample(self, rng: np.random.Generator, i: int | None = None, *, augment: bool | None = None):
        """``(input (3, S, S) float32, boxes (N, 4), labels (N,))`` of item ``i`` (random if None)."""
        augment = self.config.augment if augment is None else augment
        for _ in range(10):
            idx = self.items[int(rng.integers(len(self.items)))] if i is None else i
            rgb, depth, grasps = self.load(idx)
            if augment:
                h, w = rgb.shape[:2]
                m = random_transform(rng, w, h, max_shift_px=self.config.max_shift_px,
                                     max_rotation_deg=self.config.max_rotation_deg)
                dummy = np.zeros((h, w), bool)
                rgb, depth_u, _, grasps, _ = augment_item(rgb, depth if depth is not None else dummy.astype(np.float32),
                                                          dummy, grasps, m)
                depth = depth_u if depth is not None else None
                if not len(grasps):
                    continue
            x, scale = preprocess(rgb, depth, self.config)
            boxes, labels = encode_grasps(grasps, scale, self.config)
            return x, boxes, labels
        raise DatasetError(f"{self.ds.path}: augmentation keeps pushing every grasp out of the image; "
                           "lower max_shift_px")
