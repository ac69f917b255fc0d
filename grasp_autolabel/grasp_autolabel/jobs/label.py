"""``grasp-autolabel label``: capture sessions in, a grasp dataset out."""
from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
import time

from grasp_autolabel.annotate.config import AnnotateConfig
from grasp_autolabel.annotate.pipeline import annotate_step, StepLabel
from grasp_autolabel.core.session import expand_sessions, Session, SessionError
from grasp_autolabel.dataset.labels import LabelRecord
from grasp_autolabel.dataset.propagate import propagate_labels
from grasp_autolabel.dataset.splits import assign_splits
from grasp_autolabel.dataset.store import DatasetError, GraspDataset, intrinsics_to_dict

__all__ = ['label_sessions', 'write_viz', 'finish_job', 'LabelSummary']


@dataclass
class LabelSummary:
    """What a labelling job did: steps, accepted, grasps, rejections by reason, time."""

    steps: int = 0
    accepted: int = 0
    grasps: int = 0
    rejected: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    skipped: list = field(default_factory=list)  # sources already done, one line each

    def add(self, step: StepLabel) -> None:
        """Count one annotated step."""
        self.steps += 1
        if step.accepted:
            self.accepted += 1
            self.grasps += len(step.grasps)
        else:
            self.rejected[step.reason] += 1

    def lines(self) -> list[str]:
        """Return the summary a person reads at the end, a line each."""
        out = list(self.skipped)
        out.append(f'{self.steps} steps: {self.accepted} accepted ({self.grasps} grasps), '
                   f'{self.steps - self.accepted} rejected')
        for reason, n in self.rejected.most_common():
            out.append(f'  {n:5d}  {reason}: {reason.description}')
        return out


def label_sessions(sessions, out, *, config: AnnotateConfig | None = None, viz: bool = False,
                   append: bool = False, overwrite: bool = False,
                   progress: bool = True) -> LabelSummary:
    """Label every pick of every session into the dataset at ``out``.

    Raises
    ------
    SessionError
        A session is missing, has fewer than two frames, or holds a bad file (named); items
        written before the fault stay valid.
    DatasetError
        ``out`` holds another dataset and neither ``append`` nor ``overwrite`` was given.
    """
    from tqdm import tqdm

    cfg = config or AnnotateConfig()
    # every session checked before anything is written; a folder of sessions in name order
    opened = [Session.open(p) for p in expand_sessions(sessions)]
    for s in opened:
        if len(s.frames) < 2:
            raise SessionError(f'{s.path}: has {len(s.frames)} frame; labelling needs at least '
                               'two (one before and one after a pick)')
    ds = open_dataset(out, cfg, inputs=[s.path for s in opened], key='session', append=append,
                      overwrite=overwrite)
    summary = LabelSummary()
    t0 = time.perf_counter()
    with ds.lock():
        sources = [ds.find_source('session', str(s.path.resolve())) for s in opened]
        known = ds.sources
        done = [src is not None and known[src].get('complete') for src in sources]
        summary.skipped += [f'{s.path}: already labelled into {out}, skipped'
                            for s, d in zip(opened, done) if d]
        todo = [(j, s, src) for j, (s, src, d) in enumerate(zip(opened, sources, done)) if not d]
        total = sum(len(s.frames) - 1 for _, s, _ in todo)
        with tqdm(total=total, unit='step', desc='label', disable=not progress,
                  dynamic_ncols=True) as bar:
            for j, s, src in todo:
                sources[j] = _label_session(ds, s, src, cfg, viz, summary, bar)
        return finish_job(ds, sources, summary, t0)


def open_dataset(out, cfg: AnnotateConfig, *, inputs, key: str, append: bool,
                 overwrite: bool) -> GraspDataset:
    """Return the dataset a labelling job writes.

    New, added to (``append``), replaced (``overwrite``), or resumed: a dataset without sources
    or with one of ``inputs`` among them (``key``: 'session' or 'bag') is this same job's, left
    by a crash or run again.
    """
    out = Path(out)
    if (out / 'dataset.json').exists() and not overwrite and not append:
        ds = GraspDataset.open(out)
        ours = {str(Path(p).resolve()) for p in inputs}
        theirs = [src.get(key) for src in ds.sources]
        if theirs and not any(t in ours for t in theirs):
            raise DatasetError(f'{out} already holds a dataset ({len(ds.item_indices())} items) '
                               'made from other sources; pass --append to add to it or '
                               '--overwrite to replace it')
        append = True  # the same inputs again: resume
    return GraspDataset.create(out, jaw_width_m=cfg.jaw_width_m, settings=cfg.to_dict(),
                               append=append, overwrite=overwrite, inputs=inputs)


