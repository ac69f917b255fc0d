"""A grasp dataset as detector training data.

Contract of an item (torchvision's detection references): ``dataset[i]`` is
``(image, target)`` where

* ``image`` is a float32 tensor ``(C, H, W)``: the network input of the item, made by the
  model family's ``to_tensor`` after the random transforms of :mod:`.transforms`
  (``augment=False``: the item as it is, at network scale);
* ``target`` is a dict of tensors: ``"grasps"`` ``(N, 5)`` in network-input pixels (the grasp
  convention), and the family's own targets (``ModelFamily.encode_targets``: the grasp-map
  network's ``"maps"`` ``(4, H/2, W/2)``, the Faster R-CNN's ``"boxes"`` and ``"labels"``).

The items are the accepted picks with grasps (and later picks' grasps carried back, see
:func:`item_grasps`) in one part of the dataset's split. Each item's depth is read with its
own source's depth scale. Items are decoded and scaled once and kept in memory (about
0.5 MB each at the default 320 px input).
"""
from __future__ import annotations

from grasp_autolabel.core.geometry import as_grasps
from grasp_autolabel.dataset.labels import LabelRecord
from grasp_autolabel.dataset.store import DatasetError, GraspDataset
from grasp_autolabel.detector.models import family
from grasp_autolabel.detector.transforms import augment, AugmentSettings, Sample, scale_sample
import numpy as np

__all__ = ['select_items', 'item_grasps', 'item_logs', 'GraspItems', 'split_parts']


def item_grasps(label: LabelRecord, use_later: bool = True) -> np.ndarray:
    """Return the grasps an item teaches, ``(N, 5)``.

    Its own (when the gate accepted the pick) and, with ``use_later``, later picks' grasps valid in
    this frame (``later_grasps``).
    """
    return label.all_grasps(use_later)


def item_logs(label: LabelRecord, later_labels: dict, use_later: bool = True) -> list[tuple]:
    """Return the logs an item teaches as ``[(spine (2, 2) or None, grasps (n, 5)), ...]``.

    A labels file may list them itself (``"logs": [{"spine": [[x, y], [x, y]], "grasps": [...]},
    ...]``, as ground-truth datasets do); otherwise they are the pick's own log (its ``spine``
    and ``grasps``, when accepted) and, with ``use_later``, each later pick carried back to it
    (``later_picks``: that pick's own spine, from ``later_labels[pick_index]``, with the grasps
    carried back).
    """
    if isinstance(label.logs, list):
        return [(np.asarray(log['spine'], float) if log.get('spine') else None,
                 as_grasps(log['grasps']))
                for log in label.logs if log.get('grasps')]
    out = []
    if label.left_out:
        return []
    if label.reviewed:
        own = label.own_grasps()  # as edited or drawn: the gate's spine may not be theirs
        if len(own):
            out.append((None, own))
    elif label.accepted and len(label.grasps):
        out.append((label.spine, label.grasps))
    later = label.later_grasps
    if use_later and later is not None and len(later):
        known = [later_labels.get(p) for p in label.later_picks or []]
        if all(k is not None and len(k.grasps) for k in known) and \
                sum(len(k.grasps) for k in known) == len(later):
            start = 0
            for k in known:
                n = len(k.grasps)
                out.append((k.spine, later[start:start + n]))
                start += n
        else:  # a later pick not in this dataset: its grasps without a spine
            out.append((None, later))
    return out


def split_parts(ds: GraspDataset, split: str) -> dict | None:
    """Return the dataset's ``split``-wise parts, ``{"train": [...], "test": [...]}``.

    None when the dataset has no such split, or ``split`` is "none".
    """
    if split == 'none':
        return None
    parts = (ds.meta.get('splits') or {}).get(split)
    if not isinstance(parts, dict) or not isinstance(parts.get('train'), list):
        return None
    return parts


def select_items(ds: GraspDataset, part: str, split: str, use_later: bool = False,
                 reviewed_only: bool = False) -> list[int]:
    """Select the items with grasps in ``part`` ("train", "test" or "all") of the ``split`` kind.

    See :func:`item_grasps`.

    Raises
    ------
    DatasetError
        ``part`` is "train" or "test" of a split the dataset does not have.
    """
    items = ds.item_indices()
    if split != 'none' and part != 'all':
        parts = split_parts(ds, split)
        if parts is None:
            raise DatasetError(
                f'{ds.path}: has no {split}-wise split, so it has no {part} part; '
                'run '
                f'`grasp-autolabel split {ds.path}` or pass --split none --part all'
            )
        items = sorted(set(items) & set(parts.get(part) or []))
    labels = ((i, ds.read_label(i)) for i in items)
    return [i for i, lab in labels if len(item_grasps(lab, use_later))
            and (lab.reviewed or not reviewed_only)]


