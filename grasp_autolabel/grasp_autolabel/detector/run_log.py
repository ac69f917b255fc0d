"""What a training run tells the person who started it, and what it leaves for TensorBoard.

* On a terminal: a progress bar (tqdm). Elsewhere (a log file, CI, nohup): one line every
  ``every_s`` seconds, ``train: step 120/900 (13 %), loss 0.412, 1.48 s a step, ends in 19 min
  (at 20:14)``, so a file shows progress while the run goes.
* The plan at the start (steps, batch, items, device, threads, where it starts from) and, once
  ten steps are timed, the expected end.
* TensorBoard event files in ``RUN/tensorboard/`` (when the ``tensorboard`` package is
  installed): every loss part, the learning rate, the validation figures and a few predicted
  quality maps over held-out images at each validation.
"""
from __future__ import annotations

import datetime
import sys
import time

from grasp_autolabel.core.session import write_atomic
import numpy as np

__all__ = ['RunLog', 'PROGRESS_EVERY_S', 'plot_losses']

PROGRESS_EVERY_S = 10.0


def _clock(seconds_from_now: float) -> str:
    then = datetime.datetime.now() + datetime.timedelta(seconds=seconds_from_now)
    return then.strftime('%H:%M')


class RunLog:
    """Progress (bar or lines) and TensorBoard scalars and images of one run."""

    def __init__(self, out, *, total: int, start: int, bar: bool, log=print,
                 every_s: float = PROGRESS_EVERY_S, tensorboard: bool = True):
        from tqdm import tqdm

        self.total, self.step, self.log, self.every_s = total, start, log, every_s
        self.bar = tqdm(total=total, initial=start, unit='step', desc='train', disable=not bar,
                        dynamic_ncols=True) if bar else None
        self.last_line = time.monotonic()
        self.per_step: float | None = None
        self.timed_at: tuple | None = None  # (monotonic time, step) when the pace was first timed
        self.loss = None
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                log('train: the tensorboard package is not installed: no event files '
                    '(pip install tensorboard)', file=sys.stderr)
            else:
                self.writer = SummaryWriter(str(out / 'tensorboard'), purge_step=start + 1)

    def plan(self, text: str) -> None:
        self.log(f'train: {text}', file=sys.stderr)

    def timed(self, per_step: float, total: int) -> None:
        """Record the measured time a step; announce the expected end."""
        self.per_step, self.total = per_step, total
        self.timed_at = (time.monotonic(), self.step)
        left = (total - self.step) * per_step
        if self.bar is not None:
            self.bar.total = total
            self.bar.refresh()
        self.log(f'train: {per_step:.2f} s a step here; {total - self.step} steps left, '
                 f'expected end in {left / 60:.0f} min (at {_clock(left)})', file=sys.stderr)

    def on_step(self, step: int, losses: dict, lr: float, loss_mean: float) -> None:
        if self.timed_at is not None and step > self.timed_at[1]:  # the pace since, all included
            self.per_step = (time.monotonic() - self.timed_at[0]) / (step - self.timed_at[1])
        self.step, self.loss = step, loss_mean
        if self.writer is not None:
            for name, value in losses.items():
                self.writer.add_scalar(f'loss/{name}', value, step)
            self.writer.add_scalar('learning_rate', lr, step)
        if self.bar is not None:
            self.bar.update()
            if step % 10 == 0:
                self.bar.set_postfix_str(f'loss {loss_mean:.3f}', refresh=False)
        elif time.monotonic() - self.last_line >= self.every_s or step == self.total:
            self.last_line = time.monotonic()
            self.log(self.line(), file=sys.stderr, flush=True)

    def line(self) -> str:
        s = (f'train: step {self.step}/{self.total} ({100 * self.step / max(self.total, 1):.0f} '
             f'%), loss {self.loss:.3f}')
        if self.per_step:
            left = max(0, self.total - self.step) * self.per_step
            s += (f', {self.per_step:.2f} s a step, ends in {left / 60:.0f} min '
                  f'(at {_clock(left)})')
        return s

    def validation(self, step: int, figures: dict, images=()) -> None:
        """Held-out figures (and ``images``: ``(name, HxWx3 uint8)`` overlays) at ``step``."""
        text = ', '.join(f'{k} {v}' for k, v in figures.items())
        if self.bar is not None:
            self.bar.set_postfix_str(f'loss {self.loss or 0:.3f}, {text}', refresh=False)
        else:
            self.log(f'train: validation at step {step}: {text}', file=sys.stderr, flush=True)
        if self.writer is not None:
            for name, value in figures.items():
                self.writer.add_scalar(f'validation/{name}', value, step)
            for name, image in images:
                self.writer.add_image(f'validation/{name}', image, step, dataformats='HWC')
            self.writer.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()


def plot_losses(losses: list, path) -> None:
    """Write the loss curve (log scale, a running mean) as a PNG; nothing without matplotlib."""
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
