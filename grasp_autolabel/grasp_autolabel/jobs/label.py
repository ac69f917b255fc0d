"""``grasp-autolabel label``: capture sessions in, a grasp dataset out."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
import time

from grasp_autolabel.annotate.config import AnnotateConfig
from grasp_autolabel.annotate.pipeline import annotate_step, REASONS, StepLabel
from grasp_autolabel.dataset.propagate import propagate_labels
from grasp_autolabel.dataset.splits import assign_splits
from grasp_autolabel.dataset.store import GraspDataset, intrinsics_to_dict
from grasp_autolabel.session import Session, SessionError
import numpy as np

__all__ = ['label_sessions', 'label_record', 'write_viz', 'finish_job', 'LabelSummary']


def label_record(step: StepLabel, *, pick_index: int, source: int, session: str,
                 frame_after: int) -> dict:
    """Return the labels-file content of one step (DESIGN.md.

    Accepted, reason, pick_index, ...).
    """
    return {'accepted': bool(step.accepted), 'reason': step.reason, 'detail': step.detail or None,
            'pick_index': int(pick_index), 'frame_after': int(frame_after), 'session': session,
            'source': int(source), 'grasps': np.round(step.grasps, 3).tolist(),
            'scores': np.round(step.scores, 4).tolist(),
            'poses': [{'position': np.round(p.position, 5).tolist() if p.valid else None,
                       'orientation': np.round(p.orientation, 6).tolist() if p.valid else None,
                       'opening_m': round(float(p.opening_m), 5) if p.valid else None,
                       'valid': bool(p.valid)} for p in step.poses],
            'spine': np.round(step.spine, 2).tolist() if step.spine is not None else None,
            'info': step.info}


@dataclass
class LabelSummary:
    steps: int = 0
    accepted: int = 0
    grasps: int = 0
    rejected: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def add(self, step: StepLabel) -> None:
        self.steps += 1
        if step.accepted:
            self.accepted += 1
            self.grasps += len(step.grasps)
        else:
            self.rejected[step.reason] += 1

    def lines(self) -> list[str]:
        out = [f'{self.steps} steps: {self.accepted} accepted ({self.grasps} grasps), '
               f'{self.steps - self.accepted} rejected']
        for reason, n in self.rejected.most_common():
            out.append(f"  {n:5d}  {reason}: {REASONS.get(reason, '')}")
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
    opened = [Session.open(p) for p in sessions]  # check every session before writing anything
    for s in opened:
        if len(s.frames) < 2:
            raise SessionError(f'{s.path}: has {len(s.frames)} frame; labelling needs at least '
                               'two (one before and one after a pick)')
    ds = GraspDataset.create(out, jaw_width_m=cfg.jaw_width_m, settings=cfg.to_dict(),
                             append=append, overwrite=overwrite)
    done = {str(Path(src['session']).resolve())
            for src in ds.meta['sources'] if src.get('complete')}
    for s in opened:
        if str(s.path.resolve()) in done:
            raise SessionError(f'{s.path}: already labelled into {out}')
    summary = LabelSummary()
    t0 = time.perf_counter()
    total = sum(len(s.frames) - 1 for s in opened)
    index = ds.next_index()
    new_sources: list[int] = []
    with tqdm(total=total, unit='step', desc='label', disable=not progress,
              dynamic_ncols=True) as bar:
        for s in opened:
            new_sources.append(len(ds.meta['sources']))
            index = _label_session(ds, s, index, cfg, viz, summary, bar)
    return finish_job(ds, new_sources, summary, t0)


def _label_session(ds, s, index, cfg, viz, summary, bar) -> int:
    """Label every pick of session ``s`` from item ``index`` on; returns the next index."""
    record = {'session': str(s.path.resolve()), 'name': s.path.name, 'first_item': index,
              'steps': 0, 'complete': False,
              'camera': intrinsics_to_dict(s.intrinsics, s.depth_scale)}
    src = ds.add_source(record)
    try:
        after = s.read_depth_m(s.frames[0])
        for k, k_next in zip(s.frames[:-1], s.frames[1:]):
            before, after = after, s.read_depth_m(k_next)
            step = annotate_step(before, after, s.intrinsics, cfg)
            rec = label_record(step, pick_index=k, source=src, session=s.path.name,
                               frame_after=k_next)
            ds.write_item(index, rgb_png=s.check_rgb(k), depth_png=s.depth_path(k),
                          mask=step.mask, label=rec)
            if viz:
                write_viz(ds, index, s.read_rgb(k), k, step)
            summary.add(step)
            record['steps'] += 1
            index += 1
            bar.update()
            bar.set_postfix(accepted=summary.accepted, refresh=False)
        record['complete'] = True
    finally:
        ds.meta['sources'][src] = record
        ds.save_meta()
    return index


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
    from grasp_autolabel.session import write_png_atomic

    text = (
        f'pick {k}: {len(step.grasps)} grasps' if step.accepted else f'pick {k}: rejected, '
                                                                     f'{step.reason}')
    img = draw_label(rgb, mask=step.mask, spine=step.spine, grasps=step.grasps, text=text,
                     accepted=step.accepted)
    write_png_atomic(ds.path / 'viz' / f'{index:06d}.png', img)
