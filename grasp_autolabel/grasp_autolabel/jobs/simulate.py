"""Write simulated picking sequences as capture sessions, with ground truth beside them.

::

    OUT/seq_000/camera_info.yaml, rgb/, depth/     the capture-session layout (DESIGN.md)
    OUT/seq_000/gt/sequence.json                   seed, config, per-step fault summary
    OUT/seq_000/gt/000000.json                     step k (pick between frames k and k+1)
    OUT/seq_000/gt/masks/000000.png                removed log(s) visible in frame k, 0/255
    OUT/seq_000/gt/frames/000000.json              frame k: every log's axis, diameter, graspable
    OUT/seq_000/gt/instances/000000.png            frame k instance map (0 ground, id, 255 arm)

The labelling code never reads gt/.
"""
from __future__ import annotations

from dataclasses import asdict
import json
from pathlib import Path
from typing import Callable

from grasp_autolabel import __version__
from grasp_autolabel.core.session import (FRAME_NAME, write_camera_info_yaml, write_png_atomic,
                                          write_text_atomic)
from grasp_autolabel.sim.cell import CellConfig, SimCell
import numpy as np

__all__ = ['write_sequence', 'simulate', 'sequence_seed']


def sequence_seed(seed: int, index: int) -> int:
    """Return the seed of sequence ``index`` of a run seeded with ``seed``."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def _dump(obj) -> str:
    return json.dumps(obj, indent=1, sort_keys=True) + '\n'


def write_sequence(out: Path, config: CellConfig, seed: int, *,
                   on_step: Callable[[], None] | None = None,
                   stream=None) -> dict:
    """Simulate one sequence until the pile is empty and write it to ``out``.

    ``stream`` (e.g. :class:`grasp_autolabel.dataset.bagwrite.ContinuousBag`) performs each pick
    instead of ``cell.pick()``, recording every camera frame around it; its ``extra`` dict is added
    to the step's summary and its ``finish(cell)`` is called at the end.

    Returns the sequence summary (also written to ``out/gt/sequence.json``).
    """
    out = Path(out)
    cell = SimCell(config, seed=seed)
    write_camera_info_yaml(out / 'camera_info.yaml', cell.intrinsics,
                           depth_scale=config.sensor.depth_scale)
    gt = out / 'gt'

    def write_frame(k: int) -> None:
        rgb, depth = cell.frame()
        write_png_atomic(out / 'rgb' / FRAME_NAME.format(k), rgb)
        write_png_atomic(out / 'depth' / FRAME_NAME.format(k), depth)
        write_png_atomic(gt / 'instances' / FRAME_NAME.format(k), cell.clean().instances)
        write_text_atomic(gt / 'frames' / f'{k:06d}.json', _dump(cell.frame_truth()))

    write_frame(0)
    steps = []
    while not cell.done:
        step = stream.pick(cell) if stream is not None else cell.pick()
        k = step.step
        write_png_atomic(gt / 'masks' / FRAME_NAME.format(k), step.mask.astype(np.uint8) * 255)
        write_text_atomic(gt / f'{k:06d}.json', _dump(step.to_json()))
        write_frame(k + 1)
        steps.append({'step': k, 'fault': step.fault, 'removed': step.removed,
                      **(stream.extra if stream is not None else {})})
        if on_step:
            on_step()
    if stream is not None:
        stream.finish(cell)
    summary = {'seed': seed, 'tool_version': __version__, 'frames': len(steps) + 1, 'steps': steps,
               'config': {k: (asdict(v) if hasattr(v, '__dataclass_fields__') else v)
                          for k, v in config.__dict__.items()}}
    write_text_atomic(gt / 'sequence.json', _dump(summary))
    return summary


def simulate(out, *, sequences: int = 1, seed: int = 0, config: CellConfig | None = None,
             progress: bool = True, bag: str | None = None, storage: str = 'mcap',
             fps: float = 30.0,
             trigger: bool = False) -> list[Path]:
    """Write ``sequences`` sessions ``out/seq_000 ...``; returns their paths.

    ``bag``: also write each sequence as a rosbag2 bag ``out/bags/seq_000``: ``"captured"`` (the
    capture node's topics, one frame per pick) or ``"continuous"`` (the camera's topics at
    ``fps``, the arm in view during picks; ``trigger`` adds ``/operator/pick_done``).
    """
    from tqdm import tqdm

    config = config or CellConfig()
    out = Path(out)
    paths = []
    max_steps = sequences * config.n_logs[1]
    with tqdm(total=max_steps, unit='pick', desc='simulate', disable=not progress,
              dynamic_ncols=True) as bar:
        for i in range(sequences):
            path = out / f'seq_{i:03d}'
            stream = None
            if bag == 'continuous':
                from grasp_autolabel.dataset.bagwrite import ContinuousBag

                stream = ContinuousBag(out / 'bags' / path.name, fps=fps, storage=storage,
                                       trigger=trigger)
            summary = write_sequence(path, config, sequence_seed(seed, i), on_step=bar.update,
                                     stream=stream)
            if bag == 'captured':
                from grasp_autolabel.dataset.bagwrite import write_session_bag

                write_session_bag(path, out / 'bags' / path.name, storage=storage)
            # the bar's total was an upper bound: take back what this pile did not use
            bar.total -= config.n_logs[1] - (summary['frames'] - 1)
            bar.refresh()
            paths.append(path)
    return paths
