"""One pass of training and one of validation, for both network families (torch)."""
from __future__ import annotations

import math

from grasp_autolabel.geometry import rectangle_metric
import numpy as np

__all__ = ['compute_loss', 'train_one_epoch', 'evaluate']


def compute_loss(model, network, images, targets) -> dict:
    """Return the family's training losses for a batch (``images``.

    List of ``(C, H, W)`` tensors, ``targets``: list of target dicts, see :mod:`.data`).
    """
    import torch

    if network.model == 'grasp-map':
        from grasp_autolabel.detector.models.grasp_map import loss

        return loss(model(torch.stack(images)), torch.stack([t['maps'] for t in targets]))
    return model(list(images), [{'boxes': t['boxes'], 'labels': t['labels']} for t in targets])


def train_one_epoch(model, network, optimizer, items, rng: np.random.Generator, *, batch_size: int,
                    device,
                    scheduler=None, max_steps: int | None = None, on_step=None) -> int:
    """Train one shuffled pass over ``items`` (a :class:`.data.GraspItems`).

    Each item is randomly transformed, in batches of ``batch_size``; stops early after
    ``max_steps``. ``on_step(loss dict of floats)`` after each step. Returns the number of steps
    taken.

    Raises
    ------
    FloatingPointError
        The loss is not finite (diverged).
    """
    import torch

    model.train()
    order = rng.permutation(len(items))
    # every batch full: the last, short one is topped up from the start of the next permutation
    n_batches = max(1, math.ceil(len(order) / batch_size))
    order = np.concatenate([order, rng.permutation(len(items))])[: n_batches * batch_size]
    if len(order) < n_batches * batch_size:  # fewer items than a batch
        order = rng.choice(len(items), n_batches * batch_size)
    steps = 0
    for b in range(n_batches):
        if max_steps is not None and steps >= max_steps:
            break
        pairs = [items.encode(items.sample(int(i), rng)) for i in order[b * batch_size:(
            b + 1) * batch_size]]
        images = [x.to(device) for x, _ in pairs]
        targets = [{k: v.to(device) for k, v in t.items()} for _, t in pairs]
        losses = compute_loss(model, network, images, targets)
        loss = sum(losses.values())
        if not torch.isfinite(loss):
            raise FloatingPointError(f'the loss is {loss.item()} (diverged); lower lr')
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        steps += 1
        if on_step is not None:
            on_step({k: float(v.detach()) for k,
                     v in losses.items()} | {'total': float(loss.detach())})
    return steps


def evaluate(model, network, decode, items) -> dict:
    """Run validation on un-augmented ``items`` (network scale) under ``torch.inference_mode``.

    The top-1 rectangle metric against the items' labels (IoU > 0.25, angle < 30 deg; the jaw size
    of a prediction is the labels' median) and the mean number of candidates.
    """
    from grasp_autolabel.detector.models import decode_outputs, family
    from grasp_autolabel.detector.predict import rotated_nms, TorchPredictor
    import torch

    fam = family(network)
    runner = TorchPredictor(model=model, network=network, decode=decode)  # sets eval mode
    hits, n, cands = 0, 0, 0
    with torch.inference_mode():
        for i in range(len(items)):
            s = items.sample(i)
            outputs = runner.run_network(fam.to_tensor(s.rgb, s.depth_m, network))
            g, _ = decode_outputs(network, outputs, 1.0, s.size, decode)
            g[:, 4] = float(np.median(s.grasps[:, 4])) if len(s.grasps) else decode.fallback_jaw_px
            g = g[rotated_nms(g, decode.nms_iou, limit=decode.max_candidates)]
            cands += len(g)
            n += 1
            hits += int(len(g) > 0 and bool(rectangle_metric(g[:1], s.grasps)[0]))
    model.train()
    return {'images': n, 'rectangle_top1_pct': round(100.0 * hits / max(n, 1), 2),
            'candidates_per_image': round(cands / max(n, 1), 2)}