class GraspItems:
    """Items of a grasp dataset as ``(image tensor, target dict)`` (see the module's contract).

    Raises
    ------
    DatasetError
        No item with grasps in ``part``, or images of different sizes (named).
    """

    def __init__(self, path, network, train, *, part: str = 'train', augment: bool | None = None):
        self.ds = GraspDataset.open(path)
        self.network = network
        self.settings = train
        self.augment = train.augment if augment is None else augment
        self.family = family(network)
        self.items = select_items(self.ds, part, train.split, train.use_later_grasps,
                                  train.reviewed_only and part != 'test')
        if not self.items:
            n = len(self.ds.item_indices())
            where = (
                '' if train.split == 'none' or part == 'all' else f' in the {train.split}-wise '
                                                                  f'{part} split')
            raise DatasetError(
                f'{path}: no accepted labels with grasps to train on ({n} items, none '
                f'usable{where})')
        self._samples: list[Sample] = []
        sizes: dict = {}
        jaws, openings, fx = [], [], []
        labels = {i: self.ds.read_label(i) for i in self.ds.item_indices()}
        by_pick = {(lab.source, lab.pick_index): lab for lab in labels.values()
                   if lab.origin is None}
        for i in self.items:
            label = labels[i]
            rgb = self.ds.read_rgb(i) if getattr(network, 'channels', 'rgb') != 'depth' else None
            depth = self.ds.read_depth_m(i, label) if network.uses_depth else None
            size = (rgb if rgb is not None else depth).shape[1::-1]
            sizes.setdefault(tuple(size), i)
            logs = item_logs(label, {p: by_pick.get((label.source, p)) for p in
                                     label.later_picks or []}, train.use_later_grasps)
            g = np.concatenate([grasps for _, grasps in logs]) if logs else np.zeros((0, 5))
            spines = (
                np.concatenate([np.broadcast_to(spine if spine is not None else np.full((
                    2, 2), np.nan), (len(grasps), 2, 2)) for spine, grasps in logs])
                if logs
                else np.zeros((0, 2, 2))
            )
            jaws.extend(g[:, 4].tolist())
            openings.extend(g[:, 3].tolist())
            cam = self.ds.intrinsics(i, label)
            if cam:
                fx.append(cam[0].fx)
            s = self.family.input_scale(size[0], size[1], network)
            self._samples.append(scale_sample(Sample(rgb, depth, g, spines,
                                                     label.negatives()), s))
        if len(sizes) > 1:
            (s0, i0), (s1, i1) = list(sizes.items())[:2]
            raise DatasetError(f'{path}: images of different sizes ({s0[0]}x{s0[1]} in item {i0}, '
                               f'{s1[0]}x{s1[1]} in '
                               f"item {i1}); train on one camera's images")
        self.image_size = next(iter(sizes))
        self.median_jaw_px = float(np.median(jaws))
        self.min_opening_px = float(np.percentile(openings, 5))
        self.fx = float(np.median(fx)) if fx else None
        self._augment_settings = AugmentSettings(max_rotation_deg=train.max_rotation_deg,
                                                 scale_range=train.scale_range,
                                                 max_shift_fraction=train.max_shift_fraction)

    def __len__(self) -> int:
        return len(self.items)

    def sample(self, index: int, rng: np.random.Generator | None = None) -> Sample:
        """Item ``index`` at network scale, randomly transformed when augmenting."""
        s = self._samples[index]
        return augment(rng, s, self._augment_settings) if self.augment and rng is not None else s

    def encode(self, s: Sample):
        """``(image tensor, target dict)`` of a sample at network scale."""
        import torch

        x = self.family.to_tensor(s.rgb, s.depth_m, self.network)
        target = {'grasps': torch.from_numpy(as_grasps(s.grasps).astype(np.float32))}
        target.update({k: torch.from_numpy(v) for k, v in
                       self.family.encode_targets(s.grasps, s.spines, x, self.network,
                                                  s.negatives).items()})
        return torch.from_numpy(x), target

    def __getitem__(self, index: int):
        """Return the item as it is, with no random transform.

        Use :meth:`sample` + :meth:`encode` to augment with a generator of your own.
        """
        return self.encode(self._samples[index])
