"""Where training runs: the device, and under ``torchrun`` the other processes.

``torchrun --nproc_per_node N -m grasp_autolabel.cli train ...`` starts N processes that train
one model with DistributedDataParallel: gloo on CPUs, nccl on GPUs (process k on ``cuda:k``,
``LOCAL_RANK``). Each process reads the dataset itself and draws its own batches (its own random
stream); the gradients are averaged, so every process holds the same weights after every step.
Only the first process (rank 0) writes the run folder and prints; a failure while starting on
any process ends all of them with one line naming the process and the problem.
"""
from __future__ import annotations

import hashlib
import os

from grasp_autolabel.core.errors import CommandError

__all__ = ['resolve_device', 'Processes', 'weights_digest']


def resolve_device(name: str):
    """``torch.device`` for ``cpu`` or ``cuda[:N]``; CommandError when it is not here."""
    import torch

    if name == 'cuda' or name.startswith('cuda:'):
        if not torch.cuda.is_available():
            raise CommandError(f'--device {name}: no CUDA GPU is available here '
                               '(torch.cuda.is_available() is False); use --device cpu')
        index = name.partition(':')[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise CommandError(f'--device {name}: this machine has {torch.cuda.device_count()} '
                               f'GPU(s) (cuda:0..cuda:{torch.cuda.device_count() - 1})')
        return torch.device(name)
    if name != 'cpu':
        raise CommandError(f'--device: expected cpu or cuda[:N], got {name!r}')
    return torch.device('cpu')


def weights_digest(state_dict) -> str:
    """Return a SHA-256 of a state dict's tensors (names, shapes, bytes), in key order."""
    h = hashlib.sha256()
    for name, tensor in state_dict.items():
        t = tensor.detach().cpu().contiguous()
        h.update(f'{name}:{tuple(t.shape)}:{t.dtype}'.encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


class Processes:
    """One process, or this process's place among ``torchrun``'s (``WORLD_SIZE`` > 1)."""

    def __init__(self, device: str):
        self.size = int(os.environ.get('WORLD_SIZE', '1') or 1)
        self.rank = int(os.environ.get('RANK', '0') or 0)
        self.is_main = self.rank == 0
        self.device = resolve_device(device)
        if self.size > 1:
            import torch
            import torch.distributed as dist

            if self.device.type == 'cuda':
                self.device = torch.device('cuda', int(os.environ.get('LOCAL_RANK', '0')))
                torch.cuda.set_device(self.device)
            dist.init_process_group('nccl' if self.device.type == 'cuda' else 'gloo')

    def __enter__(self) -> 'Processes':
        return self

    def __exit__(self, kind, *exc) -> None:
        if self.size > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                if kind is None:  # all leave together: a process gone early aborts gloo's peers
                    dist.barrier()
                dist.destroy_process_group()

    def wrap(self, model):
        """Return ``model`` for training (in DistributedDataParallel across processes)."""
        if self.size == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(
            model, device_ids=[self.device.index] if self.device.type == 'cuda' else None)

    def agree(self, error: Exception | None) -> None:
        """Raise on every process if any failed to start (one line naming which and why)."""
        if self.size == 1:
            if error is not None:
                raise error
            return
        import torch.distributed as dist

        errors: list = [None] * self.size
        dist.all_gather_object(errors, None if error is None else
                               (type(error).__name__, str(error)))
        failed = [(r, e) for r, e in enumerate(errors) if e is not None]
        if failed:
            rank, (kind, message) = failed[0]
            if error is not None and rank == self.rank:
                raise error
            raise CommandError(f'process {rank} of {self.size} (torchrun rank {rank}): {message}')

    def broadcast(self, value):
        """Return rank 0's ``value`` on every process."""
        if self.size == 1:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def digests(self, model) -> list[str]:
        """Return every process's :func:`weights_digest` of ``model``, by rank.

        The buffers (BatchNorm's running statistics: each process saw its own batches) are
        first made rank 0's on every process, as DistributedDataParallel does before a forward.
        """
        if self.size > 1:
            import torch.distributed as dist

            for buffer in model.buffers():
                dist.broadcast(buffer, src=0)
        mine = weights_digest(model.state_dict())
        if self.size == 1:
            return [mine]
        import torch.distributed as dist

        out: list = [None] * self.size
        dist.all_gather_object(out, mine)
        return out
