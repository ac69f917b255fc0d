"""``grasp-autolabel train``: a detector trained on a grasp dataset's labels.

RUN/config.json            the network, train and decode settings
RUN/checkpoints/last.pt    the latest state (every ``val_every`` steps, at the end, on Ctrl-C)
RUN/checkpoints/best.pt    the best by validation on the held-out part of the dataset's split
RUN/loss.csv, loss.png     the loss per step and its plot
RUN/validation.csv         step, validation score (the mean of the next two: what best.pt is
                           chosen by), rectangle metric top-1 % and top-5 precision % on the
                           held-out part
RUN/tensorboard/           TensorBoard event files: loss parts, learning rate, validation,
                           predicted grasps on held-out images (:mod:`.run_log`)

Progress: a bar on a terminal, a line every 10 s elsewhere; the plan and expected end first.
``--init`` starts from a model's weights (fine-tuning); under ``torchrun --nproc_per_node N``
N processes train one model (:mod:`.distributed`).

The learning rate warms up over the first 5 % of the steps and then follows a half cosine to
zero, a function of the step alone, so ``--resume`` continues the same schedule.
"""
from __future__ import annotations

from contextlib import ExitStack
from dataclasses import replace
import json
import math
import os
from pathlib import Path
import sys
import time

from grasp_autolabel.core.errors import CommandError
from grasp_autolabel.core.fsio import check_not_input, FolderLock, LOCK_NAME, OutputError
from grasp_autolabel.core.session import write_text_atomic
from grasp_autolabel.dataset.store import DatasetError
from grasp_autolabel.detector.config import DecodeSettings, settings_to_dict, TrainSettings
from grasp_autolabel.detector.data import GraspItems
from grasp_autolabel.detector.distributed import Processes
from grasp_autolabel.detector.engine import evaluate, train_one_epoch
from grasp_autolabel.detector.models import build_model, family, network_to_dict
from grasp_autolabel.detector.predict import (CHECKPOINT_FORMAT, checkpoint_meta,
                                              CHECKPOINT_VERSION, CheckpointError, load_checkpoint,
                                              load_weights, save_checkpoint)
from grasp_autolabel.detector.run_log import plot_losses, RunLog
import numpy as np

__all__ = ['train', 'load_init', 'learning_rate', 'RUN_MARKER']

RUN_MARKER = 'config.json'
VALIDATION_COLUMNS = ('validation_score', 'rectangle_top1_pct', 'rectangle_top5_precision_pct',
                      'candidates_per_image')


def learning_rate(step: int, settings: TrainSettings) -> float:
    """Linear warm-up over 5 % of the steps, then a half cosine to 0."""
    warm = max(1, int(0.05 * settings.max_steps))
    if step < warm:
        return settings.lr * (step + 1) / warm
    t = (step - warm) / max(1, settings.max_steps - warm)
    return settings.lr * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


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
          backbone_weights: str | None = None, init=None, progress: bool = True,
          log=print) -> dict:
    """Train (or continue training) a detector; returns ``{"step", "loss", "seconds", ...}``.

    ``decode`` (whole) or ``decode_overrides`` (some settings) set the model's decoding; the
    rest comes from the dataset (jaw width, the labels' jaw size and thinnest opening) and the
    family's defaults. ``init``: a run folder or ``.pt`` checkpoint (``"shipped"``: the package's
    simulator-trained model) whose weights the network starts from (fine-tuning; the optimiser
    and the schedule start afresh); ignored when resuming.

    Raises
    ------
    DatasetError
        No usable labels, or images of different sizes.
    CheckpointError
        ``resume`` with a checkpoint of another network config, or a damaged one.
    CommandError
        ``out`` holds something else, or a run and ``resume`` was not given; no such device.
    """
    out = Path(out)
    with Processes(device) as procs, ExitStack() as stack:
        error, setup = None, None
        try:  # every process starts, or all stop with the first one's reason
            check_not_input(out, [dataset])
            if procs.is_main:
                stack.enter_context(FolderLock(out))
            setup = _setup(dataset, out, network, settings, decode, decode_overrides, resume,
                           init)
        except (OutputError, DatasetError, CheckpointError, CommandError) as exc:
            error = CommandError(str(exc)) if isinstance(exc, OutputError) else exc
        procs.agree(error)
        run = _Run(out, Path(dataset), network, settings, *setup, procs, backbone_weights,
                   progress if procs.is_main else False, log if procs.is_main else _quiet)
        return run.loop()


def _quiet(*args, **kwargs) -> None:
    """Say nothing (the log of a process other than the first)."""


def load_init(init, network) -> dict:
    """Return the checkpoint ``--init`` names, checked to hold weights of ``network``."""
    from grasp_autolabel.detector.model_files import ModelPathError, shipped_model

    if str(init) == 'shipped':
        try:
            init = shipped_model('.pt')
        except ModelPathError as exc:
            raise CheckpointError(f'--init shipped: {exc}') from None
    if Path(init).suffix == '.onnx':
        raise CheckpointError(f'--init {init}: an ONNX model holds no trainable weights; give its '
                              '.pt checkpoint or run folder')
    ckpt = load_checkpoint(init)
    _check_same_network(ckpt, network, what=f"--init {ckpt['path']}")
    return ckpt


