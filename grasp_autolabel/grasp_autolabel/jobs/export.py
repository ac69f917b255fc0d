"""``grasp-autolabel export``: rosbag2 recordings in, a grasp dataset out.

Two kinds of recording, told apart by their topics (or ``--mode``):

``captured``
    The capture node's topics (``/capture_node/captured/{rgb,depth,camera_info}``): one frame per
    pick. Consecutive frames are labelled, exactly as ``label`` labels a capture session.
``continuous``
    The camera's own topics at full rate (``/camera/camera/color/image_raw``,
    ``.../aligned_depth_to_color/image_raw``, ``.../color/camera_info``), the operator's arm moving
    in and out of view. The settled frames between picks are found by the capture node's
    :class:`~grasp_autolabel.capture.SettleDetector` (the scene changed, then stayed still for
    ``settle_s``), or at each message of a ``--trigger`` topic (the first settled frame after it);
    the last ``average`` frames of each still period are averaged before differencing.

Each bag is one source in ``dataset.json`` (pick k = the change between captures k and k+1 of
that bag). A rerun skips bags that are complete and the picks already written of one that is not.
Reading stops cleanly at a damaged part of a bag; what was exported before it stays valid and
the cut is reported.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
import sys
import time

from grasp_autolabel.annotate.config import AnnotateConfig
from grasp_autolabel.annotate.pipeline import annotate_step
from grasp_autolabel.core.camera import same_camera
from grasp_autolabel.dataset.bags import BagError, BagSource, expand_bags
from grasp_autolabel.dataset.labels import LabelRecord
from grasp_autolabel.dataset.store import GraspDataset, intrinsics_to_dict
from grasp_autolabel.jobs.bag_captures import (average_depth, captures, Decoder, DEFAULT_TOPICS,
                                               describe_topics, ExportOptions, find_topics)
from grasp_autolabel.jobs.label import finish_job, LabelSummary, open_dataset, write_viz

__all__ = ['ExportOptions', 'ExportSummary', 'export_bags', 'find_topics', 'average_depth',
           'DEFAULT_TOPICS']


@dataclass
class ExportSummary(LabelSummary):
    """What an export did: the labelling summary plus bags, frames, picks and warnings."""

    bags: int = 0
    skipped_bags: int = 0
    frames: int = 0
    picks_found: int = 0
    warnings: list = field(default_factory=list)

    def lines(self) -> list[str]:
        head = (f"{self.bags} bag{'s' if self.bags != 1 else ''} ({self.skipped_bags} already "
                'exported), '
                f'{self.frames} frames read, {self.picks_found} picks found')
        tail = (
            [f'{len(self.warnings)} warning{"s" if len(self.warnings) != 1 else ""} (above)']
            if self.warnings
            else []
        )
        return [head] + super().lines() + tail


# ------------------------------------------------------------------------------- export
def export_bags(bags, out, *, config: AnnotateConfig | None = None,
                options: ExportOptions | None = None,
                append: bool = False, overwrite: bool = False, progress: bool = True,
                viz: bool = False,
                log=print) -> ExportSummary:
    """Export every bag in ``bags`` (bags or folders of bags) into the dataset at ``out``.

    Raises
    ------
    BagError
        A bag cannot be opened, lacks the topics, or holds frames that cannot be used (named);
        items written before the fault stay valid.
    DatasetError
        ``out`` holds another dataset and neither ``append`` nor ``overwrite`` was given.
    """
    cfg = config or AnnotateConfig()
    opts = options or ExportOptions()
    paths = expand_bags(bags)
    for path in paths:  # every bag readable, with the topics, before anything is written
        with BagSource(path) as bag:
            find_topics(bag, opts.mode, opts.topics)
            if opts.trigger and opts.trigger not in bag.topics:
                raise BagError(
                    f'{path}: no trigger topic {opts.trigger}; {describe_topics(bag.topics)}')
    ds = open_dataset(out, cfg, inputs=paths, key='bag', append=append, overwrite=overwrite)
    with ds.lock():
        return _export_all(ds, paths, cfg, opts, viz, progress, log)


def _export_all(ds, paths, cfg, opts, viz, progress, log) -> ExportSummary:
    summary = ExportSummary(bags=len(paths))
    touched: list[int] = []
    t0 = time.perf_counter()
    job = _Job(ds, cfg, opts, summary, viz, progress, log)
    for path in paths:
        key = str(path.resolve())
        prior = ds.find_source('bag', key)
        if prior is not None and ds.sources[prior].get('complete'):
            summary.skipped_bags += 1
            touched.append(prior)  # its later grasps are carried back again (idempotent)
            continue
        with BagSource(path) as bag:
            if bag.damaged:
                summary.warnings.append(f'{path}: {bag.damaged}')
                log(f'warning: {path}: {bag.damaged}', file=sys.stderr)
            touched.append(job.export_bag(bag, path, key, prior))
    return finish_job(ds, touched, summary, t0)


@dataclass
class _Job:
    """One export's dataset, settings and running summary, shared by its bags."""

    ds: GraspDataset
    cfg: AnnotateConfig
    opts: ExportOptions
    summary: ExportSummary
    viz: bool
    progress: bool
    log: object

    def _source(self, path: Path, key: str, prior: int | None, mode: str,
                topics) -> tuple[int, dict, set]:
        """Return the bag's source record and the picks it already has.

        A new record, or the one a cut-short run left.
        """
        ds = self.ds
        if prior is not None:
            record = ds.sources[prior]
            done = {lab.pick_index for lab in (ds.read_label(i) for i in ds.item_indices())
                    if lab.source == prior}
            record['steps'] = len(done)
            return prior, record, done
        record = {'bag': key, 'name': path.name, 'mode': mode, 'topics': list(topics),
                  'trigger': self.opts.trigger,
                  'export': self.opts.to_dict(), 'first_item': ds.next_index(), 'steps': 0,
                  'captures': 0,
                  'complete': False, 'camera': None, 'cut': None}
        return ds.add_source(record), record, set()

    def export_bag(self, bag: BagSource, path: Path, key: str, prior: int | None) -> int:
        """Label every pick of one bag into the dataset; returns its source index."""
        from tqdm import tqdm

        mode, topics = find_topics(bag, self.opts.mode, self.opts.topics)
        src, record, done = self._source(path, key, prior, mode, topics)
        total = bag.topics[topics[1]].count
        bar = tqdm(total=total if total > 0 else None, unit='frame', desc=path.name,
                   disable=not self.progress,
                   dynamic_ncols=True, leave=True)
        stats = {'frames': 0, 'depth_msgs': 0, 'bar': bar}
        try:
            previous = None
            for k, cap in enumerate(captures(bag, mode, Decoder(bag, topics, self.opts),
                                             self.opts.trigger, stats)):
                record['captures'] = k + 1
                if record['camera'] is None:
                    record['camera'] = intrinsics_to_dict(cap.intrinsics, self.opts.depth_scale)
                before, previous = previous, cap
                if before is None:
                    continue
                self.summary.picks_found += 1
                if k - 1 not in done:
                    self._label_pick(path, src, k, before, cap)
                    record['steps'] += 1
                    bar.set_postfix(picks=self.summary.picks_found, accepted=self.summary.accepted,
                                    refresh=False)
            bar.update(stats['depth_msgs'] - bar.n)
            record['cut'] = bag.cut
            if bag.cut:
                self.summary.warnings.append(bag.cut)
                self.log(
                    f"warning: {bag.cut}; the {record['steps']} picks before it were exported",
                    file=sys.stderr)
            record['complete'] = True
        finally:
            bar.close()
            self.summary.frames += stats['frames']
            self.ds.update_source(src, **record)
            self.ds.save_meta()
        return src

    def _label_pick(self, path: Path, src: int, k: int, before, cap) -> None:
        """Pick k-1: the change between captures k-1 and k, one dataset item."""
        if not same_camera(before.intrinsics, cap.intrinsics):
            raise BagError(f'{path}: camera_info changed between captures {k - 1} and {k}; '
                           'export the parts before and after as separate bags')
        step = annotate_step(before.depth_m, cap.depth_m, before.intrinsics, self.cfg,
                             before_rgb=before.rgb, after_rgb=cap.rgb)
        rec = LabelRecord.from_step(step, pick_index=k - 1, source=src, session=path.name,
                                    frame_after=k)
        rec.stamp_before_ns, rec.stamp_after_ns = int(before.stamp_ns), int(cap.stamp_ns)
        rec.frames_averaged = [before.frames, cap.frames]
        index = self.ds.next_index()
        self.ds.write_item(index, rgb=before.rgb, depth=before.depth, mask=step.mask, label=rec)
        if self.viz:
            write_viz(self.ds, index, before.rgb, k - 1, step)
        self.summary.add(step)
