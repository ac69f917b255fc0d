"""The whole step: two depth frames in, the removed log's mask, grasps and a gate verdict out."""
from __future__ import annotations

from dataclasses import dataclass, field

from grasp_autolabel.annotate.config import AnnotateConfig
from grasp_autolabel.annotate.reasons import Reason
from grasp_autolabel.annotate.stages import STAGES
from grasp_autolabel.annotate.step import start, Step
from grasp_autolabel.core.camera import CameraIntrinsics, depth_at, grasp_poses, GraspPose
import numpy as np

__all__ = ['StepLabel', 'annotate_step', 'Reason', 'STAGES']


@dataclass
class StepLabel:
    """The result of annotating one pick.

    ``grasps`` are ``(N, 5)`` ``[x, y, theta, w, h]`` in the grasp convention, sorted by score;
    ``poses`` their 3-D poses in the camera optical frame (see :func:`camera.grasp_pose`).
    A rejected step still carries whatever the pipeline found before the gate stopped it.
    """

    accepted: bool
    reason: Reason | None  # None where accepted
    mask: np.ndarray  # (H, W) bool, the removed object's refined mask (empty if none)
    grasps: np.ndarray = field(default_factory=lambda: np.zeros((0, 5)))
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    poses: list = field(default_factory=list)  # list[GraspPose]
    spine: np.ndarray | None = None  # (2, 2) end points (x, y) of the spine segment
    info: dict = field(default_factory=dict)  # measurements the gate used, for the labels file

    @property
    def detail(self) -> str:
        return self.reason.description if self.reason else ''


def annotate_step(before_m: np.ndarray, after_m: np.ndarray, intrinsics: CameraIntrinsics,
                  config: AnnotateConfig | None = None, *, before_rgb=None,
                  after_rgb=None) -> StepLabel:
    """Label one pick from the depth frames before and after it.

    The stages below in order, each measuring into ``info`` and returning a rejection reason or
    None.

    Parameters
    ----------
    before_m, after_m : ndarray (H, W) float
        Aligned depth in metres (0 = invalid), before and after the pick.
    intrinsics : CameraIntrinsics
        Of the (colour-aligned) depth image; its size must match.
    config : AnnotateConfig, optional
    before_rgb, after_rgb : ndarray (H, W, 3) uint8, optional
        The aligned colour images. Where a frame has no depth (edge bands, dark or grazing
        surfaces) they decide whether the pixel belonged to the removed object; without them
        the nearest pixel with depth does.

    Returns
    -------
    StepLabel
    """
    step = start(before_m, after_m, intrinsics, config or AnnotateConfig(), before_rgb, after_rgb)
    for stage in STAGES:
        reason = stage(step)
        if reason is not None:
            reason = Reason(reason)  # a stage returning anything else is a bug: fail here
            if reason not in stage.spec.rejects:
                raise RuntimeError(f'{stage.__name__} returned {reason!r}, which it does not '
                                   'declare')
            mask = step.mask if step.mask is not None else np.zeros(step.shape, dtype=bool)
            return StepLabel(False, reason, mask, info=step.info, spine=step.ends)
    return _accept(step)


def _accept(step: Step) -> StepLabel:
    grasps = step.grasps.copy()
    grasps[:, 0] += step.box[0]
    grasps[:, 1] += step.box[1]
    z = [depth_at(step.before_m, g[0], g[1], radius=3) for g in grasps]
    poses: list[GraspPose] = grasp_poses(grasps, z, step.intrinsics)
    return StepLabel(True, None, step.mask, grasps, step.scores, poses, step.ends, step.info)
