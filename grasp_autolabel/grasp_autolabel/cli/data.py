"""The data commands' glue: simulate, label, eval-labels, run-sim, convert, export, augment, split.

Parsed arguments in, typed calls into the jobs and the dataset, results printed. ``cli.py``
declares their arguments; errors the core raises (ValueError and its kinds: SessionError,
DatasetError, BagError) become one line there.
"""
from __future__ import annotations

import json
import sys
import time

from grasp_autolabel.core.errors import CommandError
from grasp_autolabel.core.fsio import claim_output, OutputError

# What `simulate` writes (its --overwrite removes these and nothing else).
SIMULATED = (r'seq_\d{3}/(camera_info\.yaml|(rgb|depth)/\d{6}\.png|gt/[\w./-]+)',
             r'bags/seq_\d{3}/[\w.-]+', r'(seq_\d{3}/)?(\w+/)?\..*\.tmp')

__all__ = ['simulate_main', 'label_main', 'eval_labels_main', 'run_sim_main', 'formats_main',
           'export_main',
           'augment_main', 'splits_main']


def simulate_main(args) -> int:
    from grasp_autolabel.jobs.simulate import simulate
    from grasp_autolabel.sim.cell import CellConfig
    from grasp_autolabel.sim.sensor import SensorModel

    n_logs = (args.logs, args.logs) if args.logs else CellConfig.n_logs
    try:
        config = CellConfig(width=args.width, height=args.height, n_logs=n_logs,
                            fault_rate=args.fault_rate, tilt_max_deg=args.tilt_max,
                            sensor=SensorModel.preset(args.sensor))
    except ValueError as exc:
        raise CommandError(f'simulate: {exc}') from None
    try:
        claim_output(args.out, kind='simulate', overwrite=args.overwrite, owned=SIMULATED)
    except OutputError as exc:
        raise CommandError(str(exc)) from None
    existing = [args.out / f'seq_{i:03d}' for i in range(args.sequences)
                if (args.out / f'seq_{i:03d}').exists()]
    if existing and args.overwrite:
        kept = sorted(str(f.relative_to(existing[0])) for f in existing[0].rglob('*'))[:3]
        raise CommandError(f'{existing[0]}: holds files simulate did not write ({", ".join(kept)}'
                           '); they were kept: move them away or choose another --out')
    if existing:
        raise CommandError(f'{existing[0]} already exists; choose another --out or pass '
                           '--overwrite')
    t0 = time.perf_counter()
    paths = simulate(args.out, sequences=args.sequences, seed=args.seed, config=config,
                     progress=sys.stderr.isatty() or None, bag=args.bag, storage=args.storage,
                     fps=args.fps,
                     trigger=args.trigger)
    frames = sum(len(list((p / 'rgb').glob('*.png'))) for p in paths)
    print(
        f'wrote {len(paths)} sequence(s), {frames} frames, to {args.out} in '
        f'{time.perf_counter() - t0:.1f} s')
    if args.bag:
        print(f"bags ({args.bag}, {args.storage}): {args.out / 'bags'}")
    return 0


def label_main(args) -> int:
    from grasp_autolabel.annotate.config import AnnotateConfig, load_config
    from grasp_autolabel.jobs.label import label_sessions

    config = load_config(args.config) if args.config else AnnotateConfig()
    summary = label_sessions(args.sessions, args.out, config=config, viz=args.viz,
                             append=args.append,
                             overwrite=args.overwrite, progress=sys.stderr.isatty())
    return _report(summary, args.out, summary.steps, 'steps')


def eval_labels_main(args) -> int:
    from grasp_autolabel.jobs.eval_labels import evaluate_labels

    metrics = evaluate_labels(args.dataset, args.gt)
    by_sensor = metrics['by_sensor']
    names = ['all'] + list(by_sensor) if len(by_sensor) > 1 else list(by_sensor) or ['all']
    columns = [metrics if n == 'all' else by_sensor[n] for n in names]
    keys = [k for k in metrics if k not in ('outcomes', 'by_sensor')]
    width = max(len(k) for k in keys)
    print(f"{'sensor':{width}s}  " + '  '.join(f'{n:>10s}' for n in names))
    for k in keys:
        print(f'{k:{width}s}  ' + '  '.join(f'{str(c.get(k)):>10s}' for c in columns))
    print(json.dumps(metrics))
    return 0


