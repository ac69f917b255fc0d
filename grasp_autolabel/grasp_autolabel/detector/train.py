"""``grasp-autolabel train``: a detector trained on a grasp dataset's labels.

RUN/config.json            the network, train and decode settings
RUN/checkpoints/last.pt    the latest state (every ``val_every`` steps, at the end, on Ctrl-C)
RUN/checkpoints/best.pt    the best by validation on the held-out part of the dataset's split
RUN/loss.csv, loss.png     the loss per step and its plot
RUN/validation.csv         step, rectangle metric top-1 % on the held-out part

The learning rate warms up over the first 5 % of the steps and then follows a half cosine to
zero, a function of the step alone, so ``--resume`` continues the same schedule.
"""
from __future__ import annotations

from dataclasses import replace
import json
import math
import os
from pathlib import Path
import sys
import time

from grasp_autolabel.dataset.store import DatasetError
from grasp_autolabel.detector.config import (DECODE_DEFAULTS, DecodeSettings, settings_to_dict,
                                             TrainSettings)
from grasp_autolabel.detector.data import GraspItems
from grasp_autolabel.detector.engine import evaluate, train_one_epoch
from grasp_autolabel.detector.models import build_model, network_to_dict
from grasp_autolabel.detector.predict import (CHECKPOINT_FORMAT, checkpoint_meta,
                                              CHECKPOINT_VERSION, CheckpointError, load_checkpoint,
                                              load_weights, save_checkpoint)
from grasp_autolabel.errors import CommandError
from grasp_autolabel.fsio import check_not_input, FolderLock, LOCK_NAME, OutputError
from grasp_autolabel.session import write_atomic, write_text_atomic
import numpy as np

__all__ = ['train', 'resolve_device', 'learning_rate', 'RUN_MARKER']

RUN_MARKER = 'config.json'