def _setup(dataset, out, network, settings, decode, decode_overrides, resume, init) -> tuple:
    """Return ``(decode, items, held_out, checkpoint to resume, checkpoint to start from)``."""
    ckpt = _check_out(out, resume)
    if ckpt is not None:
        _check_same_network(ckpt, network)
    init_ckpt = load_init(init, network) if init is not None and ckpt is None else None
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
                                         **family(network).decode_defaults,
                                         **(decode_overrides or {})})
    return decode, items, held_out, ckpt, init_ckpt


def _check_same_network(ckpt: dict, network, what: str = '') -> None:
    mine, theirs = network_to_dict(network), network_to_dict(ckpt['network_obj'])
    if mine != theirs:
        diff = ', '.join(f'{k}: {theirs.get(k)} -> {mine.get(k)}' for k in sorted(set(mine) | set(
            theirs)) if mine.get(k) != theirs.get(k))
        if what:
            raise CheckpointError(f'{what}: its network differs from the one asked for ({diff}); '
                                  'ask for its network (--config, --width, ...) or start from '
                                  'another model')
        raise CheckpointError(f"{ckpt['path']}: was trained with another network config ({diff}); "
                              'resume with '
                              'the same settings or train into a new --out')


class _Run:
    """One training run.

    The model, its optimiser, the losses and validations so far, the progress bar, the time plan;
    checkpoints written as it goes.
    """

    def __init__(self, out: Path, dataset: Path, network, settings: TrainSettings,
                 decode: DecodeSettings, items, held_out, ckpt: dict | None, init: dict | None,
                 procs, backbone_weights, progress: bool, log):
        import torch

        self.out, self.dataset, self.network, self.settings, self.decode = (out, dataset, network,
                                                                            settings, decode)
        self.items, self.held_out, self.log = items, held_out, log
        self.procs, self.dev, self.ranks = procs, procs.device, None
        torch.manual_seed(settings.seed)
        self.model = build_model(network,
                                 backbone_weights=backbone_weights if ckpt is None else None)
        self.start, self.losses, self.validation = 0, [], []
        self.init = ({'path': init['path'], 'model_id': init.get('model_id'),
                      'step': init.get('step')} if init is not None else
                     (ckpt or {}).get('init'))
        if init is not None:
            load_weights(self.model, init['state_dict'], init['path'])
        if ckpt is not None:
            load_weights(self.model, ckpt['state_dict'], ckpt['path'])
            self.start = int(ckpt['step'])
            self.losses = [tuple(x) for x in ckpt.get('losses', [])]
            self.validation = [dict(v) for v in ckpt.get('validation_history', [])]
        self.model.to(self.dev).train()
        self.trained = procs.wrap(self.model)  # what the steps run (DDP across processes)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
        if ckpt is not None and ckpt.get('optimizer'):
            self.opt.load_state_dict(ckpt['optimizer'])
        if procs.is_main:
            out.mkdir(parents=True, exist_ok=True)
            config = {'network': network_to_dict(network), 'train': settings_to_dict(settings),
                      'decode': settings_to_dict(decode), 'init': self.init,
                      'processes': procs.size}
            write_text_atomic(out / RUN_MARKER, json.dumps(config, indent=1) + '\n')
        self.model_name = family(network).model_name(network)
        self.t0 = time.perf_counter()
        self.step = self.start
        self.rng = np.random.default_rng([settings.seed, self.start, procs.rank])
        self.timing = {'from': None, 'steps': 0, 'validation_s': 0.0}
        self.run_log = RunLog(out, total=settings.max_steps, start=self.start, bar=progress,
                              log=log, tensorboard=procs.is_main)
        self.run_log.plan(self.plan_text(torch.get_num_threads()))

    def plan_text(self, threads: int) -> str:
        s, init = self.settings, self.init
        origin = (f"from step {self.start} of {self.out / 'checkpoints' / 'last.pt'}" if self.start
                  else f"from {init['model_id']} ({init['path']})" if init
                  else 'from random weights')
        return (f'{s.max_steps} steps of {s.batch_size} on {len(self.items)} items '
                f'({len(self.held_out) if self.held_out is not None else 0} held out, validated '
                f'every {s.val_every} steps), {self.model_name} on {self.dev} '
                f'({threads} threads), {origin}; '
                + (f'at most {s.max_minutes:g} min' if s.max_minutes > 0 else 'no time cap'))

    def state(self, step: int) -> dict:
        return {'format': CHECKPOINT_FORMAT, 'version': CHECKPOINT_VERSION,
                **checkpoint_meta(self.network, self.decode),
                'train': settings_to_dict(self.settings), 'step': step,
                'state_dict': self.model.state_dict(),
                'optimizer': self.opt.state_dict(), 'image_size': list(self.items.image_size),
                'camera_fx': self.items.fx, 'dataset': str(self.dataset.resolve()),
                'model_id': f'{self.model_name}-{self.network.channels}-step{step}',
                'train_items': len(self.items),
                'losses': [list(x) for x in self.losses], 'validation_history': self.validation,
                'init': self.init, 'processes': self.procs.size, 'weight_digests': self.ranks}

    def best(self) -> dict | None:
        def score(v):  # (a run validated before the score existed: its top-1)
            return v.get('validation_score', v['rectangle_top1_pct']), v['step']

        return max(self.validation, key=score) if self.validation else None

    def checkpoint(self, step: int) -> None:
        if not self.procs.is_main:
            return
        out, best = self.out, self.best()
        st = self.state(step)
        if best is None or best['step'] == step:
            save_checkpoint(out / 'checkpoints' / 'best.pt', {**st, 'validation': best})
        save_checkpoint(out / 'checkpoints' / 'last.pt', {**st, 'validation': best})
        write_text_atomic(out / 'loss.csv',
                          'step,loss\n' + ''.join(f'{s},{v:.5f}\n' for s, v in self.losses))
        write_text_atomic(
            out / 'validation.csv',
            'step,' + ','.join(VALIDATION_COLUMNS) + '\n'
            + ''.join(f"{v['step']}," + ','.join(str(v.get(k, '')) for k in VALIDATION_COLUMNS)
                      + '\n' for v in self.validation),
        )
        plot_losses(self.losses, out / 'loss.png')

    def validate(self, step: int) -> None:
        if self.held_out is not None and self.procs.is_main:
            t = time.perf_counter()
            images = []
            v = evaluate(self.model, self.network, self.decode, self.held_out, overlays=images)
            self.timing['validation_s'] = time.perf_counter() - t
            self.validation.append({'step': step, **v})
            self.run_log.validation(step, {k: v[k] for k in VALIDATION_COLUMNS}, images)
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
        fits = self.procs.broadcast(fits)  # every process plans the same number of steps
        if settings.max_minutes > 0 and fits < settings.max_steps:
            planned = max(step + 1, fits)
            self.log(f'train: {per_step:.2f} s a step here: {settings.max_steps} steps would take '
                     f'{(settings.max_steps - step) * per_step / 60:.0f} min; planned {planned} '
                     'steps to end within '
                     f'{settings.max_minutes:g} min (--max-minutes; 0: always --max-steps)',
                     file=sys.stderr)
            self.settings = replace(settings, max_steps=planned)
        self.run_log.timed(per_step, self.settings.max_steps)

    def on_step(self, loss: dict) -> None:
        self.step += 1
        step = self.step
        now = time.perf_counter()
        if step == self.start + 1:
            self.timing['from'] = now  # the first step warms up: time the ones after it
        else:
            self.timing['steps'] += 1
        self.losses.append((step, loss['total']))
        lr = self.opt.param_groups[0]['lr']
        for group in self.opt.param_groups:
            group['lr'] = learning_rate(step, self.settings)
        self.run_log.on_step(step, loss, lr, float(np.mean([x for _, x in self.losses[-20:]])))
        if step % self.settings.val_every == 0 and step < self.settings.max_steps:
            self.validate(step)

    def loop(self) -> dict:
        import torch

        for group in self.opt.param_groups:
            group['lr'] = learning_rate(self.step, self.settings)
        try:
            planned = False  # timed (and cut to max_minutes) after the first 10 timed steps
            while self.step < self.settings.max_steps:
                # until the plan is made (after 10 timed steps), epochs are cut short to make it in
                # time
                left = self.settings.max_steps - self.step
                n = left if planned else min(left, self.start + 11 - self.step)
                train_one_epoch(self.trained, self.network, self.opt, self.items, self.rng,
                                batch_size=self.settings.batch_size, device=self.dev, max_steps=n,
                                on_step=self.on_step)
                if not planned and self.timing['steps'] >= 10:
                    planned = True
                    self.plan(time.perf_counter())
        except KeyboardInterrupt:
            self.checkpoint(self.step)
            self.run_log.close()
            self.log(f'interrupted at step {self.step}; saved '
                     f"{self.out / 'checkpoints' / 'last.pt'} "
                     '(continue with --resume)', file=sys.stderr)
            raise
        except FloatingPointError as exc:
            raise CommandError(f'step {self.step}: {exc}') from None
        if self.procs.size > 1:  # recorded in the checkpoint: every process ended the same
            self.ranks = self.procs.digests(self.model)
        if not self.validation or self.validation[-1]['step'] != self.step:
            self.validate(self.step)
        self.run_log.close()
        best = self.best()
        losses = self.losses
        return {'step': self.step,
                'loss': float(np.mean([v for _, v in losses[-50:]])) if losses else None,
                'seconds': time.perf_counter() - self.t0, 'steps_run': self.step - self.start,
                'train_items': len(self.items),
                'held_out_items': len(self.held_out) if self.held_out is not None else 0,
                'best': best,
                'checkpoint': str(self.out / 'checkpoints' / ('best.pt' if best else 'last.pt')),
                'run': str(self.out), 'threads': torch.get_num_threads(), 'pid': os.getpid(),
                'processes': self.procs.size, 'rank': self.procs.rank,
                'weight_digests': self.ranks}