def run_sim_main(args) -> int:
    from grasp_autolabel.ros.run_sim import run

    summary = run(args.out, picks=args.picks, seed=args.seed, fps=args.fps, width=args.width,
                  height=args.height)
    print(f"{summary['picks']} picks: {summary['accepted']} labelled ({summary['grasps']} "
          'grasps); '
          f"session in {args.out / 'session'}, dataset in {args.out / 'dataset'}")
    print(json.dumps(summary))
    return 0


def formats_main(args) -> int:
    from grasp_autolabel.dataset.formats import (export_cornell, export_jacquard, import_cornell,
                                                 import_jacquard)

    if args.to:
        fn = {'cornell': export_cornell, 'jacquard': export_jacquard}[args.to]
        n = fn(args.source, args.out, accepted_only=not args.all, overwrite=args.overwrite)
        print(f'wrote {n} {args.to.capitalize()} samples to {args.out}')
    else:
        fn = {'cornell': import_cornell, 'jacquard': import_jacquard}[args.from_]
        n = fn(args.source, args.out, overwrite=args.overwrite)
        print(f'imported {n} {args.from_.capitalize()} samples into the dataset {args.out}')
    return 0


def export_main(args) -> int:
    from grasp_autolabel.annotate.config import AnnotateConfig, load_config
    from grasp_autolabel.jobs.export import export_bags, ExportOptions
    from grasp_autolabel.core.session import read_camera_info_yaml

    config = load_config(args.config) if args.config else AnnotateConfig()
    camera = read_camera_info_yaml(args.camera_info)[0] if args.camera_info else None
    options = ExportOptions(mode=args.mode, topics=tuple(args.topics) if args.topics else None,
                            trigger=args.trigger, settle_s=args.settle_s, average=args.average,
                            depth_scale=args.depth_scale, camera_info=camera)
    summary = export_bags(args.bags, args.out, config=config, options=options, append=args.append,
                          overwrite=args.overwrite, progress=sys.stderr.isatty(), viz=args.viz)
    return _report(summary, args.out, summary.frames, 'frames')


def augment_main(args) -> int:
    from grasp_autolabel.dataset.augment import augment_dataset

    c = augment_dataset(args.dataset, args.out, factor=args.factor, seed=args.seed,
                        max_shift_px=args.max_shift,
                        max_rotation_deg=args.max_rotation, overwrite=args.overwrite,
                        progress=sys.stderr.isatty())
    print(f"{c['items']} items written ({c['skipped']} already there), {c['grasps_out']} grasps; "
          f"{c['grasps_dropped']} grasps dropped (left the image), {c['copies_without_grasps']} "
          'copies with no grasp '
          f'left skipped')
    rate = c['items'] / c['seconds'] if c['seconds'] > 0 else float('inf')
    print(f"wrote {args.out} in {c['seconds']:.1f} s ({rate:.0f} items/s)")
    return 0


def splits_main(args) -> int:
    from grasp_autolabel.dataset.splits import assign_splits
    from grasp_autolabel.dataset.store import GraspDataset

    ds = GraspDataset.open(args.dataset)
    s = assign_splits(ds, test_fraction=args.test_fraction, seed=args.seed)
    for kind in ('image', 'session'):
        print(f"{kind}-wise: {len(s[kind]['train'])} train, {len(s[kind]['test'])} test")
    print(
        f"held-out sources: {', '.join(s['session']['test_sources']) or 'none (one source only)'}")
    return 0


def _report(summary, out, n: int, unit: str) -> int:
    """Return a label or export summary, then where it went and how fast."""
    for line in summary.lines():
        print(line)
    rate = n / summary.seconds if summary.seconds > 0 else float('inf')
    print(f'wrote {out} in {summary.seconds:.1f} s ({rate:.0f} {unit}/s)')
    return 0