def _label_session(ds, s, src, cfg, viz, summary, bar) -> int:
    """Label the picks of session ``s`` not yet in ``ds`` (source ``src``, None: new).

    Returns the session's source index. A source a crash left incomplete is continued: its
    items are a prefix of its picks (each complete only with its labels file, written last).
    """
    if src is None:
        src = ds.add_source({'session': str(s.path.resolve()), 'name': s.path.name,
                             'first_item': ds.next_index(), 'steps': 0, 'complete': False,
                             'camera': intrinsics_to_dict(s.intrinsics, s.depth_scale)})
    first = ds.sources[src]['first_item']
    labels = (ds.read_label(i) for i in ds.item_indices() if i >= first)
    done = {lab.pick_index for lab in labels if lab.source == src}
    steps = len(done)
    ds.update_source(src, steps=steps)
    bar.update(len(done))
    index = ds.next_index()
    todo = [(k, k_next) for k, k_next in zip(s.frames[:-1], s.frames[1:]) if k not in done]
    # every frame the picks to do need, each read once, in order
    frames, held = _frames_ahead(s, sorted({k for pair in todo for k in pair})), (None, None)
    try:
        for k, k_next in todo:
            before = held[1] if held[0] == k else next(frames)
            after = next(frames)
            held = (k_next, after)
            step = annotate_step(before[0], after[0], s.intrinsics, cfg, before_rgb=before[1],
                                 after_rgb=after[1])
            rec = LabelRecord.from_step(step, pick_index=k, source=src, session=s.path.name,
                                        frame_after=k_next)
            ds.write_item(index, rgb_png=s.rgb_path(k), depth_png=s.depth_path(k),
                          mask=step.mask, label=rec)
            if viz:
                write_viz(ds, index, before[1], k, step)
            summary.add(step)
            steps += 1
            ds.update_source(src, steps=steps)
            index += 1
            bar.update()
            bar.set_postfix(accepted=summary.accepted, refresh=False)
        ds.update_source(src, complete=True)
    finally:
        frames.close()
        ds.save_meta()
    return src


def _frames_ahead(s: Session, keys: list):
    """Yield ``(depth_m, rgb)`` of frames ``keys`` in order, the next decoded meanwhile.

    PNG decoding releases the GIL: one thread reads frame k + 1 while frame k is annotated.
    """
    def read(k):
        return s.read_depth_m(k), s.read_rgb(k)

    with ThreadPoolExecutor(max_workers=1) as pool:
        ahead = pool.submit(read, keys[0]) if keys else None
        for i in range(len(keys)):
            frame = ahead.result()
            ahead = pool.submit(read, keys[i + 1]) if i + 1 < len(keys) else None
            yield frame


def finish_job(ds: GraspDataset, sources, summary: LabelSummary, t0: float) -> LabelSummary:
    """Return what a job that added ``sources`` to ``ds`` does last.

    Later picks' grasps carried back within them, the split assigned, the job timed (from ``t0``,
    ``time.perf_counter``).
    """
    propagate_labels(ds, sources=set(sources))
    assign_splits(ds)
    summary.seconds = time.perf_counter() - t0
    return summary


def write_viz(ds: GraspDataset, index: int, rgb, k: int, step: StepLabel) -> None:
    """Write the overlay of item ``index`` (pick ``k``, drawn on ``rgb``) in ``DATASET/viz/``."""
    from grasp_autolabel.annotate.viz import draw_label
    from grasp_autolabel.core.session import write_png_atomic

    text = (
        f'pick {k}: {len(step.grasps)} grasps' if step.accepted else f'pick {k}: rejected, '
                                                                     f'{step.reason}')
    img = draw_label(rgb, mask=step.mask, spine=step.spine, grasps=step.grasps, text=text,
                     accepted=step.accepted)
    write_png_atomic(ds.path / 'viz' / f'{index:06d}.png', img)
