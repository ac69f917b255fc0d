"""The detector's commands (train, evaluate, export-onnx, predict).

Arguments in, typed calls into ``detector/``, one-line errors out. ``cli.py`` declares their
arguments.
"""
from __future__ import annotations

from dataclasses import fields
import json
from pathlib import Path
import sys

from grasp_autolabel.core.errors import CommandError
from grasp_autolabel.core.session import SessionError
from grasp_autolabel.dataset.store import DatasetError

__all__ = ['train_main', 'evaluate_main', 'export_main', 'predict_main', 'settings_from_args']

NETWORK_OPTIONS = ('backbone', 'channels', 'input_size', 'width')
TRAIN_OPTIONS = ('max_steps', 'max_minutes', 'batch_size', 'lr', 'split', 'seed', 'reviewed_only')


def _read_yaml(path) -> dict:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CommandError(
            f'{path}: cannot read the detector config ({str(exc).splitlines()[0]})') from None
    if not isinstance(data, dict):
        raise CommandError(f'{path}: expected a mapping of detector settings')
    return data


def settings_from_args(args):
    """``(network, train settings, decode overrides)`` from ``--config`` and the options.

    The config file is a mapping with ``model`` and optional ``network:``, ``train:`` and
    ``decode:`` sections; a setting given at the top level goes to the part that has it.
    """
    from grasp_autolabel.detector.config import (DecodeSettings, FINETUNE_LR_FACTOR,
                                                 settings_from_dict, TrainSettings)
    from grasp_autolabel.detector.models import DEFAULT_MODEL, get_family, network_from_dict

    data = _read_yaml(args.config) if getattr(args, 'config', None) else {}
    model = getattr(args, 'model', None) or data.pop('model', None) or DEFAULT_MODEL
    data.pop('model', None)
    try:
        fam = get_family(model, where=f'{args.config}: model' if getattr(args, 'config', None)
                         else 'model')
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    parts = {'network': dict(data.pop('network', None) or {}),
             'train': dict(data.pop('train', None) or {}),
             'decode': dict(data.pop('decode', None) or {})}
    owners = {'network': {f.name for f in fields(fam.network_cls)},
              'train': {f.name for f in fields(TrainSettings)},
              'decode': {f.name for f in fields(DecodeSettings)}}
    for key, value in data.items():
        part = next((p for p, names in owners.items() if key in names), None)
        if part is None:
            raise CommandError(
                f'{args.config}: unknown detector setting {key!r} for the {model} model')
        parts[part][key] = value
    for key in NETWORK_OPTIONS:
        if getattr(args, key, None) is not None:
            if key not in owners['network']:
                raise CommandError(
                    f"--{key.replace('_', '-')}: not a setting of the {model} model")
            parts['network'][key] = getattr(args, key)
    for key in TRAIN_OPTIONS:
        if getattr(args, key, None) is not None:
            parts['train'][key] = getattr(args, key)
    try:
        network = network_from_dict({**parts['network'], 'model': model})
        tuned = ({'lr': TrainSettings(**fam.train_defaults).lr * FINETUNE_LR_FACTOR}
                 if getattr(args, 'init', None) else {})
        train = TrainSettings(**{**fam.train_defaults, **tuned, **parts['train']})
        settings_from_dict(DecodeSettings, parts['decode'],
                           what='decode')  # checked now, applied in train
    except (TypeError, ValueError) as exc:
        raise CommandError(f'detector config: {exc}') from None
    return network, train, parts['decode']


