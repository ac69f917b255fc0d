"""``grasp-autolabel train``: Adam (lr 1e-4) on a grasp dataset's accepted labels.

RUN/config.json          the DetectorConfig
RUN/checkpoints/last.pt  state_dict + optimizer + config + step (saved atomically every
                         ``save_every`` steps, at the end, and on Ctrl-C)
RUN/loss.csv, loss.png   the loss per step and its plot

Multi-GPU: ``torchrun --nproc_per_node N -m grasp_autolabel.cli train ...`` runs DDP (NCCL on
GPUs, gloo on CPU); each rank draws its own samples, rank 0 writes the run.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from grasp_autolabel.dataset.store import DatasetError
from grasp_autolabel.detector.data import GraspSamples
from grasp_autolabel.detector.model import DetectorConfig, build_model
from grasp_autolabel.detector.predict import CHECKPOINT_FORMAT, CheckpointError, load_checkpoint, load_weights, save_checkpoint
from grasp_autolabel.errors import CommandError
from grasp_autolabel.session import SessionError, write_text_atomic

__all__ = ["train", "resolve_device", "load_config_file"]


def resolve_device(name: str):
    import torch

    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise CommandError(f"--device {name}: no CUDA GPU is available here (torch.cuda.is_available() is False); "
                               "use --device cpu")
        return torch.device(name)
    if name != "cpu":
        raise CommandError(f"--device: expected cpu or cuda[:N], got {name!r}")
    return torch.device("cpu")


def load_config_file(path) -> dict:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise CommandError(f"{path}: cannot read the detector config ({exc})") from None
    if not isinstance(data, dict):
        raise CommandError(f"{path}: expected a mapping of detector settings")
    return data


def _plot(losses: list, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    steps = np.array([s for s, _ in losses])
    vals = np.array([v for _, v in losses])
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    ax.plot(steps, vals, lw=0.6, alpha=0.4, label="loss")
    if len(vals) >= 20:
        k = max(5, len(vals) // 50)
        ax.plot(steps[k - 1:], np.convolve(vals, np.ones(k) / k, mode="valid"), lw=1.5, label=f"mean of {k}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (RPN + head)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def train(dataset, out, config: DetectorConfig, *, device: str = "cpu", resume: bool = False,
          backbone_weights: str | None = None, progress: bool = True, save_every: int = 200, log=print) -> dict:
    """Train (or continue training) a detector; returns ``{"step", "loss", "seconds", ...}``.

    Raises
    ------
    DatasetError
        No accepted labels, or images of different sizes.
    CheckpointError
        ``resume`` with a checkpoint from another config, or a damaged one.
    CommandError
        ``out`` holds a run and ``resume`` was not given; the device is not available.
    """
    import torch
    import torch.distributed as dist
    from tqdm import tqdm

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    dev = resolve_device(device)
    if world > 1 and dev.type == "cuda":
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
    out = Path(out)
    ckpt_path = out / "checkpoints" / "last.pt"
    start, losses = 0, []
    ckpt = None
    if ckpt_path.exists():
        if not resume:
            raise CommandError(f"{out} already holds a run (step {load_checkpoint(ckpt_path)['step']}); pass --resume to "
                               "continue it or choose another --out")
        ckpt = load_checkpoint(ckpt_path)
        mine, theirs = config.network_dict(), ckpt["config_obj"].network_dict()
        if mine != theirs:
            diff = ", ".join(f"{k}: {theirs[k]} -> {mine[k]}" for k in mine if mine[k] != theirs[k])
            raise CheckpointError(f"{ckpt_path}: was trained with another network config ({diff}); resume with the "
                                  "same settings or train into a new --out")
        start = int(ckpt["step"])
        if (out / "loss.csv").exists():
            losses = [(int(a), float(b)) for a, b in (line.split(",") for line in
                                                       (out / "loss.csv").read_text().split()[1:])]
    elif out.exists() and any(out.iterdir()) and rank == 0:
        raise CommandError(f"{out} exists and is not a run; choose another --out")

    samples = GraspSamples(dataset, config, part="train")
    torch.manual_seed(config.seed + rank)
    rng = np.random.default_rng([config.seed, rank, start])
    model = build_model(config, backbone_weights=backbone_weights if ckpt is None else None)
    if ckpt is not None:
        load_weights(model, ckpt["state_dict"], ckpt_path)
    model.to(dev).train()
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.lr)
    if ckpt is not None and ckpt.get("optimizer"):
        opt.load_state_dict(ckpt["optimizer"])
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / "config.json", json.dumps(config.to_dict(), indent=1) + "\n")

    def save(step: int) -> None:
        if rank != 0:
            return
        save_checkpoint(ckpt_path, {
            "format": CHECKPOINT_FORMAT, "version": 1, "config": config.to_dict(), "step": step,
            "state_dict": model.state_dict(), "optimizer": opt.state_dict(), "image_size": list(samples.image_size),
            "dataset": str(Path(dataset).resolve()), "model_id": f"{config.backbone}-{config.channels}-step{step}",
            "train_items": len(samples)})
        write_text_atomic(out / "loss.csv", "step,loss\n" + "".join(f"{s},{v:.5f}\n" for s, v in losses))
        _plot(losses, out / "loss.png")

    t0 = time.perf_counter()
    step = start
    bar = tqdm(total=config.max_steps, initial=start, unit="step", desc="train", disable=not progress or rank != 0,
               dynamic_ncols=True)
    try:
        while step < config.max_steps:
            batch = [samples.sample(rng) for _ in range(config.batch_size)]
            images = [torch.from_numpy(x).to(dev) for x, _, _ in batch]
            targets = [{"boxes": torch.from_numpy(b).to(dev), "labels": torch.from_numpy(lab).to(dev)}
                       for _, b, lab in batch]
            loss_dict = net(images, targets)
            loss = sum(loss_dict.values())
            if not torch.isfinite(loss):
                raise CommandError(f"step {step}: the loss is {loss.item()} (diverged); lower lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            losses.append((step, float(loss.item())))
            bar.update()
            bar.set_postfix(loss=f"{np.mean([v for _, v in losses[-20:]]):.3f}", refresh=False)
            if step % save_every == 0:
                save(step)
    except KeyboardInterrupt:
        save(step)
        bar.close()
        log(f"interrupted at step {step}; saved {ckpt_path} (continue with --resume)", file=sys.stderr)
        raise
    bar.close()
    save(step)
    if world > 1:
        dist.destroy_process_group()
    return {"step": step, "loss": float(np.mean([v for _, v in losses[-50:]])) if losses else None,
            "seconds": time.perf_counter() - t0, "steps_run": step - start, "train_items": len(samples),
            "checkpoint": str(ckpt_path)}


def main(args) -> int:
    values = load_config_file(args.config) if args.config else {}
    for key in ("backbone", "max_steps", "channels", "input_size", "batch_size", "lr"):
        v = getattr(args, key, None)
        if v is not None:
            values[key] = v
    try:
        config = DetectorConfig.from_dict(values)
    except (TypeError, ValueError) as exc:
        raise CommandError(f"detector config: {exc}") from None
    try:
        r = train(args.dataset, args.out, config, device=args.device, resume=args.resume,
                  backbone_weights=args.backbone_weights, progress=sys.stderr.isatty())
    except (DatasetError, SessionError, CheckpointError) as exc:
        raise CommandError(str(exc)) from None
    rate = r["steps_run"] / r["seconds"] if r["seconds"] > 0 else float("inf")
    print(f"trained to step {r['step']} on {r['train_items']} items ({rate:.2f} steps/s); last loss {r['loss']:.4f}; "
          f"{r['checkpoint']}")
    return 0
