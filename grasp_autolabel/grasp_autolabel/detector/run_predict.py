"""``grasp-autolabel predict``: a detector run over capture sessions.

::

    OUT/predictions.json                     what ran: model, sessions, decode settings (the
                                             marker that OUT is this command's folder)
    OUT/<session folder name>/grasps/NNNNNN.json
        {"grasps": [[x, y, theta, w, h], ...], "scores": [...], "poses": [...],
         "frame": k, "model_id": ...}       best first, the grasp convention, image pixels
    OUT/<session folder name>/viz/NNNNNN.png overlays (--viz)

A pose is the grasp in the camera's optical frame (position in metres, orientation as a
quaternion x, y, z, w with x along the closing direction; ``valid`` false where there is no
depth under the grasp), as in the labels files.
"""
from __future__ import annotations

import json
from pathlib import Path
import time

from grasp_autolabel.core.camera import depth_at, grasp_poses
from grasp_autolabel.core.errors import CommandError
from grasp_autolabel.core.session import (expand_sessions, Session, write_png_atomic,
                                          write_text_atomic)
import numpy as np

__all__ = ['expand_sessions', 'predict_sessions', 'MARKER']

MARKER = 'predictions.json'


def _pose_dicts(grasps, depth_m, intrinsics) -> list[dict]:
    z = np.array([depth_at(depth_m, g[0], g[1],
                           radius=3) for g in grasps]) if depth_m is not None else \
        np.full(len(grasps), np.nan)
    return [{'position': np.round(p.position, 5).tolist() if p.valid else None,
             'orientation': np.round(p.orientation, 6).tolist() if p.valid else None,
             'opening_m': round(float(p.opening_m), 5) if p.valid else None,
             'valid': bool(p.valid)}
            for p in grasp_poses(grasps, z, intrinsics)]


def _check_out(out: Path, sessions: list[Path]) -> None:
    out_r = out.resolve()
    for s in sessions:
        s_r = s.resolve()
        if out_r == s_r or out_r.is_relative_to(s_r) or s_r.is_relative_to(out_r):
            raise CommandError(
                f'--out {out}: holds or lies inside the input session {s}; choose another folder')
    if out.exists() and not out.is_dir():
        raise CommandError(f'--out {out}: exists and is not a folder')
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise CommandError(
            f'--out {out}: exists, is not empty and was not made by predict; choose another folder'
        )


def _predict_frame(pred, s, k, folder, decode, viz) -> tuple[float, int]:
    """Grasps for frame ``k`` of session ``s`` written under ``folder``: (seconds, grasps)."""
    rgb = s.read_rgb(k)
    depth = s.read_depth_m(k)
    t0 = time.perf_counter()
    try:
        grasps, scores = pred.predict(rgb, depth, fx=s.intrinsics.fx, decode=decode)
    except ValueError as exc:
        raise CommandError(f'{s.rgb_path(k)}: {exc}') from None
    seconds = time.perf_counter() - t0
    record = {'frame': k, 'model_id': pred.model_id, 'grasps': np.round(grasps, 3).tolist(),
              'scores': np.round(scores, 4).tolist(),
              'poses': _pose_dicts(grasps, depth, s.intrinsics)}
    write_text_atomic(folder / 'grasps' / f'{k:06d}.json', json.dumps(record, indent=1) + '\n')
    if viz:
        from grasp_autolabel.annotate.viz import draw_grasps

        write_png_atomic(folder / 'viz' / f'{k:06d}.png', draw_grasps(rgb, grasps, thickness=2))
    return seconds, len(grasps)


def predict_sessions(model, sessions, out, *, viz: bool = False, backend: str = 'auto',
                     device: str = 'cpu', decode=None, progress: bool = True) -> dict:
    """Run ``model`` on every frame of ``sessions``; returns counts and timings.

    Raises
    ------
    SessionError, CheckpointError, CommandError
        Bad sessions or model, a frame the model cannot read (named), an output folder that is
        an input or was not made by this command.
    """
    from grasp_autolabel.detector.predict import load_predictor
    from tqdm import tqdm

    sessions = expand_sessions(sessions)
    out = Path(out)
    _check_out(out, sessions)
    pred = load_predictor(model, backend=backend, device=device)
    opened = [Session.open(s) for s in sessions]
    for s in opened:  # every frame size checked before anything is written
        try:
            pred.check_size(s.intrinsics.width, s.intrinsics.height,
                            where=f'{s.path}/camera_info.yaml')
        except ValueError as exc:
            raise CommandError(str(exc)) from None
    out.mkdir(parents=True, exist_ok=True)
    d = decode or pred.decode
    write_text_atomic(out / MARKER,
                      json.dumps({'model': str(Path(model).resolve()), 'model_id': pred.model_id,
                                  'sessions': [str(s.resolve()) for s in sessions],
                                  'decode': dict(vars(d))}, indent=1) + '\n')
    total = sum(len(s.frames) for s in opened)
    times = []
    grasps_out = 0
    bar = tqdm(total=total, unit='frame', desc='predict', disable=not progress, dynamic_ncols=True)
    for s in opened:
        folder = out / s.path.name
        for k in s.frames:
            t, n = _predict_frame(pred, s, k, folder, decode, viz)
            times.append(t)
            grasps_out += n
            bar.update()
    bar.close()
    return {'sessions': len(opened), 'frames': total, 'grasps': grasps_out,
            'ms_per_frame_p50': round(1000 * float(np.median(times)), 1) if times else None,
            'out': str(out)}
