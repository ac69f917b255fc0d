"""One pass of training and one of validation, for both network families (torch)."""
from __future__ import annotations

import math

from grasp_autolabel.core.geometry import rectangle_metric
import numpy as np

__all__ = ['compute_loss', 'train_one_epoch', 'evaluate', 'overlay']


def compute_loss(model, network, images, targets) -> dict:
    """Return the family's training losses for a batch.

    ``images``: a list of ``(C, H, W)`` tensors; ``targets``: a list of target dicts (see
    :mod:`.data`).
    """
    from grasp_autolabel.detector.models import family

    return family(network).loss(model, images, targets)


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
            parts = {k: float(v.detach()) for k, v in losses.items()}
            on_step(parts | {'total': float(loss.detach())})
    return steps


def overlay(s, grasps, labels) -> np.ndarray:
    """Return an RGB picture of a sample (network scale): labels thin green, candidates red.

    The best candidate is drawn thicker.
    """
    import cv2

    from grasp_autolabel.core.geometry import rect_to_corners

    if s.rgb is not None:
        img = np.ascontiguousarray(s.rgb, dtype=np.uint8).copy()
    else:
        d = np.asarray(s.depth_m, np.float32)
        v = d[d > 0]
        g = np.zeros(d.shape, np.uint8) if not len(v) else np.clip(
            (v.max() - d) / max(float(np.ptp(v)), 1e-6) * 255, 0, 255).astype(np.uint8)
        img = np.repeat(g[:, :, None], 3, 2)
    for rects, colour, width in ((labels, (0, 200, 0), 1), (grasps[1:], (255, 60, 60), 1),
                                 (grasps[:1], (255, 0, 0), 2)):
        if len(rects):
            pts = np.round(rect_to_corners(np.asarray(rects, float)) * 16).astype(np.int32)
            cv2.polylines(img, list(pts), True, colour, width, cv2.LINE_AA, shift=4)
    return img


def evaluate(model, network, decode, items, *, overlays: list | None = None,
             n_overlays: int = 3) -> dict:
    """Run validation on un-augmented ``items`` (network scale) under ``torch.inference_mode``.

    The top-1 rectangle metric against the items' labels (IoU > 0.25, angle < 30 deg; the jaw size
    of a prediction is the labels' median), the share of the top five candidates that meet it
    against any grasp the dataset knows for the frame (its own and the later picks' carried back:
    five times the outcomes of top-1, so checkpoints differ by more than noise), their mean
    (``validation_score``, what the best checkpoint is chosen by) and the mean number of
    candidates. ``overlays``, when
    given, gets ``(name, picture)`` of the first ``n_overlays`` items (:func:`overlay`).
    """
    from grasp_autolabel.detector.models import decode_outputs, family
    from grasp_autolabel.detector.predict import rotated_nms, TorchPredictor
    import torch

    fam = family(network)
    runner = TorchPredictor(model=model, network=network, decode=decode)  # sets eval mode
    hits, n, cands, top5, top5_n = 0, 0, 0, 0, 0
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
            if len(g) and len(s.grasps):
                top5 += int(np.count_nonzero(rectangle_metric(g[:5], s.grasps)))
                top5_n += min(5, len(g))
            if overlays is not None and i < n_overlays:
                overlays.append((f'item_{items.items[i]:06d}', overlay(s, g, s.grasps)))
    model.train()
    top1_pct = round(100.0 * hits / max(n, 1), 2)
    top5_pct = round(100.0 * top5 / max(top5_n, 1), 2)
    return {'images': n, 'rectangle_top1_pct': top1_pct, 'rectangle_top5_precision_pct': top5_pct,
            'validation_score': round((top1_pct + top5_pct) / 2, 2),
            'candidates_per_image': round(cands / max(n, 1), 2)}