def train_main(args) -> int:
    from grasp_autolabel.detector.predict import CheckpointError
    from grasp_autolabel.detector.train import train

    network, settings, decode_overrides = settings_from_args(args)
    try:
        r = train(args.dataset, args.out, network, settings, decode_overrides=decode_overrides,
                  device=args.device,
                  resume=args.resume, backbone_weights=args.backbone_weights, init=args.init,
                  progress=sys.stderr.isatty())
    except (DatasetError, SessionError, CheckpointError) as exc:
        raise CommandError(str(exc)) from None
    if r['rank'] != 0:
        return 0  # (torchrun) the first process reports
    rate = r['steps_run'] / r['seconds'] if r['seconds'] > 0 else float('inf')
    best = r['best']
    held = (f"best held-out validation score {best.get('validation_score', '-')} (rectangle "
            f"metric top-1 {best['rectangle_top1_pct']:.1f} %) at step "
            f"{best['step']} "
            f"({r['held_out_items']} held-out items)" if best else 'no held-out part: best = last')
    print(f"trained {network.model} to step {r['step']} on {r['train_items']} items ({rate:.2f} "
          'steps/s, '
          f"{r['seconds'] / 60:.1f} min); last loss {r['loss']:.4f}; {held}; {r['checkpoint']}")
    return 0


def _decode_from_args(args):
    return {k: getattr(args, k) for k in ('score_threshold',
                                          'max_candidates') if getattr(args, k, None) is not None}


def _with_decode(pred_decode, overrides):
    if not overrides:
        return None
    try:
        return pred_decode.with_(**overrides)
    except (TypeError, ValueError) as exc:
        raise CommandError(f'decode settings: {exc}') from None


def evaluate_main(args) -> int:
    from grasp_autolabel.detector.evaluate import evaluate
    from grasp_autolabel.detector.predict import CheckpointError, load_predictor

    try:
        decode = None
        overrides = _decode_from_args(args)
        if overrides:
            decode = _with_decode(load_predictor(args.run, backend=args.backend,
                                                 device=args.device).decode,
                                  overrides)
        r = evaluate(args.run, args.dataset, part=args.part, split=args.split,
                     backend=args.backend,
                     device=_device(args.device), progress=sys.stderr.isatty(), decode=decode)
    except (DatasetError, SessionError, CheckpointError) as exc:
        raise CommandError(str(exc)) from None
    print(f"{r['images']} images, model {r['model_id']}")
    if r['valid_candidates_pct'] is not None:
        print(f"  valid grasp candidates (a precision; {r['candidates_per_image']} per image): "
              f"{r['valid_candidates_pct']:.2f} %; top-1 valid {r['valid_top1_pct']:.2f} %; "
              'coverage of free logs '
              f"{r['coverage_pct']:.2f} %")
        print('  invalid candidates by reason: ' + ', '.join(f'{k} {v}' for k,
                                                             v in r['invalid_by_reason'].items()))
    else:
        print('  valid grasp candidates: no simulator ground truth for these images')
    if r['rectangle_metric_top1_pct'] is not None:
        print('  rectangle metric, top-1 (IoU > 0.25, angle < 30 deg; against '
              f"{r['rectangle_metric_truth']} "
              f"ground truth): {r['rectangle_metric_top1_pct']:.2f} %")
    print(json.dumps(r))
    return 0


def _device(name: str) -> str:
    from grasp_autolabel.detector.distributed import resolve_device

    resolve_device(name)
    return name


def export_main(args) -> int:
    from grasp_autolabel.detector.export import export_onnx
    from grasp_autolabel.detector.predict import CheckpointError

    try:
        path = export_onnx(args.run, args.out, overwrite=args.overwrite)
    except CheckpointError as exc:
        raise CommandError(str(exc)) from None
    print(f'wrote {path} ({path.stat().st_size / 1e6:.1f} MB)')
    return 0


def predict_main(args) -> int:
    from grasp_autolabel.detector.predict import CheckpointError, load_predictor
    from grasp_autolabel.detector.run_predict import predict_sessions

    try:
        _device(args.device)
        overrides = _decode_from_args(args)
        decode = _with_decode(load_predictor(args.model, backend=args.backend,
                                             device=args.device).decode,
                              overrides) if overrides else None
        r = predict_sessions(args.model, args.sessions, args.out, viz=args.viz,
                             backend=args.backend,
                             device=args.device, decode=decode, progress=sys.stderr.isatty())
    except (SessionError, CheckpointError) as exc:
        raise CommandError(str(exc)) from None
    print(f"{r['frames']} frames of {r['sessions']} session(s): {r['grasps']} grasps, "
          f"{r['ms_per_frame_p50']} ms per "
          f"frame (p50); {r['out']}")
    return 0