def resolve_device(name: str):
    """``torch.device`` for ``cpu`` or ``cuda[:N]``; CommandError when it is not here."""
    import torch

    if name == 'cuda' or name.startswith('cuda:'):
        if not torch.cuda.is_available():
            raise CommandError(f'--device {name}: no CUDA GPU is available here '
                               '(torch.cuda.is_available() is False); '
                               'use --device cpu')
        index = name.partition(':')[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise CommandError(f'--device {name}: this machine has {torch.cuda.device_count()} '
                               'GPU(s) '
                               f'(cuda:0..cuda:{torch.cuda.device_count() - 1})')
        return torch.device(name)
    if name != 'cpu':
        raise CommandError(f'--device: expected cpu or cuda[:N], got {name!r}')
    return torch.device('cpu')


def learning_rate(step: int, settings: TrainSettings) -> float:
    """Linear warm-up over 5 % of the steps, then a half cosine to 0."""
    warm = max(1, int(0.05 * settings.max_steps))
    if step < warm:
        return settings.lr * (step + 1) / warm
    t = (step - warm) / max(1, settings.max_steps - warm)
    return settings.lr * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


def _plot(losses: list, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        return
    steps = np.array([s for s, _ in losses])
    vals = np.array([v for _, v in losses])
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    ax.plot(steps, vals, lw=0.6, alpha=0.4, label='loss')
    if len(vals) >= 20:
        k = max(5, len(vals) // 50)
        ax.plot(steps[k - 1:], np.convolve(vals, np.ones(k) / k, mode='valid'), lw=1.5,
                label=f'mean of {k}')
    ax.set_xlabel('step')
    ax.set_ylabel('training loss')
    ax.set_yscale('log')
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    write_atomic(path, lambda f: fig.savefig(f, format='png'))
    plt.close(fig)


def _check_out(out: Path, resume: bool) -> dict | None:
    """Return the checkpoint to resume from, or None.

    Refuses a folder that is not this tool's run.
    """
    last = out / 'checkpoints' / 'last.pt'
    if last.exists():
        if not resume:
            raise CommandError(f'{out} already holds a run (step '
                               f"{load_checkpoint(last)['step']}); pass --resume to "
                               'continue it or choose another --out')
        return load_checkpoint(last)
    if out.exists() and any(e.name != LOCK_NAME for e in out.iterdir()):
        if resume and (out / RUN_MARKER).is_file():
            return None  # killed before its first checkpoint: start again
        raise CommandError(f'{out} exists and is not a run; choose another --out')
    return None


def train(dataset, out, network, settings: TrainSettings, *, decode: DecodeSettings | None = None,
          decode_overrides: dict | None = None, device: str = 'cpu', resume: bool = False,
          backbone_weights: str | None = None, progress: bool = True, log=print) -> dict:
    """Train (or continue training) a detector; returns ``{"step", "loss", "seconds", ...}``.

    ``decode`` (whole) or ``decode_overrides`` (some settings) set the model's decoding; the
    rest comes from the dataset (jaw width, the labels' jaw size and thinnest opening) and the
    family's defaults.

    Raises
    ------
    DatasetError
        No usable labels, or images of different sizes.
    CheckpointError
        ``resume`` with a checkpoint of another network config, or a damaged one.
    CommandError
        ``out`` holds something else, or a run and ``resume`` was not given; no such device.
    """
    dev = resolve_device(device)
    out = Path(out)
    try:
        check_not_input(out, [dataset])
    except OutputError as exc:
        raise CommandError(str(exc)) from None
    with FolderLock(out):
        return _train(dataset, out, network, settings, decode, decode_overrides, dev, resume,
                      backbone_weights, progress, log)


def _train(dataset, out, network, settings, decode, decode_overrides, dev, resume,
           backbone_weights, progress, log) -> dict:
    ckpt = _check_out(out, resume)
    if ckpt is not None:
        _check_same_network(ckpt, network)
    items = GraspItems(dataset, network, settings, part='train')
    try:
        held_out = (GraspItems(dataset, network, settings, part='test', augment=False)
                    if settings.split != 'none' else None)
    except DatasetError:
        held_out = None  # no held-out part with labels: the last checkpoint is the best one
    jaw_width_m = float(items.ds.meta.get('jaw_width_m', 0.04))
    decode = decode or DecodeSettings(**{'jaw_width_m': jaw_width_m,
                                         'fallback_jaw_px': items.median_jaw_px,
                                         'peak_distance_px': max(1.0, 0.3 * items.min_opening_px),
                                         **DECODE_DEFAULTS[network.model],
                                         **(decode_overrides or {})})
    run = _Run(out, Path(dataset), network, settings, decode, items, held_out, dev, ckpt,
               backbone_weights, progress, log)
    return run.loop()


def _check_same_network(ckpt: dict, network) -> None:
    mine, theirs = network_to_dict(network), ckpt['network']
    if mine != theirs:
        diff = ', '.join(f'{k}: {theirs.get(k)} -> {mine.get(k)}' for k in sorted(set(mine) | set(
            theirs)) if mine.get(k) != theirs.get(k))
        raise CheckpointError(f"{ckpt['path']}: was trained with another network config ({diff}); "
                              'resume with '
                              'the same settings or train into a new --out')


class _Run:
    """One training run.

    The model, its optimiser, the losses and validations so far, the progress bar, the time plan;
    checkpoints written as it goes.
    """

    def __init__(self, out: Path, dataset: Path, network, settings: TrainSettings,
                 decode: DecodeSettings,
                 items, held_out, dev, ckpt: dict | None, backbone_weights, progress: bool, log):
        import torch
        from tqdm import tqdm

        self.out, self.dataset, self.network, self.settings, self.decode = (out, dataset, network,
                                                                            settings, decode)
        self.items, self.held_out, self.dev, self.log = items, held_out, dev, log
        torch.manual_seed(settings.seed)
        self.model = build_model(network,
                                 backbone_weights=backbone_weights if ckpt is None else None)
        self.start, self.losses, self.validation = 0, [], []
        if ckpt is not None:
            load_weights(self.model, ckpt['state_dict'], ckpt['path'])
            self.start = int(ckpt['step'])
            self.losses = [tuple(x) for x in ckpt.get('losses', [])]
            self.validation = [dict(v) for v in ckpt.get('validation_history', [])]
        self.model.to(dev).train()
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
        if ckpt is not None and ckpt.get('optimizer'):
            self.opt.load_state_dict(ckpt['optimizer'])
        out.mkdir(parents=True, exist_ok=True)
        config = {'network': network_to_dict(network), 'train': settings_to_dict(settings),
                  'decode': settings_to_dict(decode)}
        write_text_atomic(out / RUN_MARKER, json.dumps(config, indent=1) + '\n')
        self.model_name = network.model + (
            f'-{network.backbone}' if network.model == 'faster-rcnn' else '')
        self.t0 = time.perf_counter()
        self.step = self.start
        self.rng = np.random.default_rng([settings.seed, self.start])
        self.bar = tqdm(total=settings.max_steps, initial=self.start, unit='step', desc='train',
                        disable=not progress, dynamic_ncols=True)
        self.timing = {'from': None, 'steps': 0, 'validation_s': 0.0}

    def state(self, step: int) -> dict:
        return {'format': CHECKPOINT_FORMAT, 'version': CHECKPOINT_VERSION,
                **checkpoint_meta(self.network, self.decode),
                'train': settings_to_dict(self.settings), 'step': step,
                'state_dict': self.model.state_dict(),
                'optimizer': self.opt.state_dict(), 'image_size': list(self.items.image_size),
                'camera_fx': self.items.fx, 'dataset': str(self.dataset.resolve()),
                'model_id': f'{self.model_name}-{self.network.channels}-step{step}',
                'train_items': len(self.items),
                'losses': [list(x) for x in self.losses], 'validation_history': self.validation}

    def best(self) -> dict | None:
        return max(self.validation,
                   key=lambda v: (v['rectangle_top1_pct'], v['step'])) if self.validation else None

    def checkpoint(self, step: int) -> None:
        out, best = self.out, self.best()
        st = self.state(step)
        if best is None or best['step'] == step:
            save_checkpoint(out / 'checkpoints' / 'best.pt', {**st, 'validation': best})
        save_checkpoint(out / 'checkpoints' / 'last.pt', {**st, 'validation': best})
        write_text_atomic(out / 'loss.csv',
                          'step,loss\n' + ''.join(f'{s},{v:.5f}\n' for s, v in self.losses))
        write_text_atomic(
            out / 'validation.csv',
            'step,rectangle_top1_pct,candidates_per_image\n'
            + ''.join(
                f'{v["step"]},{v["rectangle_top1_pct"]},{v["candidates_per_image"]}\n'
                for v in self.validation
            ),
        )
        _plot(self.losses, out / 'loss.png')

    def validate(self, step: int) -> None:
        if self.held_out is not None:
            t = time.perf_counter()
            v = evaluate(self.model, self.network, self.decode, self.held_out)
            self.timing['validation_s'] = time.perf_counter() - t
            self.validation.append({'step': step, **v})
            self.bar.set_postfix_str(f'loss {np.mean([x for _, x in self.losses[-20:]]):.3f}, '
                                     'held-out top-1 '
                                     f"{v['rectangle_top1_pct']:.0f} %", refresh=False)
        self.checkpoint(step)

    def plan(self, now: float) -> None:
        """Plan fewer steps where this machine would need more than ``max_minutes``.

        Decided once, from the steps after the first of this invocation.
        """
        settings, step, timing = self.settings, self.step, self.timing
        per_step = (now - timing['from']) / timing['steps']
        # validations still to come cost about as much as the first one (not measured yet: 3 %)
        left_s = settings.max_minutes * 60.0 - (now - self.t0)
        n_val = max(0, (settings.max_steps - step) // settings.val_every)
        per_val = timing['validation_s'] or 0.03 * per_step * settings.val_every
        fits = step + int(max(0.0, left_s - n_val * per_val) / per_step)
        if fits < settings.max_steps:
            planned = max(step + 1, fits)
            self.log(f'train: {per_step:.2f} s a step here: {settings.max_steps} steps would take '
                     f'{(settings.max_steps - step) * per_step / 60:.0f} min; planned {planned} '
                     'steps to end within '
                     f'{settings.max_minutes:g} min (--max-minutes; 0: always --max-steps)',
                     file=sys.stderr)
            self.settings = replace(settings, max_steps=planned)
            self.bar.total = planned
            self.bar.refresh()

    def on_step(self, loss: dict) -> None:
        self.step += 1
        step = self.step
        now = time.perf_counter()
        if step == self.start + 1:
            self.timing['from'] = now  # the first step warms up: time the ones after it
        else:
            self.timing['steps'] += 1
        self.losses.append((step, loss['total']))
        for group in self.opt.param_groups:
            group['lr'] = learning_rate(step, self.settings)
        self.bar.update()
        if step % 10 == 0:
            self.bar.set_postfix_str(f'loss {np.mean([x for _, x in self.losses[-20:]]):.3f}',
                                     refresh=False)
        if step % self.settings.val_every == 0 and step < self.settings.max_steps:
            self.validate(step)

    def loop(self) -> dict:
        import torch

        for group in self.opt.param_groups:
            group['lr'] = learning_rate(self.step, self.settings)
        try:
            planned = self.settings.max_minutes <= 0
            while self.step < self.settings.max_steps:
                # until the plan is made (after 10 timed steps), epochs are cut short to make it in
                # time
                left = self.settings.max_steps - self.step
                n = left if planned else min(left, self.start + 11 - self.step)
                train_one_epoch(self.model, self.network, self.opt, self.items, self.rng,
                                batch_size=self.settings.batch_size, device=self.dev, max_steps=n,
                                on_step=self.on_step)
                if not planned and self.timing['steps'] >= 10:
                    planned = True
                    self.plan(time.perf_counter())
        except KeyboardInterrupt:
            self.checkpoint(self.step)
            self.bar.close()
            self.log(f'interrupted at step {self.step}; saved '
                     f"{self.out / 'checkpoints' / 'last.pt'} "
                     '(continue with --resume)', file=sys.stderr)
            raise
        except FloatingPointError as exc:
            raise CommandError(f'step {self.step}: {exc}') from None
        if not self.validation or self.validation[-1]['step'] != self.step:
            self.validate(self.step)
        self.bar.close()
        best = self.best()
        losses = self.losses
        return {'step': self.step,
                'loss': float(np.mean([v for _, v in losses[-50:]])) if losses else None,
                'seconds': time.perf_counter() - self.t0, 'steps_run': self.step - self.start,
                'train_items': len(self.items),
                'held_out_items': len(self.held_out) if self.held_out is not None else 0,
                'best': best,
                'checkpoint': str(self.out / 'checkpoints' / ('best.pt' if best else 'last.pt')),
                'run': str(self.out), 'threads': torch.get_num_threads(), 'pid': os.getpid()}
